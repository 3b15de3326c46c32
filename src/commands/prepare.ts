/**
 * `prepareRun`: what every command does before host work, in one place — load the inventory,
 * select hosts (--limit, or the golden node), resolve the connection settings, and print the
 * inventory's warnings and the SSH notes to stderr, each once.
 */
import { statSync } from 'node:fs';
import { CriuLockError } from '../errors.js';
import { selectHosts } from '../inventory/limit.js';
import type { Inventory, InventoryHost } from '../inventory/types.js';
import { hostFailure, type HostFailure } from '../fleet/host-error.js';
import { BastionPool } from '../transport/bastions.js';
import { hostKeyCheckingWarning } from '../transport/host-key-policy.js';
import type { SshOptions } from '../transport/ssh-options.js';
import type { Transport } from '../transport/types.js';
import { errLine, sshOptions, type Clock, type CommandDeps, type CommonOptions, type Io } from './context.js';

export interface PreparedRun {
  inventory: Inventory;
  /** The hosts this run works on, in inventory order. */
  hosts: InventoryHost[];
  ssh: SshOptions;
  io: Io;
  clock: Clock;
  verbose: boolean;
  /** Opens the host's transport; its SSH notes reach stderr once per distinct note. */
  connect(host: InventoryHost): Promise<Transport>;
  /**
   * Connect, run `fn`, always close. A connection problem is `unreachable`, the rest `failed`
   * at the step `fn` last named with `at` (default `work`).
   */
  withHost<R>(
    host: InventoryHost,
    fn: (t: Transport, at: (step: string) => void) => Promise<R>,
    firstStep?: string,
  ): Promise<R | HostFailure>;
  /** `[host] message` on stderr with --verbose. */
  log(host: string, message: string): void;
  /** Milliseconds since `start` (a clock.monotonicMs() reading). */
  since(start: number): number;
}

export interface PrepareOptions {
  /** Which hosts: default the --limit selection; generate picks the golden node. */
  select?: (inv: Inventory) => InventoryHost[];
}

export async function prepareRun(
  opts: CommonOptions,
  deps: CommandDeps,
  p: PrepareOptions = {},
): Promise<PreparedRun> {
  const { io, clock } = deps;
  // A directory given as --known-hosts would fail every host's key check, one by one, as a host
  // error (exit 3); it is the command line that is wrong (exit 1).
  if (opts.knownHosts !== undefined && statSync(opts.knownHosts, { throwIfNoEntry: false })?.isDirectory()) {
    throw new CriuLockError('usage', `--known-hosts ${opts.knownHosts} is a directory`, {
      hint: 'give the known_hosts file itself',
    });
  }
  const inventory = await deps.loadInventory(opts.inventory, {
    sshConfig: opts.sshConfig,
    vaultPasswordFile: opts.vaultPasswordFile,
  });
  // Warnings quote the inventory (names, values): shown, not obeyed by the terminal.
  for (const w of inventory.warnings) errLine(io, `warning: ${w}`);
  const hosts = p.select ? p.select(inventory) : selectHosts(inventory, opts.limit);
  const seen = new Set<string>();
  const onNote = (m: string): void => {
    if (seen.has(m)) return;
    seen.add(m);
    errLine(io, `note: ${m}`);
  };
  // One pool per run: hosts behind the same bastion share its connection.
  const ssh = { ...sshOptions(opts), bastions: new BastionPool({ note: onNote }) };
  // On every run, before any host is contacted: nobody forgets that keys are not checked.
  const offWarning = hostKeyCheckingWarning(ssh.hostKeyChecking);
  if (offWarning !== undefined) io.err(`warning: ${offWarning}\n`);
  const connect = (host: InventoryHost): Promise<Transport> => deps.openTransport(host, ssh, { onNote });
  return {
    inventory,
    hosts,
    ssh,
    io,
    clock,
    verbose: opts.verbose,
    connect,
    async withHost(host, fn, firstStep = 'work') {
      let t: Transport;
      try {
        t = await connect(host);
      } catch (err) {
        return hostFailure(host.name, err, 'connect');
      }
      let step = firstStep;
      try {
        return await fn(t, (s) => void (step = s));
      } catch (err) {
        return hostFailure(host.name, err, step);
      } finally {
        await t.close().catch(() => undefined);
      }
    },
    log(host, message) {
      if (opts.verbose) errLine(io, `[${host}] ${message}`);
    },
    since: (start) => clock.monotonicMs() - start,
  };
}
