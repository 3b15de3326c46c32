import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serializeLock } from '../../src/lock/lockfile.js';
import { runCli } from '../helpers/run-cli.js';
import { makeLock } from './core-fixtures.js';

const run = runCli;

/** A fresh directory holding a valid lockfile, lock.yaml. */
function dirWithLock(): { dir: string; lock: string } {
  const dir = mkdtempSync(join(tmpdir(), 'criu-lock-cli-'));
  const lock = join(dir, 'lock.yaml');
  writeFileSync(lock, serializeLock(makeLock()));
  return { dir, lock };
}

describe('criu-lock CLI', () => {
  it.each(['generate', 'plan', 'apply', 'check', 'inventory'])(
    '%s --help shows usage with an example and exits 0',
    async (cmd) => {
      const r = await run(cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`criu-lock ${cmd}`);
      expect(r.out).toMatch(/Examples:/);
    },
  );

  it('rejects an unknown flag before running the command (exit 1, one line + hint)', async () => {
    const r = await run('inventory', '-i', 'inventory.example.yaml', '--bogus');
    expect(r.code).toBe(1);
    expect(r.out).toBe(''); // the inventory table was never printed
    expect(r.err).toBe('error: Unknown argument: bogus\n  hint: see criu-lock --help\n');
  });

  it('needs a command', async () => {
    const r = await run();
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: name a command/);
  });

  it('prints the example inventory', async () => {
    const r = await run('inventory', '-i', 'inventory.example.yaml', '--format', 'json');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { hosts: Array<{ name: string; groups: string[] }> };
    expect(json.hosts.find((h) => h.groups.includes('golden'))?.name).toBe('node-a');
    expect(json.hosts.length).toBeGreaterThan(3);
  });

  it('reports a broken lockfile as file:line:col with exit 1 and no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-cli-'));
    const lock = join(dir, 'lock.yaml');
    writeFileSync(lock, 'lockfileVersion: 1\nsurprise: true\n');
    const r = await run('check', '-i', 'inventory.example.yaml', '-l', lock);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toMatch(new RegExp(`^error: ${lock.replace(/[/.]/g, '\\$&')}:\\d+:\\d+: `));
    expect(r.err).not.toMatch(/\n\s+at /);
    const debug = await run('check', '-i', 'inventory.example.yaml', '-l', lock, '--debug');
    expect(debug.err).toMatch(/\n\s+at /);
  });

  it('refuses apply without --yes or a plan when there is no terminal, before connecting anywhere', async () => {
    const r = await run('apply', '-i', 'inventory.example.yaml', '-l', '/nonexistent.yaml');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/pass --yes/);
  });

  it('validates --serial and --forks', async () => {
    expect(
      (await run('apply', '--yes', '--serial', 'x', '-i', 'inventory.example.yaml', '-l', '/nonexistent'))
        .code,
    ).toBe(1);
    const f = await run('check', '--forks', '0', '-i', 'inventory.example.yaml');
    expect(f.code).toBe(1);
    expect(f.err).toMatch(/--forks must be a positive integer/);
    const nan = await run('check', '--forks', 'abc', '-i', 'inventory.example.yaml');
    expect(nan.err.split('\n')[0]).toBe('error: --forks must be a positive integer, got "abc"');
  });

  it.each([
    ['--forks', ' ', 'a positive integer'],
    ['--forks', '0x10', 'a positive integer'],
    ['--connect-timeout', '1e1', 'a positive number of seconds'],
    ['--max-fail-percentage', ' ', 'a number between 0 and 100'],
    ['--max-fail-percentage', '-1', 'a number between 0 and 100'],
  ])('reads %s %j strictly: no blank, hex or exponent number', async (flag, value, what) => {
    const r = await run('apply', '--yes', flag, value, '-i', 'inventory.example.yaml', '-l', '/nonexistent');
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(`error: ${flag} must be ${what}, got ${JSON.stringify(value)}`);
  });

  it.each([
    [['plan', '-i', 'inventory.example.yaml', '-o', 'a.json', '-o', 'b.json'], '--out'],
    [['export', 'ansible', '-o', 'e1', '-o', 'e2'], '--output'],
    [['check', '-i', 'inventory.example.yaml', '-l', 'x.yaml', '-l', 'x.yaml'], '--lockfile'],
    [['apply', '-i', 'inventory.example.yaml', '--yes', '--serial', '1', '--serial', '5'], '--serial'],
  ])('refuses a one-value flag given twice (%j)', async (argv, flag) => {
    const r = await run(...argv);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(`error: ${flag} was given more than once`);
  });

  it('refuses an empty --max-fail-percentage, which yargs read as 0', async () => {
    const r = await run('apply', '--yes', '--max-fail-percentage', '', '-i', 'inventory.example.yaml');
    expect(r.code).toBe(1);
    expect(r.err).toContain('--max-fail-percentage was given an empty value');
  });

  it.each([
    [['--serial'], '--serial needs a value'],
    [['--max-fail-percentage'], '--max-fail-percentage needs a value'],
    [['--playbook'], '--playbook needs a value'],
    [['-l'], '-l needs a value'],
    [['--serial='], '--serial was given an empty value'],
    [['--limit', ''], '--limit was given an empty value'],
  ])('a value flag given nothing (%j) is an error, never its default', async (flag, message) => {
    const r = await run('apply', '--yes', '-i', 'inventory.example.yaml', '--ssh-config', 'none', ...flag);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(`error: ${message}`);
  });

  it("says yargs' own refusals in one line, with the flags as typed", async () => {
    const f = await run('plan', '--format', 'html');
    expect(f.err).toBe(
      'error: --format "html" is not one of text, markdown, json\n  hint: see criu-lock --help\n',
    );
    const both = await run('rollback', '--to', 'x', '--last');
    expect(both.err.split('\n')[0]).toBe('error: --to and --last cannot be given together');
  });

  it('check refuses -l together with --checkpoint, which would ignore the lockfile', async () => {
    const r = await run('check', '-i', 'inventory.example.yaml', '-l', 'x.yaml', '--checkpoint', 'dir');
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe('error: -l and --checkpoint cannot be given together');
  });

  it('checks -o before any host is contacted, and makes export directories without looping under /proc', async () => {
    const { dir, lock: LOCK } = dirWithLock();
    const missing = await run(
      'plan',
      '-i',
      'inventory.example.yaml',
      '-l',
      LOCK,
      '-o',
      join(dir, 'no/such/plan.json'),
    );
    expect(missing.code).toBe(1);
    expect(missing.err.split('\n')[0]).toBe(
      `error: cannot write ${join(dir, 'no/such/plan.json')}: no such directory`,
    );
    const isDir = await run('plan', '-i', 'inventory.example.yaml', '-l', LOCK, '-o', dir);
    expect(isDir.err.split('\n')[0]).toBe(`error: cannot write ${dir}: it is a directory`);
    const proc = await run('export', 'ansible', '-l', LOCK, '-o', '/proc/criu-lock-nope');
    expect(proc.code).toBe(1);
    expect(proc.err.split('\n')[0]).toBe(
      'error: cannot make directory /proc/criu-lock-nope: no such directory',
    );
    const underFile = await run('export', 'ansible', '-l', LOCK, '-o', join(LOCK, 'sub'));
    expect(underFile.err.split('\n')[0]).toBe(
      `error: cannot make directory ${join(LOCK, 'sub')}: a part of the path is not a directory`,
    );
  });

  it('an --ssh-config that does not exist is an error, as ssh -F makes it', async () => {
    const r = await run(
      'inventory',
      '-i',
      'inventory.example.yaml',
      '--ssh-config',
      '/nonexistent/ssh_config',
    );
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe('error: /nonexistent/ssh_config: cannot read ssh config: no such file');
  });

  it('refuses a directory as --known-hosts before any host is contacted', async () => {
    const { dir, lock } = dirWithLock();
    const r = await run(
      'check',
      '-i',
      'inventory.example.yaml',
      '--ssh-config',
      'none',
      '-l',
      lock,
      '--known-hosts',
      dir,
    );
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(`error: --known-hosts ${dir} is a directory`);
  });

  it('plan -o says how to apply the plan with the inventory and lockfile it was made with', async () => {
    const { dir, lock } = dirWithLock();
    const inv = join(dir, 'hosts.yaml');
    writeFileSync(inv, 'all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1, ansible_port: 1}\n');
    const out = join(dir, 'plan.json');
    const r = await run(
      'plan',
      '-i',
      inv,
      '--ssh-config',
      'none',
      '-l',
      lock,
      '-o',
      out,
      '--connect-timeout',
      '2',
    );
    expect(r.err).toContain(
      `saved plan to ${out}; apply it with: criu-lock apply ${out} -i ${inv} -l ${lock}\n`,
    );
  });
});
