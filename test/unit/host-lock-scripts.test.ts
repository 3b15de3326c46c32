/**
 * The host lock's real scripts (sh, flock, perl) run on this machine through the local transport,
 * in a scratch state directory: taken, refused to a second apply, released, and lost with the
 * connection (its input ends). The holder must be one process with no children, so a fleet held for a whole apply
 * costs the nodes nothing while it waits (issue 14).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireHostLock, holdScript, splitOwnerOutput } from '../../src/apply/host-lock.js';
import { createLocalTransport } from '../../src/transport/local-transport.js';
import { recordingTransport } from '../helpers/recording-transport.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-host-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** True when nobody holds the lock file (`flock -n` gets it at once). */
function lockIsFree(): boolean {
  return spawnSync('flock', ['-n', join(dir, 'apply.lock'), 'true']).status === 0;
}

function children(pid: number): string {
  return readdirSync(`/proc/${pid}/task`)
    .map((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'))
    .join('')
    .trim();
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('host lock scripts', () => {
  it('takes the lock with one perl holder and no children, refuses a second taker, releases', async () => {
    const t = createLocalTransport('local');
    const got = await acquireHostLock(t, { dir });
    expect(got.status).toBe('locked');
    if (got.status !== 'locked') return;
    expect(got.lock.since).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const [token, , pid] = readFileSync(join(dir, 'apply.owner'), 'utf8').trim().split('\t');
    expect(token).toBe(got.lock.token);
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('perl');
    // Waiting costs no process starts: over a second, the holder starts no child.
    for (let i = 0; i < 5; i++) {
      expect(children(Number(pid))).toBe('');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(lockIsFree()).toBe(false);

    const second = await acquireHostLock(t, { dir });
    expect(second.status).toBe('busy');
    if (second.status === 'busy')
      expect(second.message).toBe(
        `another criu-lock run (an apply or a rollback) holds the host lock since ${got.lock.since} (holder pid ${pid} on the host); this run leaves the host alone`,
      );
    expect(readFileSync(join(dir, 'apply.owner'), 'utf8').split('\t')[0]).toBe(got.lock.token);

    await got.lock.release();
    expect(existsSync(join(dir, 'apply.owner'))).toBe(false);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(lockIsFree()).toBe(true);
    const third = await acquireHostLock(t, { dir });
    expect(third.status).toBe('locked');
    if (third.status === 'locked') await third.lock.release();
  }, 20_000);

  it('runs the follow-up in the lock command only once the lock is ours', async () => {
    const t = createLocalTransport('local');
    const marker = join(dir, 'ran');
    const after = {
      script: 'echo "after $1"; : >> "$2"',
      name: 'follow-up',
      args: ['ok', marker],
      timeoutMs: 10_000,
    };
    const got = await acquireHostLock(t, { dir, after });
    expect(got.status).toBe('locked');
    if (got.status !== 'locked') return;
    expect(got.after.stdout).toBe('after ok\n');
    rmSync(marker);
    const second = await acquireHostLock(t, { dir, after });
    expect(second.status).toBe('busy');
    await got.lock.release();
    // The busy taker's owner command gives up on its own; its follow-up never ran.
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(marker)).toBe(false);
  }, 20_000);

  it('the lock goes with its input: a holder whose input ends (release, lost connection) frees it', async () => {
    const child = spawn('sh', ['-c', holdScript(dir), 'criu-lock-hold', 'tok'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await until('the owner line', () => existsSync(join(dir, 'apply.owner')));
    // It holds while the input stays open, whatever arrives on it.
    child.stdin.write('x');
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull();
    expect(lockIsFree()).toBe(false);
    child.stdin.end();
    expect(await exited).toBe(0);
    expect(existsSync(join(dir, 'apply.owner'))).toBe(false);
    expect(lockIsFree()).toBe(true);
  }, 20_000);

  it('runs the then script on stdin after the follow-up, and releases without another command', async () => {
    const { t, answers } = recordingTransport('local');
    const after = { script: 'echo "@@job /x"', name: 'follow-up', args: [], timeoutMs: 10_000 };
    const then = { script: 'echo "then $(id -u)"\n', timeoutMs: 10_000 };
    const got = await acquireHostLock(t, { dir, after, then });
    expect(got.status).toBe('locked');
    if (got.status !== 'locked') return;
    expect(got.after.stdout).toBe('@@job /x\n');
    expect(got.then?.stdout).toBe(`then ${process.getuid?.()}\n`);
    expect(got.then?.exitCode).toBe(0);
    await got.lock.release();
    expect(lockIsFree()).toBe(true);
    // The holder and the owner command: release sent no command of its own.
    expect(answers.map((a) => a.command).filter((c) => c.includes('criu-lock-release'))).toEqual([]);
    expect(answers).toHaveLength(2);
  }, 20_000);

  it('splits the owner output at the mark with our token only', () => {
    const r = { command: 'x', exitCode: 3, stdout: '', stderr: '', durationMs: 1, timedOut: true };
    expect(splitOwnerOutput({ ...r, stdout: '@@job /a\n@@then tok\nfacts\n' }, 'tok')).toEqual({
      after: { ...r, stdout: '@@job /a\n', exitCode: 0, timedOut: false },
      then: { ...r, stdout: 'facts\n' },
    });
    expect(splitOwnerOutput({ ...r, stdout: '@@then tok\n' }, 'tok').then?.stdout).toBe('');
    // Without the mark (the follow-up failed, or timed out) there is no then result.
    expect(splitOwnerOutput({ ...r, stdout: '@@busy\n@@then other\n' }, 'tok')).toEqual({
      after: { ...r, stdout: '@@busy\n@@then other\n' },
    });
  });

  it('reports a holder that cannot hold (no state directory) as an error with its reason', async () => {
    const t = createLocalTransport('local');
    const bad = join(dir, 'file');
    spawnSync('touch', [bad]);
    const got = await acquireHostLock(t, { dir: join(bad, 'sub') });
    expect(got.status).toBe('error');
    if (got.status === 'error')
      expect(got.message).toMatch(/cannot take the host lock .*: .*mkdir.*Not a directory/);
  }, 20_000);
});

describe('host lock: the owner line cannot be written', () => {
  it('says why on stderr and exits 70 (a full /var/lib/criu-lock said only "exit code 70")', () => {
    const d = mkdtempSync(join(tmpdir(), 'criu-lock-host-lock-'));
    // A directory where the owner line's temporary file goes: its open fails.
    mkdirSync(join(d, 'apply.owner.tmp'));
    const r = spawnSync('sh', ['-c', holdScript(d), 'criu-lock-hold', 'token'], {
      encoding: 'utf8',
      input: '',
    });
    rmSync(d, { recursive: true, force: true });
    expect(r.status).toBe(70);
    expect(r.stderr).toBe(`writing ${d}/apply.owner: Is a directory\n`);
  });
});
