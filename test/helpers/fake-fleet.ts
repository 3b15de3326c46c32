/**
 * A simulated fleet for orchestration tests: each host is a Transport that keeps a little dpkg
 * state (installed versions, versions its apt sources offer, the pin file) and answers the facts
 * probe, `apt-get install` and pin writes the way a real host would, recording every call. No
 * root, no network, no SSH.
 */
import { createHash } from 'node:crypto';
import type { CommandDeps, Io } from '../../src/commands/context.js';
import { CriuLockError } from '../../src/errors.js';
import { inventoryFromText } from '../../src/inventory/load.js';
import type { Inventory, InventoryHost } from '../../src/inventory/types.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from '../../src/transport/types.js';

export interface FakeHostSpec {
  /** key (name:arch) → installed version. */
  installed: Record<string, string>;
  /** key → versions the host's apt sources offer (default: none). */
  available?: Record<string, string[]>;
  pinFile?: string | null;
  /** The connection fails (unreachable). */
  unreachable?: boolean;
  /** apt-get install fails with exit code 100. */
  aptFails?: boolean;
}

export type FakeCall =
  { kind: 'exec'; argv: string[] } | { kind: 'put'; path: string; content: string } | { kind: 'close' };

/** Shared, ordered log of what happened on which host (for batch order assertions). */
export type FleetEvent = {
  host: string;
  event: 'connect' | 'probe' | 'apt-start' | 'apt-end' | 'put' | 'close';
};

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export class FakeHost implements Transport {
  readonly calls: FakeCall[] = [];
  readonly installed: Map<string, string>;
  pinFile: string | null;

  constructor(
    readonly host: string,
    readonly spec: FakeHostSpec,
    private readonly events: FleetEvent[],
  ) {
    this.installed = new Map(Object.entries(spec.installed));
    this.pinFile = spec.pinFile ?? null;
  }

  private result(command: string, r: Partial<CommandResult> = {}): CommandResult {
    return { command, exitCode: 0, stdout: '', stderr: '', durationMs: 1, timedOut: false, ...r };
  }

  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    this.calls.push({ kind: 'exec', argv: [...argv] });
    if (argv[0] === 'sh' && argv[1] === '-s') {
      this.events.push({ host: this.host, event: 'probe' });
      return this.result('sh -s', { stdout: this.probeOutput(opts.stdin?.toString() ?? '') });
    }
    if (argv[0] === 'apt-get' && argv[1] === 'install') {
      this.events.push({ host: this.host, event: 'apt-start' });
      // Yield, so hosts of one batch really overlap and a later batch could not sneak in.
      await new Promise((r) => setTimeout(r, 5));
      this.events.push({ host: this.host, event: 'apt-end' });
      if (this.spec.aptFails)
        return this.result(argv.join(' '), {
          exitCode: 100,
          stderr: 'E: Sub-process /usr/bin/dpkg returned an error code (1)\n',
        });
      if (!argv.includes('-s')) {
        for (const a of argv.filter((x) => /^[a-z0-9][a-z0-9+.-]*:[a-z0-9-]+=/.test(x))) {
          const [key, version] = a.split('=') as [string, string];
          this.installed.set(key, version);
        }
      }
      return this.result(argv.join(' '));
    }
    return this.result(argv.join(' '), {
      exitCode: 127,
      stderr: `fake host: unexpected command ${argv.join(' ')}\n`,
    });
  }

  putFile(path: string, content: string | Buffer, _opts: PutFileOptions = {}): Promise<CommandResult> {
    this.calls.push({ kind: 'put', path, content: content.toString() });
    this.events.push({ host: this.host, event: 'put' });
    if (path === '/etc/apt/preferences.d/criu-lock.pref') this.pinFile = content.toString();
    return Promise.resolve(this.result(`put ${path}`));
  }

  close(): Promise<void> {
    this.calls.push({ kind: 'close' });
    this.events.push({ host: this.host, event: 'close' });
    return Promise.resolve();
  }

  /** Changes that reach the host: pin writes and non-simulated apt runs. */
  get writes(): FakeCall[] {
    return this.calls.filter(
      (c) =>
        c.kind === 'put' ||
        (c.kind === 'exec' && c.argv[0] === 'apt-get' && c.argv[1] === 'install' && !c.argv.includes('-s')),
    );
  }

  /** What the probe script would print on a Debian host in this state. */
  private probeOutput(script: string): string {
    const out = [
      '@@probe 1',
      '@@os-release',
      'ID=ubuntu',
      'VERSION_ID="20.04"',
      'VERSION_CODENAME=focal',
      '@@arch',
      'amd64',
      '@@foreign',
      '@@dpkg',
    ];
    for (const [key, version] of [...this.installed].sort()) {
      const [name, arch] = key.split(':');
      out.push([name, arch, version, 'install', 'installed', 'ok', 'same', '', '', ''].join('\t'));
    }
    if (script.includes('@@pin') && this.pinFile !== null) {
      out.push(
        '@@pin',
        ...this.pinFile.split('\n').map((l) => `|${l}`),
        '',
        '@@pin-sha',
        sha256(this.pinFile),
      );
    }
    if (script.includes('apt-cache') && script.includes('policy')) {
      out.push('@@policy');
      const keys = new Set([...Object.keys(this.spec.available ?? {}), ...this.installed.keys()]);
      for (const key of [...keys].sort()) {
        const installed = this.installed.get(key);
        const offered = this.spec.available?.[key] ?? [];
        out.push(
          `${key}:`,
          `  Installed: ${installed ?? '(none)'}`,
          `  Candidate: ${offered[0] ?? '(none)'}`,
          '  Version table:',
        );
        for (const v of offered)
          out.push(`${v === installed ? ' ***' : '    '} ${v} 500`, '        500 file:/srv/repo ./ Packages');
        if (installed !== undefined && !offered.includes(installed))
          out.push(` *** ${installed} 100`, '        100 /var/lib/dpkg/status');
      }
    }
    out.push('@@end', '');
    return out.join('\n');
  }
}

export interface FakeFleet {
  hosts: Map<string, FakeHost>;
  events: FleetEvent[];
  /** Hosts a transport was opened for, in order. */
  opened: string[];
  deps(io: Io, opts?: { warnings?: string[]; notes?: string[] }): CommandDeps;
  inventory: Inventory;
}

/** An inventory (group `golden` holds the first host, `fleet` the others) and one FakeHost per host. */
export function fakeFleet(specs: Record<string, FakeHostSpec>): FakeFleet {
  const names = Object.keys(specs);
  const yaml = [
    'all:',
    '  children:',
    '    golden:',
    '      hosts:',
    `        ${names[0]}: {}`,
    '    fleet:',
    '      hosts:',
    ...names.slice(1).map((n) => `        ${n}: {}`),
  ].join('\n');
  const inventory = inventoryFromText(yaml, 'inventory.yaml', {
    cwd: '/',
    homeDir: '/root',
    defaultUser: 'root',
  });
  const events: FleetEvent[] = [];
  const hosts = new Map(names.map((n) => [n, new FakeHost(n, specs[n]!, events)]));
  const opened: string[] = [];
  return {
    hosts,
    events,
    opened,
    inventory,
    deps(io, opts = {}) {
      let t = 0;
      return {
        io,
        clock: { now: () => new Date('2026-11-28T12:00:00.000Z'), monotonicMs: () => (t += 1) },
        loadInventory: (path) => {
          const inv: Inventory = { ...inventory, path, warnings: [...(opts.warnings ?? [])] };
          return Promise.resolve(inv);
        },
        openTransport: (host: InventoryHost, _ssh, extras) => {
          opened.push(host.name);
          events.push({ host: host.name, event: 'connect' });
          for (const n of opts.notes ?? []) extras.onNote?.(n);
          const h = hosts.get(host.name);
          if (!h || h.spec.unreachable) {
            return Promise.reject(
              new CriuLockError('ssh', `cannot connect to ${host.name}:22: connection refused`, {
                hint: 'check that sshd runs on the host',
              }),
            );
          }
          return Promise.resolve(h);
        },
      };
    },
  };
}

export interface RecordingIo extends Io {
  stdout: string;
  stderr: string;
  questions: string[];
}

/** An IO host that records; `answer` makes it a terminal that answers prompts. */
export function recordingIo(answer?: string): RecordingIo {
  const io: RecordingIo = {
    stdout: '',
    stderr: '',
    questions: [],
    out: (s) => void (io.stdout += s),
    err: (s) => void (io.stderr += s),
    isTTY: answer !== undefined,
    confirm:
      answer === undefined
        ? undefined
        : (q) => {
            io.questions.push(q);
            return Promise.resolve(answer === 'yes');
          },
  };
  return io;
}
