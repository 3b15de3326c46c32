import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installArgv } from '../../src/apply/modules/apt-install.js';
import { summariseOutput } from '../../src/apply/modules/output.js';
import { MODULES } from '../../src/apply/modules/registry.js';
import type { ModuleContext } from '../../src/apply/modules/types.js';
import { loadPlaybook, type ResolvedTask } from '../../src/apply/playbook.js';
import { runPlaybook } from '../../src/apply/run-playbook.js';
import { CriuLockError } from '../../src/errors.js';
import type { Lockfile } from '../../src/lock/lockfile.js';
import type { HostPlan, PackageAction } from '../../src/plan/plan-file.js';
import { PIN_FILE, renderPins, sha256Hex } from '../../src/plan/pins.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from '../../src/transport/types.js';
import { makeLock } from './core-fixtures.js';
import { FOCAL_PROBE_HEAD } from '../helpers/probe-output.js';

// ---------------------------------------------------------------------------------------------
// A recording transport: every call is kept; replies come from a script of matchers.
// ---------------------------------------------------------------------------------------------

type Call =
  | {
      kind: 'exec';
      argv: string[];
      stdin?: string;
      env?: Record<string, string>;
      become?: boolean;
      timeoutMs?: number;
    }
  | { kind: 'put'; path: string; content: string; mode?: number; become?: boolean };

type Reply = Partial<Pick<CommandResult, 'exitCode' | 'stdout' | 'stderr' | 'timedOut'>>;
/** A reply, or one made from the command's argv (a job's directory comes from its id). */
type Replier = Reply | ((argv: readonly string[]) => Reply);

class RecordingTransport implements Transport {
  readonly calls: Call[] = [];
  closed = false;

  constructor(
    readonly host: string,
    private readonly replies: Array<{ match: (argv: readonly string[]) => boolean; reply: Replier }> = [],
    private readonly putReply: Reply = {},
  ) {}

  private result(command: string, r: Reply): CommandResult {
    return {
      command,
      exitCode: r.exitCode === undefined ? 0 : r.exitCode,
      stdout: r.stdout ?? '',
      stderr: r.stderr ?? '',
      durationMs: 1,
      timedOut: r.timedOut ?? false,
    };
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    const call: Call = { kind: 'exec', argv: [...argv] };
    if (opts.stdin !== undefined) call.stdin = opts.stdin.toString();
    if (opts.env !== undefined) call.env = opts.env;
    if (opts.become !== undefined) call.become = opts.become;
    if (opts.timeoutMs !== undefined) call.timeoutMs = opts.timeoutMs;
    this.calls.push(call);
    const found = this.replies.find((x) => x.match(argv))?.reply ?? {};
    const r = typeof found === 'function' ? found(argv) : found;
    return Promise.resolve(this.result(argv.join(' '), r));
  }

  putFile(path: string, content: string | Buffer, opts: PutFileOptions = {}): Promise<CommandResult> {
    const call: Call = { kind: 'put', path, content: content.toString() };
    if (opts.mode !== undefined) call.mode = opts.mode;
    if (opts.become !== undefined) call.become = opts.become;
    this.calls.push(call);
    return Promise.resolve(this.result(`put ${path}`, this.putReply));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  get execs(): Array<Extract<Call, { kind: 'exec' }>> {
    return this.calls.filter((c): c is Extract<Call, { kind: 'exec' }> => c.kind === 'exec');
  }

  get puts(): Array<Extract<Call, { kind: 'put' }>> {
    return this.calls.filter((c): c is Extract<Call, { kind: 'put' }> => c.kind === 'put');
  }
}

const isApt = (argv: readonly string[]): boolean => argv[0] === 'apt-get';
const isProbe = (argv: readonly string[]): boolean => argv[0] === 'sh' && argv[1] === '-s';
const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
/** Our fixed scripts run as `sh -c SCRIPT NAME args...`; NAME tells them apart. */
const isScript =
  (name: string) =>
  (argv: readonly string[]): boolean =>
    argv[0] === 'sh' && argv[1] === '-c' && argv[3] === name;
const isJobRun = isScript('criu-lock-apt-run');
const isPinWrite = isScript('criu-lock-pins-write');
/** The job directory of the apt job `t` ran (its id is the run command's first argument). */
const jobOf = (argv: readonly string[]): string => `/var/lib/criu-lock/jobs/${argv[4]}`;
const jobDir = (t: RecordingTransport): string => jobOf(t.execs.find((c) => isJobRun(c.argv))!.argv);
/** The apt-get argv inside a detached job's start command. */
const aptOf = (argv: readonly string[]): string[] => argv.slice(argv.indexOf('apt-get'));
function jobRecord(status: number, log = '', pins = ''): string {
  return [
    '@@status',
    String(status),
    '@@started',
    '2026-11-29T01:00:00Z',
    '@@pins',
    pins,
    '@@audit',
    '@@log',
    log,
    '',
    '@@end',
    '',
  ].join('\n');
}
/** A host where the detached apt job starts and ends with `status`. */
function jobReplies(
  status = 0,
  log = '',
  pins = '',
): Array<{ match: (argv: readonly string[]) => boolean; reply: Replier }> {
  return [
    {
      match: isJobRun,
      reply: (argv) => ({ stdout: `@@job ${jobOf(argv)}\n${jobRecord(status, log, pins)}` }),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const LOCK: Lockfile = makeLock({
  packages: {
    'libc6:amd64': { version: '2.31-0ubuntu9.14' },
    'libc-bin:amd64': { version: '2.31-0ubuntu9.14' },
    'tzdata:all': { version: '2024a-0ubuntu0.20.04' },
    'zlib1g:amd64': { version: '1:1.2.11.dfsg-2ubuntu1.5' },
  },
});
const PINS = renderPins(LOCK);

const PACKAGE_ACTIONS: PackageAction[] = [
  { type: 'install', package: 'tzdata:all', from: null, to: '2024a-0ubuntu0.20.04' },
  { type: 'upgrade', package: 'libc-bin:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' },
  { type: 'upgrade', package: 'libc6:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' },
  {
    type: 'downgrade',
    package: 'zlib1g:amd64',
    from: '1:1.2.11.dfsg-2ubuntu1.6',
    to: '1:1.2.11.dfsg-2ubuntu1.5',
  },
];

function hostPlan(over: Partial<HostPlan> = {}): HostPlan {
  return {
    name: 'node-b',
    status: 'changes',
    fingerprint: `sha256:${'0'.repeat(64)}`,
    actions: [{ type: 'write-pins', path: PIN_FILE, sha256: sha256Hex(PINS) }, ...PACKAGE_ACTIONS],
    blocked: [],
    notes: [],
    ...over,
  };
}

function context(
  t: RecordingTransport,
  plan: HostPlan,
  checkMode = false,
  log: string[] = [],
): ModuleContext {
  return {
    host: t.host,
    transport: t,
    lock: LOCK,
    plan,
    pins: PINS,
    checkMode,
    changedBy: new Set(),
    verbose: (m) => log.push(m),
  };
}

/** Probe output of a host that matches LOCK (what verify reads back after a good apply). */
function convergedProbe(versions: Record<string, string> = {}): string {
  const dpkg = Object.entries(LOCK.packages).map(([key, p]) => {
    const [name, arch] = key.split(':');
    return [name, arch, versions[key] ?? p.version, 'install', 'installed', 'ok', 'same', '', '', ''].join(
      '\t',
    );
  });
  return [...FOCAL_PROBE_HEAD, '@@arch', 'amd64', '@@foreign', '@@dpkg', ...dpkg, '@@end', ''].join('\n');
}

const APT_FAILURE = {
  exitCode: 100,
  stdout: 'Reading package lists...\nBuilding dependency tree...\n',
  stderr:
    "E: Version '2.31-0ubuntu9.14' for 'libc6' was not found\nE: Unable to correct problems, you have held broken packages.\n",
};

let defaultTasks: ResolvedTask[];
beforeAll(async () => {
  defaultTasks = await loadPlaybook();
});

// ---------------------------------------------------------------------------------------------
// apt_install
// ---------------------------------------------------------------------------------------------

describe('apt_install', () => {
  const aptInstall = MODULES.get('apt_install')!;

  it('runs ONE non-interactive apt-get install of every pkg:arch=version, as root, detached, never removing', async () => {
    const t = new RecordingTransport('node-b', jobReplies());
    const r = await aptInstall.run(context(t, hostPlan()), { lockTimeout: 120 });
    expect(t.execs.map((c) => c.argv[3])).toEqual(['criu-lock-apt-run']);
    const call = t.execs[0]!;
    expect(call.argv.slice(4, 7)).toEqual([
      expect.stringMatching(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/),
      PIN_FILE,
      '0',
    ]);
    expect(call.argv.slice(7, 10)).toEqual(['env', 'LC_ALL=C', 'DEBIAN_FRONTEND=noninteractive']);
    expect(aptOf(call.argv)).toEqual([
      'apt-get',
      'install',
      '-y',
      '-q',
      '--allow-downgrades',
      '--no-install-recommends',
      '-o',
      'Dpkg::Options::=--force-confdef',
      '-o',
      'Dpkg::Options::=--force-confold',
      '-o',
      'DPkg::Lock::Timeout=120',
      '--no-remove',
      'tzdata:all=2024a-0ubuntu0.20.04',
      'libc-bin:amd64=2.31-0ubuntu9.14',
      'libc6:amd64=2.31-0ubuntu9.14',
      'zlib1g:amd64=1:1.2.11.dfsg-2ubuntu1.5',
    ]);
    expect(call.argv[2]).toContain('setsid sh -c');
    expect(call.become).toBe(true);
    expect(call.timeoutMs).toBe(1_800_000);
    expect(r.status).toBe('changed');
    expect(r.message).toBe(
      'install tzdata:all (none) → 2024a-0ubuntu0.20.04, upgrade libc-bin:amd64 2.31-0ubuntu9.9 → 2.31-0ubuntu9.14, ' +
        'upgrade libc6:amd64 2.31-0ubuntu9.9 → 2.31-0ubuntu9.14, downgrade zlib1g:amd64 1:1.2.11.dfsg-2ubuntu1.6 → 1:1.2.11.dfsg-2ubuntu1.5',
    );
  });

  it('asks the job to restore the pins on failure only when apt_pins changed them in this run', async () => {
    const t = new RecordingTransport('node-b', jobReplies());
    await aptInstall.run({ ...context(t, hostPlan()), changedBy: new Set(['apt_pins']) }, undefined);
    expect(t.execs[0]!.argv.slice(5, 7)).toEqual([PIN_FILE, '1']);
  });

  it('a lost connection fails the host with the message, and says the transaction goes on', async () => {
    const t = new RecordingTransport('node-b', [
      { match: isJobRun, reply: (argv) => ({ stdout: `@@job ${jobOf(argv)}\n`, exitCode: null }) },
    ]);
    const realExec = t.exec.bind(t);
    t.exec = (argv, opts) =>
      argv[0] === 'true'
        ? Promise.reject(new Error('connection lost (connection closed)'))
        : realExec(argv, opts);
    const r = await aptInstall.run(context(t, hostPlan()), undefined);
    expect(r.status).toBe('failed');
    expect(r.message).toBe(
      `connection lost during apt; the transaction continues on the host (log ${jobDir(t)}/log); the next apply waits for it and reports how it ended`,
    );
  });

  it('a connection lost before the job was named, or a start that failed, throws: nothing says a job runs', async () => {
    const lost = new RecordingTransport('node-b', [{ match: isJobRun, reply: { exitCode: null } }]);
    await expect(aptInstall.run(context(lost, hostPlan()), undefined)).rejects.toThrow(
      /^connection lost while starting the apt transaction; if it started, it continues on the host \(log \/var\/lib\/criu-lock\/jobs\/\d{8}T\d{6}Z-[0-9a-f]{8}\/log\)/,
    );
    const refused = new RecordingTransport('node-b', [
      {
        match: isJobRun,
        reply: {
          exitCode: 1,
          stderr: "mkdir: cannot create directory '/var/lib/criu-lock/jobs/x': No space left on device\n",
        },
      },
    ]);
    await expect(aptInstall.run(context(refused, hostPlan()), undefined)).rejects.toThrow(
      "could not start the apt transaction: mkdir: cannot create directory '/var/lib/criu-lock/jobs/x': No space left on device",
    );
    const slow = new RecordingTransport('node-b', [{ match: isJobRun, reply: { exitCode: 124 } }]);
    await expect(aptInstall.run(context(slow, hostPlan()), undefined)).rejects.toThrow(
      'could not start the apt transaction: starting it took over 60 s',
    );
  });

  it('a held dpkg lock is named as such, with the timeout', async () => {
    const log =
      'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)...\nE: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)';
    const t = new RecordingTransport('node-b', jobReplies(100, log, 'restored'));
    const r = await aptInstall.run(
      { ...context(t, hostPlan()), changedBy: new Set(['apt_pins']) },
      { lockTimeout: 5 },
    );
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(
      /^the dpkg lock is held by another process \(unattended-upgrades\?\) for longer than DPkg::Lock::Timeout=5 s: exit code 100: E: Could not get lock .*; dpkg is consistent \(dpkg --audit is empty\); the previous pin file was restored; log /,
    );
  });

  it('says so when the job could not put the previous pin file back', async () => {
    const t = new RecordingTransport('node-b', jobReplies(100, 'E: boom', ''));
    const r = await aptInstall.run(
      { ...context(t, hostPlan()), changedBy: new Set(['apt_pins']) },
      undefined,
    );
    expect(r.message).toMatch(
      /the previous pin file could NOT be restored \(see \/etc\/apt\/preferences\.d\/criu-lock\.pref\)/,
    );
  });

  it('uses the lock timeout from the task args, 120 s by default', async () => {
    const t = new RecordingTransport('node-b', jobReplies());
    await aptInstall.run(context(t, hostPlan()), { lockTimeout: 30 });
    await aptInstall.run(context(t, hostPlan()), undefined);
    expect(
      t.execs
        .filter((c) => isJobRun(c.argv))
        .map((c) => c.argv.find((a) => a.startsWith('DPkg::Lock::Timeout='))),
    ).toEqual(['DPkg::Lock::Timeout=30', 'DPkg::Lock::Timeout=120']);
  });

  it('simulates with -s in check mode', async () => {
    const t = new RecordingTransport('node-b');
    const r = await aptInstall.run(context(t, hostPlan(), true), { lockTimeout: 120 });
    expect(t.execs).toHaveLength(1);
    expect(t.execs[0]!.argv).toContain('-s');
    expect(r.status).toBe('changed');
    expect(r.message).toMatch(/^would install tzdata:all .* \(apt-get -s accepted it\)$/);
  });

  it('adds --reinstall when a package is reinstalled', () => {
    const argv = installArgv(
      [{ type: 'reinstall', package: 'libc6:amd64', from: '2.31-0ubuntu9.14', to: '2.31-0ubuntu9.14' }],
      { lockTimeout: 5, simulate: false },
    );
    expect(argv).toContain('--reinstall');
    expect(argv.at(-1)).toBe('libc6:amd64=2.31-0ubuntu9.14');
    expect(argv).not.toContain('-s');
    expect(argv).toContain('--no-remove');
    expect(installArgv(PACKAGE_ACTIONS, { lockTimeout: 5, simulate: false })).not.toContain('--reinstall');
    // The simulation must name what apt would remove, so it leaves --no-remove out (and blocks on any removal).
    expect(installArgv(PACKAGE_ACTIONS, { lockTimeout: 5, simulate: true })).not.toContain('--no-remove');
  });

  it('does nothing when only the pins change', async () => {
    const t = new RecordingTransport('node-b');
    const r = await aptInstall.run(
      context(t, hostPlan({ actions: [{ type: 'write-pins', path: PIN_FILE, sha256: sha256Hex(PINS) }] })),
      { lockTimeout: 120 },
    );
    expect(t.calls).toEqual([]);
    expect(r.status).toBe('ok');
  });

  it("fails with apt's E: lines and the state the host is in", async () => {
    const t = new RecordingTransport('node-b', jobReplies(100, APT_FAILURE.stdout + APT_FAILURE.stderr));
    const r = await aptInstall.run(context(t, hostPlan()), { lockTimeout: 120 });
    expect(r).toEqual({
      status: 'failed',
      message:
        "apt-get install failed: exit code 100: E: Version '2.31-0ubuntu9.14' for 'libc6' was not found | E: Unable to correct problems, you have held broken packages.; " +
        `dpkg is consistent (dpkg --audit is empty); this apply did not change the pin file; log ${jobDir(t)}/log`,
    });
  });
});

describe('apt_install, a job that recorded no status', () => {
  const aptInstall = MODULES.get('apt_install')!;

  it('says the job ended without a status (died, or a full state directory), not that the connection closed', async () => {
    const t = new RecordingTransport('node-b', [
      {
        match: isJobRun,
        reply: (argv) => ({
          stdout: `@@job ${jobOf(argv)}\n${jobRecord(0).replace('@@status\n0\n', '@@status\ndied\n')}`,
        }),
      },
    ]);
    const r = await aptInstall.run(
      { ...context(t, hostPlan()), changedBy: new Set(['apt_pins']) },
      undefined,
    );
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(
      /^the apt job ended without recording its status \(it died, or \/var\/lib\/criu-lock is full: df -h \/var\/lib\/criu-lock\)/,
    );
    expect(r.message).toContain(`whether the previous pin file was restored is not known (see ${PIN_FILE})`);
    expect(r.message).not.toMatch(/connection closed/);
  });
});

describe('summariseOutput', () => {
  const res = (over: Partial<CommandResult>): CommandResult => ({
    command: 'x',
    exitCode: 1,
    stdout: '',
    stderr: '',
    durationMs: 1500,
    timedOut: false,
    ...over,
  });

  it('keeps the last E:/W:/dpkg error lines', () => {
    const stderr = [
      'W: one',
      'noise',
      'E: two',
      'dpkg: error processing package x',
      'E: three',
      'E: four',
    ].join('\n');
    expect(summariseOutput(res({ stderr }))).toBe(
      'exit code 1: E: two | dpkg: error processing package x | E: three | E: four',
    );
  });

  it('falls back to the last lines, and says when it timed out', () => {
    expect(summariseOutput(res({ stdout: 'a\nb\nc\nd\ne\n' }), 2)).toBe('exit code 1: d | e');
    expect(summariseOutput(res({ exitCode: null, timedOut: true, durationMs: 1_800_000 }))).toBe(
      'timed out after 1800 s',
    );
  });

  it('tells a command the transport lost, or a signal killed, from one that failed (issue 14)', () => {
    expect(summariseOutput(res({ exitCode: null }))).toBe(
      'the connection closed before the command reported an exit status',
    );
    expect(summariseOutput(res({ exitCode: null, signal: 'SIGKILL' }))).toBe('killed by SIGKILL');
  });
});

// ---------------------------------------------------------------------------------------------
// apt_pins
// ---------------------------------------------------------------------------------------------

describe('apt_pins', () => {
  const aptPins = MODULES.get('apt_pins')!;

  it('keeps the old pins and writes the rendered ones as root with mode 0644, in one command', async () => {
    const t = new RecordingTransport('node-b');
    const r = await aptPins.run(context(t, hostPlan()), undefined);
    expect(t.calls).toEqual([
      {
        kind: 'exec',
        argv: ['sh', '-c', expect.stringContaining('pins.prev'), 'criu-lock-pins-write', PIN_FILE, '0644'],
        become: true,
        stdin: PINS,
      },
    ]);
    // The copy comes first and stops the script when it fails; the write is the atomic put.
    const script = (t.calls[0] as { argv: string[] }).argv[2]!;
    expect(script.startsWith('set -e\n')).toBe(true);
    expect(script.indexOf('pins.prev')).toBeLessThan(script.indexOf('mv -f -- "$tmp" "$dest"'));
    expect(r).toEqual({ status: 'changed', message: `wrote ${PIN_FILE}` });
  });

  it('writes nothing without a write-pins action', async () => {
    const t = new RecordingTransport('node-b');
    const r = await aptPins.run(context(t, hostPlan({ actions: PACKAGE_ACTIONS })), undefined);
    expect(t.calls).toEqual([]);
    expect(r.status).toBe('ok');
  });

  it('never writes in check mode', async () => {
    const t = new RecordingTransport('node-b');
    const r = await aptPins.run(context(t, hostPlan(), true), undefined);
    expect(t.calls).toEqual([]);
    expect(r).toEqual({ status: 'changed', message: `would write ${PIN_FILE}` });
  });

  it('fails when the command fails', async () => {
    const t = new RecordingTransport('node-b', [
      { match: isPinWrite, reply: { exitCode: 1, stderr: 'sudo: a password is required' } },
    ]);
    const r = await aptPins.run(context(t, hostPlan()), undefined);
    expect(r).toEqual({
      status: 'failed',
      message: `keeping a copy of ${PIN_FILE} and writing it failed: exit code 1: sudo: a password is required`,
    });
  });

  it('says when the transport lost the command, with a hint', async () => {
    const t = new RecordingTransport('node-b', [{ match: isPinWrite, reply: { exitCode: null } }]);
    const r = await aptPins.run(context(t, hostPlan()), undefined);
    expect(r.status).toBe('failed');
    expect(r.message).toBe(
      `keeping a copy of ${PIN_FILE} and writing it failed: the connection closed before the command reported an exit status`,
    );
    expect(r.hint).toContain('the transport lost the command');
  });
});

// ---------------------------------------------------------------------------------------------
// runPlaybook with the default converge playbook
// ---------------------------------------------------------------------------------------------

describe('runPlaybook', () => {
  it('runs pins, install and verify in order and reports changed', async () => {
    const t = new RecordingTransport('node-b', [
      ...jobReplies(),
      { match: isProbe, reply: { stdout: convergedProbe() } },
    ]);
    const log: string[] = [];
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan(), false, log));
    expect(outcome.status).toBe('changed');
    expect(outcome.tasks.map((x) => [x.module, x.status])).toEqual([
      ['capture', 'skipped'], // no transaction context: as with --no-capture
      ['store_upload', 'ok'],
      ['apt_pins', 'changed'],
      ['apt_install', 'changed'],
      ['verify', 'ok'],
      ['tx_record', 'skipped'],
    ]);
    expect(
      t.calls.map((c) =>
        c.kind === 'put' ? `put ${c.path}` : c.argv[1] === '-c' ? c.argv[3] : c.argv.slice(0, 2).join(' '),
      ),
    ).toEqual(['criu-lock-pins-write', 'criu-lock-apt-run', 'sh -s']);
    // The job restores the pins on failure: apt_pins changed them in this run.
    expect(t.execs.find((c) => isJobRun(c.argv))!.argv[6]).toBe('1');
    expect(log.some((l) => l.startsWith('apt-get install -y'))).toBe(true);
  });

  it('a failing apt run fails the host at that step and stops the playbook', async () => {
    const t = new RecordingTransport('node-b', [
      ...jobReplies(100, APT_FAILURE.stderr, 'restored'),
      { match: isProbe, reply: { stdout: convergedProbe() } },
    ]);
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan()));
    expect(outcome.status).toBe('failed');
    if (outcome.status !== 'failed') return;
    expect(outcome.error.step).toBe('Install the locked versions in one apt transaction');
    expect(outcome.error.code).toBe('task-failed');
    expect(outcome.error.message).toMatch(
      /^apt-get install failed: exit code 100: E: Version '2\.31-0ubuntu9\.14' for 'libc6' was not found \| E: Unable to correct/,
    );
    expect(outcome.error.message).toMatch(/the previous pin file was restored/);
    expect(outcome.tasks.map((x) => x.status)).toEqual(['skipped', 'ok', 'changed', 'failed']);
    // verify never ran: no probe after the failed apt-get.
    expect(t.execs.filter((c) => isProbe(c.argv))).toEqual([]);
  });

  it('verify fails the host when versions still differ after apt', async () => {
    const t = new RecordingTransport('node-b', [
      ...jobReplies(),
      { match: isProbe, reply: { stdout: convergedProbe({ 'libc6:amd64': '2.31-0ubuntu9.9' }) } },
    ]);
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan()));
    expect(outcome.status).toBe('failed');
    if (outcome.status !== 'failed') return;
    expect(outcome.error.step).toBe('Verify versions and build-IDs against the lock');
    expect(outcome.error.message).toBe(
      'still differs from the lock in 1 place(s): libc6:amd64: version-mismatch',
    );
  });

  it('a converged host gets no writes and reports ok', async () => {
    const t = new RecordingTransport('node-b', [{ match: isProbe, reply: { stdout: convergedProbe() } }]);
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan({ status: 'ok', actions: [] })));
    expect(outcome.status).toBe('ok');
    expect(t.puts).toEqual([]);
    expect(t.execs.filter((c) => isApt(c.argv))).toEqual([]);
  });

  it('check mode changes nothing: no put, apt only with -s, no verify', async () => {
    const t = new RecordingTransport('node-b');
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan(), true));
    expect(t.puts).toEqual([]);
    expect(t.execs.map((c) => c.argv.includes('-s'))).toEqual([true]);
    expect(outcome.tasks.map((x) => x.status)).toEqual([
      'skipped',
      'ok',
      'changed',
      'changed',
      'skipped',
      'skipped',
    ]);
  });

  it('`when: changes` skips tasks on a host without actions', async () => {
    const tasks: ResolvedTask[] = [
      {
        name: 'drain',
        module: 'command',
        args: { argv: ['kubectl', 'drain', 'node-b'], become: false, timeout: 600, okCodes: [0] },
        when: 'changes',
      },
      {
        name: 'always',
        module: 'command',
        args: { argv: ['true'], become: false, timeout: 600, okCodes: [0] },
        when: 'always',
      },
    ];
    const idle = new RecordingTransport('node-b');
    const quiet = await runPlaybook(tasks, context(idle, hostPlan({ status: 'ok', actions: [] })));
    expect(quiet.tasks.map((x) => [x.name, x.status, x.message])).toEqual([
      ['drain', 'skipped', 'no changes on this host'],
      ['always', 'changed', 'ran true'],
    ]);
    expect(idle.execs.map((c) => c.argv)).toEqual([['true']]);

    const busy = new RecordingTransport('node-b');
    await runPlaybook(tasks, context(busy, hostPlan()));
    expect(busy.execs.map((c) => c.argv)).toEqual([['kubectl', 'drain', 'node-b'], ['true']]);
  });

  it('a task that throws becomes a failed outcome, not an exception', async () => {
    const t = new RecordingTransport('node-b');
    t.exec = () => Promise.reject(new Error('connection reset'));
    const outcome = await runPlaybook(defaultTasks, context(t, hostPlan({ actions: PACKAGE_ACTIONS })));
    expect(outcome).toMatchObject({
      status: 'failed',
      error: {
        code: 'internal',
        step: 'Install the locked versions in one apt transaction',
        message: 'connection reset',
      },
    });
  });

  it('a host with blocked packages (skip-unavailable) reports blocked after converging the rest', async () => {
    const blocked = [
      {
        package: 'zlib1g:amd64',
        version: '1:1.2.11.dfsg-2ubuntu1.5',
        reason: 'version-unavailable' as const,
        detail: 'not offered',
      },
    ];
    const t = new RecordingTransport('node-b', [
      ...jobReplies(),
      { match: isProbe, reply: { stdout: convergedProbe({ 'zlib1g:amd64': '1:1.2.11.dfsg-2ubuntu1.6' }) } },
    ]);
    const outcome = await runPlaybook(
      defaultTasks,
      context(t, hostPlan({ status: 'blocked', actions: PACKAGE_ACTIONS.slice(0, 3), blocked })),
    );
    expect(outcome.status).toBe('blocked');
    expect(outcome.blocked).toEqual(blocked);
    // verify leaves the blocked package out.
    expect(outcome.tasks.find((x) => x.module === 'verify')).toMatchObject({
      module: 'verify',
      status: 'ok',
    });
  });

  it('command module honours become and okCodes', async () => {
    const t = new RecordingTransport('node-b', [
      { match: (a) => a[0] === 'systemctl', reply: { exitCode: 3 } },
    ]);
    const tasks: ResolvedTask[] = [
      {
        name: 'status',
        module: 'command',
        args: { argv: ['systemctl', 'is-active', 'x'], become: true, timeout: 5, okCodes: [0, 3] },
        when: 'always',
      },
      {
        name: 'status strict',
        module: 'command',
        args: { argv: ['systemctl', 'is-active', 'x'], become: false, timeout: 5, okCodes: [0] },
        when: 'always',
      },
    ];
    const outcome = await runPlaybook(tasks, context(t, hostPlan()));
    expect(t.execs.map((c) => [c.become, c.timeoutMs])).toEqual([
      [true, 5000],
      [false, 5000],
    ]);
    expect(outcome).toMatchObject({
      status: 'failed',
      error: { code: 'task-failed', step: 'status strict', message: 'systemctl failed: exit code 3' },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// loadPlaybook
// ---------------------------------------------------------------------------------------------

describe('loadPlaybook', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'criu-lock-playbook-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function book(name: string, text: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  }

  async function loadError(file: string): Promise<CriuLockError> {
    const err: unknown = await loadPlaybook(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriuLockError);
    const e = err as CriuLockError;
    expect(e.code).toBe('input');
    expect(e.hint).toMatch(/\S/);
    return e;
  }

  it('the built-in playbook is capture, store upload, pins, install, verify, record', () => {
    expect(defaultTasks).toEqual([
      {
        name: 'Record what will be replaced, for rollback',
        module: 'capture',
        args: undefined,
        when: 'changes',
      },
      {
        name: 'Upload the package-store .debs this host needs, sha256-checked on the host',
        module: 'store_upload',
        args: undefined,
        when: 'always',
      },
      {
        name: 'Pin every locked package to its exact version',
        module: 'apt_pins',
        args: undefined,
        when: 'always',
      },
      {
        name: 'Install the locked versions in one apt transaction',
        module: 'apt_install',
        args: { lockTimeout: 120 },
        when: 'always',
      },
      {
        name: 'Verify versions and build-IDs against the lock',
        module: 'verify',
        args: undefined,
        when: 'always',
      },
      { name: 'Record the transaction as applied', module: 'tx_record', args: undefined, when: 'changes' },
    ]);
  });

  it('puts pre_tasks and post_tasks around the default tasks', async () => {
    const file = await book(
      'drain.yaml',
      [
        'name: drain around converge',
        'pre_tasks:',
        '  - name: Drain',
        '    module: command',
        '    args: {argv: [kubectl, drain, node-b, --ignore-daemonsets]}',
        '    when: changes',
        'post_tasks:',
        '  - name: Uncordon',
        '    module: command',
        '    args: {argv: [kubectl, uncordon, node-b], okCodes: [0, 1]}',
        '',
      ].join('\n'),
    );
    const tasks = await loadPlaybook(file);
    expect(tasks.map((x) => [x.name, x.module, x.when])).toEqual([
      ['Drain', 'command', 'changes'],
      ['Record what will be replaced, for rollback', 'capture', 'changes'],
      [
        'Upload the package-store .debs this host needs, sha256-checked on the host',
        'store_upload',
        'always',
      ],
      ['Pin every locked package to its exact version', 'apt_pins', 'always'],
      ['Install the locked versions in one apt transaction', 'apt_install', 'always'],
      ['Verify versions and build-IDs against the lock', 'verify', 'always'],
      ['Record the transaction as applied', 'tx_record', 'changes'],
      ['Uncordon', 'command', 'always'],
    ]);
    // Module defaults are applied at load.
    expect(tasks[0]!.args).toEqual({
      argv: ['kubectl', 'drain', 'node-b', '--ignore-daemonsets'],
      become: false,
      timeout: 600,
      okCodes: [0],
    });
    expect(tasks[7]!.args).toEqual({
      argv: ['kubectl', 'uncordon', 'node-b'],
      become: false,
      timeout: 600,
      okCodes: [0, 1],
    });
  });

  it('uses the user tasks instead of the defaults when given', async () => {
    const file = await book('own.yaml', 'tasks:\n  - name: Only verify\n    module: verify\n');
    expect((await loadPlaybook(file)).map((x) => x.module)).toEqual(['verify']);
  });

  it('rejects an unknown module with file:line', async () => {
    const file = await book(
      'unknown.yaml',
      ['pre_tasks:', '  - name: Drain', '    module: shell', '    args: {cmd: "kubectl drain"}', ''].join(
        '\n',
      ),
    );
    const e = await loadError(file);
    expect(e.message).toBe('unknown module "shell" in task "Drain"');
    expect(e.location).toEqual({ file, line: 3, col: 13 });
    expect(e.hint).toContain('apt_install');
  });

  it('rejects invalid module args with file:line', async () => {
    const file = await book(
      'badargs.yaml',
      [
        'post_tasks:',
        '  - name: ok',
        '    module: verify',
        '  - name: Restart',
        '    module: command',
        '    args:',
        '      argv: restart',
        '',
      ].join('\n'),
    );
    const e = await loadError(file);
    expect(e.message).toMatch(/^task "Restart": invalid args for command: argv: /);
    expect(e.location).toEqual({ file, line: 7, col: 13 });
  });

  it('rejects unknown args of a built-in module', async () => {
    const file = await book(
      'badinstall.yaml',
      [
        'tasks:',
        '  - name: Install',
        '    module: apt_install',
        '    args: {lockTimeout: 10, purge: true}',
        '',
      ].join('\n'),
    );
    const e = await loadError(file);
    expect(e.message).toMatch(/invalid args for apt_install/);
    expect(e.location?.line).toBe(4);
  });

  it('rejects an unknown task key and a bad `when` with file:line', async () => {
    const extra = await book(
      'extra.yaml',
      ['pre_tasks:', '  - name: x', '    module: verify', '    become: true', ''].join('\n'),
    );
    const e1 = await loadError(extra);
    // One wording for unknown keys in every file criu-lock reads, located at the key itself.
    expect(e1.message).toBe('unknown key "become" in pre_tasks.0');
    expect(e1.location).toEqual({ file: extra, line: 4, col: 5 });
    const when = await book(
      'when.yaml',
      ['pre_tasks:', '  - name: x', '    module: verify', '    when: sometimes', ''].join('\n'),
    );
    const e2 = await loadError(when);
    expect(e2.message).toMatch(/^pre_tasks\.0\.when: /);
    expect(e2.location).toEqual({ file: when, line: 4, col: 11 });
  });

  it('rejects invalid YAML and a missing file', async () => {
    const broken = await book('broken.yaml', 'pre_tasks: [\n');
    expect((await loadError(broken)).message).toMatch(/^invalid YAML: /);
    expect((await loadError(join(dir, 'nope.yaml'))).message).toMatch(/^cannot read playbook /);
  });
});

describe('verify reads back only what can have moved', () => {
  const FILES_LOCK: Lockfile = makeLock({
    packages: {
      'libc6:amd64': {
        version: '2.31-0ubuntu9.14',
        files: { '/usr/lib/x86_64-linux-gnu/libc.so.6': { size: 10, mode: '0755', buildId: 'aa' } },
      },
      'zlib1g:amd64': {
        version: '1:1.2.11.dfsg-2ubuntu1.5',
        files: { '/usr/lib/x86_64-linux-gnu/libz.so.1': { size: 20, mode: '0644', buildId: 'bb' } },
      },
    },
  });

  it('a host that was ok at preflight and saw no change is not probed again', async () => {
    const t = new RecordingTransport('node-b');
    const plan = hostPlan({ status: 'ok', actions: [] });
    const outcome = await runPlaybook(defaultTasks, {
      ...context(t, plan),
      lock: FILES_LOCK,
      pins: renderPins(FILES_LOCK),
    });
    expect(outcome.status).toBe('ok');
    expect(outcome.tasks.at(-2)).toMatchObject({ module: 'verify', status: 'ok' });
    expect(outcome.tasks.at(-2)?.message).toMatch(/unchanged since preflight/);
    expect(t.calls).toEqual([]);
  });

  it('after apt, only the files of the packages it installed are re-read (versions of all)', async () => {
    const t = new RecordingTransport('node-b', jobReplies());
    const plan = hostPlan({
      actions: [{ type: 'upgrade', package: 'libc6:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' }],
    });
    await runPlaybook(defaultTasks, { ...context(t, plan), lock: FILES_LOCK, pins: renderPins(FILES_LOCK) });
    const probe = t.execs.find((c) => c.argv.join(' ') === 'sh -s');
    // Paths travel hex-encoded in the probe's data.
    expect(probe?.stdin).toContain(`P\t${hex('/usr/lib/x86_64-linux-gnu/libc.so.6')}`);
    expect(probe?.stdin).not.toContain(hex('libz.so.1'));
    expect(probe?.stdin).toContain('exec dpkg-query -W');
  });

  it('after a user command changed something, every locked file is re-read', async () => {
    const t = new RecordingTransport('node-b', jobReplies());
    const tasks = [
      {
        name: 'poke',
        module: 'command',
        args: { argv: ['true'], become: false, timeout: 10, okCodes: [0] },
        when: 'always' as const,
      },
      ...defaultTasks,
    ];
    const plan = hostPlan({
      actions: [{ type: 'upgrade', package: 'libc6:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' }],
    });
    await runPlaybook(tasks, { ...context(t, plan), lock: FILES_LOCK, pins: renderPins(FILES_LOCK) });
    const probe = t.execs.find((c) => c.argv.join(' ') === 'sh -s');
    expect(probe?.stdin).toContain(hex('libz.so.1'));
  });
});
