import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { caught, caughtAsync } from '../helpers/caught.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderInventory } from '../../src/report/inventory-report.js';
import {
  detectInventoryFormat,
  expandHostPattern,
  inventoryFromText,
  loadInventory,
  parseIniValue,
  resolveConnection,
  type ConnectionWarning,
  type Inventory,
} from '../../src/inventory/index.js';
import { shlexSplit } from '../../src/inventory/shlex.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'inventory');
const repoRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const opts = { cwd: '/work/project', homeDir: '/home/tester', defaultUser: 'tester' };

const host = (inv: Inventory, name: string) => {
  const h = inv.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`no host ${name}`);
  return h;
};

describe('YAML inventory: variable precedence', async () => {
  const inv = await loadInventory(path.join(fixtures, 'precedence.yaml'), opts);

  it.each([
    ['node-a', 'level', 'all'], // only all
    ['node-b', 'level', 'dc1'], // child group beats parent group beats all
    ['node-b', 'from_all', true], // YAML 1.1 like PyYAML: yes is a boolean
    ['node-b', 'from_fleet', true],
    ['node-c', 'level', 'host'], // host var beats every group
    ['node-c', 'shared', 'dc2'], // same depth, same priority: later name wins
    ['node-d', 'level', 'dc2'], // depth beats ansible_group_priority
    ['node-d', 'tier', 'canary'], // same depth: higher priority beats name order
    ['node-d', 'shared', 'dc2'],
  ])('%s: %s = %j', (name, variable, expected) => {
    expect(host(inv, name).vars[variable]).toEqual(expected);
  });

  it('lists every group of a host, through children, in precedence order', () => {
    expect(host(inv, 'node-c').groups).toEqual(['all', 'fleet', 'dc1', 'dc2']);
    expect(host(inv, 'node-d').groups).toEqual(['all', 'fleet', 'canary', 'dc2']);
  });

  it('keeps hosts in file order and makes top-level groups children of all', () => {
    expect(inv.hosts.map((h) => h.name)).toEqual(['node-a', 'node-b', 'node-c', 'node-d']);
    expect(inv.groups.get('all')?.children).toEqual(['ungrouped', 'golden', 'fleet', 'canary']);
    expect(inv.groups.get('dc2')?.hosts).toEqual(['node-c', 'node-d']);
    // ansible_group_priority becomes the group's priority, not a variable (as in Ansible).
    expect(inv.groups.get('canary')?.vars).not.toHaveProperty('ansible_group_priority');
  });

  it('puts hosts that belong to no group but all into ungrouped', () => {
    const i = inventoryFromText(
      'all:\n  hosts:\n    lone:\n  children:\n    g:\n      hosts:\n        grouped:\n',
      'i.yaml',
      opts,
    );
    expect(i.groups.get('ungrouped')?.hosts).toEqual(['lone']);
    expect(host(i, 'lone').groups).toEqual(['all', 'ungrouped']);
    expect(host(i, 'grouped').groups).toEqual(['all', 'g']);
  });
});

describe('YAML inventory: Ansible syntax', () => {
  it('accepts host ranges, host:port keys, a string for hosts, anchors and merge keys', () => {
    const text = [
      'all:',
      '  vars: &base',
      '    ansible_user: deploy',
      '  children:',
      '    web:',
      '      hosts:',
      '        web[01:02]:',
      '        "db:2222":',
      '          <<: *base',
      '          ansible_become: "yes"',
      '    single:',
      '      hosts: node-z',
    ].join('\n');
    const inv = inventoryFromText(text, 'i.yaml', opts);
    expect(inv.hosts.map((h) => h.name)).toEqual(['web01', 'web02', 'db', 'node-z']);
    expect(host(inv, 'db').connection).toMatchObject({ port: 2222, user: 'deploy', become: true });
    expect(host(inv, 'node-z').groups).toEqual(['all', 'single']);
  });

  it('merges a group defined twice and warns about unknown keys', () => {
    const text =
      'all:\n  children:\n    g:\n      vars: {a: 1}\n      host:\n        x:\ng:\n  vars: {b: 2}\n  hosts:\n    h:\n';
    const inv = inventoryFromText(text, 'i.yaml', opts);
    expect(host(inv, 'h').vars).toMatchObject({ a: 1, b: 2 });
    expect(inv.warnings).toContainEqual(
      expect.stringMatching(/^i\.yaml:5:7: unexpected key "host" in group "g"/),
    );
  });

  it.each([
    [
      'hosts is a list',
      'all:\n  hosts:\n    - node-a\n',
      3,
      5,
      /"hosts" of group "all" must be a mapping, found a list/,
    ],
    [
      'non-string host name',
      'all:\n  hosts:\n    1234:\n',
      3,
      5,
      /host name 1234 in group "all" must be a string/,
    ],
    [
      'host value is a string',
      'all:\n  hosts:\n    a: 127.0.0.2\n',
      3,
      8,
      /host "a" must have a mapping of variables/,
    ],
    ['vars is a list', 'all:\n  vars:\n    - x\n', 3, 5, /"vars" of group "all" must be a mapping/],
    ['group is a list', 'all:\n  children:\n    web: [a, b]\n', 3, 10, /group "web" must be a mapping/],
    ['invalid YAML', 'all:\n  hosts:\n    a: {b: 1\n', 4, 1, /invalid YAML/],
    ['tab indentation', 'all:\n\thosts:\n', 2, 1, /invalid YAML/],
    [
      'wrong type: port',
      'all:\n  hosts:\n    a:\n      ansible_port: twenty-two\n',
      4,
      21,
      /ansible_port "twenty-two" is not a port number/,
    ],
    [
      'wrong type: become',
      'all:\n  vars:\n    ansible_become: maybe\n  hosts:\n    a:\n',
      3,
      21,
      /ansible_become must be a boolean/,
    ],
    [
      'wrong type: user',
      'all:\n  hosts:\n    a: {ansible_user: [x]}\n',
      3,
      23,
      /ansible_user must be a user name, found a list/,
    ],
    [
      'group priority',
      'g:\n  vars:\n    ansible_group_priority: high\n  hosts:\n    a:\n',
      3,
      29,
      /ansible_group_priority of group "g" must be an integer/,
    ],
    ['template', 'all:\n  hosts:\n    a:\n      ansible_host: "{{ ip }}"\n', 4, 21, /Jinja2 template/],
    [
      'group loop',
      'a:\n  children:\n    b:\n      children:\n        a:\n',
      3,
      5,
      /creates a loop of groups/,
    ],
    ['top level list', '- all\n', 1, 1, /must be a mapping of groups, found a list/],
    ['plugin config', 'plugin: amazon.aws.aws_ec2\n', 1, 1, /inventory plugin configuration/],
  ])('%s', (_name, text, line, col, message) => {
    const err = caught(() => inventoryFromText(text, 'i.yaml', opts));
    expect(err.code).toBe('inventory');
    expect(err.message).toMatch(message);
    expect(err.location).toEqual({ file: 'i.yaml', line, col });
    expect(err.hint).toBeTruthy();
    expect(err.message).not.toContain('\n');
  });

  it('refuses an empty file with a hint', () => {
    const err = caught(() => inventoryFromText('# nothing\n', 'i.yaml', opts));
    expect(err.message).toMatch(/empty/);
  });
});

describe('INI inventory', async () => {
  const inv = await loadInventory(path.join(fixtures, 'hosts.ini'), opts);

  it('reads hosts in file order, expanding ranges', () => {
    expect(inv.hosts.map((h) => h.name)).toEqual([
      'ungrouped-1',
      'node-a',
      'web01',
      'web02',
      'web03',
      'db-a',
      'db-b',
      'db-c',
      'node-b',
      'node-c',
    ]);
  });

  it.each([
    ['ungrouped-1', ['all', 'ungrouped']],
    ['web02', ['all', 'fleet', 'web']],
    ['node-b', ['all', 'fleet', 'dc1']],
  ])('groups of %s through [x:children]', (name, groups) => {
    expect(host(inv, name).groups).toEqual(groups);
  });

  it.each([
    ['node-b', 'note', 'quoted value'],
    ['node-b', 'count', 3], // literal_eval: numbers
    ['node-b', 'flag', true], // Python True
    ['node-b', 'legacy', 'yes'], // not a Python literal: stays a string
    ['node-c', 'quoted', 22], // shlex removes the quotes first, as in Ansible
    ['node-b', 'level', 'fleet'], // [fleet:vars] beats [all:vars]
    ['ungrouped-1', 'level', 'all'],
    ['node-b', 'ansible_user', 'deploy'], // [dc1:vars]
  ])('%s: %s = %j', (name, variable, expected) => {
    expect(host(inv, name).vars[variable]).toEqual(expected);
  });

  it('resolves connection settings from host lines, host:port and :vars', () => {
    expect(host(inv, 'node-a').connection).toEqual({
      kind: 'ssh',
      address: '127.0.0.2',
      port: 2200,
      user: 'tester',
      become: false,
      privateKeyFile: undefined,
    });
    expect(host(inv, 'db-b').connection).toMatchObject({ address: 'db-b', port: 2222 });
    expect(host(inv, 'node-c').connection).toEqual({
      kind: 'ssh',
      address: '127.0.0.4',
      port: 22,
      user: 'deploy',
      become: true,
      privateKeyFile: '/work/project/keys/fleet',
    });
  });

  it.each([
    ['[web:vars]\nx=1\n', 1, /\[web:vars\] is for a group that is never declared/],
    ['[a:children]\nb\n', 2, /\[a:children\] includes undefined group "b"/],
    ['[web:foo]\n', 1, /unknown type "foo"/],
    ['h1\n[bad section]\n', 2, /invalid section/],
    ['[web]\nh1 novalue\n', 2, /expected key=value host variable, got "novalue"/],
    ['\n\nh1 a="open\n', 3, /no closing quotation/],
    ['[web]\n\nweb[3:1]\n', 3, /begin <= end/],
    ['h0\nh1:\n', 2, /trailing ":"/],
    ['[g:vars]\nnovalue\n[g]\n', 2, /expected key=value in \[g:vars\]/],
    ['[a:children]\nb\n[b:children]\na\n', 4, /loop of groups/],
    ['[g]\nh ansible_port=0\n', 2, /ansible_port 0 is not a port number/],
    [
      '[g]\nh\n[g:vars]\nansible_user=deploy # the deploy user\n',
      4,
      /user "deploy # the deploy user" is not a valid user name/,
    ],
  ])('error at line %#', (text, line, message) => {
    const err = caught(() => inventoryFromText(text, 'hosts', opts));
    expect(err.message).toMatch(message);
    expect(err.location).toMatchObject({ file: 'hosts', line });
    expect(err.hint).toBeTruthy();
  });

  it('resolves pending children declared later, as Ansible does', () => {
    const i = inventoryFromText('[parent:children]\nchild\n[child]\nh1\n[parent:vars]\nv=1\n', 'hosts', opts);
    expect(host(i, 'h1').groups).toEqual(['all', 'parent', 'child']);
    expect(host(i, 'h1').vars.v).toBe(1);
  });
});

describe('INI values and host patterns', () => {
  it.each([
    ['22', 22],
    ['-3', -3],
    ['1.5', 1.5],
    ['1_000', 1000],
    ['0x1f', 31],
    ['0755', '0755'], // leading zeros are a SyntaxError in Python: kept as text
    ['True', true],
    ['true', 'true'],
    ['yes', 'yes'],
    ['None', null],
    ["'22'", '22'],
    ['"a b"', 'a b'],
    ["'a' 'b'", 'ab'],
    ["'tab\\there'", 'tab\there'],
    ['[1, "x"]', [1, 'x']],
    ['(1,)', [1]],
    ['1, 2', [1, 2]],
    ["{'a': 1, 'b': [True]}", { a: 1, b: [true] }],
    ['22 # comment', 22],
    ['value # comment', 'value # comment'],
    ['1j', '1j'],
    ['', ''],
    ['/path/to/key', '/path/to/key'],
    ['{{ lookup("env", "X") }}', '{{ lookup("env", "X") }}'],
  ])('parseIniValue(%j) = %j', (raw, expected) => {
    expect(parseIniValue(raw)).toEqual(expected);
  });

  it.each([
    ['h1 a=1 b="x y" c=\'q r\'', ['h1', 'a=1', 'b=x y', 'c=q r']],
    ['h1 a=1 # comment', ['h1', 'a=1']],
    ['h1 pass=ab#c', ['h1', 'pass=ab']], // shlex: # starts a comment even inside a word
    ['h1 a="x\\"y"', ['h1', 'a=x"y']],
    ['h1 a=x\\ y', ['h1', 'a=x y']],
  ])('shlexSplit(%j)', (line, tokens) => {
    expect(shlexSplit(line)).toEqual(tokens);
  });

  const loc = { file: 'f', line: 1 };
  it.each([
    ['web[01:03]', ['web01', 'web02', 'web03'], undefined],
    ['web[1:10:4]', ['web1', 'web5', 'web9'], undefined],
    ['web[:2]', ['web0', 'web1', 'web2'], undefined],
    ['db-[a:c].lan', ['db-a.lan', 'db-b.lan', 'db-c.lan'], undefined],
    ['r[1:2]-[a:b]', ['r1-a', 'r1-b', 'r2-a', 'r2-b'], undefined],
    ['node:2222', ['node'], 2222],
    ['web[1:2]:2200', ['web1', 'web2'], 2200],
    ['[fe80::1]:22', ['fe80::1'], 22],
    ['fe80::1', ['fe80::1'], undefined],
    ['127.0.0.2', ['127.0.0.2'], undefined],
  ])('expandHostPattern(%j)', (pattern, names, port) => {
    expect(expandHostPattern(pattern, loc)).toEqual({ names, port });
  });

  it.each([['web[3:1]'], ['web[01:3]'], ['web[1:2:0]'], ['web[a:3]'], ['web[1]'], ['web[1:2']])(
    'rejects range %j',
    (pattern) => {
      const err = caught(() => expandHostPattern(pattern, loc));
      expect(err.location).toEqual(loc);
    },
  );

  it.each([
    ['inv.yml', 'x', 'yaml'],
    ['inv.ini', 'all:', 'ini'],
    ['hosts', '# c\nall:\n  hosts:', 'yaml'],
    ['hosts', '---\n', 'yaml'],
    ['hosts', '; c\n[web]\nh1', 'ini'],
    ['hosts', 'h1 ansible_host=127.0.0.2', 'ini'],
    ['hosts', 'h1:2222', 'ini'],
  ])('detectInventoryFormat(%j, %j) = %s', (file, text, format) => {
    expect(detectInventoryFormat(text, file)).toBe(format);
  });
});

describe('resolveConnection', () => {
  const resolve = (vars: Record<string, unknown>, warnings: ConnectionWarning[] = []) =>
    resolveConnection('node-x', vars, 'inv.yaml', { ...opts, onWarning: (w) => warnings.push(w) });

  it('defaults to ssh on port 22 as the default user, address = inventory name', () => {
    expect(resolve({})).toEqual({
      kind: 'ssh',
      address: 'node-x',
      port: 22,
      user: 'tester',
      become: false,
      privateKeyFile: undefined,
    });
  });

  it.each([
    [{ ansible_host: '127.0.0.2' }, { address: '127.0.0.2' }],
    [{ ansible_ssh_host: '127.0.0.3' }, { address: '127.0.0.3' }],
    [{ ansible_host: '[::1]' }, { address: '::1' }],
    [{ ansible_port: '2222' }, { port: 2222 }],
    [{ ansible_ssh_port: 2200 }, { port: 2200 }],
    [{ ansible_user: 'deploy' }, { user: 'deploy' }],
    [{ ansible_ssh_user: 'ops' }, { user: 'ops' }],
    [{ ansible_connection: 'paramiko' }, { kind: 'ssh' }],
    [{ ansible_connection: 'smart' }, { kind: 'ssh' }],
    [{ ansible_connection: 'local' }, { kind: 'local' }],
    [
      { ansible_ssh_private_key_file: '~/.ssh/id_ed25519' },
      { privateKeyFile: '/home/tester/.ssh/id_ed25519' },
    ],
    [{ ansible_ssh_private_key_file: 'keys/id' }, { privateKeyFile: '/work/project/keys/id' }],
    [{ ansible_private_key_file: '/etc/keys/id' }, { privateKeyFile: '/etc/keys/id' }],
    [{ ansible_become: true, ansible_become_method: 'sudo', ansible_become_user: 'root' }, { become: true }],
    // become_user only matters when becoming
    [{ ansible_become: false, ansible_become_user: 'postgres' }, { become: false }],
  ])('%j → %j', (vars, expected) => {
    expect(resolve(vars)).toMatchObject(expected);
  });

  it.each([
    ['yes', true],
    ['Yes', true],
    ['true', true],
    ['True', true],
    ['on', true],
    ['1', true],
    [1, true],
    [true, true],
    ['no', false],
    ['false', false],
    ['off', false],
    ['0', false],
    [false, false],
  ])('ansible_become %j → %s', (value, become) => {
    expect(resolve({ ansible_become: value }).become).toBe(become);
  });

  it.each([
    [{ ansible_become: 'maybe' }, /ansible_become must be a boolean/],
    [
      { ansible_become: true, ansible_become_user: 'postgres' },
      /ansible_become_user "postgres" is not supported/,
    ],
    [{ ansible_become: true, ansible_become_method: 'su' }, /ansible_become_method "su" is not supported/],
    [{ ansible_connection: 'docker' }, /ansible_connection "docker" is not supported/],
    [{ ansible_port: 0 }, /not a port number/],
    [{ ansible_port: 65536 }, /not a port number/],
    [{ ansible_port: 22.5 }, /not a port number/],
    [{ ansible_host: 'a b' }, /not a valid host name/],
    [{ ansible_host: '-oProxyCommand=touch /tmp/x' }, /not a valid host name/],
    [{ ansible_host: 'root@127.0.0.2' }, /not a valid host name/],
    [{ ansible_user: 'root; rm -rf /' }, /not a valid user name/],
    [{ ansible_user: '-l' }, /not a valid user name/],
    [{ ansible_user: 'a\nb' }, /not a valid user name/],
    [{ ansible_ssh_private_key_file: '~bob/id' }, /~user/],
    [{ ansible_ssh_private_key_file: 'a\nb' }, /not a usable file path/],
  ])('%j is an error', (vars, message) => {
    const err = caught(() => resolve(vars));
    expect(err.code).toBe('inventory');
    expect(err.message).toMatch(/^host "node-x": /);
    expect(err.message).toMatch(message);
    expect(err.location).toEqual({ file: 'inv.yaml' });
  });

  it('validates the inventory name when it is the address', () => {
    expect(caught(() => resolveConnection('bad name', {}, 'inv.yaml', opts)).message).toMatch(
      /the host name "bad name" is not a valid/,
    );
  });

  it('warns, without the secret, about passwords and ignored ssh arguments', () => {
    const warnings: ConnectionWarning[] = [];
    resolve(
      { ansible_password: 'hunter2', ansible_become_password: 'hunter3', ansible_ssh_common_args: '-o X=y' },
      warnings,
    );
    expect(warnings.map((w) => w.variable)).toEqual([
      'ansible_password',
      'ansible_become_password',
      'ansible_ssh_common_args',
    ]);
    expect(JSON.stringify(warnings)).not.toMatch(/hunter|X=y/);
  });

  it('prefers the legacy ansible_ssh_* alias like Ansible, with a warning when they differ', () => {
    const warnings: ConnectionWarning[] = [];
    expect(resolve({ ansible_host: '127.0.0.2', ansible_ssh_host: '127.0.0.3' }, warnings).address).toBe(
      '127.0.0.3',
    );
    expect(warnings[0]?.message).toMatch(/ansible_ssh_host wins/);
  });
});

describe('loadInventory', () => {
  it('explains a missing file', async () => {
    const err = await caughtAsync(loadInventory('/nonexistent/inventory.yaml'));
    expect(err.code).toBe('inventory');
    expect(err.hint).toBe('create one from inventory.example.yaml or pass -i');
  });

  it('summarizes connection warnings per kind, group_vars/ included', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'criu-lock-inv-'));
    await mkdir(path.join(dir, 'group_vars'));
    await writeFile(path.join(dir, 'group_vars', 'g.yml'), 'ansible_become_pass: s3cr3t\n');
    const file = path.join(dir, 'hosts');
    await writeFile(file, '[g]\nh1\nh2\n[g:vars]\nansible_ssh_pass=s3cr3t\n');
    const inv = await loadInventory(file, { ...opts, sshConfig: 'none' });
    expect(inv.warnings).toEqual([
      'hosts h1, h2: ansible_ssh_pass is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored',
      'hosts h1, h2: ansible_become_pass is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored',
    ]);
  });

  it('reads inventory.example.yaml: one golden host, become on a non-root user', async () => {
    const inv = await loadInventory(path.join(repoRoot, 'inventory.example.yaml'), opts);
    expect(inv.hosts.filter((h) => h.groups.includes('golden')).map((h) => h.name)).toEqual(['node-a']);
    expect(inv.hosts.filter((h) => h.connection.become).map((h) => [h.name, h.connection.user])).toEqual([
      ['node-e', 'deploy'],
    ]);
    expect(inv.hosts.every((h) => /^127\.0\.0\.\d+$/.test(h.connection.address))).toBe(true);
    expect(inv.warnings).toEqual([]);
  });
});

describe('renderInventory', () => {
  const text = [
    'all:',
    '  vars:',
    '    ansible_password: "pw-all-1"',
    '    api_token: tok-2',
    '  hosts:',
    '    node-a:',
    '      ansible_host: 127.0.0.2',
    '      ansible_ssh_pass: pw-host-3',
    '      ansible_become_password: pw-become-4',
    '      db_secret: sec-5',
    '      ansible_ssh_private_key_file: /keys/node-a',
    '  children:',
    '    dc1:',
    '      hosts:',
    '        node-b: {ansible_host: 127.0.0.3, ansible_port: 2222, ansible_user: deploy, ansible_become: yes}',
  ].join('\n');
  const inv = inventoryFromText(text, 'inv.yaml', opts);

  it.each(['json', 'text'] as const)('%s never contains a secret value', (format) => {
    const out = renderInventory(inv.hosts, inv, format);
    for (const secret of ['pw-all-1', 'tok-2', 'pw-host-3', 'pw-become-4', 'sec-5'])
      expect(out).not.toContain(secret);
  });

  const NO_SSH_CONFIG = {
    identityFiles: [],
    identitiesOnly: false,
    proxyJump: [],
    knownHostsFiles: null,
    hostKeyChecking: null,
    connectTimeoutMs: null,
    serverAliveIntervalMs: null,
    unsupported: null,
  };

  it('renders JSON with the resolved connection only', () => {
    const json = JSON.parse(renderInventory(inv.hosts, inv, 'json')) as unknown;
    expect(json).toEqual({
      inventory: 'inv.yaml',
      hosts: [
        {
          name: 'node-a',
          groups: ['ungrouped'],
          connection: {
            kind: 'ssh',
            address: '127.0.0.2',
            port: 22,
            user: 'tester',
            become: false,
            privateKeyFile: '/keys/node-a',
            ...NO_SSH_CONFIG,
          },
          origins: {
            address: 'inv.yaml:7:21 (ansible_host)',
            port: 'default',
            user: 'default (local user)',
            identityFiles: 'inv.yaml:11:37 (ansible_ssh_private_key_file)',
          },
        },
        {
          name: 'node-b',
          groups: ['dc1'],
          connection: {
            kind: 'ssh',
            address: '127.0.0.3',
            port: 2222,
            user: 'deploy',
            become: true,
            privateKeyFile: null,
            ...NO_SSH_CONFIG,
          },
          origins: {
            address: 'inv.yaml:15:32 (ansible_host)',
            port: 'inv.yaml:15:57 (ansible_port)',
            user: 'inv.yaml:15:77 (ansible_user)',
          },
        },
      ],
      warnings: [
        'hosts node-a, node-b: ansible_password is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored',
        'host node-a: ansible_ssh_pass is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored',
        'host node-a: ansible_become_password is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored',
      ],
    });
  });

  it('renders an aligned, deterministic table', () => {
    const out = renderInventory(inv.hosts.slice(1), inv, 'text');
    expect(out).toBe(renderInventory(inv.hosts.slice(1), inv, 'text'));
    expect(out.split('\n')).toEqual([
      'HOST    ADDRESS         USER    BECOME  CONNECTION  GROUPS',
      'node-b  127.0.0.3:2222  deploy  sudo    ssh         dc1',
      '',
      'node-b:',
      '  address  127.0.0.3  from inv.yaml:15:32 (ansible_host)',
      '  port     2222       from inv.yaml:15:57 (ansible_port)',
      '  user     deploy     from inv.yaml:15:77 (ansible_user)',
      '',
      '1 of 2 hosts from inv.yaml',
      '',
    ]);
    // Warnings go to stderr once (prepareRun), not into the table as well.
    expect(out).not.toContain('warning:');
  });
});
