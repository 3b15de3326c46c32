/**
 * Inventories and SSH as users have them, on the sandbox fleet: connection settings only in
 * group_vars/ and host_vars/, nodes reachable only through another node as ProxyJump (from the ssh
 * config and from ansible_ssh_common_args), and real `ansible-inventory --list` JSON resolving to
 * the same hosts and settings as the YAML inventory it came from.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { resetNode, useSandbox } from './sandbox.js';

const sb = useSandbox();

const haveAnsible = (() => {
  try {
    execFileSync('ansible-inventory', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Host key line of a node for another name, from the sandbox known_hosts. */
function keyLineFor(port: number, name: string): string {
  const line = readFileSync(sb.state().knownHosts, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`[127.0.0.1]:${port} `));
  if (!line) throw new Error(`no known_hosts line for port ${port}`);
  return line.replace(`[127.0.0.1]:${port}`, `[${name}]:${port}`);
}

const acceptedLogins = (node: string): number =>
  (readFileSync(join(sb.node(node).root, 'var/log/sshd.log'), 'utf8').match(/Accepted publickey/g) ?? [])
    .length;

describe.skipIf(sb.skip)('inventories and SSH as users have them', () => {
  let work: string;
  let lock: string;
  let inventory: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-inv-'));
    const s = sb.state();
    // Ports, users and the key only in group_vars/ and host_vars/, in every form Ansible reads.
    inventory = join(work, 'inventory.yaml');
    writeFileSync(
      inventory,
      'all:\n  children:\n    golden:\n      hosts:\n        node01:\n    fleet:\n      hosts:\n        node02:\n        node03:\n',
    );
    mkdirSync(join(work, 'group_vars'));
    mkdirSync(join(work, 'host_vars', 'node02'), { recursive: true });
    writeFileSync(
      join(work, 'group_vars', 'all.yml'),
      `ansible_host: 127.0.0.1\nansible_user: nobody-would-log-in-as-this\nansible_ssh_private_key_file: ${JSON.stringify(s.key)}\n`,
    );
    writeFileSync(join(work, 'group_vars', 'fleet'), 'ansible_user: root\n');
    writeFileSync(join(work, 'group_vars', 'golden.yaml'), 'ansible_user: root\n');
    writeFileSync(join(work, 'host_vars', 'node01.yml'), `ansible_port: ${sb.node('node01').port}\n`);
    writeFileSync(
      join(work, 'host_vars', 'node02', '10-port.yml'),
      `ansible_port: ${sb.node('node02').port}\n`,
    );
    writeFileSync(
      join(work, 'host_vars', 'node03.json'),
      JSON.stringify({ ansible_port: sb.node('node03').port }),
    );
    lock = join(work, 'lock.yaml');
  });

  afterAll(async () => {
    if (sb.skip) return;
    rmSync(work, { recursive: true, force: true });
    await resetNode('node01');
  });

  it('connects with ports and users that live only in group_vars/ and host_vars/', async () => {
    const inv = await runCli('inventory', '-i', inventory, '--ssh-config', 'none');
    expect(inv.code, inv.err).toBe(0);
    expect(inv.out).toContain(`node03  127.0.0.1:${sb.node('node03').port}  root`);
    const gen = await runCli(
      'generate',
      '-i',
      inventory,
      '--ssh-config',
      'none',
      '--known-hosts',
      sb.state().knownHosts,
      '--package',
      'fleet-bin',
      '-o',
      lock,
    );
    expect(gen.code, gen.err).toBe(0);
    const check = await runCli(
      'check',
      '-i',
      inventory,
      '--ssh-config',
      'none',
      '--known-hosts',
      sb.state().knownHosts,
      '-l',
      lock,
      '--format',
      'json',
    );
    const json = JSON.parse(check.out) as { hosts: { name: string; status: string }[] };
    // Reached and checked: node03 is the "behind" scenario, so it drifts; nobody is unreachable.
    expect(json.hosts.map((h) => [h.name, h.status])).toEqual([
      ['node01', 'ok'],
      ['node02', 'ok'],
      ['node03', 'drift'],
    ]);
  });

  describe('ProxyJump', () => {
    let jumpInventory: string;
    let knownHosts: string;
    let sshConfig: string;

    beforeAll(() => {
      const n1 = sb.node('node01');
      // node02.internal and node03.internal exist only in node01's /etc/hosts: the controller
      // cannot resolve them, so the only way to reach those nodes is through node01.
      writeFileSync(
        join(n1.root, 'etc/hosts'),
        '127.0.0.1 localhost\n127.0.0.1 node02.internal node03.internal\n',
      );
      knownHosts = join(work, 'known_hosts');
      writeFileSync(
        knownHosts,
        readFileSync(sb.state().knownHosts, 'utf8') +
          `${keyLineFor(sb.node('node02').port, 'node02.internal')}\n${keyLineFor(sb.node('node03').port, 'node03.internal')}\n`,
      );
      // In a directory of its own: the group_vars/ beside the first inventory would apply here too.
      mkdirSync(join(work, 'jump'));
      jumpInventory = join(work, 'jump', 'jump.yaml');
      const key = JSON.stringify(sb.state().key);
      writeFileSync(
        jumpInventory,
        [
          'all:',
          '  vars:',
          '    ansible_user: root',
          `    ansible_ssh_private_key_file: ${key}`,
          '  hosts:',
          '    node02:',
          '      ansible_host: node02.internal',
          `      ansible_port: ${sb.node('node02').port}`,
          `      ansible_ssh_common_args: '-o ProxyJump=root@127.0.0.1:${n1.port}'`,
          '    node03:',
          '      ansible_host: node03.internal',
          `      ansible_port: ${sb.node('node03').port}`,
          '',
        ].join('\n'),
      );
      sshConfig = join(work, 'ssh_config');
      writeFileSync(
        sshConfig,
        `Host node03.internal\n  ProxyJump bastion\nHost bastion\n  HostName 127.0.0.1\n  Port ${n1.port}\n  User root\n  IdentityFile ${sb.state().key}\n  IdentitiesOnly yes\nHost 127.0.0.1\n  IdentityFile ${sb.state().key}\n`,
      );
    });

    it('without the jump the nodes cannot be reached at all (control)', async () => {
      const r = await runCli(
        'check',
        '-i',
        jumpInventory,
        '--ssh-config',
        'none',
        '--known-hosts',
        knownHosts,
        '-l',
        lock,
      );
      expect(r.code).toBe(3);
      expect(r.out + r.err).toMatch(/does not resolve/);
    });

    it('reaches nodes only through node01 (ssh config ProxyJump and -o ProxyJump=), one bastion login for both', async () => {
      const before = acceptedLogins('node01');
      const r = await runCli(
        'check',
        '-i',
        jumpInventory,
        '--ssh-config',
        sshConfig,
        '--known-hosts',
        knownHosts,
        '-l',
        lock,
        '--format',
        'json',
      );
      const json = JSON.parse(r.out) as { hosts: { name: string; status: string }[] };
      expect(
        json.hosts.map((h) => [h.name, h.status]),
        r.err,
      ).toEqual([
        ['node02', 'ok'],
        ['node03', 'drift'],
      ]);
      // Both hosts went through node01: its sshd saw exactly one login (the shared bastion).
      expect(acceptedLogins('node01') - before).toBe(1);
      const inv = await runCli('inventory', '-i', jumpInventory, '--ssh-config', sshConfig);
      expect(inv.out).toMatch(
        new RegExp(
          `proxy-jump +root@127\\.0\\.0\\.1:${sb.node('node01').port} +from ssh config .*ssh_config:2 \\(ProxyJump bastion\\)`,
        ),
      );
      expect(inv.out).toMatch(/proxy-jump .*from .*jump\.yaml:9:\d+ \(ansible_ssh_common_args\)/);
    });

    it("refuses when the bastion's host key is unknown, and never reaches the node", async () => {
      const onlyTargets = join(work, 'known_hosts_targets');
      writeFileSync(
        onlyTargets,
        readFileSync(knownHosts, 'utf8')
          .split('\n')
          .filter((l) => l.includes('.internal'))
          .join('\n') + '\n',
      );
      const r = await runCli(
        'check',
        '-i',
        jumpInventory,
        '--ssh-config',
        sshConfig,
        '--known-hosts',
        onlyTargets,
        '-l',
        lock,
        '--limit',
        'node03',
      );
      expect(r.code).toBe(3);
      expect(r.out + r.err).toMatch(/bastion bastion \(ProxyJump for node03\).*host key is not known/);
    });
  });

  it.skipIf(!haveAnsible)(
    'real ansible-inventory --list JSON resolves to the same hosts and connection settings, and works',
    async () => {
      const json = join(work, 'inventory.json');
      writeFileSync(
        json,
        execFileSync('ansible-inventory', ['-i', inventory, '--list'], { encoding: 'utf8' }),
      );
      const view = async (inv: string): Promise<unknown> => {
        const r = await runCli('inventory', '-i', inv, '--ssh-config', 'none', '--format', 'json');
        expect(r.code, r.err).toBe(0);
        const parsed = JSON.parse(r.out) as {
          hosts: { name: string; groups: string[]; connection: unknown }[];
        };
        // Ansible lists groups (and so hosts) in its own order; compare per host.
        return parsed.hosts
          .map((h) => ({ name: h.name, groups: [...h.groups].sort(), connection: h.connection }))
          .sort((a, b) => a.name.localeCompare(b.name));
      };
      expect(await view(json)).toEqual(await view(inventory));
      const check = await runCli(
        'check',
        '-i',
        json,
        '--ssh-config',
        'none',
        '--known-hosts',
        sb.state().knownHosts,
        '-l',
        lock,
        '--limit',
        'golden',
      );
      expect(check.code, check.out + check.err).toBe(0);
    },
  );
});
