/**
 * group_vars/host_vars with Ansible's precedence, vault decryption (files made by real
 * ansible-vault), ansible-inventory JSON and executable inventories. Where ansible-core is installed,
 * the merged variables are compared with what `ansible-inventory --host` says for the same estate.
 */
import { execFileSync } from 'node:child_process';
import { caughtAsync as caught } from '../helpers/caught.js';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory, type LoadOptions } from '../../src/inventory/load.js';
import { decryptVault, VaultError } from '../../src/inventory/vault.js';
import { findVarsFiles } from '../../src/inventory/vars-files.js';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const estate = path.join(fixtures, 'inventory', 'estate');
const vaultDir = path.join(fixtures, 'vault');
const passwordFile = path.join(vaultDir, 'password.txt');
const opts: LoadOptions = { sshConfig: 'none', defaultUser: 'tester', homeDir: '/home/tester' };

const haveAnsible = (() => {
  try {
    execFileSync('ansible-inventory', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const tmp = mkdtempSync(path.join(os.tmpdir(), 'criu-lock-invsrc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('vault', () => {
  const password = readFileSync(passwordFile, 'utf8').trim();

  it.each(['vars-1.1.yml', 'vars-1.2.yml'])('decrypts %s made by ansible-vault', (file) => {
    const text = decryptVault(readFileSync(path.join(vaultDir, file), 'utf8'), password);
    expect(text).toBe('ansible_user: vaulted\nansible_port: 2201\nsecret_token: "s3cr3t é"\n');
  });

  it('refuses a wrong password by the HMAC, before decrypting', () => {
    expect(() => decryptVault(readFileSync(path.join(vaultDir, 'vars-1.1.yml'), 'utf8'), 'wrong')).toThrow(
      VaultError,
    );
  });

  it('refuses damaged data', () => {
    const text = readFileSync(path.join(vaultDir, 'vars-1.1.yml'), 'utf8').replace(/\n3/, '\nz');
    expect(() => decryptVault(text, password)).toThrow(/hexadecimal/);
  });
});

describe('group_vars and host_vars', () => {
  it('finds NAME before NAME.yml, reads directories in lexical order, skips hidden, backup and other files', async () => {
    expect(await findVarsFiles(path.join(estate, 'group_vars'), 'db')).toEqual([
      path.join(estate, 'group_vars', 'db'),
    ]);
    expect(await findVarsFiles(path.join(estate, 'group_vars'), 'web')).toEqual(
      ['01-main.yml', '02-override.yaml', 'more/vars'].map((f) => path.join(estate, 'group_vars', 'web', f)),
    );
    expect(await findVarsFiles(path.join(estate, 'group_vars'), 'nope')).toEqual([]);
  });

  const expected: Record<string, Record<string, unknown>> = {
    web1: {
      all_only: true,
      ansible_host: '127.0.0.11',
      ansible_port: 2211,
      ansible_user: 'from-inventory-all',
      level: 'host_vars-web1',
      list: [1, 2],
      nested: true,
      prod_only: 493,
      web_only: 'group_vars',
    },
    web2: {
      all_only: true,
      ansible_host: '127.0.0.12',
      ansible_port: 2200,
      ansible_user: 'from-inventory-all',
      level: 'inventory-host',
      list: [1, 2],
      nested: true,
      prod_only: 493,
      web_only: 'group_vars',
    },
    db1: {
      all_only: true,
      ansible_host: '127.0.0.21',
      ansible_port: 2221,
      ansible_user: 'dbadmin',
      level: 'host_vars-db1-20',
      prod_only: 493,
      secret_level: 'decrypted',
    },
  };

  it.each(Object.keys(expected))(
    'merges %s with Ansible precedence: inventory groups < group_vars < inventory host < host_vars',
    async (name) => {
      const inv = await loadInventory(path.join(estate, 'inventory.yaml'), {
        ...opts,
        vaultPasswordFile: passwordFile,
      });
      const host = inv.hosts.find((h) => h.name === name);
      expect(host?.vars).toEqual(expected[name]);
    },
  );

  it.skipIf(!haveAnsible).each(Object.keys(expected))(
    'agrees with ansible-inventory --host %s',
    async (name) => {
      const out = execFileSync(
        'ansible-inventory',
        ['-i', path.join(estate, 'inventory.yaml'), '--vault-password-file', passwordFile, '--host', name],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
      const inv = await loadInventory(path.join(estate, 'inventory.yaml'), {
        ...opts,
        vaultPasswordFile: passwordFile,
      });
      expect(inv.hosts.find((h) => h.name === name)?.vars).toEqual(JSON.parse(out));
    },
  );

  it('resolves connection settings from group_vars and names where each came from', async () => {
    const inv = await loadInventory(path.join(estate, 'inventory.yaml'), {
      ...opts,
      vaultPasswordFile: passwordFile,
    });
    const web1 = inv.hosts.find((h) => h.name === 'web1');
    expect(web1?.connection).toMatchObject({ address: '127.0.0.11', port: 2211, user: 'from-inventory-all' });
    expect(web1?.origins?.port).toBe(`${path.join(estate, 'host_vars', 'web1.json')}:1 (ansible_port)`);
    const db1 = inv.hosts.find((h) => h.name === 'db1');
    expect(db1?.connection).toMatchObject({ port: 2221, user: 'dbadmin' });
    expect(db1?.origins?.user).toBe(`${path.join(estate, 'group_vars', 'db')}:1 (ansible_user)`);
    expect(inv.warnings).toEqual([]);
  });

  it('skips a vault-encrypted file without --vault-password-file, with a warning naming it', async () => {
    const inv = await loadInventory(path.join(estate, 'inventory.yaml'), opts);
    const db1 = inv.hosts.find((h) => h.name === 'db1');
    expect(db1?.vars.secret_level).toBeUndefined();
    expect(inv.warnings).toEqual([
      `${path.join(estate, 'group_vars', 'secret.yml')} is vault-encrypted and no --vault-password-file was given; its variables are not used`,
    ]);
  });

  it('fails with the file when the vault password is wrong', async () => {
    const wrong = path.join(tmp, 'wrong-password');
    writeFileSync(wrong, 'nope\n');
    const err = await caught(
      loadInventory(path.join(estate, 'inventory.yaml'), { ...opts, vaultPasswordFile: wrong }),
    );
    expect(err.message).toBe(
      `cannot decrypt ${path.join(estate, 'group_vars', 'secret.yml')}: the vault password is wrong (HMAC does not match)`,
    );
  });

  it('decrypts inline !vault values, or drops them with a warning', async () => {
    const dir = path.join(tmp, 'inline');
    mkdirSync(path.join(dir, 'group_vars'), { recursive: true });
    writeFileSync(path.join(dir, 'hosts.ini'), '[g]\nh1 ansible_host=127.0.0.1\n');
    cpSync(path.join(vaultDir, 'inline.yml'), path.join(dir, 'group_vars', 'g.yml'));
    const withPw = await loadInventory(path.join(dir, 'hosts.ini'), {
      ...opts,
      vaultPasswordFile: passwordFile,
    });
    expect(withPw.hosts[0]?.vars.ansible_become_pass).toBe('inline-secret');
    const without = await loadInventory(path.join(dir, 'hosts.ini'), opts);
    expect(without.hosts[0]?.vars).not.toHaveProperty('ansible_become_pass');
    expect(without.warnings[0]).toMatch(/g\.yml:1: ansible_become_pass is vault-encrypted/);
  });

  it('reports a vars file that is not a mapping at its line', async () => {
    const dir = path.join(tmp, 'badvars');
    mkdirSync(path.join(dir, 'host_vars'), { recursive: true });
    writeFileSync(path.join(dir, 'hosts.ini'), 'h1\n');
    writeFileSync(path.join(dir, 'host_vars', 'h1.yml'), '# comment\n- a\n- b\n');
    const err = await caught(loadInventory(path.join(dir, 'hosts.ini'), opts));
    expect(err.message).toMatch(/h1\.yml must be a mapping/);
    expect(err.location).toEqual({ file: path.join(dir, 'host_vars', 'h1.yml'), line: 2 });
  });
});

describe('ansible-inventory JSON and executable inventories', () => {
  const listJson = {
    _meta: {
      hostvars: {
        a1: { ansible_host: '10.0.0.1', ansible_port: 2022, ansible_user: 'deploy' },
        b1: { ansible_host: '10.0.0.2' },
      },
    },
    all: { children: ['ungrouped', 'apps', 'golden'] },
    apps: { hosts: ['a1', 'b1'], vars: { ansible_user: 'appuser' } },
    golden: { hosts: ['a1'] },
    ungrouped: {},
  };

  it('reads --list output: groups, children, vars and _meta.hostvars', async () => {
    const file = path.join(tmp, 'inv.json');
    writeFileSync(file, JSON.stringify(listJson));
    const inv = await loadInventory(file, opts);
    expect(
      inv.hosts.map((h) => [h.name, h.connection.address, h.connection.port, h.connection.user]),
    ).toEqual([
      ['a1', '10.0.0.1', 2022, 'deploy'],
      ['b1', '10.0.0.2', 22, 'appuser'],
    ]);
    expect(inv.hosts.find((h) => h.name === 'a1')?.groups).toContain('golden');
  });

  it('runs an executable inventory with --list, and --host when there is no _meta', async () => {
    const script = path.join(tmp, 'inv.sh');
    writeFileSync(
      script,
      `#!/bin/sh
case "$1" in
  --list) echo '{"web": {"hosts": ["w1", "w2"], "vars": {"ansible_port": 2200}}}' ;;
  --host) echo "{\\"ansible_host\\": \\"127.0.0.$([ "$2" = w1 ] && echo 5 || echo 6)\\"}" ;;
  *) exit 2 ;;
esac
`,
    );
    chmodSync(script, 0o755);
    const inv = await loadInventory(script, opts);
    expect(inv.hosts.map((h) => [h.name, h.connection.address, h.connection.port])).toEqual([
      ['w1', '127.0.0.5', 2200],
      ['w2', '127.0.0.6', 2200],
    ]);
  });

  it('reports a failing inventory script with its last stderr line', async () => {
    const script = path.join(tmp, 'broken.sh');
    writeFileSync(script, '#!/bin/sh\necho "cloud API: 403 Forbidden" >&2\nexit 1\n');
    chmodSync(script, 0o755);
    const err = await caught(loadInventory(script, opts));
    expect(err.message).toBe(`inventory script ${script} --list failed: cloud API: 403 Forbidden`);
  });

  it('reports invalid JSON with its line', async () => {
    const file = path.join(tmp, 'bad.json');
    writeFileSync(file, '{\n  "all": {\n    "hosts": [,]\n  }\n}\n');
    const err = await caught(loadInventory(file, opts));
    expect(err.message).toMatch(/is not valid JSON/);
    expect(err.location?.line).toBe(3);
  });

  it.skipIf(!haveAnsible)(
    'resolves real ansible-inventory --list output exactly like the YAML inventory it came from',
    async () => {
      const out = execFileSync(
        'ansible-inventory',
        ['-i', path.join(estate, 'inventory.yaml'), '--vault-password-file', passwordFile, '--list'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
      const file = path.join(tmp, 'estate.json');
      writeFileSync(file, out);
      const fromJson = await loadInventory(file, opts);
      const fromYaml = await loadInventory(path.join(estate, 'inventory.yaml'), {
        ...opts,
        vaultPasswordFile: passwordFile,
      });
      const view = (inv: typeof fromJson): unknown =>
        inv.hosts
          .map((h) => ({
            name: h.name,
            groups: [...h.groups].sort(),
            connection: h.connection,
            vars: h.vars,
          }))
          .sort((a, b) => a.name.localeCompare(b.name));
      expect(view(fromJson)).toEqual(view(fromYaml));
    },
  );
});
