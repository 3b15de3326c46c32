/**
 * Inventory variables first, then the OpenSSH config, as Ansible's ssh connection gets them; ProxyJump
 * from ansible_ssh_common_args/extra_args; what criu-lock cannot do (Match, ProxyCommand) reported
 * per host; and `criu-lock inventory` showing each setting's origin.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inventoryFromText } from '../../src/inventory/load.js';
import { parseJumpSpec, parseSshArgs } from '../../src/inventory/ssh-settings.js';
import { parseSshConfigText, type SshConfigFile } from '../../src/transport/ssh-config.js';
import { runCli } from '../helpers/run-cli.js';

const cfgText = `Host bastion
  HostName 10.9.9.9
  User jumper
  Port 2200
  IdentityFile ~/.ssh/jump_%r
  UserKnownHostsFile ~/.ssh/kh_jump
Host 10.0.*
  User cfguser
  Port 2022
  ProxyJump bastion
  IdentityFile ~/.ssh/id_%h
  IdentitiesOnly yes
  ConnectTimeout 4
  ServerAliveInterval 30
  StrictHostKeyChecking accept-new
Host legacy
  ProxyCommand nc -X connect -x proxy:3128 %h %p
Match exec "test -f /tmp/x"
  User matched
Host alias-*
  HostName %h.internal.example
`;
const config: SshConfigFile = { file: '/cfg', entries: parseSshConfigText(cfgText, '/cfg') };
const opts = { sshConfig: config, homeDir: '/home/me', defaultUser: 'me', cwd: '/work' };

function load(yaml: string): ReturnType<typeof inventoryFromText> {
  return inventoryFromText(yaml, 'inv.yaml', opts);
}

describe('ssh config after inventory variables', () => {
  const inv = load(`all:
  hosts:
    web1: {ansible_host: 10.0.0.1}
    web2: {ansible_host: 10.0.0.2, ansible_user: invuser, ansible_port: 22}
    legacy:
    alias-a:
    direct: {ansible_host: 192.168.1.1}
`);
  const host = (n: string) => inv.hosts.find((h) => h.name === n);

  it.each([
    // [host, address, port, user]
    ['web1', '10.0.0.1', 2022, 'cfguser'],
    ['web2', '10.0.0.2', 22, 'invuser'],
    ['alias-a', 'alias-a.internal.example', 22, 'me'],
    ['direct', '192.168.1.1', 22, 'me'],
  ])('%s: inventory wins, the ssh config fills the rest', (name, address, port, user) => {
    expect(host(name)?.connection).toMatchObject({ address, port, user });
  });

  it('expands IdentityFile tokens, keeps IdentitiesOnly, timeouts and the host key policy', () => {
    expect(host('web1')?.connection).toMatchObject({
      identityFiles: ['/home/me/.ssh/id_10.0.0.1'],
      identitiesOnly: true,
      connectTimeoutMs: 4000,
      serverAliveIntervalMs: 30_000,
      hostKeyChecking: 'accept-new',
    });
  });

  it("resolves each bastion hop with the ssh config for the hop's own name", () => {
    expect(host('web1')?.connection.proxyJump).toEqual([
      {
        spec: 'bastion',
        address: '10.9.9.9',
        port: 2200,
        user: 'jumper',
        identityFiles: ['/home/me/.ssh/jump_jumper'],
        identitiesOnly: false,
        knownHostsFiles: ['/home/me/.ssh/kh_jump'],
        hostKeyChecking: undefined,
      },
    ]);
  });

  it('names the origin of every setting', () => {
    expect(host('web2')?.origins).toMatchObject({
      address: 'inv.yaml:4:26 (ansible_host)',
      port: 'inv.yaml:4:73 (ansible_port)',
      user: 'inv.yaml:4:50 (ansible_user)',
      proxyJump: 'ssh config /cfg:10 (ProxyJump bastion)',
    });
    expect(host('web1')?.origins).toMatchObject({
      port: 'ssh config /cfg:9 (Port)',
      user: 'ssh config /cfg:8 (User)',
    });
  });

  it('refuses ProxyCommand hosts at connect time and warns, and reports Match blocks per host', () => {
    expect(host('legacy')?.connection.unsupported).toMatch(/ssh config \/cfg:17 sets ProxyCommand/);
    expect(inv.warnings).toContain(
      'hosts web1, web2, legacy, alias-a, direct: ssh config /cfg:18: Match exec test -f /tmp/x: Match blocks are not supported; its settings are not applied',
    );
    expect(inv.warnings.some((w) => /^host legacy: ssh config \/cfg:17 sets ProxyCommand/.test(w))).toBe(
      true,
    );
  });
});

describe('ProxyJump from ansible_ssh_common_args / ansible_ssh_extra_args', () => {
  it.each([
    ['-o ProxyJump=j1', 'j1'],
    ['-oProxyJump=j1', 'j1'],
    ['-o "ProxyJump j1"', 'j1'],
    ['-J j1,u@j2:2222', 'j1,u@j2:2222'],
    ['-Jj1', 'j1'],
    ['-o StrictHostKeyChecking=no -J first -o ProxyJump=second', 'first'],
  ])('%s', (args, jump) => {
    expect(parseSshArgs(args, 'v').proxyJump?.value).toBe(jump);
  });

  it('lists the other arguments as ignored, without their values', () => {
    expect(parseSshArgs('-o ControlMaster=auto -C -J j', 'v').ignored).toEqual([
      '-o ControlMaster=auto',
      '-C',
    ]);
  });

  it('parses hops: user@host:port, [v6]:port, ssh:// URIs', () => {
    expect(parseJumpSpec('a, u@b:2200,[fe80::1]:22,ssh://x@y:7')).toEqual([
      { user: undefined, host: 'a', port: undefined, spec: 'a' },
      { user: 'u', host: 'b', port: 2200, spec: 'u@b:2200' },
      { user: undefined, host: 'fe80::1', port: 22, spec: '[fe80::1]:22' },
      { user: 'x', host: 'y', port: 7, spec: 'ssh://x@y:7' },
    ]);
    expect(() => parseJumpSpec('u@:22')).toThrow(/bad ProxyJump hop/);
  });

  it('inventory ssh args come before the ssh config (first value wins, as on the ssh command line)', () => {
    const inv = load(`all:
  vars:
    ansible_ssh_common_args: '-o ProxyJump=ops@gw.example:2201'
  hosts:
    web1: {ansible_host: 10.0.0.1}
    other: {ansible_ssh_extra_args: '-J none'}
`);
    expect(inv.hosts[0]?.connection.proxyJump?.map((h) => [h.user, h.address, h.port])).toEqual([
      ['ops', 'gw.example', 2201],
    ]);
    expect(inv.hosts[0]?.origins?.proxyJump).toBe(
      'inv.yaml:3:30 (ansible_ssh_common_args) (ProxyJump ops@gw.example:2201)',
    );
    // common args come before extra args on Ansible's ssh command line.
    expect(inv.hosts[1]?.connection.proxyJump?.[0]?.address).toBe('gw.example');
  });
});

describe('criu-lock inventory with an ssh config and group_vars', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'criu-lock-invcmd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('shows resolved settings with their origin, and prints every warning once on stderr', async () => {
    const inv = path.join(dir, 'inventory.ini');
    writeFileSync(inv, '[web]\nweb1 ansible_host=10.0.0.1\n');
    writeFileSync(path.join(dir, 'ssh_config'), cfgText);
    const gv = path.join(dir, 'group_vars');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(gv);
    writeFileSync(path.join(gv, 'web.yml'), 'ansible_user: fromgv\nansible_password: nope\n');
    const r = await runCli('inventory', '-i', inv, '--ssh-config', path.join(dir, 'ssh_config'));
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      `  user               fromgv                  from ${path.join(gv, 'web.yml')}:1 (ansible_user)`,
    );
    expect(r.out).toMatch(/ {2}port +2022 +from ssh config .*ssh_config:9 \(Port\)/);
    expect(r.out).toMatch(
      / {2}proxy-jump +jumper@10\.9\.9\.9:2200 +from ssh config .*ssh_config:10 \(ProxyJump bastion\)/,
    );
    expect(r.err.match(/ansible_password is set/g)).toHaveLength(1);
    expect(r.err).toMatch(/warning: host web1: ssh config .*:18: Match exec/);
  });

  it('--ssh-config none reads no ssh config', async () => {
    const inv = path.join(dir, 'inventory2.ini');
    writeFileSync(inv, 'h ansible_host=10.0.0.1\n');
    const r = await runCli('inventory', '-i', inv, '--ssh-config', 'none', '--format', 'json');
    const json = JSON.parse(r.out) as { hosts: { connection: { port: number; proxyJump: string[] } }[] };
    expect(json.hosts[0]?.connection).toMatchObject({ port: 22, proxyJump: [] });
  });
});
