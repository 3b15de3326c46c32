/**
 * What every command receives: its options and its dependencies. Commands are functions of
 * `(options, deps)`; the CLI wires the real dependencies once (commands/deps.ts), tests wire
 * fakes (a recording transport, an in-memory inventory, a fixed clock). Nothing inside a command
 * opens a terminal, a file of the inventory or a connection on its own.
 */
import { homedir } from 'node:os';
import { escapeText } from '../report/escape.js';
import { join } from 'node:path';
import type { Inventory, InventoryHost } from '../inventory/types.js';
import type { HostKeyChecking, SshOptions } from '../transport/ssh-options.js';
import type { Transport } from '../transport/types.js';

/** The inventory and lockfile a command reads when -i and -l are not given (design.md defaults). */
export const DEFAULT_INVENTORY = 'inventory.yaml';
export const DEFAULT_LOCKFILE = 'criu-lock.yaml';

export interface CommonOptions {
  inventory: string;
  limit?: string | undefined;
  forks: number;
  knownHosts?: string | undefined;
  hostKeyChecking: HostKeyChecking;
  connectTimeout: number;
  verbose: boolean;
  debug: boolean;
  color: boolean;
  /** --ssh-config FILE or `none`; undefined means ~/.ssh/config. */
  sshConfig?: string | undefined;
  vaultPasswordFile?: string | undefined;
  /** Which SSH flags were given on the command line (they win over the ssh config). */
  explicit?: SshOptions['explicit'];
}

/** The IO host: where command output goes; tests pass a recording one. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stdout is a terminal (confirmation prompts, progress). */
  isTTY: boolean;
  /** Ask a yes/no question on the terminal; undefined when there is none. */
  confirm?: ((question: string) => Promise<boolean>) | undefined;
  /** One progress line ("[3/20] node-b: changed"); defaults to stderr, redrawn in place on a TTY. */
  progress?: ((line: string) => void) | undefined;
  /**
   * A transient status line ("plan: 412/1000 hosts, 3 failed"), drawn over itself on a terminal and
   * never written to a pipe or a log; an empty line clears it. Undefined: no status.
   */
  status?: ((line: string) => void) | undefined;
}

export type IoHost = Io;

export interface Clock {
  /** Wall clock (lockfile generatedAt). */
  now(): Date;
  /** Milliseconds from an arbitrary origin, for durations. */
  monotonicMs(): number;
}

export interface InventoryLoadOptions {
  sshConfig?: string | undefined;
  vaultPasswordFile?: string | undefined;
}

export type InventoryLoader = (path: string, opts?: InventoryLoadOptions) => Promise<Inventory>;

export interface OpenTransportExtras {
  /** Non-fatal remarks of the connection (key added with accept-new, skipped identities). */
  onNote?: (message: string) => void;
}

export type TransportFactory = (
  host: InventoryHost,
  ssh: SshOptions,
  extras: OpenTransportExtras,
) => Promise<Transport>;

export interface CommandDeps {
  loadInventory: InventoryLoader;
  openTransport: TransportFactory;
  io: Io;
  clock: Clock;
}

export function sshOptions(common: CommonOptions): SshOptions {
  return {
    knownHostsFile: common.knownHosts ?? join(homedir(), '.ssh', 'known_hosts'),
    defaultKnownHostsFiles2: common.knownHosts ? [] : [join(homedir(), '.ssh', 'known_hosts2')],
    hostKeyChecking: common.hostKeyChecking,
    connectTimeoutMs: common.connectTimeout * 1000,
    keepaliveIntervalMs: 15_000,
    explicit: common.explicit,
  };
}

/**
 * One line on stderr that quotes hosts or input (names, paths, what a host printed): its control
 * and invisible characters are shown escaped, so nothing a host says moves the cursor, recolours
 * the terminal or forges a line. Every such line goes through here (errors through formatError).
 */
export function errLine(io: Io, line: string): void {
  io.err(`${escapeText(line)}\n`);
}

/** A progress line through the IO host: redrawn in place on a terminal, plain lines when piped. */
export function progress(io: Io, line: string): void {
  // The line quotes hosts (a failure's message, a name): their control characters shown escaped.
  const text = escapeText(line);
  if (io.progress) io.progress(text);
  else io.err(`${io.isTTY ? '\r\u001b[K' : ''}${text}\n`);
}

/**
 * Hosts done / total and failures of a long fleet phase, on the IO host's status line (a TTY
 * only), redrawn at most every 100 ms. `done` goes in runFleet's onResult; `end` clears the line.
 */
export function fleetStatus<R>(
  io: Io,
  label: string,
  total: number,
  isFailure: (result: R) => boolean,
): { done(result: R): void; end(): void } {
  const status = io.status;
  if (!status || total < 2) return { done: () => undefined, end: () => undefined };
  let n = 0;
  let failed = 0;
  let last = 0;
  const draw = (): void => status(`${label}: ${n}/${total} hosts${failed ? `, ${failed} failed` : ''}`);
  return {
    done(result) {
      n++;
      if (isFailure(result)) failed++;
      const now = Date.now();
      if (n === total || now - last >= 100) {
        last = now;
        draw();
      }
    },
    end: () => status(''),
  };
}
