/**
 * criu-lock against the real CRIU (Debian trixie's 4.1.1, fetched and cached by the sandbox): a
 * process on the golden node maps libc and a sandbox library; it is locked, dumped, and restored
 * on every fleet node. The differential rule: every node `check` calls ok restores; every node it
 * calls drift fails to restore, and CRIU's first error is, word for word, one of check's lines.
 *
 * Fleet for this file: `up --libc-drift`, so node03 (behind) also carries the other real glibc
 * build (bookworm-security vs the point release). node02 converged, node04 ahead, node05 missing.
 */
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckReport } from '../../src/fleet/host-result.js';
import { parseLock } from '../../src/lock/lockfile.js';
import { criuErrors, isNoise, runCriu, spawnInNode, waitPidFree } from '../../tools/sandbox/criu.js';
import { up } from '../../tools/sandbox/fleet.js';
import { cachedRealLibc } from '../../tools/sandbox/real-libc.js';
import { runCli } from '../helpers/run-cli.js';
import { criuSkip, nodeExec, useSandbox } from './sandbox.js';

const sb = useSandbox();
const skip = criuSkip();
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const TOOL = '/usr/bin/fleet-tool';
const FLEET = ['node02', 'node03', 'node04', 'node05'];
/** Where the checkpoint lives inside a node (CRIU runs inside the node). */
const CKPT = '/tmp/criu-lock-ckpt';

function conn(): string[] {
  const s = sb.state();
  return ['-i', s.inventory, '--known-hosts', s.knownHosts];
}

/** check's CRIU lines per host, from its JSON report. */
function predictions(json: string): Map<string, { status: string; lines: string[] }> {
  const report = JSON.parse(json) as CheckReport;
  return new Map(
    report.hosts.map((h) => [
      h.name,
      {
        status: h.status,
        lines: 'findings' in h ? h.findings.flatMap((f) => (f.type === 'file' ? [f.criu] : [])) : [],
      },
    ]),
  );
}

function comm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** The process counts in its name every 100 ms: two reads 400 ms apart differ while it runs. */
async function expectRunning(pid: number): Promise<void> {
  // Just after exec the name is still the program's own, until its first tick renames it.
  for (let i = 0; i < 40 && !/^tick \d+$/.test(comm(pid)); i++) await new Promise((r) => setTimeout(r, 50));
  const a = comm(pid);
  await new Promise((r) => setTimeout(r, 400));
  const b = comm(pid);
  expect(a).toMatch(/^tick \d+$/);
  expect(b).toMatch(/^tick \d+$/);
  expect(b).not.toBe(a);
}

async function kill(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
  expect(await waitPidFree(pid)).toBe(true);
}

interface Restore {
  ok: boolean;
  /** CRIU's error lines, sandbox noise (no tun device, RLIMIT_NOFILE) left out. */
  errors: string[];
}

/** Copies the checkpoint into `node` and restores it there, detached, in a fresh node namespace. */
async function restoreOn(node: string, images: string, pid: number): Promise<Restore> {
  const root = sb.node(node).root;
  rmSync(join(root, CKPT), { recursive: true, force: true });
  cpSync(images, join(root, CKPT), { recursive: true });
  // A failed restore holds the pid a moment; CRIU needs it free.
  expect(await waitPidFree(pid)).toBe(true);
  const r = await runCriu(root, ['restore', '-d', '-D', CKPT, '-o', 'restore.log']);
  const log = readFileSync(join(root, CKPT, 'restore.log'), 'utf8');
  return { ok: r.exitCode === 0, errors: criuErrors(log).filter((l) => !isNoise(l)) };
}

describe.skipIf(skip)('real CRIU: check predicts restore, word for word', () => {
  let work: string;
  let images: string;
  let pid: number;
  let lockPid: string;
  let lockCkpt: string;

  beforeAll(async () => {
    work = mkdtempSync(join(sb.dir, 'criu-e2e-'));
    images = join(work, 'images');
    lockPid = join(work, 'pid.yaml');
    lockCkpt = join(work, 'checkpoint.yaml');
    // Fresh scenario state on every node, node03 with the other real libc6 build.
    await up({ nodes: 5, reset: true, libcDrift: true, dir: sb.dir, log: () => undefined });
  });

  afterAll(async () => {
    // Back to the fleet every other e2e file expects (no libc drift, scenarios as installed).
    await up({ nodes: 5, reset: true, dir: sb.dir, log: () => undefined });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('CRIU runs inside a node: criu check says "Looks good."', async () => {
    const r = await runCriu(sb.node('node02').root, ['check']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout + r.stderr).toContain('Looks good.');
  });

  it('node03 carries real libc6 drift: the two builds bookworm and bookworm-security serve', async () => {
    const libc = cachedRealLibc()!;
    expect(libc.drift).not.toBe(libc.base);
    const q = async (n: string): Promise<string> =>
      (await nodeExec(n, ['dpkg-query', '-W', '-f', '${Version}', 'libc6'])).stdout;
    expect(await q('node01')).toBe(libc.base);
    expect(await q('node03')).toBe(libc.drift);
  });

  it('generate --pid, dump, then restore on each node fails exactly where check said and nowhere else', async () => {
    pid = await spawnInNode(sb.node('node01').root, [TOOL, 'tick']);
    await expectRunning(pid);

    const gen = await runCli('generate', ...conn(), '--pid', String(pid), '-o', lockPid);
    expect(gen.code, gen.err).toBe(0);
    const lock = parseLock(readFileSync(lockPid, 'utf8'), lockPid);
    expect(Object.keys(lock.packages).sort()).toEqual(['fleet-bin:amd64', 'libc6:amd64', 'libfleet1:amd64']);
    expect(Object.keys(lock.packages['libc6:amd64']?.files ?? {})).toContain(LIBC);

    const byLock = await runCli('check', ...conn(), '-l', lockPid, '--limit', 'fleet', '--format', 'json');
    expect(byLock.code).toBe(2);
    const lockSays = predictions(byLock.out);

    // Dump from the mount namespace the process runs in.
    const root1 = sb.node('node01').root;
    mkdirSync(join(root1, CKPT), { recursive: true });
    const dump = await runCriu(root1, ['dump', '-t', String(pid), '-D', CKPT, '-o', 'dump.log'], {
      enterPid: pid,
    });
    expect(dump.exitCode, readFileSync(join(root1, CKPT, 'dump.log'), 'utf8')).toBe(0);
    cpSync(join(root1, CKPT), images, { recursive: true });

    // The checkpoint itself, no lockfile: the same verdicts, the same lines for the checkpoint's files.
    const byCkpt = await runCli(
      'check',
      ...conn(),
      '--checkpoint',
      images,
      '--limit',
      'fleet',
      '--format',
      'json',
    );
    expect(byCkpt.code).toBe(2);
    const ckptSays = predictions(byCkpt.out);

    const outcome = new Map<string, Restore>();
    for (const node of FLEET) {
      const r = await restoreOn(node, images, pid);
      outcome.set(node, r);
      const lockP = lockSays.get(node)!;
      const ckptP = ckptSays.get(node)!;
      expect(ckptP.status, node).toBe(lockP.status);
      if (ckptP.status === 'ok') {
        expect(r, node).toEqual({ ok: true, errors: [] });
        await expectRunning(pid);
        const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
        expect(maps).toContain(LIBFLEET);
        await kill(pid);
      } else {
        expect(r.ok, `${node}: check said drift, CRIU restored`).toBe(false);
        // CRIU's first error, exactly as check printed it.
        expect(ckptP.lines, node).toContain(r.errors[0]);
        expect(lockP.lines, node).toContain(r.errors[0]);
      }
    }
    // What the fleet looks like to CRIU: node02 restores; the others fail, each its own way.
    expect([...outcome].map(([n, r]) => [n, r.ok])).toEqual([
      ['node02', true],
      ['node03', false],
      ['node04', false],
      ['node05', false],
    ]);
    expect(outcome.get('node03')?.errors[0]).toMatch(
      /^File usr\/lib\/x86_64-linux-gnu\/(libc\.so\.6|ld-linux-x86-64\.so\.2|libfleet\.so\.1) has bad (size \d+ \(expect \d+\)|build-ID)$/,
    );
    expect(outcome.get('node04')?.errors[0]).toBe(
      'File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad build-ID',
    );
    expect(outcome.get('node05')?.errors[0]).toBe(
      "Can't open file usr/bin/fleet-tool on restore: No such file or directory",
    );
    // Real glibc drift is named, in CRIU's words, among node03's predictions.
    expect(
      ckptSays
        .get('node03')
        ?.lines.some((l) =>
          /^File usr\/lib\/x86_64-linux-gnu\/libc\.so\.6 has bad size \d+ \(expect \d+\)$/.test(l),
        ),
    ).toBe(true);
  });

  it('a mode difference: check prints the bad mode line CRIU prints', async () => {
    const file = join(sb.node('node02').root, LIBFLEET);
    chmodSync(file, 0o755);
    try {
      const c = await runCli('check', ...conn(), '--checkpoint', images, '--limit', 'node02');
      expect(c.code).toBe(2);
      const line = 'File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad mode 0100755 (expect 0100644)';
      expect(c.out).toContain(`would fail: ${line}`);
      const r = await restoreOn('node02', images, pid);
      expect(r.ok).toBe(false);
      expect(r.errors[0]).toBe(line);
    } finally {
      chmodSync(file, 0o644);
    }
  });

  it('generate --checkpoint locks what the checkpoint needs, the same files generate --pid locked', async () => {
    const gen = await runCli('generate', ...conn(), '--checkpoint', images, '-o', lockCkpt);
    expect(gen.code, gen.err).toBe(0);
    const fromCkpt = parseLock(readFileSync(lockCkpt, 'utf8'), lockCkpt);
    const fromPid = parseLock(readFileSync(lockPid, 'utf8'), lockPid);
    expect(fromCkpt.scope).toEqual({ kind: 'checkpoint', pids: [pid] });
    expect(Object.keys(fromCkpt.packages).sort()).toEqual(Object.keys(fromPid.packages).sort());
    for (const [key, p] of Object.entries(fromCkpt.packages)) {
      expect(p.version).toBe(fromPid.packages[key]?.version);
      // Every file the checkpoint needs, recorded as in the images: what /proc/PID/maps gave generate --pid.
      for (const [path, f] of Object.entries(p.files ?? {}))
        expect(fromPid.packages[key]?.files?.[path], path).toEqual(f);
    }
    expect(fromCkpt.unmanaged ?? {}).toEqual({});
  });

  it('check is stricter than CRIU on purpose: a package off its locked version fails the lock gate even when its files still match', async () => {
    // fleet-bin 2.31-0ubuntu9.9 ships a fleet-tool byte-identical to 9.14's; libfleet1 stays at 9.14.
    const dpkg = await nodeExec('node02', [
      'dpkg',
      '-i',
      '--force-depends',
      '/srv/repo/fleet-bin_2.31-0ubuntu9.9_amd64.deb',
    ]);
    expect(dpkg.exitCode, dpkg.stderr).toBe(0);
    const byLock = await runCli('check', ...conn(), '-l', lockCkpt, '--limit', 'node02');
    expect(byLock.code).toBe(2);
    expect(byLock.out).toContain('version 2.31-0ubuntu9.9, lock 2.31-0ubuntu9.14');
    expect(byLock.out).toContain('not at the lock (CRIU compares only files)');
    expect(byLock.out).not.toContain('would fail');
    const byCkpt = await runCli('check', ...conn(), '--checkpoint', images, '--limit', 'node02');
    expect(byCkpt.code, byCkpt.out).toBe(0);
    const r = await restoreOn('node02', images, pid);
    expect(r).toEqual({ ok: true, errors: [] });
    await expectRunning(pid);
    await kill(pid);
  });

  it('apply the checkpoint lock; then check says ok everywhere and CRIU restores everywhere', async () => {
    const apply = await runCli('apply', ...conn(), '-l', lockCkpt, '--limit', 'fleet', '--yes');
    expect(apply.code, apply.out + apply.err).toBe(0);
    const byCkpt = await runCli(
      'check',
      ...conn(),
      '--checkpoint',
      images,
      '--limit',
      'fleet',
      '--format',
      'json',
    );
    expect(byCkpt.code, byCkpt.out).toBe(0);
    expect([...predictions(byCkpt.out).values()].every((p) => p.status === 'ok')).toBe(true);
    const byLock = await runCli('check', ...conn(), '-l', lockCkpt, '--limit', 'fleet');
    expect(byLock.code, byLock.out).toBe(0);
    for (const node of FLEET) {
      const r = await restoreOn(node, images, pid);
      expect(r, node).toEqual({ ok: true, errors: [] });
      await expectRunning(pid);
      // The restored process maps this node's libc, now the golden build.
      expect(readFileSync(`/proc/${pid}/maps`, 'utf8')).toContain(LIBC);
      await kill(pid);
    }
  });
});
