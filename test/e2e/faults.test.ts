/**
 * Fault injection on the sandbox fleet (real sshd, dpkg, apt): apt's real transaction in the plan,
 * a lost connection during apt, two applies at once, a held dpkg lock, interrupted dpkg, a failed
 * transaction and the pins, a host that answers nonsense. See docs/security.md, "Apply and apt".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { computeDigest, parseLock, serializeLock } from '../../src/lock/lockfile.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { PIN_FILE } from '../../src/plan/pins.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { nodeDirs, startSshd } from '../../tools/sandbox/node.js';
import { paths } from '../../tools/sandbox/state.js';
import { pidAlive } from '../../tools/sandbox/system.js';
import { nodeExec, parseDpkgQuery, useSandbox } from './sandbox.js';

const sb = useSandbox();
const cli = runCli;
const conn = (): string[] => ['-i', sb.state().inventory, '--known-hosts', sb.state().knownHosts];
const root = (node: string): string => sb.node(node).root;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function versions(node: string): Promise<Map<string, string>> {
  const r = await nodeExec(node, ['dpkg-query', '-W', '-f', '${Package}\t${Version}\n']);
  return parseDpkgQuery(r.stdout);
}

async function dpkgAudit(node: string): Promise<string> {
  const r = await nodeExec(node, ['dpkg', '--audit']);
  return r.stdout.trim();
}

const resetNodes = (...names: string[]): Promise<unknown> =>
  reset(names, { dir: sb.dir, log: () => undefined });

/** Every file under the node's /var/lib/criu-lock with its content (a small tree), for "no trace". */
function stateTree(node: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(join(root(node), 'var/lib/criu-lock'));
  return out;
}

async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function jobDirs(node: string): string[] {
  const d = join(root(node), 'var/lib/criu-lock/jobs');
  return existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : [];
}

/** Kills every sshd of the node (listener and sessions), as a crash or a network cut would. */
function killSshd(node: string): number[] {
  const merged = root(node);
  const killed: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/root`) !== merged) continue;
      if (!readFileSync(`/proc/${e}/comm`, 'utf8').startsWith('sshd')) continue;
      process.kill(Number(e), 'SIGKILL');
      killed.push(Number(e));
    } catch {
      // gone already
    }
  }
  return killed;
}

/** A process outside apt that holds dpkg's frontend lock (fcntl, as apt takes it) until killed. */
function holdDpkgLock(node: string): Promise<ChildProcess> {
  const file = join(root(node), 'var/lib/dpkg/lock-frontend');
  const perl =
    'use Fcntl; open(my $f, ">>", $ARGV[0]) or die "open: $!"; my $l = pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0); fcntl($f, F_SETLK, $l) or die "lock: $!"; $| = 1; print "locked\\n"; sleep 600;';
  const child = spawn('perl', ['-e', perl, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      if (b.toString().includes('locked')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
  });
}

describe.skipIf(sb.skip)('faults on the sandbox fleet', () => {
  let work: string;
  /** fleet-bin, libtilde0, libepoch0 and their deps, from the golden node. */
  let lock: string;
  /** libfleet1 alone: moving it forces apt to remove fleet-bin (which depends on libfleet1 = same). */
  let libOnly: string;

  beforeAll(async () => {
    await resetNodes(...sb.state().nodes.map((n) => n.name));
    work = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-faults-'));
    lock = join(work, 'lock.yaml');
    libOnly = join(work, 'lib-only.yaml');
    const r = await cli(
      'generate',
      ...conn(),
      '--package',
      'fleet-bin',
      '--package',
      'libtilde0',
      '--package',
      'libepoch0',
      '--with-deps',
      '-o',
      lock,
    );
    expect(r.code, r.err).toBe(0);
    const l = await cli('generate', ...conn(), '--package', 'libfleet1', '-o', libOnly);
    expect(l.code, l.err).toBe(0);
  });

  afterAll(async () => {
    if (!sb.skip) await resetNodes(...sb.state().nodes.map((n) => n.name));
  });

  it('a transaction that would remove a package blocks the host with would-remove; apply leaves it untouched', async () => {
    const planFile = join(work, 'remove.json');
    const p = await cli(
      'plan',
      ...conn(),
      '-l',
      libOnly,
      '--limit',
      'node03:node04',
      '-o',
      planFile,
      '--detailed-exitcode',
    );
    expect(p.code, p.err).toBe(2);
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as PlanFile;
    for (const h of plan.hosts) {
      expect(h.status).toBe('blocked');
      expect(h.blocked).toEqual([
        expect.objectContaining({ package: 'fleet-bin:amd64', reason: 'would-remove' }),
      ]);
      expect(h.blocked[0]?.detail).toMatch(
        /depends on libfleet1 \(= 2\.31-0ubuntu9\.\d+\), and the lock needs libfleet1:amd64 2\.31-0ubuntu9\.14/,
      );
    }
    expect(p.out).toMatch(/would-remove/);
    const before = await versions('node04');
    const a = await cli('apply', ...conn(), '-l', libOnly, '--yes', '--limit', 'node04');
    expect(a.code).toBe(3);
    expect(a.out).toMatch(/node04\s+blocked/);
    expect(await versions('node04')).toEqual(before);
    expect(existsSync(join(root('node04'), PIN_FILE))).toBe(false);
    expect(jobDirs('node04')).toEqual([]);
  });

  it('the plan shows packages apt adds beyond the lock (a new dependency), and apply installs exactly that', async () => {
    // A lock with fleet-bin at the repository's newest version but not libfleet1: apt must add it.
    const l = parseLock(readFileSync(lock, 'utf8'), lock);
    const fb = l.packages['fleet-bin:amd64']!;
    const packages = { 'fleet-bin:amd64': { ...fb, version: '2.31-0ubuntu9.16', files: {} } };
    delete (packages['fleet-bin:amd64'] as { sha256?: string }).sha256;
    const scope = { kind: 'packages' as const, packages: ['fleet-bin'], withDeps: false };
    const edited = { ...l, scope, packages, unmanaged: {} };
    const newLock = join(work, 'new-dep.yaml');
    writeFileSync(newLock, serializeLock({ ...edited, digest: computeDigest(edited) }));
    const p = await cli('plan', ...conn(), '-l', newLock, '--limit', 'node05', '--format', 'json');
    expect(p.code, p.err).toBe(0);
    const h = (JSON.parse(p.out) as PlanFile).hosts[0]!;
    expect(h.status).toBe('changes');
    expect(h.aptExtra).toEqual([
      { action: 'install', package: 'libfleet1:amd64', from: null, to: '2.31-0ubuntu9.16' },
    ]);
    const text = await cli('plan', ...conn(), '-l', newLock, '--limit', 'node05');
    expect(text.out).toMatch(/install\s+libfleet1:amd64 \(none\) → 2\.31-0ubuntu9\.16\s+\(apt adds it/);
    const a = await cli('apply', ...conn(), '-l', newLock, '--yes', '--limit', 'node05');
    expect(a.code, a.out).toBe(0);
    const v = await versions('node05');
    expect(v.get('libfleet1')).toBe('2.31-0ubuntu9.16');
    expect(v.get('fleet-bin')).toBe('2.31-0ubuntu9.16');
    await resetNodes('node05');
  });

  it('apply PLANFILE refuses a host whose saved plan was edited, and runs the untouched ones', async () => {
    await resetNodes('node03', 'node04');
    const planFile = join(work, 'reviewed.json');
    const p = await cli('plan', ...conn(), '-l', lock, '--limit', 'node03:node04', '-o', planFile);
    expect(p.code, p.err).toBe(0);
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as PlanFile;
    const n3 = plan.hosts.find((h) => h.name === 'node03')!;
    // An edit in review: node03 gets libfleet1 9.16 instead of the locked 9.14.
    for (const a of n3.actions)
      if (a.type !== 'write-pins' && a.package === 'libfleet1:amd64') a.to = '2.31-0ubuntu9.16';
    writeFileSync(planFile, JSON.stringify(plan, null, 2) + '\n');
    const before = await versions('node03');
    const a = await cli('apply', ...conn(), '-l', lock, planFile);
    expect(a.code).toBe(3);
    expect(a.out).toMatch(
      /node03\s+failed .*plan refused for host node03: the saved plan does not match the lock: upgrade libfleet1:amd64 to 2\.31-0ubuntu9\.16: the lock has 2\.31-0ubuntu9\.14/,
    );
    expect(a.out).toMatch(/node04\s+changed/);
    expect(await versions('node03')).toEqual(before);
    expect(existsSync(join(root('node03'), PIN_FILE))).toBe(false);
    await resetNodes('node03', 'node04');
  }, 60_000);

  it('connection lost during apt: the host fails with that message, apt finishes on the host, the next run waits for it and converges', async () => {
    await resetNodes('node03');
    const hook = join(root('node03'), 'etc/apt/apt.conf.d/99criu-lock-test-slow');
    // dpkg starts 6 s after apt took its lock: time to cut the connection mid-transaction.
    writeFileSync(hook, 'DPkg::Pre-Invoke { "sleep 6"; };\n');
    const applying = cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    await waitFor('the apt job to start', () => jobDirs('node03').some((d) => existsSync(join(d, 'pid'))));
    const killed = killSshd('node03');
    expect(killed.length).toBeGreaterThan(0);
    const a = await applying;
    expect(a.code).toBe(3);
    expect(a.out).toMatch(
      /node03\s+failed .*connection lost during apt; the transaction continues on the host/,
    );
    // SIGKILL is delivered, not waited for: the listener may outlive the dropped session briefly.
    await waitFor('the killed sshd processes to be gone', () => !killed.some(pidAlive));
    // sshd comes back while apt is still running; the next apply waits for the transaction.
    const d = nodeDirs(paths(sb.dir), 'node03');
    await startSshd(d, sb.node('node03').port);
    const job = jobDirs('node03')[0]!;
    expect(existsSync(join(job, 'status'))).toBe(false);
    rmSync(hook);
    const again = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    expect(again.code, again.out + again.err).toBe(0);
    expect(again.err).toMatch(
      /an apt transaction started .* by an earlier apply or rollback whose connection was lost succeeded; dpkg is consistent/,
    );
    expect(again.out).toMatch(/node03\s+ok/);
    expect(readFileSync(join(job, 'status'), 'utf8').trim()).toBe('0');
    expect(await dpkgAudit('node03')).toBe('');
    const v = await versions('node03');
    expect(v.get('libfleet1')).toBe('2.31-0ubuntu9.14');
    expect(v.get('fleet-bin')).toBe('2.31-0ubuntu9.14');
    expect(existsSync(join(job, 'collected'))).toBe(true);
    await resetNodes('node03');
  }, 120_000);

  it("a second apply on a host is refused at once with the holder's start time and leaves no trace", async () => {
    await resetNodes('node03');
    const book = join(work, 'slow.yaml');
    writeFileSync(
      book,
      [
        'pre_tasks:',
        '  - name: Take a while',
        '    module: command',
        '    args: {argv: [sleep, "6"]}',
        '',
      ].join('\n'),
    );
    const first = cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03', '--playbook', book);
    const owner = join(root('node03'), 'var/lib/criu-lock/apply.owner');
    await waitFor('the first apply to hold the host lock', () => existsSync(owner));
    const before = stateTree('node03');
    const versionsBefore = await versions('node03');
    const started = Date.now();
    const second = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    const took = Date.now() - started;
    expect(second.code).toBe(3);
    const since = readFileSync(owner, 'utf8').split('\t')[1]!;
    expect(second.out).toContain(
      `another criu-lock run (an apply or a rollback) holds the host lock since ${since}`,
    );
    // Refused without waiting: the first apply still holds the lock (its owner line is unchanged below).
    expect(took).toBeLessThan(6000);
    expect(stateTree('node03')).toEqual(before);
    expect(await versions('node03')).toEqual(versionsBefore);
    const a = await first;
    expect(a.code, a.out).toBe(0);
    expect(a.out).toMatch(/node03\s+changed/);
    // Released: the owner line is gone and a third apply gets the lock.
    expect(existsSync(owner)).toBe(false);
    const third = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    expect(third.code, third.out).toBe(0);
    await resetNodes('node03');
  }, 60_000);

  it('dpkg lock held by someone else: that host fails after DPkg::Lock::Timeout with its pins as before, the others converge', async () => {
    await resetNodes('node03', 'node04');
    const book = join(work, 'short-lock.yaml');
    writeFileSync(
      book,
      [
        'tasks:',
        '  - {name: pins, module: apt_pins}',
        '  - {name: install, module: apt_install, args: {lockTimeout: 2}}',
        '  - {name: verify, module: verify}',
        '',
      ].join('\n'),
    );
    const holder = await holdDpkgLock('node03');
    try {
      const a = await cli(
        'apply',
        ...conn(),
        '-l',
        lock,
        '--yes',
        '--limit',
        'node03:node04',
        '--playbook',
        book,
      );
      expect(a.code).toBe(3);
      expect(a.out).toMatch(
        /node03\s+failed .*the dpkg lock is held by another process .* DPkg::Lock::Timeout=2 s/,
      );
      expect(a.out).toMatch(/node03 .*the pin file was removed again \(there was none before\)/);
      expect(a.out).toMatch(/node04\s+changed/);
    } finally {
      holder.kill('SIGKILL');
    }
    expect(existsSync(join(root('node03'), PIN_FILE))).toBe(false);
    expect((await versions('node03')).get('libfleet1')).toBe('2.31-0ubuntu9.9');
    expect(await dpkgAudit('node03')).toBe('');
    await resetNodes('node03', 'node04');
  }, 60_000);

  it('a failed apt transaction puts the previous pin file back', async () => {
    await resetNodes('node03');
    const pin = join(root('node03'), PIN_FILE);
    const old =
      '# an older criu-lock pin file\nPackage: libtilde0:amd64\nPin: version 3.0~rc1-1\nPin-Priority: 1001\n';
    writeFileSync(pin, old);
    const hook = join(root('node03'), 'etc/apt/apt.conf.d/99criu-lock-test-break');
    writeFileSync(hook, 'DPkg::Pre-Invoke { "echo simulated dpkg hook failure >&2; false"; };\n');
    try {
      const a = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
      expect(a.code).toBe(3);
      expect(a.out).toMatch(/node03\s+failed .*apt-get install failed.*the previous pin file was restored/);
      expect(readFileSync(pin, 'utf8')).toBe(old);
      expect(await dpkgAudit('node03')).toBe('');
    } finally {
      rmSync(hook);
    }
    const again = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    expect(again.code, again.out).toBe(0);
    expect(readFileSync(pin, 'utf8')).not.toBe(old);
    await resetNodes('node03');
  }, 60_000);

  it('interrupted dpkg: the plan blocks the host with broken-dpkg-state and the remedy; apply starts no transaction', async () => {
    await resetNodes('node03');
    const deb = readdirSync(join(root('node03'), 'srv/repo')).find((f) =>
      f.startsWith('libtilde0_3.0~rc2-1'),
    );
    expect(deb).toBeDefined();
    const u = await nodeExec('node03', ['dpkg', '--unpack', `/srv/repo/${deb}`]);
    expect(u.exitCode, u.stderr).toBe(0);
    expect(await dpkgAudit('node03')).not.toBe('');
    const p = await cli('plan', ...conn(), '-l', lock, '--limit', 'node03', '--format', 'json');
    const h = (JSON.parse(p.out) as PlanFile).hosts[0]!;
    expect(h.status).toBe('blocked');
    expect(h.blocked).toContainEqual(
      expect.objectContaining({ reason: 'broken-dpkg-state', package: 'libtilde0:amd64' }),
    );
    expect(h.blocked.find((b) => b.reason === 'broken-dpkg-state')?.detail).toMatch(/dpkg --configure -a/);
    const a = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    expect(a.code).toBe(3);
    expect(a.out).toMatch(/node03\s+blocked/);
    expect(jobDirs('node03')).toEqual([]);
    expect((await versions('node03')).get('libfleet1')).toBe('2.31-0ubuntu9.9');
    await resetNodes('node03');
  });

  it('a bad answer from one host (an invalid version in apt-cache policy, a probe that dies) fails that host only', async () => {
    await resetNodes('node03', 'node04');
    const wrap = (node: string, name: string, body: string): void => {
      const f = join(root(node), 'usr/local/bin', name);
      writeFileSync(f, `#!/bin/sh\n${body}\n`);
      chmodSync(f, 0o755);
    };
    wrap(
      'node03',
      'apt-cache',
      `/usr/bin/apt-cache "$@" | sed 's/^     2\\.31-0ubuntu9\\.14 /     2.31_bad!version /'`,
    );
    wrap('node04', 'dpkg-query', 'kill -9 $PPID');
    try {
      const p = await cli(
        'plan',
        ...conn(),
        '-l',
        lock,
        '--limit',
        'node02:node03:node04',
        '--format',
        'json',
      );
      expect(p.code).toBe(3);
      const hosts = new Map((JSON.parse(p.out) as PlanFile).hosts.map((h) => [h.name, h]));
      expect(hosts.get('node02')?.status).toBe('changes');
      expect(hosts.get('node03')?.status).toBe('failed');
      expect(hosts.get('node03')?.error?.message).toMatch(
        /apt-cache policy printed an invalid version "2\.31_bad!version"/,
      );
      expect(hosts.get('node04')?.status).toBe('failed');
      expect(hosts.get('node04')?.error?.message).toMatch(/the facts probe failed/);
      const a = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03:node04:node05');
      expect(a.code).toBe(3);
      expect(a.out).toMatch(/node03\s+failed/);
      expect(a.out).toMatch(/node04\s+failed/);
      expect(a.out).toMatch(/node05\s+changed/);
    } finally {
      await resetNodes('node03', 'node04', 'node05');
    }
  }, 60_000);
});
