/**
 * Where inventories and ssh configs were read differently from Ansible 2.14 and OpenSSH 9.2, found
 * by comparing with `ansible-inventory`, `ansible --list-hosts` and `ssh -G` (2026-12-05). Each
 * expectation here is what those tools printed for the same input.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { selectHosts } from '../../src/inventory/limit.js';
import { inventoryFromText, loadInventory, type LoadOptions } from '../../src/inventory/load.js';
import { targetEndpoint } from '../../src/transport/endpoint.js';
import { MAX_TIMER_MS } from '../../src/transport/util.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'criu-lock-parity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const home = path.join(tmp, 'home');
mkdirSync(path.join(home, '.ssh'), { recursive: true });

let n = 0;
function file(name: string, text: string): string {
  const p = path.join(tmp, `f${++n}`, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

const names = (hosts: Array<{ name: string }>): string[] => hosts.map((h) => h.name);

describe('inventories as Ansible reads them', () => {
  it('a host:port sets the port only where the host is first seen', () => {
    const ini = inventoryFromText('[a]\nh1\nh2:2200\n[b]\nh1:2222\nh2:3333\n', 'hosts.ini');
    expect(ini.hosts.map((h) => [h.name, h.connection.port])).toEqual([
      ['h1', 22],
      ['h2', 2200],
    ]);
    const yaml = inventoryFromText(
      'a:\n  hosts:\n    h1:\n    "h2:2200":\nb:\n  hosts:\n    "h1:2222":\n    "h2:3333":\n',
      'inv.yaml',
    );
    expect(yaml.hosts.map((h) => [h.name, h.connection.port])).toEqual([
      ['h1', 22],
      ['h2', 2200],
    ]);
    // A variable still applies each time.
    const vars = inventoryFromText(
      'a:\n  hosts:\n    h1:\nb:\n  hosts:\n    h1: {ansible_port: 2300}\n',
      'inv.yaml',
    );
    expect(vars.hosts[0]!.connection.port).toBe(2300);
  });

  it("a subscript indexes the group's own member list, then its children's hosts", () => {
    const inv = inventoryFromText('[web]\nweb1\nweb2\n[db]\ndb1\nweb2\n', 'hosts.ini');
    expect(names(selectHosts(inv, 'db[0]'))).toEqual(['db1']);
    expect(names(selectHosts(inv, 'db[-1]'))).toEqual(['web2']);
    const nested = inventoryFromText(
      'all:\n  hosts:\n    x3:\n  children:\n    dc1:\n      children:\n        db:\n          hosts:\n            db1:\n        web:\n          hosts:\n            web03:\n            web01:\n',
      'inv.yaml',
    );
    expect(names(selectHosts(nested, 'all[0]'))).toEqual(['x3']);
    expect(names(selectHosts(nested, 'dc1[0]'))).toEqual(['db1']);
    expect(names(selectHosts(nested, 'dc1[-1]'))).toEqual(['web01']);
  });

  it('with a comma in --limit, the comma-separated parts are the terms', () => {
    const inv = inventoryFromText('[web]\nweb1\nweb2\n[db]\ndb1\n', 'hosts.ini');
    // Ansible: `db:!web1` is one term that matches nothing (a warning there, an error here).
    expect(() => selectHosts(inv, 'web,db:!web1')).toThrow(
      /host pattern "db:!web1" .* matches no host or group/,
    );
    expect(names(selectHosts(inv, 'web:db:!web1'))).toEqual(['web2', 'db1']);
  });

  it('YAML scalars are typed as PyYAML types them', () => {
    const inv = inventoryFromText(
      [
        'all:',
        '  hosts:',
        '    e1:',
        '    n:',
        '  vars:',
        '    a: 1e5',
        '    b: 1.0e5',
        '    c: 1.0e+5',
        '    d: -.5',
        '    e: .5',
        '    f: 01:30',
        '    g: 1:30',
        '    h: "09"',
        '    i: 09',
        '    j: 010',
        '    k: .',
        '    l: ._',
        '    m: y',
        '    o: on',
        '',
      ].join('\n'),
      'inv.yaml',
    );
    expect(names(inv.hosts)).toEqual(['e1', 'n']);
    expect(inv.hosts[0]!.vars).toMatchObject({
      a: '1e5',
      b: '1.0e5',
      c: 100000,
      d: '-.5',
      e: 0.5,
      f: '01:30',
      g: 90,
      h: '09',
      i: '09',
      j: 8,
      k: '.',
      l: '._',
      m: 'y',
      o: true,
    });
  });

  it('an inventory script: the short group form is a host, and _meta without hostvars asks --host', async () => {
    const script = file(
      'inv.sh',
      `#!/bin/sh
case "$1" in
  --list) echo '{"web": ["w1"], "w3": {"ansible_host": "10.3.3.3", "ansible_port": 2233}, "_meta": {}}' ;;
  --host) [ "$2" = w1 ] && echo '{"ansible_port": 2001}' || echo '{}' ;;
esac
`,
    );
    chmodSync(script, 0o755);
    const inv = await loadInventory(script, { sshConfig: 'none', homeDir: home });
    expect(inv.hosts.map((h) => [h.name, h.connection.address, h.connection.port])).toEqual([
      ['w1', 'w1', 2001],
      ['w3', '10.3.3.3', 2233],
    ]);
  });
});

describe('ssh_config as OpenSSH reads it', () => {
  const load = (config: string): LoadOptions => ({
    sshConfig: file('config', config),
    homeDir: home,
    defaultUser: 'me',
  });
  const one = async (config: string, inventory = 'all:\n  hosts:\n    web1:\n') => {
    const inv = file('inventory.yaml', inventory);
    return (await loadInventory(inv, load(config))).hosts[0]!;
  };

  it('a quoted value with spaces is one value; backslash-space escapes', async () => {
    const h = await one(
      'Host web1\n  UserKnownHostsFile "/tmp/dir with space/kh" /b\n  IdentityFile "~/.ssh/key one"\n  User a\\ b\n',
    );
    expect(h.connection.knownHostsFiles).toEqual(['/tmp/dir with space/kh', '/b']);
    expect(h.connection.identityFiles).toEqual([path.join(home, '.ssh/key one')]);
    expect(h.connection.user).toBe('a b');
    const quotedHost = await one('Host "web 3"\n  User q3\n', 'all:\n  hosts:\n    web:\n');
    expect(quotedHost.connection.user).toBe('me');
  });

  it('UserKnownHostsFile none is no user file, not the default one', async () => {
    const h = await one('Host web1\n  UserKnownHostsFile none\n');
    expect(h.connection.knownHostsFiles).toEqual([]);
    const ep = targetEndpoint('web1', h.connection, {
      knownHostsFile: path.join(home, '.ssh/known_hosts'),
      hostKeyChecking: 'strict',
      connectTimeoutMs: 10_000,
    });
    expect(ep.knownHostsFiles).toEqual([]);
  });

  it('${VAR} in IdentityFile and UserKnownHostsFile; %h lowercased', async () => {
    process.env.CRIU_LOCK_TEST_DIR = '/srv/keys';
    try {
      const h = await one(
        'Host *\n  IdentityFile ${CRIU_LOCK_TEST_DIR}/id\n  UserKnownHostsFile /kh/%h\n',
        'all:\n  hosts:\n    Web1.Example.COM:\n',
      );
      expect(h.connection.identityFiles).toEqual(['/srv/keys/id']);
      expect(h.connection.knownHostsFiles).toEqual(['/kh/web1.example.com']);
    } finally {
      delete process.env.CRIU_LOCK_TEST_DIR;
    }
  });

  it('Include with a [0-9] class, as glob(3) matches it', async () => {
    const dir = path.join(tmp, 'inc');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, '10-web.conf'), 'Host web1\n  User digituser\n  Port 2525\n');
    writeFileSync(path.join(dir, 'x-web.conf'), 'Host web1\n  User letteruser\n');
    const h = await one(`Include ${dir}/[0-9]*.conf\n`);
    expect([h.connection.user, h.connection.port]).toEqual(['digituser', 2525]);
  });

  it('Match originalhost is case-insensitive, so such a block gets its warning', async () => {
    const cfg = file('config', 'Match originalhost WEB1\n  User matched\n');
    const inv = await loadInventory(file('inventory.yaml', 'all:\n  hosts:\n    web1:\n'), {
      sshConfig: cfg,
      homeDir: home,
    });
    expect(inv.warnings.some((w) => w.includes('Match originalhost WEB1'))).toBe(true);
  });

  it('ConnectTimeout 0 is no timeout, and keeps a later value out', async () => {
    const h = await one('Host web1\n  ConnectTimeout 0\nHost *\n  ConnectTimeout 5\n');
    expect(h.connection.connectTimeoutMs).toBe(MAX_TIMER_MS);
  });

  it('by default known_hosts2 is read after known_hosts; --known-hosts names the only file', () => {
    const conn = inventoryFromText('all:\n  hosts:\n    web1:\n', 'inv.yaml').hosts[0]!.connection;
    const base = { hostKeyChecking: 'strict' as const, connectTimeoutMs: 10_000 };
    const kh = path.join(home, '.ssh/known_hosts');
    const kh2 = path.join(home, '.ssh/known_hosts2');
    expect(
      targetEndpoint('web1', conn, { ...base, knownHostsFile: kh, defaultKnownHostsFiles2: [kh2] })
        .knownHostsFiles,
    ).toEqual([kh, kh2]);
    expect(
      targetEndpoint('web1', conn, { ...base, knownHostsFile: '/x', explicit: { knownHosts: true } })
        .knownHostsFiles,
    ).toEqual(['/x']);
  });
});
