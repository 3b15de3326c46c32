/**
 * criu-lock end to end on the sandbox fleet: real sshd, real dpkg/apt, real .deb packages whose
 * libraries carry different build-IDs per version. node01 golden, node02 converged, node03 behind,
 * node04 ahead (needs downgrades), node05 missing packages (one only the golden node has).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runCli } from '../helpers/run-cli.js';
import { parseLock } from '../../src/lock/lockfile.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { nodeExec, parseDpkgQuery, readelfBuildId, resetNode, useSandbox } from './sandbox.js';

const sb = useSandbox();
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';
const PIN_FILE = '/etc/apt/preferences.d/criu-lock.pref';
const SYNTHETIC = ['fleet-bin', 'libepoch0', 'libtilde0', 'golden-extra'];

const cli = runCli;

function conn(inventory?: string): string[] {
  const s = sb.state();
  return ['-i', inventory ?? s.inventory, '--known-hosts', s.knownHosts];
}

async function versions(node: string): Promise<Map<string, string>> {
  const r = await nodeExec(node, ['dpkg-query', '-W', '-f', '${Package}\t${Version}\n']);
  return parseDpkgQuery(r.stdout);
}

function dpkgStatus(node: string): string {
  return readFileSync(join(sb.node(node).root, 'var/lib/dpkg/status'), 'utf8');
}

/** The sandbox inventory plus a host whose port nothing listens on. */
function inventoryWithGhost(dir: string): string {
  const inv = parse(readFileSync(sb.state().inventory, 'utf8')) as {
    all: { children: { fleet: { hosts: Record<string, unknown> } } };
  };
  inv.all.children.fleet.hosts.ghost = { ansible_host: '127.0.0.1', ansible_port: 1, ansible_user: 'root' };
  const file = join(dir, 'inventory-ghost.yaml');
  writeFileSync(file, stringify(inv));
  return file;
}

describe.skipIf(sb.skip)('criu-lock on the sandbox fleet', () => {
  let work: string;
  let lockAll: string;
  let lockSyn: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-'));
    lockAll = join(work, 'all.yaml');
    lockSyn = join(work, 'synthetic.yaml');
    await reset(
      sb.state().nodes.map((n) => n.name),
      { dir: sb.dir, log: () => undefined },
    );
  });

  afterAll(async () => {
    // Leave the fleet as the scenarios describe it for any later file.
    if (!sb.skip)
      await reset(
        sb.state().nodes.map((n) => n.name),
        { dir: sb.dir, log: () => undefined },
      );
  });

  describe('generate', () => {
    it('locks every installed package of the golden node with exact versions and CRIU build-IDs', async () => {
      const started = Date.now();
      const r = await cli('generate', ...conn(), '-o', lockAll);
      const seconds = (Date.now() - started) / 1000;
      expect(r.code, r.err).toBe(0);
      const lock = parseLock(readFileSync(lockAll, 'utf8'), lockAll);
      expect(lock.source.host).toBe('node01');
      expect(lock.scope).toEqual({ kind: 'all' });
      expect(lock.platform).toMatchObject({
        id: 'debian',
        versionId: '12',
        codename: 'bookworm',
        architecture: 'amd64',
      });
      const golden = await versions('node01');
      expect(Object.keys(lock.packages).length).toBe(golden.size);
      for (const [key, entry] of Object.entries(lock.packages))
        expect(entry.version).toBe(golden.get(key.split(':')[0]!));
      expect(lock.packages['libfleet1:amd64']?.version).toBe('2.31-0ubuntu9.14');
      expect(lock.packages['libepoch0:amd64']?.version).toBe('1:1.0-1');
      expect(lock.packages['libtilde0:amd64']?.version).toBe('3.0~rc2-1');
      expect(lock.packages['golden-extra:amd64']?.version).toBe('1.0-1');
      const file = lock.packages['libfleet1:amd64']?.files?.[LIBFLEET];
      expect(file?.buildId).toBe(await readelfBuildId('node01', LIBFLEET));
      expect(file?.size).toBe(statSync(join(sb.node('node01').root, LIBFLEET)).size);
      // Published by the node's apt lists for repo packages; absent for the local-only .deb.
      expect(lock.packages['libfleet1:amd64']?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(lock.packages['golden-extra:amd64']?.sha256).toBeUndefined();
      // libc's files are locked under their dpkg paths with readelf's build-ID.
      const libc = lock.packages['libc6:amd64']?.files ?? {};
      const libcPath = Object.keys(libc).find((p) => p.endsWith('/libc.so.6'))!;
      expect(libc[libcPath]?.buildId).toBe(await readelfBuildId('node01', libcPath));
      process.stderr.write(
        `[e2e] generate (scope all, ${Object.keys(lock.packages).length} packages) took ${seconds.toFixed(2)} s\n`,
      );
      expect(seconds).toBeGreaterThan(0);
    });

    it('is deterministic: the same golden state gives the same file apart from generatedAt', async () => {
      const again = join(work, 'again.yaml');
      expect((await cli('generate', ...conn(), '-o', again)).code).toBe(0);
      const strip = (f: string): string => readFileSync(f, 'utf8').replace(/generatedAt: "[^"]+"/, '');
      expect(strip(again)).toBe(strip(lockAll));
    });

    it('--package with --with-deps pulls in the lockstep partner', async () => {
      const r = await cli('generate', ...conn(), '--package', 'fleet-bin', '--with-deps', '-o', '-');
      expect(r.code, r.err).toBe(0);
      const lock = parseLock(r.out, 'stdout');
      expect(Object.keys(lock.packages).sort()).toEqual(['fleet-bin:amd64', 'libfleet1:amd64']);
      expect(lock.scope).toEqual({ kind: 'packages', packages: ['fleet-bin'], withDeps: true });
      for (const entry of Object.values(lock.packages)) expect(entry.sha256).toMatch(/^[0-9a-f]{64}$/);
      const alone = await cli('generate', ...conn(), '--package', 'fleet-bin', '-o', '-');
      expect(Object.keys(parseLock(alone.out, 'stdout').packages)).toEqual(['fleet-bin:amd64']);
      const libc = parseLock(
        (await cli('generate', ...conn(), '--package', 'libc6', '--with-deps', '-o', '-')).out,
        'stdout',
      );
      expect(Object.keys(libc.packages)).toEqual(expect.arrayContaining(['libc6:amd64', 'libgcc-s1:amd64']));
    });

    it('--pid locks exactly what a running process maps, through /usr-merge aliases', async () => {
      const child = spawn('chroot', [sb.node('node01').root, '/usr/bin/fleet-tool', 'sleep'], {
        stdio: 'ignore',
      });
      try {
        await new Promise((r) => setTimeout(r, 300));
        const r = await cli('generate', ...conn(), '--pid', String(child.pid), '-o', '-');
        expect(r.code, r.err).toBe(0);
        const lock = parseLock(r.out, 'stdout');
        expect(lock.scope).toEqual({ kind: 'processes', pids: [child.pid] });
        expect(lock.packages['libfleet1:amd64']?.files?.[LIBFLEET]?.buildId).toBe(
          await readelfBuildId('node01', LIBFLEET),
        );
        expect(Object.keys(lock.packages['fleet-bin:amd64']?.files ?? {})).toEqual(['/usr/bin/fleet-tool']);
        // libc is mapped as /usr/lib/... while dpkg lists it as /lib/...: the owner is still found.
        expect(Object.keys(lock.packages['libc6:amd64']?.files ?? {})).toContain(
          '/usr/lib/x86_64-linux-gnu/libc.so.6',
        );
        expect(lock.packages['golden-extra:amd64']).toBeUndefined();
        expect(lock.unmanaged).toEqual({});
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('refuses a process that does not exist, with exit 1 and a hint', async () => {
      const r = await cli('generate', ...conn(), '--pid', '999999', '-o', join(work, 'nope.yaml'));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/process 999999/);
      expect(existsSync(join(work, 'nope.yaml'))).toBe(false);
    });
  });

  describe('check', () => {
    it('passes the converged node and golden, names drifted files and versions elsewhere (exit 2)', async () => {
      const ok = await cli('check', ...conn(), '-l', lockAll, '--limit', 'node01:node02');
      expect(ok.code, ok.out + ok.err).toBe(0);
      const drift = await cli('check', ...conn(), '-l', lockAll, '--limit', 'node03');
      expect(drift.code).toBe(2);
      expect(drift.out).toContain('version 2.31-0ubuntu9.9, lock 2.31-0ubuntu9.14');
      expect(drift.out).toContain('would fail: File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad build-ID');
      const json = JSON.parse((await cli('check', ...conn(), '-l', lockAll, '--format', 'json')).out) as {
        hosts: Array<{ name: string; status: string }>;
      };
      expect(json.hosts.map((h) => [h.name, h.status])).toEqual([
        ['node01', 'ok'],
        ['node02', 'ok'],
        ['node03', 'drift'],
        ['node04', 'drift'],
        ['node05', 'drift'],
      ]);
    });

    it('catches a library rewritten in place at the same package version', async () => {
      const root = sb.node('node02').root;
      const other = readFileSync(join(sb.node('node04').root, LIBFLEET)); // 9.16's build
      try {
        writeFileSync(join(root, LIBFLEET), other);
        expect((await versions('node02')).get('libfleet1')).toBe('2.31-0ubuntu9.14');
        const r = await cli('check', ...conn(), '-l', lockAll, '--limit', 'node02');
        expect(r.code).toBe(2);
        expect(r.out).toContain('File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad');
        expect(r.out).not.toContain('version 2.31');
      } finally {
        await resetNode('node02');
      }
    });

    it('reports an unreachable host with exit 3 and still checks the others', async () => {
      const inv = inventoryWithGhost(work);
      const r = await cli('check', ...conn(inv), '-l', lockAll, '--format', 'json', '--connect-timeout', '3');
      expect(r.code).toBe(3);
      const json = JSON.parse(r.out) as { hosts: Array<{ name: string; status: string }> };
      expect(json.hosts.find((h) => h.name === 'ghost')?.status).toBe('unreachable');
      expect(json.hosts.filter((h) => h.status === 'ok').map((h) => h.name)).toEqual(['node01', 'node02']);
    });
  });

  describe('plan and apply', () => {
    beforeAll(async () => {
      const r = await cli(
        'generate',
        ...conn(),
        ...SYNTHETIC.flatMap((p) => ['--package', p]),
        '--with-deps',
        '-o',
        lockSyn,
      );
      expect(r.code, r.err).toBe(0);
    });

    it('plans the exact upgrades, downgrades and installs per scenario and blocks the golden-only package', async () => {
      const planFile = join(work, 'plan.json');
      const r = await cli('plan', ...conn(), '-l', lockSyn, '-o', planFile, '--detailed-exitcode');
      expect(r.code, r.err).toBe(2);
      const plan = JSON.parse(readFileSync(planFile, 'utf8')) as PlanFile;
      const acts = (name: string): string[] =>
        plan.hosts
          .find((h) => h.name === name)!
          .actions.map((a) =>
            a.type === 'write-pins' ? `pins ${a.path}` : `${a.type} ${a.package} ${a.from ?? '-'} ${a.to}`,
          );
      expect(plan.hosts.map((h) => [h.name, h.status])).toEqual([
        ['node01', 'changes'],
        ['node02', 'changes'],
        ['node03', 'changes'],
        ['node04', 'changes'],
        ['node05', 'blocked'],
      ]);
      expect(acts('node02')).toEqual([`pins ${PIN_FILE}`]);
      expect(acts('node03')).toEqual([
        `pins ${PIN_FILE}`,
        'upgrade fleet-bin:amd64 2.31-0ubuntu9.9 2.31-0ubuntu9.14',
        'upgrade libepoch0:amd64 1.9-1 1:1.0-1',
        'upgrade libfleet1:amd64 2.31-0ubuntu9.9 2.31-0ubuntu9.14',
        'upgrade libtilde0:amd64 3.0~rc1-1 3.0~rc2-1',
      ]);
      expect(acts('node04')).toEqual([
        `pins ${PIN_FILE}`,
        'downgrade fleet-bin:amd64 2.31-0ubuntu9.16 2.31-0ubuntu9.14',
        'downgrade libfleet1:amd64 2.31-0ubuntu9.16 2.31-0ubuntu9.14',
        'downgrade libtilde0:amd64 3.0-1 3.0~rc2-1',
      ]);
      expect(acts('node05')).toEqual([
        `pins ${PIN_FILE}`,
        'install fleet-bin:amd64 - 2.31-0ubuntu9.14',
        'install libfleet1:amd64 - 2.31-0ubuntu9.14',
        'install libtilde0:amd64 - 3.0~rc2-1',
      ]);
      expect(plan.hosts.find((h) => h.name === 'node05')!.blocked).toEqual([
        expect.objectContaining({
          package: 'golden-extra:amd64',
          version: '1.0-1',
          reason: 'version-unavailable',
        }),
      ]);
      // Planning changed nothing on the nodes.
      for (const n of sb.state().nodes) expect(existsSync(join(n.root, PIN_FILE))).toBe(false);
    });

    it('renders a deterministic Markdown plan matching the reviewed snapshot', async () => {
      const a = await cli('plan', ...conn(), '-l', lockSyn, '--format', 'markdown');
      const b = await cli('plan', ...conn(), '-l', lockSyn, '--format', 'markdown');
      expect(a.code).toBe(0);
      expect(a.out).toBe(b.out);
      const stable = a.out
        .replace(new RegExp(sb.dir.replace(/[/.]/g, '\\$&'), 'g'), '<sandbox>')
        .replace(lockSyn, '<lock>');
      await expect(stable).toMatchFileSnapshot('./__snapshots__/plan.md');
    });

    it('applies a reviewed plan: converges every non-blocked node, leaves the blocked one untouched', async () => {
      const planFile = join(work, 'plan-apply.json');
      expect((await cli('plan', ...conn(), '-l', lockSyn, '-o', planFile)).code).toBe(0);
      const before05 = dpkgStatus('node05');
      const r = await cli('apply', ...conn(), '-l', lockSyn, planFile);
      expect(r.code, r.out + r.err).toBe(3); // node05 is blocked
      expect(r.out).toMatch(/node03\s+changed/);
      expect(r.out).toMatch(/node04\s+changed/);
      expect(r.out).toMatch(/node05\s+blocked/);
      expect(dpkgStatus('node05')).toBe(before05);
      expect(existsSync(join(sb.node('node05').root, PIN_FILE))).toBe(false);

      const check = await cli('check', ...conn(), '-l', lockSyn, '--limit', '!node05');
      expect(check.code, check.out).toBe(0);
      const golden = await readelfBuildId('node01', LIBFLEET);
      for (const n of ['node02', 'node03', 'node04']) expect(await readelfBuildId(n, LIBFLEET)).toBe(golden);
      for (const n of ['node03', 'node04']) {
        const v = await versions(n);
        expect([v.get('libfleet1'), v.get('fleet-bin'), v.get('libepoch0'), v.get('libtilde0')]).toEqual([
          '2.31-0ubuntu9.14',
          '2.31-0ubuntu9.14',
          '1:1.0-1',
          '3.0~rc2-1',
        ]);
      }
      // apt now prefers the pinned versions over newer ones in the repo.
      const policy = await nodeExec('node03', ['apt-cache', 'policy', 'libfleet1']);
      expect(policy.stdout).toMatch(/Candidate: 2\.31-0ubuntu9\.14/);
      expect(policy.stdout).toMatch(/\*\*\* 2\.31-0ubuntu9\.14 1001/);
    });

    it('is idempotent: a second apply reports every host ok and writes nothing', async () => {
      const pins = ['node01', 'node02', 'node03', 'node04'].map((n) => join(sb.node(n).root, PIN_FILE));
      const mtimes = pins.map((p) => statSync(p).mtimeMs);
      const r = await cli('apply', ...conn(), '-l', lockSyn, '--yes', '--limit', '!node05');
      expect(r.code, r.out + r.err).toBe(0);
      for (const n of ['node01', 'node02', 'node03', 'node04'])
        expect(r.out).toMatch(new RegExp(`${n}\\s+ok\\s`));
      expect(pins.map((p) => statSync(p).mtimeMs)).toEqual(mtimes);
      const plan = await cli('plan', ...conn(), '-l', lockSyn, '--limit', '!node05', '--detailed-exitcode');
      expect(plan.code, plan.out).toBe(0);
    });

    it('--skip-unavailable converges what it can and reports the rest', async () => {
      const r = await cli(
        'apply',
        ...conn(),
        '-l',
        lockSyn,
        '--yes',
        '--limit',
        'node05',
        '--skip-unavailable',
      );
      expect(r.code).toBe(3);
      expect(r.out).toMatch(/node05\s+blocked/);
      expect(r.out).toContain('golden-extra:amd64=1.0-1 version-unavailable');
      const v = await versions('node05');
      expect(v.get('libfleet1')).toBe('2.31-0ubuntu9.14');
      expect(v.has('golden-extra')).toBe(false);
      const check = JSON.parse(
        (await cli('check', ...conn(), '-l', lockSyn, '--limit', 'node05', '--format', 'json')).out,
      ) as {
        hosts: Array<{ findings: Array<{ package: string }> }>;
      };
      expect(new Set(check.hosts[0]!.findings.map((f) => f.package))).toEqual(
        new Set(['golden-extra:amd64']),
      );
    });

    it('refuses a host whose state changed after plan -o (stale), applies the others', async () => {
      await reset(['node03', 'node04'], { dir: sb.dir, log: () => undefined });
      const planFile = join(work, 'plan-stale.json');
      expect(
        (await cli('plan', ...conn(), '-l', lockSyn, '-o', planFile, '--limit', 'node03:node04')).code,
      ).toBe(0);
      // Someone upgrades a package by hand on node03 after the plan was reviewed.
      const manual = await nodeExec('node03', ['apt-get', 'install', '-y', '-q', 'libtilde0=3.0-1']);
      expect(manual.exitCode, manual.stderr).toBe(0);
      const before03 = dpkgStatus('node03');
      const r = await cli('apply', ...conn(), '-l', lockSyn, planFile);
      expect(r.code).toBe(3);
      expect(r.out + r.err).toContain('plan is stale for host node03');
      expect(r.out).toMatch(/node04\s+changed/);
      expect(dpkgStatus('node03')).toBe(before03);
      expect(existsSync(join(sb.node('node03').root, PIN_FILE))).toBe(false);
    });

    it('refuses the whole plan when the lock changed since (exit 1, nothing touched)', async () => {
      await resetNode('node03');
      const planFile = join(work, 'plan-old-lock.json');
      expect((await cli('plan', ...conn(), '-l', lockSyn, '-o', planFile, '--limit', 'node03')).code).toBe(0);
      const r = await cli('apply', ...conn(), '-l', lockAll, planFile);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/plan is stale/);
      expect((await versions('node03')).get('libfleet1')).toBe('2.31-0ubuntu9.9');
    });

    it('--check shows what would change and changes nothing', async () => {
      const before = dpkgStatus('node03');
      const r = await cli('apply', ...conn(), '-l', lockSyn, '--check', '--limit', 'node03');
      expect(r.code, r.out + r.err).toBe(0);
      expect(r.out).toMatch(/check mode/);
      expect(r.out).toMatch(/node03\s+changed/);
      expect(dpkgStatus('node03')).toBe(before);
      expect(existsSync(join(sb.node('node03').root, PIN_FILE))).toBe(false);
    });

    it('an unreachable host does not stop the others (exit 3)', async () => {
      const inv = inventoryWithGhost(work);
      const r = await cli(
        'apply',
        ...conn(inv),
        '-l',
        lockSyn,
        '--yes',
        '--limit',
        'node03:ghost',
        '--connect-timeout',
        '3',
      );
      expect(r.code).toBe(3);
      expect(r.out).toMatch(/ghost\s+unreachable/);
      expect(r.out).toMatch(/node03\s+changed/);
      expect((await versions('node03')).get('libfleet1')).toBe('2.31-0ubuntu9.14');
    });

    it('refuses apply without a plan file or --yes when there is no terminal', async () => {
      await resetNode('node03');
      const r = await cli('apply', ...conn(), '-l', lockSyn, '--limit', 'node03');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/--yes/);
      expect((await versions('node03')).get('libfleet1')).toBe('2.31-0ubuntu9.9');
    });
  });

  describe('safety', () => {
    it('rejects a lockfile with a shell payload in a version at load, before any host is touched', async () => {
      const text = readFileSync(lockSyn, 'utf8').replace(
        'version: 3.0~rc2-1',
        'version: "1.0; touch /tmp/pwned"',
      );
      const evil = join(work, 'evil.yaml');
      writeFileSync(evil, text);
      const line = text.split('\n').findIndex((l) => l.includes('pwned')) + 1;
      const before = sb.state().nodes.map((n) => dpkgStatus(n.name));
      for (const cmd of ['plan', 'apply', 'check']) {
        const r = await cli(cmd, ...conn(), '-l', evil, ...(cmd === 'apply' ? ['--yes'] : []));
        expect(r.code).toBe(1);
        expect(r.err).toContain(`${evil}:${line}:`);
        expect(r.err).toMatch(/not a valid Debian version/);
      }
      expect(sb.state().nodes.map((n) => dpkgStatus(n.name))).toEqual(before);
      for (const n of sb.state().nodes) expect(existsSync(join(n.root, 'tmp/pwned'))).toBe(false);
      expect(existsSync('/tmp/pwned')).toBe(false);
    });

    it('rejects a package name with shell characters', async () => {
      const text = readFileSync(lockSyn, 'utf8').replace(
        '  libtilde0:amd64:',
        '  "libtilde0$(touch /tmp/pwned):amd64":',
      );
      const evil = join(work, 'evil-name.yaml');
      writeFileSync(evil, text);
      const r = await cli('plan', ...conn(), '-l', evil);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/evil-name\.yaml:\d+:\d+: invalid package key/);
    });
  });
});
