/** Harder paths on real nodes: failures mid-apply, holds, deleted mappings, user playbooks, batches. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { parseLock } from '../../src/lock/lockfile.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { nodeExec, parseDpkgQuery, readelfBuildId, useSandbox } from './sandbox.js';

const sb = useSandbox();
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';

const cli = runCli;

const conn = (): string[] => ['-i', sb.state().inventory, '--known-hosts', sb.state().knownHosts];

async function version(node: string, pkg: string): Promise<string | undefined> {
  const r = await nodeExec(node, ['dpkg-query', '-W', '-f', '${Package}\t${Version}\n']);
  return parseDpkgQuery(r.stdout).get(pkg);
}

const resetAll = (): Promise<unknown> =>
  reset(
    sb.state().nodes.map((n) => n.name),
    { dir: sb.dir, log: () => undefined },
  );

describe.skipIf(sb.skip)('criu-lock edge cases on the sandbox fleet', () => {
  let work: string;
  let lock: string;

  beforeAll(async () => {
    await resetAll();
    work = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-edge-'));
    lock = join(work, 'lock.yaml');
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
  });

  afterAll(async () => {
    if (!sb.skip) await resetAll();
  });

  it("an apt failure mid-apply fails that host with apt's error, the others converge, and a re-run converges it", async () => {
    const hook = join(sb.node('node03').root, 'etc/apt/apt.conf.d/99criu-lock-test-break');
    writeFileSync(hook, 'DPkg::Pre-Invoke { "echo simulated dpkg hook failure >&2; false"; };\n');
    try {
      const r = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03:node04');
      expect(r.code).toBe(3);
      expect(r.out).toMatch(/node03\s+failed .*apt-get install failed/);
      expect(r.out).toMatch(/E: Sub-process/);
      expect(r.out).toMatch(/node04\s+changed/);
      expect(await version('node03', 'libfleet1')).toBe('2.31-0ubuntu9.9');
    } finally {
      rmSync(hook);
    }
    const again = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03:node04');
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/node03\s+changed/);
    expect(again.out).toMatch(/node04\s+ok/);
    expect(await readelfBuildId('node03', LIBFLEET)).toBe(await readelfBuildId('node01', LIBFLEET));
  });

  it('a dpkg hold on a package that must move blocks the host and leaves it untouched', async () => {
    await reset(['node03'], { dir: sb.dir, log: () => undefined });
    expect((await nodeExec('node03', ['apt-mark', 'hold', 'libtilde0'])).exitCode).toBe(0);
    const planFile = join(work, 'held.json');
    const r = await cli('plan', ...conn(), '-l', lock, '--limit', 'node03', '-o', planFile);
    expect(r.code).toBe(0);
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as PlanFile;
    expect(plan.hosts[0]?.status).toBe('blocked');
    expect(plan.hosts[0]?.blocked).toEqual([
      expect.objectContaining({ package: 'libtilde0:amd64', reason: 'held' }),
    ]);
    const a = await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node03');
    expect(a.code).toBe(3);
    expect(await version('node03', 'libfleet1')).toBe('2.31-0ubuntu9.9');
  });

  it('a conflicting apt preference of higher priority blocks the host', async () => {
    await reset(['node04'], { dir: sb.dir, log: () => undefined });
    writeFileSync(
      join(sb.node('node04').root, 'etc/apt/preferences.d/local-tilde'),
      'Package: libtilde0\nPin: version 3.0-1\nPin-Priority: 1002\n',
    );
    const r = await cli('plan', ...conn(), '-l', lock, '--limit', 'node04', '--format', 'json');
    const plan = JSON.parse(r.out) as PlanFile;
    expect(plan.hosts[0]?.blocked).toEqual([
      expect.objectContaining({ package: 'libtilde0:amd64', reason: 'conflicting-pin' }),
    ]);
    await reset(['node04'], { dir: sb.dir, log: () => undefined });
  });

  it('generate --pid warns about a mapped library replaced on disk and locks the mapped build-ID', async () => {
    await reset(['node01'], { dir: sb.dir, log: () => undefined });
    const root = sb.node('node01').root;
    const mappedId = await readelfBuildId('node01', LIBFLEET);
    const child = spawn('chroot', [root, '/usr/bin/fleet-tool', 'sleep'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      // Upgrade under the running process: dpkg replaces the file, the process keeps the old one.
      const up = await nodeExec('node01', [
        'apt-get',
        'install',
        '-y',
        '-q',
        'libfleet1=2.31-0ubuntu9.16',
        'fleet-bin=2.31-0ubuntu9.16',
      ]);
      expect(up.exitCode, up.stderr).toBe(0);
      expect(await readelfBuildId('node01', LIBFLEET)).not.toBe(mappedId);
      const r = await cli('generate', ...conn(), '--pid', String(child.pid), '-o', '-');
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(
        new RegExp(`warning: process ${child.pid} maps ${LIBFLEET.replace(/\./g, '\\.')}, which was deleted`),
      );
      const l = parseLock(r.out, 'stdout');
      expect(l.packages['libfleet1:amd64']?.files?.[LIBFLEET]?.buildId).toBe(mappedId);
    } finally {
      child.kill('SIGKILL');
      await reset(['node01'], { dir: sb.dir, log: () => undefined });
    }
  });

  it('--pid records a mapped file no package owns as unmanaged; a node without it is drift and blocked', async () => {
    await reset(['node01', 'node02'], { dir: sb.dir, log: () => undefined });
    const root = sb.node('node01').root;
    // A private copy of a library, preloaded: mapped by the process, owned by no package.
    writeFileSync(
      join(root, 'tmp/libprivate.so'),
      readFileSync(join(root, 'usr/lib/x86_64-linux-gnu/libtilde.so.0')),
    );
    const child = spawn(
      'chroot',
      [root, '/usr/bin/env', 'LD_PRELOAD=/tmp/libprivate.so', '/usr/bin/fleet-tool', 'sleep'],
      { stdio: 'ignore' },
    );
    const pidLock = join(work, 'pid-lock.yaml');
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await cli('generate', ...conn(), '--pid', String(child.pid), '-o', pidLock);
      expect(r.code, r.err).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    const l = parseLock(readFileSync(pidLock, 'utf8'), pidLock);
    expect(l.unmanaged?.['/tmp/libprivate.so']).toMatchObject({
      buildId: await readelfBuildId('node01', '/tmp/libprivate.so'),
    });
    const check = await cli('check', ...conn(), '-l', pidLock, '--limit', 'node01:node02');
    expect(check.code).toBe(2);
    expect(check.out).toMatch(/node01: matches the lock/);
    expect(check.out).toContain("would fail: Can't open file tmp/libprivate.so");
    const plan = JSON.parse(
      (await cli('plan', ...conn(), '-l', pidLock, '--limit', 'node02', '--format', 'json')).out,
    ) as PlanFile;
    expect(plan.hosts[0]?.status).toBe('blocked');
    expect(plan.hosts[0]?.blocked.map((b) => b.reason)).toEqual(['file-mismatch']);
  });

  it('runs user pre/post tasks from --playbook around the converge tasks, only where there are changes', async () => {
    await reset(['node02', 'node03'], { dir: sb.dir, log: () => undefined });
    const book = join(work, 'drain.yaml');
    writeFileSync(
      book,
      [
        'name: drain around converge',
        'pre_tasks:',
        '  - name: drain',
        '    module: command',
        '    args: {argv: [touch, /tmp/drained]}',
        '    when: changes',
        'post_tasks:',
        '  - name: undrain',
        '    module: command',
        '    args: {argv: [sh, -c, "echo done >> /tmp/drained"]}',
        '    when: changes',
        '',
      ].join('\n'),
    );
    // node02 has the versions but no pin file yet: pins are a change there too.
    expect((await cli('apply', ...conn(), '-l', lock, '--yes', '--limit', 'node02')).code).toBe(0);
    rmSync(join(sb.node('node02').root, 'tmp/drained'), { force: true });
    const r = await cli(
      'apply',
      ...conn(),
      '-l',
      lock,
      '--yes',
      '--limit',
      'node02:node03',
      '--playbook',
      book,
    );
    expect(r.code, r.out + r.err).toBe(0);
    expect(readFileSync(join(sb.node('node03').root, 'tmp/drained'), 'utf8')).toBe('done\n');
    expect(existsSync(join(sb.node('node02').root, 'tmp/drained'))).toBe(false);
    const bad = join(work, 'bad.yaml');
    writeFileSync(bad, 'pre_tasks:\n  - name: nope\n    module: shell\n');
    const e = await cli('apply', ...conn(), '-l', lock, '--yes', '--playbook', bad);
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/bad\.yaml:3:\d+: unknown module "shell"/);
  });

  it('plan --refresh runs apt-get update first; without it plan changes nothing and sees stale lists', async () => {
    await reset(['node05'], { dir: sb.dir, log: () => undefined });
    // Forget the node's apt lists: to apt, nothing is available until the next update.
    const clear = await nodeExec('node05', [
      'sh',
      '-c',
      'rm -f /var/lib/apt/lists/*Packages* && apt-get -q check >/dev/null 2>&1; true',
    ]);
    expect(clear.exitCode).toBe(0);
    const stale = JSON.parse(
      (await cli('plan', ...conn(), '-l', lock, '--limit', 'node05', '--format', 'json')).out,
    ) as PlanFile;
    expect(stale.hosts[0]?.blocked.map((b) => [b.package, b.reason])).toEqual([
      ['fleet-bin:amd64', 'version-unavailable'],
      ['libfleet1:amd64', 'version-unavailable'],
      ['libtilde0:amd64', 'version-unavailable'],
    ]);
    const fresh = JSON.parse(
      (await cli('plan', ...conn(), '-l', lock, '--limit', 'node05', '--format', 'json', '--refresh')).out,
    ) as PlanFile;
    expect(fresh.hosts[0]?.status).toBe('changes');
    expect(fresh.hosts[0]?.blocked).toEqual([]);
    await reset(['node05'], { dir: sb.dir, log: () => undefined });
  });

  it("a second plan (and apply's preflight) of an unchanged drifted host asks apt nothing and plans the same; forgotten lists are seen at once", async () => {
    await reset(['node05'], { dir: sb.dir, log: () => undefined });
    const cache = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-apt-reading-'));
    vi.stubEnv('CRIU_LOCK_CACHE_DIR', cache);
    try {
      // apt-cache and apt-get on the node log each run, then do their work.
      const wrap = await nodeExec('node05', [
        'sh',
        '-c',
        'for t in apt-get apt-cache; do mv /usr/bin/$t /usr/bin/$t.real && ' +
          'printf \'#!/bin/sh\\necho %s >> /tmp/apt-runs\\nexec /usr/bin/%s.real "$@"\\n\' $t $t > /usr/bin/$t && ' +
          'chmod 755 /usr/bin/$t || exit 1; done; : > /tmp/apt-runs',
      ]);
      expect(wrap.exitCode, wrap.stderr).toBe(0);
      const runs = async (): Promise<string[]> =>
        (await nodeExec('node05', ['cat', '/tmp/apt-runs'])).stdout.split('\n').filter((l) => l !== '');
      // The node's files were just written: a state is kept only once its ctimes are in the past.
      await new Promise((r) => setTimeout(r, 1100));
      const plan = async (): Promise<string> => {
        const r = await cli('plan', ...conn(), '-l', lock, '--limit', 'node05', '--format', 'json');
        expect(r.code, r.err).toBe(0);
        return r.out;
      };
      const first = await plan();
      expect((JSON.parse(first) as PlanFile).hosts[0]?.status).toBe('changes');
      expect(await runs()).toEqual(['apt-cache', 'apt-get']);
      expect(await plan()).toBe(first);
      expect(await runs()).toEqual(['apt-cache', 'apt-get']);
      // apply's preflight plans from the same answers: the one apt run is apt_install's own
      // check-mode simulation.
      const check = await cli('apply', ...conn(), '-l', lock, '--limit', 'node05', '--check');
      expect(check.code, check.err).toBe(0);
      expect(await runs()).toEqual(['apt-cache', 'apt-get', 'apt-get']);

      // The lists forgotten (as an archive that stopped serving the versions would leave them).
      const clear = await nodeExec('node05', ['sh', '-c', 'rm -f /var/lib/apt/lists/*Packages*']);
      expect(clear.exitCode).toBe(0);
      const after = JSON.parse(await plan()) as PlanFile;
      expect(after.hosts[0]?.blocked.map((b) => [b.package, b.reason])).toEqual([
        ['fleet-bin:amd64', 'version-unavailable'],
        ['libfleet1:amd64', 'version-unavailable'],
        ['libtilde0:amd64', 'version-unavailable'],
      ]);
      expect((await runs()).slice(3, 4)).toEqual(['apt-cache']);
    } finally {
      vi.unstubAllEnvs();
      rmSync(cache, { recursive: true, force: true });
      await reset(['node05'], { dir: sb.dir, log: () => undefined });
    }
  });

  it('--serial batches and --max-fail-percentage stop later batches after a failing one', async () => {
    await resetAll();
    const hook = join(sb.node('node03').root, 'etc/apt/apt.conf.d/99criu-lock-test-break');
    writeFileSync(hook, 'DPkg::Pre-Invoke { "false"; };\n');
    try {
      // Order: node01 | node02 | node03 (fails) | node04 node05 never start.
      const r = await cli(
        'apply',
        ...conn(),
        '-l',
        lock,
        '--yes',
        '--serial',
        '1',
        '--max-fail-percentage',
        '0',
        '--skip-unavailable',
        '--format',
        'json',
      );
      expect(r.code).toBe(3);
      const rep = JSON.parse(r.out) as {
        hosts: Array<{ name: string; status: string }>;
        notStarted: string[];
      };
      expect(rep.hosts.find((h) => h.name === 'node03')?.status).toBe('failed');
      expect(rep.notStarted).toEqual(['node04', 'node05']);
      expect(await version('node04', 'libfleet1')).toBe('2.31-0ubuntu9.16');
    } finally {
      rmSync(hook);
    }
  });
});
