/**
 * Bad and hostile local input found by an audit of the command line (2026-12-05): each case ends
 * in one located CriuLockError, in bounded time, or is read the way Ansible reads it.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { caughtAsync as caught, caught as caughtSync } from '../helpers/caught.js';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CriuLockError, formatError } from '../../src/errors.js';
import { loadPlaybook } from '../../src/apply/playbook.js';
import { MAX_PATTERN_HOSTS } from '../../src/inventory/host-pattern.js';
import { selectHosts } from '../../src/inventory/limit.js';
import { inventoryFromText, loadInventory, type LoadOptions } from '../../src/inventory/load.js';
import { renderAnsibleProject } from '../../src/export/ansible.js';
import {
  finalizeLock,
  lockTextOrProblem,
  parseLock,
  parseLockDocument,
  serializeLock,
  type Lockfile,
} from '../../src/lock/lockfile.js';
import { loadPlan } from '../../src/plan/plan-file.js';
import { escapeMarkdown } from '../../src/report/escape.js';
import { renderInventory } from '../../src/report/inventory-report.js';
import { TxFile, TxPins } from '../../src/rollback/manifest.js';
import { parseSimulation, selectTarget } from '../../src/rollback/planner.js';
import { collectPendingJobs, parseJobRecord } from '../../src/apply/apt-job.js';
import { parseTransactions } from '../../src/rollback/host.js';
import type { TxManifest } from '../../src/rollback/manifest.js';
import { progress } from '../../src/commands/context.js';
import type { CommandResult, Transport } from '../../src/transport/types.js';
import { renderPins } from '../../src/plan/pins.js';
import { parseManifest } from '../../src/store/manifest.js';
import { makeLock } from './core-fixtures.js';

const opts: LoadOptions = { sshConfig: 'none', defaultUser: 'tester', homeDir: '/home/tester' };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'criu-lock-hostile-local-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh directory holding `files` (relative name → content). */
function estate(files: Record<string, string>): string {
  const dir = path.join(tmp, `e${++n}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('executables named by a relative path', () => {
  it('an inventory script named without "./" runs from where it is, never from $PATH', async () => {
    const dir = estate({
      'inv.sh': '#!/bin/sh\necho \'{"all": {"hosts": ["here"]}, "_meta": {"hostvars": {}}}\'\n',
      'bin/inv.sh': '#!/bin/sh\necho \'{"all": {"hosts": ["impostor"]}, "_meta": {"hostvars": {}}}\'\n',
    });
    chmodSync(path.join(dir, 'inv.sh'), 0o755);
    chmodSync(path.join(dir, 'bin/inv.sh'), 0o755);
    const cwd = process.cwd();
    const oldPath = process.env.PATH;
    process.chdir(dir);
    process.env.PATH = `${path.join(dir, 'bin')}:${oldPath ?? ''}`;
    try {
      const inv = await loadInventory('inv.sh', opts);
      expect(inv.hosts.map((h) => h.name)).toEqual(['here']);
    } finally {
      process.chdir(cwd);
      process.env.PATH = oldPath;
    }
  });

  it("a script's bad JSON is located in its output, not at a line of the script", async () => {
    const dir = estate({ 'inv.sh': '#!/bin/sh\nprintf \'{\\n  "all": {,}\\n}\\n\'\n' });
    chmodSync(path.join(dir, 'inv.sh'), 0o755);
    const err = await caught(loadInventory(path.join(dir, 'inv.sh'), opts));
    expect(err.message).toMatch(/^the output of .*inv\.sh --list is not valid JSON \(its line 2\): /);
    expect(err.location).toEqual({ file: path.join(dir, 'inv.sh') });
  });

  it('so does a vault password script', async () => {
    const dir = estate({
      'inventory.yaml': 'all:\n  hosts:\n    h1:\n',
      'pw.sh': '#!/bin/sh\necho here\n',
      'bin/pw.sh': '#!/bin/sh\necho impostor\n',
    });
    chmodSync(path.join(dir, 'pw.sh'), 0o755);
    chmodSync(path.join(dir, 'bin/pw.sh'), 0o755);
    const { readVaultPassword } = await import('../../src/inventory/vault.js');
    const cwd = process.cwd();
    const oldPath = process.env.PATH;
    process.chdir(dir);
    process.env.PATH = `${path.join(dir, 'bin')}:${oldPath ?? ''}`;
    try {
      expect(await readVaultPassword('pw.sh')).toBe('here');
    } finally {
      process.chdir(cwd);
      process.env.PATH = oldPath;
    }
  });
});

describe('YAML aliases', () => {
  it('an inventory alias with no anchor is refused at its line, not read as an absent value', async () => {
    const dir = estate({ 'inventory.yaml': 'all:\n  hosts:\n    h1:\n      ansible_host: *nope\n' });
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toBe('invalid YAML: alias *nope has no anchor &nope before it');
    expect(err.location).toMatchObject({ line: 4, col: 21 });
  });

  it('a host that merges itself is refused, not a stack overflow', async () => {
    const dir = estate({
      'inventory.yaml': 'all:\n  hosts:\n    h1: &x\n      ansible_host: 127.0.0.1\n      <<: *x\n',
    });
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toBe('invalid YAML: alias *x is inside the node &x it names');
    expect(err.location?.line).toBe(5);
  });

  const bomb = (indent: string): string =>
    [
      `${indent}a0: &a0 [x, x, x, x, x, x, x, x, x, x]`,
      ...Array.from(
        { length: 8 },
        (_, i) => `${indent}a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`,
      ),
    ].join('\n');

  it('an alias bomb in inventory vars is one located error', async () => {
    const dir = estate({ 'inventory.yaml': `all:\n  hosts:\n    h1:\n  vars:\n${bomb('    ')}\n` });
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toMatch(/^invalid YAML: Excessive alias count/);
    expect(err.location?.file).toBe(path.join(dir, 'inventory.yaml'));
    expect(err.location?.line).toBeGreaterThan(4);
  });

  it('in group_vars: a missing anchor and an alias bomb, each at its file and line', async () => {
    const dir = estate({
      'inventory.yaml': 'web:\n  hosts:\n    h1:\n',
      'group_vars/web.yml': 'ansible_user: *b\n',
    });
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toBe('invalid YAML: alias *b has no anchor &b before it');
    expect(err.location).toMatchObject({ file: path.join(dir, 'group_vars/web.yml'), line: 1 });

    writeFileSync(path.join(dir, 'group_vars/web.yml'), `${bomb('')}\n`);
    const bombed = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(bombed.message).toMatch(/^invalid YAML: Excessive alias count/);
    expect(bombed.location?.file).toBe(path.join(dir, 'group_vars/web.yml'));
  });

  it('a playbook, a lockfile and a store manifest refuse a missing anchor and a bomb the same way', async () => {
    const dir = estate({
      'pb.yaml': 'pre_tasks:\n  - name: x\n    module: command\n    args: {argv: *nope}\n',
      'bomb.yaml': `${bomb('')}\n`,
    });
    const pb = await caught(loadPlaybook(path.join(dir, 'pb.yaml')));
    expect(pb.message).toBe('invalid YAML: alias *nope has no anchor &nope before it');
    expect(pb.location).toMatchObject({ line: 4, col: 18 });
    const pbBomb = await caught(loadPlaybook(path.join(dir, 'bomb.yaml')));
    expect(pbBomb.message).toMatch(/^invalid YAML: Excessive alias count/);

    const lock = await caught(() => parseLockDocument('lockfileVersion: 1\nsource: *s\n', 'l.yaml'));
    expect(lock.message).toBe('invalid YAML: alias *s has no anchor &s before it');
    expect(lock.location).toMatchObject({ file: 'l.yaml', line: 2 });

    const manifest = await caught(() => parseManifest('storeVersion: 1\npackages: *p\n', 'm.yaml'));
    expect(manifest.message).toBe('invalid YAML: alias *p has no anchor &p before it');
    expect(manifest.location).toMatchObject({ file: 'm.yaml', line: 2 });
  });

  it('a lockfile with an unknown tag is refused, not read with a warning on stderr', async () => {
    const err = await caught(() =>
      parseLockDocument('lockfileVersion: 1\nscope: !custom {kind: all}\n', 'l.yaml'),
    );
    expect(err.message).toBe('invalid YAML: Unresolved tag: !custom');
    expect(err.location).toMatchObject({ file: 'l.yaml', line: 2 });
  });
});

describe('YAML 1.1 as PyYAML reads it', () => {
  it('y, n, Y and N are names, not booleans; yes/no/on/off still are', async () => {
    const dir = estate({
      'inventory.yaml':
        'all:\n  hosts:\n    n:\n    Y:\n  vars:\n    y: 1\n    flag: yes\n    off_flag: Off\n',
      'group_vars/all.yml': 'N: 2\n',
    });
    const inv = await loadInventory(path.join(dir, 'inventory.yaml'), opts);
    expect(inv.hosts.map((h) => h.name)).toEqual(['n', 'Y']);
    expect(inv.hosts[0]!.vars).toMatchObject({ y: 1, N: 2, flag: true, off_flag: false });
  });
});

describe('inventories that would take unbounded time', () => {
  it('a lattice of groups, each a child of both groups above it, loads with the right depths', async () => {
    // 40 layers: 2^40 paths from the top; the deepest group's variable wins.
    const layers = 40;
    const lines = ['all:', '  children:'];
    for (let i = 0; i < layers; i++) {
      for (const side of ['a', 'b']) {
        lines.push(`    ${side}${i}:`);
        if (i === layers - 1) {
          lines.push('      hosts:', '        h1:', '      vars:', `        level: ${side}${i}`);
          continue;
        }
        lines.push('      children:', `        a${i + 1}:`, `        b${i + 1}:`);
        lines.push('      vars:', `        level: ${side}${i}`);
      }
    }
    const dir = estate({ 'inventory.yaml': `${lines.join('\n')}\n` });
    const inv = await loadInventory(path.join(dir, 'inventory.yaml'), opts);
    // Same depth: Ansible breaks the tie by name, so b wins over a.
    expect(inv.hosts[0]!.vars.level).toBe(`b${layers - 1}`);
  });

  it(`host ranges that multiply past ${MAX_PATTERN_HOSTS} names are refused, naming the whole pattern`, async () => {
    const dir = estate({
      'inventory.yaml': 'all:\n  hosts:\n    "h[1:300]-[1:300]-[1:300]":\n',
      'hosts.ini': '[web]\nh[1:2000]-[1:2000]\n',
    });
    const yaml = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(yaml.message).toBe(
      `invalid host range in "h[1:300]-[1:300]-[1:300]": the pattern names more than ${MAX_PATTERN_HOSTS} hosts`,
    );
    expect(yaml.location?.line).toBe(3);
    const ini = await caught(loadInventory(path.join(dir, 'hosts.ini'), opts));
    expect(ini.message).toMatch(
      /^invalid host range in "h\[1:2000\]-\[1:2000\]": the pattern names more than/,
    );
    expect(ini.location?.line).toBe(2);
  });

  it('a symlink back up a vars directory is refused at the link', async () => {
    const dir = estate({ 'inventory.yaml': 'web:\n  hosts:\n    h1:\n', 'group_vars/web/a.yml': 'a: 1\n' });
    symlinkSync('.', path.join(dir, 'group_vars/web/l1'));
    symlinkSync('.', path.join(dir, 'group_vars/web/l2'));
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toBe('this directory leads back to one above it (a symlink loop)');
    expect(err.location?.file).toBe(path.join(dir, 'group_vars/web/l1'));
  });

  it('a link to a directory elsewhere is still read', async () => {
    const dir = estate({ 'inventory.yaml': 'web:\n  hosts:\n    h1:\n', 'shared/b.yml': 'b: 2\n' });
    mkdirSync(path.join(dir, 'group_vars/web'), { recursive: true });
    symlinkSync(path.join(dir, 'shared'), path.join(dir, 'group_vars/web/shared'));
    const inv = await loadInventory(path.join(dir, 'inventory.yaml'), opts);
    expect(inv.hosts[0]!.vars.b).toBe(2);
  });
});

describe('names that are also Object.prototype keys', () => {
  it('ansible-inventory JSON hosts named constructor and toString', async () => {
    const dir = estate({
      'inv.json': JSON.stringify({
        all: { hosts: ['constructor', 'toString'] },
        _meta: { hostvars: { toString: { ansible_port: 2200 } } },
      }),
    });
    const inv = await loadInventory(path.join(dir, 'inv.json'), opts);
    expect(inv.hosts.map((h) => [h.name, h.connection.port])).toEqual([
      ['constructor', 22],
      ['toString', 2200],
    ]);
  });
});

describe('--limit', () => {
  it('an empty pattern (an unset shell variable) is refused, not read as "all"', async () => {
    const dir = estate({ 'inventory.yaml': 'all:\n  hosts:\n    h1:\n    h2:\n' });
    const inv = await loadInventory(path.join(dir, 'inventory.yaml'), opts);
    for (const limit of ['', ' , ', ',']) {
      const err = await caught(() => selectHosts(inv, limit));
      expect(err.message).toBe(`host pattern ${JSON.stringify(limit)} names no host or group`);
    }
    expect(selectHosts(inv, undefined).map((h) => h.name)).toEqual(['h1', 'h2']);
  });
});

describe('plan files, lockfile versions and the export', () => {
  const lock = makeLock();
  const plan = {
    planVersion: 1,
    lock: { path: 'criu-lock.yaml', digest: lock.digest },
    hosts: [
      {
        name: 'node-b',
        status: 'changes',
        fingerprint: `sha256:${'0'.repeat(64)}`,
        actions: [{ type: 'upgrade', package: 'libc6:amd64', from: '1', to: '2' }],
        blocked: [],
        notes: [],
      },
    ],
  };

  it('an edited plan file is refused at its line', async () => {
    const dir = estate({ 'plan.json': '' });
    const file = path.join(dir, 'plan.json');
    const edited = structuredClone(plan);
    edited.hosts[0]!.actions[0]!.to = '2; touch /tmp/x';
    writeFileSync(file, `${JSON.stringify(edited, null, 2)}\n`);
    const err = await caught(loadPlan(file));
    expect(err.message).toBe('hosts.0.actions.0.to: is not a valid Debian version');
    expect(err.location).toMatchObject({ file, line: 17 });

    writeFileSync(file, '{\n  "planVersion": 1,\n  "hosts": [,]\n}\n');
    const json = await caught(loadPlan(file));
    expect(json.message).toMatch(/^not valid JSON: /);
    expect(json.location).toMatchObject({ file, line: 3 });

    writeFileSync(file, '[1]\n');
    expect((await caught(loadPlan(file))).message).toBe('not a criu-lock plan: no planVersion');
    const gone = await caught(loadPlan(path.join(dir, 'missing.json')));
    expect(gone.message).toBe('cannot read plan: no such file');
  });

  it('a quoted lockfileVersion says so', () => {
    const text = serializeLock(lock).replace('lockfileVersion: 1', 'lockfileVersion: "1"');
    const err = caughtSync(() => parseLock(text, 'l.yaml'));
    expect(err.message).toBe('lockfileVersion is the string "1"; it must be the number 1');
    expect(err.location?.line).toBe(2);
  });

  it('export refuses a lock whose path holds a tab, as an input error', () => {
    const withTab = makeLock({
      packages: {
        'libc6:amd64': {
          version: '2.31-0ubuntu9.14',
          files: { '/usr/lib/a\tb.so': { size: 10, mode: '0644' } },
        },
      },
    });
    const err = caughtSync(() => renderAnsibleProject(withTab, renderPins(withTab)));
    expect(err.code).toBe('input');
    expect(err.message).toBe(
      'cannot export this lock: its path "/usr/lib/a\\tb.so" holds a tab, a line break or a NUL',
    );
  });
});

describe('terminal control characters from input', () => {
  it('an error quoting an inventory name shows its escape sequence, not obeys it', () => {
    const err = new CriuLockError('inventory', 'invalid host range in "evil\u001b[31mRED"', {
      location: { file: 'inv\u001b]0;x\u0007.yaml', line: 3 },
      hint: 'a\nb',
    });
    expect(formatError(err)).toBe(
      'error: inv\\e]0;x\\x07.yaml:3: invalid host range in "evil\\e[31mRED"\n  hint: a\\nb',
    );
  });

  it('the inventory table escapes host names and settings', async () => {
    const dir = estate({
      'inventory.yaml': 'all:\n  hosts:\n    "evil\\e]0;title\\a":\n      ansible_host: 127.0.0.1\n',
    });
    const inv = await loadInventory(path.join(dir, 'inventory.yaml'), opts);
    const text = renderInventory(inv.hosts, inv, 'text');
    expect(text.includes('\u0007') || text.includes('\u001b')).toBe(false);
    expect(text).toContain('evil\\e]0;title\\x07');
  });
});

describe('what a host answers, as data', () => {
  it('progress lines escape what a host put in a failure message', () => {
    let err = '';
    progress(
      { out: () => undefined, err: (s) => void (err += s), isTTY: false },
      'node-b: failed — E: \u001b]0;TITLE\u0007 broken',
    );
    expect(err).toBe('node-b: failed — E: \\e]0;TITLE\\x07 broken\n');
  });

  it("generate refuses a golden node's answer that no lockfile may hold, before writing one", () => {
    const base = makeLock({ packages: { 'libc6:amd64': { version: '2.31-0ubuntu9.14' } } });
    for (const [edit, problem] of [
      [
        (l: Lockfile) => (l.packages['libc6:amd64']!.version = 'not a version!'),
        /is not a valid Debian version/,
      ],
      [
        (l: Lockfile) => (l.packages['libc6:amd64']!.files = { '/proc/self/mem': { size: 1, mode: '0644' } }),
        /under \/proc/,
      ],
      [(l: Lockfile) => (l.platform.versionId = '12\u001b[2J'), /platform\.versionId/],
    ] as const) {
      const lock = structuredClone(base);
      edit(lock);
      const r = lockTextOrProblem(finalizeLock(lock));
      expect('problem' in r && r.problem).toMatch(problem);
    }
    expect('text' in lockTextOrProblem(base)).toBe(true);
  });

  it('a Markdown code span around 130,000 backtick runs does not overflow the stack', () => {
    const name = '`a'.repeat(130_000);
    expect(escapeMarkdown(name, { code: true }).startsWith('``')).toBe(true);
  });

  it("rollback's simulation refuses a purge, and any line shaped like an operation but not one", () => {
    expect(() => parseSimulation('Purg openssh-server [1:8.2p1]\n')).toThrow(/apt would purge a package/);
    expect(() => parseSimulation('Remv  openssh-server [1:8.2p1]\n')).toThrow(/not a Remv line/);
    expect(parseSimulation('Remv libtilde0 [3.0~rc2-1]\n').removes).toEqual(['libtilde0']);
  });

  it('a transaction record holds a file name with a newline, and no pin path outside preferences.d', () => {
    expect(
      TxFile.safeParse({ path: '/usr/lib/a\nb.so', package: 'libc6:amd64', buildId: null }).success,
    ).toBe(true);
    for (const path of ['/etc/apt/preferences.d/..', '/etc/apt/preferences.d/.'])
      expect(TxPins.safeParse({ path, before: null, after: null }).success).toBe(false);
  });

  it('unfinished apt jobs: only job directories, and not thousands', async () => {
    const t = { host: 'h' } as unknown as Transport;
    const answer = (stdout: string): CommandResult => ({
      command: 'sh',
      stdout,
      stderr: '',
      exitCode: 0,
      timedOut: false,
      durationMs: 1,
    });
    await expect(collectPendingJobs(t, answer('@@job /etc/x1\n'), 60)).rejects.toThrow(
      /names "\/etc\/x1" as an unfinished apt job/,
    );
    const many = Array.from(
      { length: 20 },
      (_, i) => `@@job /var/lib/criu-lock/jobs/20261205T125308Z-${String(i).padStart(8, '0')}`,
    );
    await expect(collectPendingJobs(t, answer(`${many.join('\n')}\n`), 60)).rejects.toThrow(
      /lists 20 unfinished apt jobs/,
    );
  });
});

describe('what a host answers, as data (second round)', () => {
  const record = (status: string, log = 'ok'): string =>
    `@@status\n${status}\n@@started\nx\n@@pins\n@@audit\n@@log\n${log}\n@@end\n`;

  it("an apt job's status is an exit status or `died`; its log is cut to the last 16 KiB", () => {
    expect(parseJobRecord('/j', record('0')).exitCode).toBe(0);
    expect(parseJobRecord('/j', record('died')).exitCode).toBeNull();
    expect(() => parseJobRecord('/j', record('9'.repeat(400)))).toThrow(
      /reports the status "9{40}", which is no exit status/,
    );
    expect(parseJobRecord('/j', record('100', 'x'.repeat(100_000))).log.length).toBe(16_384);
  });

  it('an over-long du line is left out of the disk figure, not read into a manifest', () => {
    const r = parseTransactions(`=== du ${'9'.repeat(400)}\n`);
    expect(r.diskBytes).toBe(0);
    expect(r.unreadable).toEqual([]);
  });

  it("rollback --to names at most ten of a host's transactions in its hint", () => {
    const tx = (i: number): TxManifest =>
      ({
        id: `20261205T1200${String(i).padStart(2, '0')}.000Z-abc`,
        rollbackOf: null,
      }) as unknown as TxManifest;
    const r = selectTarget(
      Array.from({ length: 40 }, (_, i) => tx(i)),
      'nope',
    );
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.hint).toMatch(/^recorded: (?:[^,]+, ){9}[^,]+, \.\.\. \(40 in all; see criu-lock history\)$/);
  });

  it('a plan file naming a host twice is refused at the second', async () => {
    const dir = estate({ 'plan.json': '' });
    const file = path.join(dir, 'plan.json');
    const host = { name: 'node-b', status: 'ok', fingerprint: null, actions: [], blocked: [], notes: [] };
    writeFileSync(
      file,
      `${JSON.stringify({ planVersion: 1, lock: { path: 'l', digest: `sha256:${'0'.repeat(64)}` }, hosts: [host, host] }, null, 2)}\n`,
    );
    const err = await caught(loadPlan(file));
    expect(err.message).toBe('host "node-b" is in the plan twice');
  });

  it("an inventory script's --host answer must be an object", async () => {
    const dir = estate({
      'inv.sh':
        '#!/bin/sh\ncase "$1" in --list) echo \'{"web": ["w1"]}\' ;; --host) echo \'[1,2]\' ;; esac\n',
    });
    chmodSync(path.join(dir, 'inv.sh'), 0o755);
    const err = await caught(loadInventory(path.join(dir, 'inv.sh'), opts));
    expect(err.message).toMatch(/--host w1 printed JSON that is not an object of variables$/);
  });

  it('the inventory table of 60,000 hosts renders, and invisible characters are shown', () => {
    const inv = inventoryFromText(
      'all:\n  hosts:\n    "h[0:59999]":\n    "a\u200bb": {ansible_host: 127.0.0.1}\n',
      'inv.yaml',
    );
    const text = renderInventory(inv.hosts, inv, 'text');
    expect(text).toContain('a\\u200bb');
    expect(text.split('\n').length).toBeGreaterThan(60_000);
  });
});

describe('text that is not UTF-8', () => {
  it('an inventory or vars file that is not UTF-8 is refused at its line; a script may hold any bytes', async () => {
    const dir = estate({ 'inventory.yaml': '' });
    writeFileSync(path.join(dir, 'inventory.yaml'), Buffer.from('all:\n  hosts:\n    h\xff1:\n', 'latin1'));
    const err = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(err.message).toBe('the file is not UTF-8 text');
    expect(err.location).toMatchObject({ line: 3 });

    writeFileSync(path.join(dir, 'inventory.yaml'), 'web:\n  hosts:\n    h1:\n');
    mkdirSync(path.join(dir, 'group_vars'));
    writeFileSync(path.join(dir, 'group_vars/web.yml'), Buffer.from('a: caf\xe9\n', 'latin1'));
    const vars = await caught(loadInventory(path.join(dir, 'inventory.yaml'), opts));
    expect(vars.location).toMatchObject({ file: path.join(dir, 'group_vars/web.yml'), line: 1 });

    const script = path.join(dir, 'inv.sh');
    writeFileSync(
      script,
      Buffer.concat([
        Buffer.from('#!/bin/sh\n# caf'),
        Buffer.from([0xe9]),
        Buffer.from('\necho \'{"all": {"hosts": ["s1"]}, "_meta": {"hostvars": {}}}\'\n'),
      ]),
    );
    chmodSync(script, 0o755);
    expect((await loadInventory(script, opts)).hosts.map((h) => h.name)).toEqual(['s1']);
  });
});
