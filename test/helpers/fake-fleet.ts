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
import { CAPTURE_MARK } from '../../src/rollback/host.js';
import type { Inventory, InventoryHost } from '../../src/inventory/types.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from '../../src/transport/types.js';
import { FOCAL_PROBE_HEAD } from './probe-output.js';

export interface FakeHostSpec {
  /** key (name:arch) → installed version. */
  installed: Record<string, string>;
  /** key → versions the host's apt sources offer (default: none). */
  available?: Record<string, string[]>;
  pinFile?: string | null;
  /** key → dpkg Depends field. */
  depends?: Record<string, string>;
  /** The connection fails (unreachable). */
  unreachable?: boolean;
  /** apt-get install fails with exit code 100. */
  aptFails?: boolean;
  /** Files the probe stats by path (check/generate --checkpoint); absent paths are missing. */
  files?: Record<string, FakeFile>;
  /** path → owning package, as `dpkg-query -S` answers it (name or name:arch). */
  owners?: Record<string, string>;
}

/** A regular file on a fake host; with a build-ID it is an ELF whose note lies in the probe's head. */
export interface FakeFile {
  size: number;
  mode: string;
  buildId?: string | null;
}

/** The fake node's clock: later than every fake stamp, so the controller keeps its readings. */
export const FAKE_CLOCK = 2 ** 33;

/** What the probe's build-ID walk prints for an ELF file with this build-ID (hex), or with none. */
export function elfAnswer(buildId: string | null): string {
  return buildId === null ? '-' : `=${buildId}`;
}

export type FakeCall =
  | { kind: 'exec'; argv: string[]; stdin?: string }
  | { kind: 'put'; path: string; content: string }
  | { kind: 'close' };

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
  /** Files criu-lock wrote or copied under /var/lib/criu-lock (transactions): path → content. */
  readonly stateFiles = new Map<string, string>();
  /** Probes that ran dpkg-query (not answered "U" from the controller's dpkg-state reading). */
  dpkgQueries = 0;

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
    this.calls.push({
      kind: 'exec',
      argv: [...argv],
      ...(opts.stdin !== undefined ? { stdin: opts.stdin.toString() } : {}),
    });
    const text = opts.stdin?.toString() ?? '';
    if (
      argv[0] === 'sh' &&
      argv[1] === '-s' &&
      text.includes('=== versions') &&
      text.includes(CAPTURE_MARK)
    ) {
      // The state read and the capture in one script (readAndCapture): the fake passes the guard
      // always; the controller compares what the state read said with the plan itself.
      return this.result('sh -s', {
        stdout: `${this.stateOutput()}=== capture\n${this.captureOutput(text)}`,
      });
    }
    if (argv[0] === 'sh' && argv[1] === '-s' && text.includes('=== versions')) {
      return this.result('sh -s', { stdout: this.stateOutput() });
    }
    if (argv[0] === 'sh' && argv[1] === '-s' && text.includes(CAPTURE_MARK)) {
      return this.result('sh -s', { stdout: this.captureOutput(text) });
    }
    if (argv[0] === 'sh' && argv[1] === '-s' && text.includes('=== tx')) {
      return this.result('sh -s', { stdout: this.transactionsOutput() });
    }
    if (argv[0] === 'sh' && argv[1] === '-s' && text.includes('rm -rf -- ')) {
      // Retention: delete the listed transactions, print the disk left.
      for (const m of text.matchAll(/^rm -rf -- (\S+)$/gm))
        for (const k of [...this.stateFiles.keys()]) if (k.startsWith(`${m[1]!}/`)) this.stateFiles.delete(k);
      return this.result('sh -s', { stdout: '4\n' });
    }
    if (argv[0] === 'du') return this.result('du', { stdout: `4\t${argv.at(-1) ?? ''}\n` });
    if (argv[0] === 'rm' && argv[1] === '-rf') {
      const dir = argv.at(-1)!;
      for (const k of [...this.stateFiles.keys()]) if (k.startsWith(`${dir}/`)) this.stateFiles.delete(k);
      return this.result(argv.join(' '));
    }
    if (argv[0] === 'sha256sum') {
      const lines = argv
        .slice(2)
        .flatMap((f) => (this.stateFiles.has(f) ? [`${sha256(this.stateFiles.get(f)!)}  ${f}`] : []));
      return this.result('sha256sum', { stdout: `${lines.join('\n')}\n` });
    }
    if (argv[0] === 'sh' && argv[1] === '-c' && /^(cp|rm|apt-mark) /.test(argv[2] ?? '')) {
      // Rollback's pin restore (`cp -- FROM PIN.tmp && mv ...` or `rm -f -- PIN`) and apt-mark.
      const words = (argv[2] ?? '').split(' ');
      if (words[0] === 'rm') this.pinFile = null;
      if (words[0] === 'cp') this.pinFile = this.stateFiles.get(words[2]!) ?? null;
      return this.result(argv.join(' '));
    }
    if (argv[0] === 'sh' && argv[1] === '-s') {
      this.events.push({ host: this.host, event: 'probe' });
      return this.result('sh -s', { stdout: this.probeOutput(text) });
    }
    if (argv[0] === 'apt-get' && argv[1] === 'install') return this.aptInstall(argv);
    if (argv[0] === 'dpkg-query' && argv[1] === '-S') return this.owners(argv.slice(argv.indexOf('--') + 1));
    // criu-lock's fixed scripts run as `sh -c SCRIPT NAME ARGS...` (src/apply/, src/facts/simulate.ts).
    if (argv[0] === 'sh' && argv[1] === '-c')
      return this.script(argv[3] ?? '', argv.slice(4), text, opts.holdStdin);
    return this.result(argv.join(' '), {
      exitCode: 127,
      stderr: `fake host: unexpected command ${argv.join(' ')}\n`,
    });
  }

  /** The pin file a pin write of this run kept for its job (null: there was none); undefined: none kept. */
  private pinsKept: string | null | undefined;

  /** The host lock's owner token, and how to end the holder command that keeps it. */
  lockOwner: string | null = null;
  private endHolder: (() => void) | undefined;

  private async aptInstall(argv: readonly string[]): Promise<CommandResult> {
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
      // Rollback: captured .debs by path (name_version_arch.deb, epoch as %3a), removals as `pkg-`.
      for (const a of argv.filter((x) => x.endsWith('.deb'))) {
        const [name, version, arch] = a
          .split('/')
          .at(-1)!
          .replace(/\.deb$/, '')
          .split('_') as [string, string, string];
        this.installed.set(`${name}:${arch}`, version.replace(/%3a/g, ':'));
      }
      for (const a of argv.filter((x) => /^[a-z0-9][a-z0-9+.-]*:[a-z0-9-]+-$/.test(x)))
        this.installed.delete(a.slice(0, -1));
    }
    return this.result(argv.join(' '));
  }

  private async script(
    name: string,
    args: readonly string[],
    stdin: string,
    holdStdin?: AbortSignal,
  ): Promise<CommandResult> {
    switch (name) {
      case 'criu-lock-tx-finish': {
        // The capture's last round trip: the manifest (stdin), the transaction's size, retention.
        const [dir, root, keep] = args as [string, string, string];
        this.stateFiles.set(`${dir}/manifest.json`, stdin);
        this.events.push({ host: this.host, event: 'put' });
        const kept = Number(keep) >= 0 ? this.prune(root, Number(keep)) : '';
        return this.result(name, { stdout: `txdu\t4\n${kept}` });
      }
      case 'criu-lock-tx-prune':
        return this.result(name, { stdout: this.prune(args[0]!, Number(args[1])) });
      case 'criu-lock-hold': {
        if (this.lockOwner !== null)
          return this.result(name, {
            exitCode: 75,
            stdout: `${this.lockOwner}\t2026-11-28T12:00:00Z\t4242\n`,
          });
        this.lockOwner = args[0] ?? '';
        // Like the real holder it ends when its input does (release), or when killed.
        await new Promise<void>((r) => {
          this.endHolder = r;
          holdStdin?.addEventListener('abort', () => r(), { once: true });
        });
        if (this.lockOwner === args[0]) this.lockOwner = null;
        return this.result(name);
      }
      case 'criu-lock-owner': {
        // Like the real script, it waits a while for the holder to write the owner line.
        for (let i = 0; i < 50 && this.lockOwner !== args[0]; i++) await new Promise((r) => setTimeout(r, 1));
        if (this.lockOwner !== args[0]) return this.result(name, { exitCode: 1 });
        const line = `${this.lockOwner}\t2026-11-28T12:00:00Z\t4242\n`;
        if (args[1] !== 'stdin') return this.result(name, { stdout: line });
        // Then the facts probe on stdin, after the mark (no pending apt job on a fake host).
        this.events.push({ host: this.host, event: 'probe' });
        return this.result(name, { stdout: `${line}@@then ${args[0]}\n${this.probeOutput(stdin)}` });
      }
      case 'criu-lock-release':
        if (this.lockOwner === args[0]) {
          this.lockOwner = null;
          this.endHolder?.();
        }
        return this.result(name);
      case 'criu-lock-apt-pending':
        return this.result(name);
      case 'criu-lock-pins-write':
        // Keeps the old pins for the job, and writes the new ones from stdin.
        this.events.push({ host: this.host, event: 'put' });
        if (args[0] === '/etc/apt/preferences.d/criu-lock.pref') {
          this.pinsKept = this.pinFile;
          this.pinFile = stdin;
        }
        return this.result(name);
      case 'criu-lock-rb-sim':
        // Rollback's apt-get -s under the pins it will leave (a private copy): nothing changes.
        return this.aptInstall(args.slice(args.indexOf('apt-get')));
      case 'criu-lock-pins-back': {
        // Rollback's pin change: the old pins kept for the job, then FROM's content or none.
        const from = args[1];
        if (from !== undefined && !this.stateFiles.has(from))
          return this.result(name, { exitCode: 1, stderr: `cp: cannot stat '${from}'\n` });
        this.pinsKept = this.pinFile;
        this.pinFile = from === undefined ? null : this.stateFiles.get(from)!;
        return this.result(name);
      }
      case 'criu-lock-sim': {
        // apt-get -s of exactly the requested packages: one Inst and one Conf line each.
        const lines = args
          .filter((x) => /^[a-z0-9][a-z0-9+.-]*:[a-z0-9-]+=/.test(x))
          .flatMap((a) => {
            const [key, to] = a.split('=') as [string, string];
            const [pkg, arch] = key.split(':') as [string, string];
            const from = this.installed.get(key);
            return [
              `Inst ${pkg}${from ? ` [${from}]` : ''} (${to} fake [${arch}])`,
              `Conf ${pkg} (${to} fake [${arch}])`,
            ];
          });
        return this.result(name, { stdout: ['Reading package lists...', ...lines, ''].join('\n') });
      }
      case 'criu-lock-apt-run': {
        // Starts the "detached" job and follows it to its record, as the real script does in one command.
        const [id = 'job', , restore] = args;
        const r = await this.aptInstall(args.slice(args.indexOf('apt-get')));
        // As the real job: a failed apt puts back the pins kept by this run's pin write.
        let pins = '';
        if (r.exitCode !== 0 && restore === '1' && this.pinsKept !== undefined) {
          pins = this.pinsKept === null ? 'removed' : 'restored';
          this.pinFile = this.pinsKept;
        }
        this.pinsKept = undefined;
        const record = [
          `@@job /var/lib/criu-lock/jobs/${id}`,
          '@@status',
          String(r.exitCode),
          '@@started',
          '2026-11-28T12:00:00Z',
          '@@pins',
          ...(pins ? [pins] : []),
          '@@audit',
          '@@log',
          r.stdout + r.stderr,
          '@@end',
          '',
        ];
        return this.result(name, { stdout: record.join('\n') });
      }
      default:
        return this.result(name, { exitCode: 127, stderr: `fake host: unexpected script ${name}\n` });
    }
  }

  putFile(path: string, content: string | Buffer, _opts: PutFileOptions = {}): Promise<CommandResult> {
    this.calls.push({ kind: 'put', path, content: content.toString() });
    this.events.push({ host: this.host, event: 'put' });
    if (path.startsWith('/var/lib/criu-lock/')) this.stateFiles.set(path, content.toString());
    if (path === '/etc/apt/preferences.d/criu-lock.pref') this.pinFile = content.toString();
    return Promise.resolve(this.result(`put ${path}`));
  }

  close(): Promise<void> {
    this.calls.push({ kind: 'close' });
    this.events.push({ host: this.host, event: 'close' });
    return Promise.resolve();
  }

  /**
   * Changes that reach the host: pin writes (with their backup), transaction manifests and
   * non-simulated apt runs.
   */
  get writes(): FakeCall[] {
    return this.calls.filter(
      (c) =>
        c.kind === 'put' ||
        (c.kind === 'exec' && c.argv[0] === 'apt-get' && c.argv[1] === 'install' && !c.argv.includes('-s')) ||
        (c.kind === 'exec' &&
          (c.argv[3] === 'criu-lock-apt-run' ||
            c.argv[3] === 'criu-lock-pins-write' ||
            c.argv[3] === 'criu-lock-pins-back' ||
            c.argv[3] === 'criu-lock-tx-finish')),
    );
  }

  /** The rollback capture's state read: versions, auto marks (none), pin sha256, arch. */
  private stateOutput(): string {
    const out = ['=== versions'];
    for (const [key, version] of this.installed) out.push(`${key}\t${version}\tii `);
    out.push(
      '=== auto',
      '=== pins',
      ...(this.pinFile === null ? [] : [sha256(this.pinFile)]),
      '=== arch',
      'amd64',
      '',
    );
    return out.join('\n');
  }

  /**
   * The capture script: every requested .deb is "downloaded" (its content is its file name); the
   * build-ID probe at its end finds no ELF file (the fake has no package file lists).
   */
  private captureOutput(script: string): string {
    const dir = /^dir=(\S+)$/m.exec(script)?.[1] ?? '';
    if (this.pinFile !== null) this.stateFiles.set(`${dir}/pins.before`, this.pinFile);
    const out: string[] = [];
    for (const m of script.matchAll(/^want (\S+) (\S+); w\d+=\$w; reuse (\S+) /gm)) {
      const [key, version] = [m[1]!, m[2]!];
      const [name, arch] = key.split(':');
      this.stateFiles.set(`${dir}/debs/${m[3]!}`, m[3]!);
      out.push(['ok', key, 'apt-download', sha256(m[3]!), '', `${name} ${version} ${arch} `].join('\t'));
    }
    if (out.length > 0) out.push('=== probe', this.probeOutput(script));
    return [...out, ''].join('\n');
  }

  /** Retention: all but the newest `keep` transactions go; prints what the prune script prints. */
  private prune(root: string, keep: number): string {
    const ids = [
      ...new Set(
        [...this.stateFiles.keys()].flatMap((k) => {
          const m = /^(.+)\/(\d{8}T\d{6}Z-[0-9a-f]{6})\//.exec(k);
          return m && m[1] === root ? [m[2]!] : [];
        }),
      ),
    ].sort();
    const drop = ids.slice(0, Math.max(0, ids.length - keep));
    for (const id of drop)
      for (const k of [...this.stateFiles.keys()])
        if (k.startsWith(`${root}/${id}/`)) this.stateFiles.delete(k);
    return `${drop.map((id) => `pruned\t${id}\n`).join('')}kept\t${ids.length - drop.length}\ndu\t4\n`;
  }

  /** Every transaction manifest written so far, as readTransactions' script prints them. */
  private transactionsOutput(): string {
    const out: string[] = [];
    for (const [path, content] of [...this.stateFiles].sort()) {
      const m = /^\/var\/lib\/criu-lock\/tx\/([^/]+)\/manifest\.json$/.exec(path);
      if (m) out.push(`=== tx ${m[1]!}`, content);
    }
    out.push('=== du 4', '');
    return out.join('\n');
  }

  /** `dpkg-query -S -- PATH...`: "pkg: path" for each owned path; exit 1 when some path has none. */
  private owners(paths: readonly string[]): CommandResult {
    const owned = paths.filter((p) => this.spec.owners?.[p] !== undefined);
    const unowned = paths.filter((p) => this.spec.owners?.[p] === undefined);
    return this.result('dpkg-query -S', {
      exitCode: unowned.length > 0 ? 1 : 0,
      stdout: owned.map((p) => `${this.spec.owners![p]!}: ${p}\n`).join(''),
      stderr: unowned.map((p) => `dpkg-query: no path found matching pattern ${p}\n`).join(''),
    });
  }

  /**
   * The probe's `R` records: each requested path (hex both ways) as stat and the first bytes show
   * it, after the clock record. The stamp follows the file's content, so a changed file never
   * matches a stat tuple sent earlier; a matching tuple is answered by a `U` record, as the probe does.
   */
  private fileRecords(script: string): string[] {
    const out: string[] = [`T\t${FAKE_CLOCK}`];
    let inode = 1000;
    let index = -1;
    for (const m of script.matchAll(/^P\t([0-9a-f]*)(?:\t(\S+))?$/gm)) {
      const hex = m[1]!;
      index += 1;
      const f = this.spec.files?.[Buffer.from(hex, 'hex').toString('utf8')];
      inode += 1;
      if (f === undefined) {
        out.push(['R', hex, 'missing', '', '', '', '', ''].join('\t'));
        continue;
      }
      const t = Number.parseInt(
        sha256(JSON.stringify([f.size, f.mode, f.buildId ?? 'file'])).slice(0, 8),
        16,
      );
      const stamp = `1:${t}:${t}`;
      if (f.buildId === undefined) {
        out.push(['R', hex, 'file', String(f.size), f.mode, String(inode), stamp, ''].join('\t'));
        continue;
      }
      if (m[2] === `${f.size}:${f.mode}:${inode}:${stamp}`) {
        out.push(`U\t${index}\t1`);
        continue;
      }
      out.push(
        ['R', hex, 'elf', String(f.size), f.mode, String(inode), stamp, elfAnswer(f.buildId)].join('\t'),
      );
    }
    return out;
  }

  /**
   * Keys the probe asks apt-cache policy about: its `K` requests, and those of its `W key version`
   * requests the node's filter keeps (not installed at exactly that version); undefined: none.
   */
  private policyKeys(script: string, dpkgUnchanged: boolean): Set<string> | undefined {
    const keep = new Set<string>();
    let asked = false;
    for (const m of script.matchAll(/^K\t([^\t\n]+)$/gm)) {
      asked = true;
      keep.add(m[1]!);
    }
    // dpkg's state unchanged: the controller's C keys replace the node's W filter.
    for (const m of script.matchAll(/^C\t([^\t\n]+)$/gm)) {
      if (!dpkgUnchanged) break;
      asked = true;
      keep.add(m[1]!);
    }
    for (const m of script.matchAll(/^W\t([^\t\n]+)\t(\S+)$/gm)) {
      if (dpkgUnchanged) break;
      asked = true;
      if (this.installed.get(m[1]!) !== m[2]) keep.add(m[1]!);
    }
    return asked ? keep : undefined;
  }

  /**
   * The tuple of dpkg's files (DPKG_STATE) in this state: it follows the installed versions, as a
   * rewritten status file's inode and ctime do (and the Depends lines); the ctime is older than the fake clock.
   */
  private dpkgState(): string {
    const t = Number.parseInt(
      sha256(JSON.stringify([[...this.installed].sort(), this.spec.depends ?? {}])).slice(0, 8),
      16,
    );
    return `${this.installed.size}:0644:${t}:1:${t}:${t},-,-,1:0755:1:1:1:1`;
  }

  /** What the probe script would print on a Debian host in this state. */
  private probeOutput(script: string): string {
    const state = this.dpkgState();
    const unchanged = /^D\t(\S+)$/m.exec(script)?.[1] === state;
    const out = [...FOCAL_PROBE_HEAD, '@@dpkg-state', unchanged ? 'U' : `S\t${FAKE_CLOCK}\t${state}`];
    if (!unchanged) {
      this.dpkgQueries += 1;
      out.push('@@arch', 'amd64', '@@foreign', '@@dpkg');
    }
    for (const [key, version] of unchanged ? [] : [...this.installed].sort()) {
      const [name, arch] = key.split(':');
      out.push(
        [
          name,
          arch,
          version,
          'install',
          'installed',
          'ok',
          'same',
          '',
          this.spec.depends?.[key] ?? '',
          '',
        ].join('\t'),
      );
    }
    if (/^N\t/m.test(script) && this.pinFile !== null)
      out.push('@@pin', Buffer.from(this.pinFile, 'utf8').toString('hex'));
    const kept = this.policyKeys(script, unchanged);
    if (kept) {
      out.push('@@policy');
      const keys = new Set([...Object.keys(this.spec.available ?? {}), ...this.installed.keys()]);
      for (const key of [...keys].sort()) {
        if (!kept.has(key)) continue;
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
    if (/^[EPI]\t/m.test(script)) out.push('@@files', ...this.fileRecords(script));
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
