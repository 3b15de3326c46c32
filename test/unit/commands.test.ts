/**
 * Orchestration of whole command runs (plan, check, apply, generate, inventory) against a
 * simulated fleet: real CLI parsing, real planner and playbook, fake transports. No root, no
 * network.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runApply, type ApplyOptions } from '../../src/commands/apply.js';
import type { HostError } from '../../src/fleet/host-error.js';
import { serializeLock } from '../../src/lock/lockfile.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import {
  fakeFleet,
  recordingIo,
  type FakeFleet,
  type FakeHostSpec,
  type RecordingIo,
} from '../helpers/fake-fleet.js';
import { makeLock } from './core-fixtures.js';

const OLD = '2.31-0ubuntu9.9';
const NEW = '2.31-0ubuntu9.14';
const APT_TASK = 'Install the locked versions in one apt transaction';

const converged: FakeHostSpec = {
  installed: { 'libc6:amd64': NEW, 'libc-bin:amd64': NEW },
  available: { 'libc6:amd64': [NEW], 'libc-bin:amd64': [NEW] },
};
const behind = (over: Partial<FakeHostSpec> = {}): FakeHostSpec => ({
  installed: { 'libc6:amd64': OLD, 'libc-bin:amd64': OLD },
  available: { 'libc6:amd64': [NEW, OLD], 'libc-bin:amd64': [NEW, OLD] },
  ...over,
});
/** NEW is not offered by this host's sources: plan blocks it with version-unavailable. */
const stranded: FakeHostSpec = {
  installed: { 'libc6:amd64': OLD, 'libc-bin:amd64': OLD },
  available: { 'libc6:amd64': [OLD], 'libc-bin:amd64': [OLD] },
};

let dir: string;
let lockPath: string;

function writeLock(version = NEW): string {
  writeFileSync(
    lockPath,
    serializeLock(
      makeLock({ host: 'node-a', packages: { 'libc6:amd64': { version }, 'libc-bin:amd64': { version } } }),
    ),
  );
  return lockPath;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-commands-'));
  lockPath = join(dir, 'criu-lock.yaml');
  writeLock();
});

async function cli(
  fleet: FakeFleet,
  argv: string[],
  io: RecordingIo = recordingIo(),
  extra: { warnings?: string[]; notes?: string[] } = {},
): Promise<{ code: number; out: string; err: string; io: RecordingIo }> {
  const { loadInventory, openTransport, clock } = fleet.deps(io, extra);
  const code = await main([...argv, '-i', 'inventory.yaml'], io, { loadInventory, openTransport, clock });
  return { code, out: io.stdout, err: io.stderr, io };
}

const count = (haystack: string, needle: string): number => haystack.split(needle).length - 1;

describe('apply PLANFILE refuses stale plans', () => {
  it('refuses the whole run when the lock changed since the plan (exit 1), before touching any host', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const planFile = join(dir, 'plan.json');
    expect((await cli(fleet, ['plan', '-l', lockPath, '-o', planFile])).code).toBe(0);
    writeLock('2.31-0ubuntu9.16');
    fleet.opened.length = 0;
    const r = await cli(fleet, ['apply', planFile, '-l', lockPath]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^error: plan is stale: it was made for lock sha256:[0-9a-f]{64}, .* is now sha256:/,
    );
    expect(r.err).toMatch(/hint: run criu-lock plan -o FILE again/);
    expect(fleet.opened).toEqual([]);
    for (const h of fleet.hosts.values()) expect(h.writes).toEqual([]);
  });

  it('refuses a host whose dpkg state moved since the plan (fingerprint), applies the others', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), 'node-c': behind() });
    const planFile = join(dir, 'plan.json');
    expect((await cli(fleet, ['plan', '-l', lockPath, '--limit', 'fleet', '-o', planFile])).code).toBe(0);
    fleet.hosts.get('node-c')!.installed.set('libc-bin:amd64', '2.31-0ubuntu9.12');
    const r = await cli(fleet, ['apply', planFile, '-l', lockPath, '--format', 'json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.out) as { hosts: Array<{ name: string; status: string; error?: HostError }> };
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([
      ['node-b', 'changed'],
      ['node-c', 'failed'],
    ]);
    expect(report.hosts[1]!.error).toEqual({
      code: 'stale-plan',
      message: 'plan is stale for host node-c: its dpkg state or apt pins changed since the plan was made',
      hint: 'run criu-lock plan again',
      step: 'preflight',
    });
    expect(fleet.hosts.get('node-c')!.writes).toEqual([]);
    expect(fleet.hosts.get('node-b')!.installed.get('libc6:amd64')).toBe(NEW);
    // The golden node was not in the plan: never contacted.
    expect(fleet.opened).not.toContain('node-a');
  });

  it('refuses a --limit that selects none of the plan hosts (exit 1), not "0 hosts, all done"', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const planFile = join(dir, 'plan.json');
    expect((await cli(fleet, ['plan', '-l', lockPath, '--limit', 'node-b', '-o', planFile])).code).toBe(0);
    fleet.opened.length = 0;
    const r = await cli(fleet, ['apply', planFile, '-l', lockPath, '--limit', 'node-a']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      "error: --limit selects none of the plan's hosts (node-b)\n  hint: limit the run to hosts the plan names, or plan those hosts\n",
    );
    expect(fleet.opened).toEqual([]);
  });
});

describe('apply', () => {
  it('leaves a blocked host untouched and converges the rest (exit 3)', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), 'node-d': stranded });
    const r = await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'fleet']);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/^node-b\s+changed/m);
    expect(r.out).toMatch(/^node-d\s+blocked/m);
    expect(r.out).toMatch(/blocked libc6:amd64=2\.31-0ubuntu9\.14 version-unavailable/);
    expect(fleet.hosts.get('node-d')!.writes).toEqual([]);
    expect(fleet.hosts.get('node-d')!.calls.at(-1)).toEqual({ kind: 'close' });
    // The rollback transaction is written before the pins and apt, and marked applied after verify.
    expect(
      fleet.hosts
        .get('node-b')!
        .writes.map((c) =>
          c.kind === 'put'
            ? c.path.replace(/\/tx\/[^/]+\//, '/tx/ID/')
            : c.kind === 'exec' && c.argv[3] === 'criu-lock-tx-finish'
              ? 'exec manifest and retention'
              : c.kind,
        ),
    ).toEqual([
      'exec manifest and retention',
      'exec', // pin backup and write
      'exec', // the detached apt job
      '/var/lib/criu-lock/tx/ID/manifest.json',
    ]);
  });

  it('a host whose lock another apply holds is refused before its facts are read; the lock is released after a run', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), 'node-c': behind() });
    fleet.hosts.get('node-c')!.lockOwner = 'someone-else';
    const r = await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'fleet', '--format', 'json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.out) as { hosts: Array<{ name: string; status: string; error?: HostError }> };
    expect(report.hosts.find((h) => h.name === 'node-c')).toMatchObject({
      status: 'failed',
      error: {
        code: 'host-lock',
        step: 'host lock',
        message:
          'another criu-lock run (an apply or a rollback) holds the host lock since 2026-11-28T12:00:00Z (holder pid 4242 on the host); this run leaves the host alone',
      },
    });
    const c = fleet.hosts.get('node-c')!;
    expect(c.writes).toEqual([]);
    expect(c.calls.some((x) => x.kind === 'exec' && x.argv[0] === 'sh' && x.argv[1] === '-s')).toBe(false);
    expect(c.lockOwner).toBe('someone-else');
    const b = fleet.hosts.get('node-b')!;
    expect(b.installed.get('libc6:amd64')).toBe(NEW);
    expect(b.lockOwner).toBeNull();
  });

  it('runs --serial batches one after another, hosts of a batch together', async () => {
    const fleet = fakeFleet({
      'node-a': converged,
      h1: behind(),
      h2: behind(),
      h3: behind(),
      h4: behind(),
      h5: behind(),
    });
    const r = await cli(fleet, [
      'apply',
      '--yes',
      '-l',
      lockPath,
      '--limit',
      'fleet',
      '--serial',
      '1,2',
      '--forks',
      '10',
    ]);
    expect(r.code, r.err).toBe(0);
    const apt = fleet.events
      .filter((e) => e.event === 'apt-start' || e.event === 'apt-end')
      .map((e) => `${e.event === 'apt-start' ? '+' : '-'}${e.host}`);
    // Batch 1 = h1; batch 2 = h2, h3 overlapping; batch 3 = h4, h5 overlapping.
    expect(apt).toEqual(['+h1', '-h1', '+h2', '+h3', '-h2', '-h3', '+h4', '+h5', '-h4', '-h5']);
  });

  it('Ctrl-C stops further hosts from starting; the host in progress finishes, and the recap says so', async () => {
    const fleet = fakeFleet({ 'node-a': converged, h1: behind(), h2: behind(), h3: behind() });
    const running = cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'fleet', '--forks', '1']);
    // The first host's apt transaction has started: now the signal.
    while (!fleet.events.some((e) => e.event === 'apt-start')) await new Promise((r) => setImmediate(r));
    process.emit('SIGINT', 'SIGINT');
    const r = await running;
    expect(r.code).toBe(3);
    expect(r.err).toContain('SIGINT: no further host will start; the hosts in progress run to their end');
    expect(r.out).toMatch(/^h1 +changed /m);
    expect(r.out).toMatch(/^h2 +not started \(interrupted\)$/m);
    expect(r.out).toMatch(/^h3 +not started \(interrupted\)$/m);
    for (const h of ['h2', 'h3']) expect(fleet.hosts.get(h)!.writes).toEqual([]);
    // The handler is gone with the run: a later SIGINT is not this apply's.
    expect(process.listenerCount('SIGINT')).toBe(0);
  });

  it('--max-fail-percentage stops later batches: their hosts are not started and not changed', async () => {
    const fleet = fakeFleet({
      'node-a': converged,
      h1: behind({ aptFails: true }),
      h2: behind(),
      h3: behind(),
    });
    const r = await cli(fleet, [
      'apply',
      '--yes',
      '-l',
      lockPath,
      '--limit',
      'fleet',
      '--serial',
      '1',
      '--max-fail-percentage',
      '0',
      '--format',
      'json',
    ]);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.out) as {
      hosts: Array<{ name: string; status: string; error?: HostError }>;
      notStarted: string[];
    };
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([['h1', 'failed']]);
    expect(report.notStarted).toEqual(['h2', 'h3']);
    expect(report.hosts[0]!.error).toMatchObject({
      code: 'task-failed',
      step: APT_TASK,
      message: expect.stringMatching(/^apt-get install failed: exit code 100/) as unknown,
    });
    for (const h of ['h2', 'h3']) expect(fleet.hosts.get(h)!.writes).toEqual([]);
    // Every connection is closed, started or not.
    for (const h of ['h1', 'h2', 'h3']) expect(fleet.hosts.get(h)!.calls.at(-1)).toEqual({ kind: 'close' });
  });

  it('without --max-fail-percentage a failed host does not stop the others', async () => {
    const fleet = fakeFleet({ 'node-a': converged, h1: behind({ aptFails: true }), h2: behind() });
    const r = await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'fleet', '--serial', '1']);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(
      /^h1\s+failed .* \[Install the locked versions in one apt transaction\] apt-get install failed/m,
    );
    expect(r.out).toMatch(/^h2\s+changed/m);
  });

  it('refuses to ask for confirmation without a terminal, before loading the inventory or connecting', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    let loaded = 0;
    const io = recordingIo();
    const deps = fleet.deps(io);
    const opts: ApplyOptions = {
      inventory: 'inventory.yaml',
      forks: 5,
      hostKeyChecking: 'strict',
      connectTimeout: 10,
      verbose: false,
      debug: false,
      color: false,
      lockfile: lockPath,
      check: false,
      yes: false,
      skipUnavailable: false,
      format: 'text',
    };
    await expect(
      runApply(opts, { ...deps, loadInventory: (p) => (loaded++, deps.loadInventory(p)) }),
    ).rejects.toThrow(/needs confirmation, and there is no terminal/);
    expect(loaded).toBe(0);
    expect(fleet.opened).toEqual([]);
  });

  it('on a terminal, shows the plan and changes nothing unless the answer is "yes"', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const r = await cli(fleet, ['apply', '-l', lockPath, '--limit', 'fleet'], recordingIo('no'));
    expect(r.code).toBe(1);
    expect(r.io.questions).toEqual(['Apply these changes to 1 host(s)? Only "yes" is accepted: ']);
    expect(r.out).toMatch(/upgrade\s+libc6:amd64 2\.31-0ubuntu9\.9 → 2\.31-0ubuntu9\.14/);
    expect(r.err).toMatch(/apply cancelled; nothing was changed/);
    expect(fleet.hosts.get('node-b')!.writes).toEqual([]);
    expect(fleet.hosts.get('node-b')!.calls.at(-1)).toEqual({ kind: 'close' });

    const yes = await cli(
      fakeFleetLike(fleet),
      ['apply', '-l', lockPath, '--limit', 'fleet'],
      recordingIo('yes'),
    );
    expect(yes.code).toBe(0);
    expect(yes.out).toMatch(/^node-b\s+changed/m);
  });

  /** When node-a's connection closed, against when node-b's apt started. */
  const closeAndInstall = (f: FakeFleet): string[] =>
    f.events
      .filter(
        (e) =>
          (e.host === 'node-a' && e.event === 'close') || (e.host === 'node-b' && e.event === 'apt-start'),
      )
      .map((e) => `${e.host} ${e.event}`);

  it('a host with nothing to do is finished at preflight: its lock and connection are let go before the others install', async () => {
    // node-a as an earlier apply left it (pins written), node-b behind.
    const first = fakeFleet({ 'node-a': converged });
    expect((await cli(first, ['apply', '--yes', '-l', lockPath])).code).toBe(0);
    const done: FakeHostSpec = { ...converged, pinFile: first.hosts.get('node-a')!.pinFile };
    const fleet = fakeFleet({ 'node-a': done, 'node-b': behind() });
    const r = await cli(fleet, ['apply', '--yes', '-l', lockPath, '--format', 'json', '--forks', '2']);
    expect(r.code, r.err).toBe(0);
    expect(closeAndInstall(fleet)).toEqual(['node-a close', 'node-b apt-start']);
    expect(fleet.hosts.get('node-a')!.lockOwner).toBeNull();
    const report = JSON.parse(r.out) as {
      hosts: Array<{ name: string; status: string; tasks: Array<{ module: string; status: string }> }>;
    };
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([
      ['node-a', 'ok'],
      ['node-b', 'changed'],
    ]);
    expect(report.hosts[0]!.tasks.map((t) => `${t.module} ${t.status}`)).toEqual([
      'capture skipped',
      'store_upload ok',
      'apt_pins ok',
      'apt_install ok',
      'verify ok',
      'tx_record skipped',
    ]);

    // A task that runs on every host (here a command) keeps the host to the playbook phase.
    const playbook = join(dir, 'always.yaml');
    writeFileSync(
      playbook,
      'name: always\npre_tasks:\n  - name: say hello\n    module: command\n    args: {argv: [du, -s, /tmp]}\n',
    );
    const again = fakeFleet({ 'node-a': done, 'node-b': behind() });
    const r2 = await cli(again, ['apply', '--yes', '-l', lockPath, '--forks', '2', '--playbook', playbook]);
    expect(r2.code, r2.err).toBe(0);
    expect(closeAndInstall(again)).toEqual(['node-b apt-start', 'node-a close']);
  });

  it('is idempotent: a second apply on the converged fleet writes nothing', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath])).code).toBe(0);
    const before = [...fleet.hosts.values()].map((h) => h.writes.length);
    const again = await cli(fleet, ['apply', '--yes', '-l', lockPath]);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/2 host\(s\): 2 ok, 0 changed/);
    expect([...fleet.hosts.values()].map((h) => h.writes.length)).toEqual(before);
  });
});

/** A fresh fleet in the same state as `f` (a new call log). */
function fakeFleetLike(f: FakeFleet): FakeFleet {
  const specs: Record<string, FakeHostSpec> = {};
  for (const [name, h] of f.hosts)
    specs[name] = { ...h.spec, installed: Object.fromEntries(h.installed), pinFile: h.pinFile };
  return fakeFleet(specs);
}

describe('warnings and SSH notes reach stderr once, for every command', () => {
  const WARNING =
    '/etc/ansible/group_vars/ is not read by criu-lock; put those variables in inventory.yaml itself';
  const NOTE = "Warning: Permanently added '[127.0.0.1]:2201' (ED25519) to the list of known hosts.";

  it.each([
    ['inventory', []],
    ['plan', ['-l', 'LOCK']],
    ['check', ['-l', 'LOCK']],
    ['apply', ['--yes', '-l', 'LOCK']],
    ['generate', ['-o', '-']],
  ])('%s', async (cmd, args) => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), 'node-c': behind() });
    const r = await cli(fleet, [cmd, ...args.map((a) => (a === 'LOCK' ? lockPath : a))], recordingIo(), {
      warnings: [WARNING],
      notes: [NOTE],
    });
    expect(r.code, r.err).toBeLessThan(3);
    expect(count(r.err, `warning: ${WARNING}\n`)).toBe(1);
    expect(count(r.out, WARNING)).toBe(0);
    // Every connecting command opened several hosts; the same note is printed once.
    expect(count(r.err, `note: ${NOTE}\n`)).toBe(cmd === 'inventory' ? 0 : 1);
  });

  it('inventory --format json still carries the warnings as data', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const r = await cli(fleet, ['inventory', '--format', 'json'], recordingIo(), { warnings: [WARNING] });
    expect((JSON.parse(r.out) as { warnings: string[] }).warnings).toEqual([WARNING]);
    expect(count(r.err, WARNING)).toBe(1);
  });
});

describe('JSON outputs keep the structured host error', () => {
  const ghost: FakeHostSpec = { ...behind(), unreachable: true };
  const expected: HostError = {
    code: 'ssh',
    message: 'cannot connect to ghost:22: connection refused',
    hint: 'check that sshd runs on the host',
    step: 'connect',
  };

  it('plan: an unreachable host carries {code, message, hint, step}; exit 3', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), ghost });
    const planFile = join(dir, 'plan.json');
    const r = await cli(fleet, ['plan', '-l', lockPath, '--format', 'json', '-o', planFile]);
    expect(r.code).toBe(3);
    const plan = JSON.parse(r.out) as PlanFile;
    expect(plan.hosts.find((h) => h.name === 'ghost')).toMatchObject({
      status: 'unreachable',
      fingerprint: null,
      error: expected,
    });
    // The saved plan holds the same structure and loads again (apply refuses that host, not the file).
    expect(
      (JSON.parse(readFileSync(planFile, 'utf8')) as PlanFile).hosts.find((h) => h.name === 'ghost')?.error,
    ).toEqual(expected);
    const apply = await cli(fleet, ['apply', planFile, '-l', lockPath, '--format', 'json']);
    expect(apply.code).toBe(3);
    const report = JSON.parse(apply.out) as {
      hosts: Array<{ name: string; status: string; error?: HostError }>;
    };
    expect(report.hosts.find((h) => h.name === 'ghost')).toMatchObject({
      status: 'unreachable',
      error: expected,
    });
    expect(report.hosts.find((h) => h.name === 'node-b')?.status).toBe('changed');
  });

  it('plan text output renders the error as one line with its hint', async () => {
    const fleet = fakeFleet({ 'node-a': converged, ghost });
    const r = await cli(fleet, ['plan', '-l', lockPath]);
    expect(r.out).toContain(
      'unreachable ghost: cannot connect to ghost:22: connection refused (hint: check that sshd runs on the host)\n',
    );
  });

  it('check: drift is exit 2, an unreachable host exit 3 with its structured error', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), ghost });
    const r = await cli(fleet, ['check', '-l', lockPath, '--format', 'json']);
    expect(r.code).toBe(3);
    const report = JSON.parse(r.out) as { hosts: Array<{ name: string; status: string; error?: HostError }> };
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([
      ['node-a', 'ok'],
      ['node-b', 'drift'],
      ['ghost', 'unreachable'],
    ]);
    expect(report.hosts[2]!.error).toEqual(expected);
    const drift = await cli(fleet, ['check', '-l', lockPath, '--limit', '!ghost']);
    expect(drift.code).toBe(2);
  });

  it('a probe failure is `failed` at step "gather facts" with the become hint', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    b.exec = (argv) =>
      Promise.resolve({
        command: argv.join(' '),
        exitCode: 1,
        stdout: '',
        stderr: 'sudo: a password is required\n',
        durationMs: 1,
        timedOut: false,
      });
    const r = await cli(fleet, ['check', '-l', lockPath, '--format', 'json']);
    const report = JSON.parse(r.out) as { hosts: Array<{ name: string; status: string; error?: HostError }> };
    expect(report.hosts[1]).toMatchObject({
      name: 'node-b',
      status: 'failed',
      error: { code: 'become', step: 'gather facts' },
    });
    expect(report.hosts[1]!.error!.hint).toMatch(/NOPASSWD/);
  });
});

describe('a status line on a terminal for long fleet phases', () => {
  it('plan, check and apply preflight count hosts done and failed, then clear the line; no status without a terminal', async () => {
    const fleet = fakeFleet({
      'node-a': converged,
      'node-b': behind(),
      'node-c': { ...behind(), unreachable: true },
    });
    const lines: string[] = [];
    const io = { ...recordingIo(), status: (l: string) => void lines.push(l) };
    for (const argv of [
      ['plan', '-l', lockPath, '--limit', 'fleet'],
      ['check', '-l', lockPath, '--limit', 'fleet'],
      ['apply', '--yes', '--check', '-l', lockPath, '--limit', 'fleet'],
    ]) {
      lines.length = 0;
      await cli(fleet, argv, io);
      const label = argv[0] === 'apply' ? 'preflight' : argv[0];
      // Redrawn at most every 100 ms, but always at the last host; then cleared.
      expect(lines.at(-2)).toBe(`${label}: 2/2 hosts, 1 failed`);
      expect(lines.at(-1)).toBe('');
      expect(io.stdout + io.stderr).not.toContain(`${label}: 2/2`);
    }
    const plain = recordingIo();
    await cli(fleet, ['plan', '-l', lockPath, '--limit', 'fleet'], plain);
    expect(plain.stderr).not.toMatch(/plan: \d+\/2 hosts/);
  });
});

describe('plan asks apt only about packages that may move (probe format 3)', () => {
  const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
  const file = (buildId: string): FakeHostSpec['files'] => ({
    [LIBC]: { size: 16360, mode: '0755', buildId },
  });

  it('a reinstall (same version, other build-ID) finds its version in a second, small round trip', async () => {
    writeFileSync(
      lockPath,
      serializeLock(
        makeLock({
          host: 'node-a',
          packages: {
            'libc6:amd64': {
              version: NEW,
              files: { [LIBC]: { size: 16360, mode: '0755', buildId: 'ab'.repeat(20) } },
            },
            'libc-bin:amd64': { version: NEW },
          },
        }),
      ),
    );
    const fleet = fakeFleet({
      'node-a': { ...converged, files: file('ab'.repeat(20)) },
      'node-b': { ...converged, files: file('cd'.repeat(20)) },
      'node-c': behind({ files: file('ab'.repeat(20)) }),
    });
    const r = await cli(fleet, ['plan', '-l', lockPath, '--format', 'json']);
    const plan = JSON.parse(r.out) as PlanFile;
    const actions = (name: string): unknown =>
      plan.hosts.find((h) => h.name === name)?.actions.filter((a) => a.type !== 'write-pins');
    expect(actions('node-a')).toEqual([]);
    expect(actions('node-b')).toEqual([{ type: 'reinstall', package: 'libc6:amd64', from: NEW, to: NEW }]);
    expect(actions('node-c')).toEqual([
      { type: 'upgrade', package: 'libc-bin:amd64', from: OLD, to: NEW },
      { type: 'upgrade', package: 'libc6:amd64', from: OLD, to: NEW },
    ]);
    const probes = (name: string): string[] =>
      fleet.hosts
        .get(name)!
        .calls.flatMap((c) => (c.kind === 'exec' && c.argv.join(' ') === 'sh -s' ? [c.stdin ?? ''] : []));
    // One round trip where nothing is reinstalled; the reinstall's policy is asked on its own.
    expect(probes('node-a')).toHaveLength(1);
    expect(probes('node-c')).toHaveLength(1);
    expect(probes('node-b')).toHaveLength(2);
    expect(probes('node-b')[1]).toMatch(/^K\tlibc6:amd64$/m);
  });
});

describe('plan reads dpkg only when its state moved (probe format 5)', () => {
  it('a second plan is answered "U" by dpkg, gives the same plan file and asks apt about the same packages', async () => {
    // Host names of their own: the stat cache of a test run is shared by every test file.
    const fleet = fakeFleet({ 'dpkg-conv': converged, 'dpkg-behind': behind() });
    const probes = (name: string): string[] =>
      fleet.hosts
        .get(name)!
        .calls.flatMap((c) => (c.kind === 'exec' && c.argv.join(' ') === 'sh -s' ? [c.stdin ?? ''] : []));
    const plan = async (): Promise<string> =>
      (await cli(fleet, ['plan', '-l', lockPath, '--format', 'json'])).out;
    const first = await plan();
    const second = await plan();
    expect(second).toBe(first);
    expect(fleet.hosts.get('dpkg-conv')!.dpkgQueries).toBe(1);
    expect(fleet.hosts.get('dpkg-behind')!.dpkgQueries).toBe(1);
    // The controller decided which packages may move from its reading: the behind host's two.
    expect(probes('dpkg-behind')[1]).toMatch(/^C\tlibc-bin:amd64\nC\tlibc6:amd64$/m);
    expect(probes('dpkg-conv')[1]).not.toMatch(/^C\t/m);
    expect((JSON.parse(second) as PlanFile).hosts.find((h) => h.name === 'dpkg-behind')?.status).toBe(
      'changes',
    );

    // dpkg's state moves (the host was upgraded by hand): read again, and the plan follows it.
    fleet.hosts.get('dpkg-behind')!.installed.set('libc6:amd64', NEW);
    fleet.hosts.get('dpkg-behind')!.installed.set('libc-bin:amd64', NEW);
    const third = JSON.parse(await plan()) as PlanFile;
    expect(fleet.hosts.get('dpkg-behind')!.dpkgQueries).toBe(2);
    expect(
      third.hosts.find((h) => h.name === 'dpkg-behind')?.actions.filter((a) => a.type !== 'write-pins'),
    ).toEqual([]);
  });
});
