import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { run } from '../../tools/sandbox/exec.js';
import { debFileName } from '../../tools/sandbox/repo.js';
import { ALL_SYNTHETIC, SCENARIOS, scenarioFor } from '../../tools/sandbox/scenarios.js';
import { pidAlive, procsRootedUnder } from '../../tools/sandbox/system.js';
import { nodeExec, parseDpkgQuery, readelfBuildId, resetNode, sshExec, useSandbox } from './sandbox.js';

const sb = useSandbox();

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '?';
  }
}
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';
const DPKG_QUERY = "dpkg-query -W -f '${Package}\\t${Version}\\n'";

function synthetic(stdout: string): Record<string, string> {
  const all = parseDpkgQuery(stdout);
  return Object.fromEntries(
    ALL_SYNTHETIC.filter((p) => all.has(p))
      .map((p): [string, string] => [p, all.get(p) ?? ''])
      .sort(),
  );
}

function expected(scenario: keyof typeof SCENARIOS): Record<string, string> {
  return Object.fromEntries(SCENARIOS[scenario].map((p): [string, string] => [p.name, p.version]).sort());
}

describe.skipIf(sb.skip)('sandbox fleet', () => {
  it('writes state, an Ansible inventory (golden + fleet) and a known_hosts entry per node', () => {
    const s = sb.state();
    expect(s.nodes.map((n) => [n.name, n.port, n.scenario])).toEqual([
      ['node01', 22201, 'golden'],
      ['node02', 22202, 'converged'],
      ['node03', 22203, 'behind'],
      ['node04', 22204, 'ahead'],
      ['node05', 22205, 'missing'],
    ]);
    const inv = parse(readFileSync(s.inventory, 'utf8')) as {
      all: { children: Record<string, { hosts: Record<string, Record<string, unknown>> }> };
    };
    expect(Object.keys(inv.all.children.golden?.hosts ?? {})).toEqual(['node01']);
    expect(Object.keys(inv.all.children.fleet?.hosts ?? {})).toEqual([
      'node02',
      'node03',
      'node04',
      'node05',
    ]);
    expect(inv.all.children.fleet?.hosts.node03).toEqual({
      ansible_host: '127.0.0.1',
      ansible_port: 22203,
      ansible_user: 'root',
      ansible_ssh_private_key_file: s.key,
      sandbox_scenario: 'behind',
    });
    const kh = readFileSync(s.knownHosts, 'utf8').trim().split('\n');
    expect(kh).toHaveLength(5);
    for (const [i, line] of kh.entries())
      expect(line).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${22201 + i} ssh-ed25519 AAAA\\S+$`));
    expect(new Set(kh.map((l) => l.split(' ')[2])).size).toBe(5);
  });

  it.each(['node01', 'node02', 'node03', 'node04', 'node05'])(
    '%s: ssh with the written key + known_hosts shows its scenario',
    async (name) => {
      const n = sb.node(name);
      expect(n.scenario).toBe(scenarioFor(Number(name.slice(4))));
      const r = await sshExec(n, DPKG_QUERY);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(synthetic(r.stdout)).toEqual(expected(n.scenario));
    },
  );

  it('refuses a node whose host key is not in known_hosts (strict checking is real)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'kh-'));
    try {
      const kh = join(d, 'known_hosts');
      const s = sb.state();
      // node02's key filed under node01's port: must fail as a mismatch.
      const node02 = readFileSync(s.knownHosts, 'utf8').split('\n')[1] ?? '';
      writeFileSync(kh, `${node02.replace(':22202 ', ':22201 ')}\n`);
      const r = await sshExec('node01', 'true', { knownHosts: kh });
      expect(r.exitCode).toBe(255);
      expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('gives every version of every synthetic library its own build-ID', async () => {
    const repo = sb.state().repo;
    const d = mkdtempSync(join(tmpdir(), 'debs-'));
    try {
      const libs: [string, string, string[]][] = [
        ['libfleet1', LIBFLEET, ['2.31-0ubuntu9.9', '2.31-0ubuntu9.14', '2.31-0ubuntu9.16']],
        ['libepoch0', '/usr/lib/x86_64-linux-gnu/libepoch.so.0', ['1.9-1', '1:1.0-1']],
        ['libtilde0', '/usr/lib/x86_64-linux-gnu/libtilde.so.0', ['3.0~rc1-1', '3.0~rc2-1', '3.0-1']],
      ];
      const ids: string[] = [];
      for (const [pkg, file, versions] of libs) {
        for (const v of versions) {
          const x = join(d, `${pkg}-${v}`);
          const r = await run(['dpkg-deb', '-x', join(repo, debFileName(pkg, v, 'amd64')), x]);
          expect(r.exitCode).toBe(0);
          const id = await readelfBuildId(null, join(x, file));
          expect(id).toMatch(/^[0-9a-f]{40}$/);
          ids.push(id ?? '');
        }
      }
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
    // On the nodes: behind / golden / ahead differ, converged equals golden.
    const [g, c, b, a] = await Promise.all(
      ['node01', 'node02', 'node03', 'node04'].map((n) => readelfBuildId(n, LIBFLEET)),
    );
    expect(g).toBeDefined();
    expect(c).toBe(g);
    expect(new Set([g, b, a]).size).toBe(3);
  });

  it('models real fleets: lockstep Depends, a package no repository serves, no Python', async () => {
    const dep = await nodeExec('node01', ['dpkg-query', '-W', '-f', '${Depends}', 'fleet-bin']);
    expect(dep.stdout).toBe('libfleet1 (= 2.31-0ubuntu9.14)');
    const tool = await sshExec('node03', 'fleet-tool');
    expect(tool.stdout.trim()).toBe('libfleet1 2.31-0ubuntu9.9');
    const policy = await nodeExec('node01', ['apt-cache', 'policy', 'golden-extra']);
    expect(policy.stdout).toMatch(/\*\*\* 1\.0-1 100\s+100 \/var\/lib\/dpkg\/status\s*$/);
    expect(readFileSync(join(sb.state().repo, 'Packages'), 'utf8')).not.toContain('golden-extra');
    const cmp = await nodeExec('node01', ['dpkg', '--compare-versions', '1:1.0-1', 'gt', '1.9-1']);
    expect(cmp.exitCode).toBe(0);
    for (const n of ['node01', 'node05']) {
      const py = await sshExec(n, 'command -v python3 python; ls /usr/bin | grep -c "^python" || true');
      expect(py.stdout.trim()).toBe('0');
    }
  });

  it('serves the repo to apt offline: a downgrade of the lockstep pair works on the ahead node', async () => {
    const r = await sshExec(
      'node04',
      'apt-get install -y -q --no-install-recommends --allow-downgrades libfleet1=2.31-0ubuntu9.14 fleet-bin=2.31-0ubuntu9.14 >/dev/null && ' +
        DPKG_QUERY,
    );
    expect(r.exitCode).toBe(0);
    expect(synthetic(r.stdout)).toMatchObject({
      libfleet1: '2.31-0ubuntu9.14',
      'fleet-bin': '2.31-0ubuntu9.14',
    });
    await resetNode('node04');
  });

  it('reset restores a drifted node, kills what ran in it and keeps its host key', async () => {
    const before = sb.node('node03');
    // A process keeping libfleet mapped, as CRIU would checkpoint it.
    const sleeper = await nodeExec(before, [
      'sh',
      '-c',
      'fleet-tool sleep >/dev/null 2>&1 </dev/null & echo $!',
    ]);
    const sleeperPid = Number(sleeper.stdout.trim());
    await expect.poll(() => readFileSync(`/proc/${sleeperPid}/maps`, 'utf8')).toContain('libfleet.so.1');
    expect(pidAlive(sleeperPid)).toBe(true);
    expect((await nodeExec(before, ['dpkg', '--purge', 'fleet-bin', 'libtilde0'])).exitCode).toBe(0);
    expect(
      (await nodeExec(before, ['dpkg', '-i', `/srv/repo/${debFileName('libepoch0', '1:1.0-1', 'amd64')}`]))
        .exitCode,
    ).toBe(0);
    await nodeExec(before, ['sh', '-c', 'echo drift > /etc/drift']);
    const drifted = await sshExec(before, DPKG_QUERY);
    expect(synthetic(drifted.stdout)).not.toEqual(expected('behind'));

    const after = await resetNode('node03');
    expect(after.sshdPid).not.toBe(before.sshdPid);
    expect(pidAlive(before.sshdPid)).toBe(false);
    expect(pidAlive(sleeperPid)).toBe(false);
    // Only the new sshd runs in the node (its readiness probe's short-lived child may linger a moment).
    await expect
      .poll(() =>
        procsRootedUnder(after.root)
          .filter((p) => p !== after.sshdPid)
          .map((p) => `${p} ${cmdline(p)}`),
      )
      .toEqual([]);
    // Same known_hosts still works: the host key survived the reset.
    const r = await sshExec('node03', `${DPKG_QUERY}; test -e /etc/drift && echo DRIFT || true`);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('DRIFT');
    expect(synthetic(r.stdout)).toEqual(expected('behind'));
  });
});
