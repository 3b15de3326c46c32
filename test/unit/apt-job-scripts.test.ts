/**
 * The apt job's start, follow and run scripts (src/apply/apt-job.ts), run by a real sh against a
 * scratch state directory in place of /var/lib/criu-lock: the follower returns the record once the
 * runner has written the status, and a process the job leaves running (as a maintainer script's
 * daemon would) holds neither the job lock nor the follower.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FOLLOW_SCRIPT, parseJobRecord, RUN_SCRIPT, START_SCRIPT } from '../../src/apply/apt-job.js';
import { STATE_DIR } from '../../src/apply/apt.js';

let dir: string | undefined;
const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The script with the scratch directory in place of the host's state directory. */
const local = (script: string, state: string): string => script.split(STATE_DIR).join(state);

function start(state: string, argv: readonly string[]): string {
  const out = execFileSync(
    'sh',
    ['-c', local(START_SCRIPT, state), 'criu-lock-apt-start', 'job1', join(state, 'pins'), '0', ...argv],
    { encoding: 'utf8' },
  );
  return out.trim().split('\n').pop()!;
}

/** Runs the follower; resolves with its output, or with 'hung' if it has not ended in `ms`. */
function follow(state: string, job: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn('sh', ['-c', local(FOLLOW_SCRIPT, state), 'criu-lock-apt-follow', job]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      resolve('hung');
    }, ms);
    c.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe('apt job scripts (real sh)', () => {
  it('the follower returns the record when the job ends, not when a process it started does', async () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    const pidFile = join(dir, 'daemon.pid');
    // The "apt run": starts a long-lived background process, as a postinst starting a daemon
    // would, and exits 3 after a moment.
    const job = start(dir, ['sh', '-c', `sleep 60 & echo $! > ${pidFile}; sleep 0.2; echo done; exit 3`]);
    expect(job).toBe(join(dir, 'jobs', 'job1'));
    // Generous bound: the job itself takes 0.2 s; a follower held by the daemon would take 60 s.
    const out = await follow(dir, job, 20_000);
    leftovers.push(Number(readFileSync(pidFile, 'utf8')));
    expect(out).not.toBe('hung');
    const rec = parseJobRecord(job, out);
    expect(rec.exitCode).toBe(3);
    expect(rec.log).toContain('done');
    // The daemon is still running, and the job lock is free: another job could take it now.
    expect(() => process.kill(leftovers[0]!, 0)).not.toThrow();
    execFileSync('flock', ['-n', join(dir, 'apt-job.lock'), 'true']);
  });

  it('a runner that let the job lock go without a status (it died, or the disk was full) is recorded as died, at once', async () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    const job = join(dir, 'jobs', 'job1');
    execFileSync('mkdir', ['-p', job]);
    // What a killed runner leaves: its pid, no status, and no process holding the job lock.
    execFileSync('sh', ['-c', `echo 999999 > ${job}/pid; : > ${join(dir, 'apt-job.lock')}`]);
    const out = await follow(dir, job, 20_000);
    expect(out).not.toBe('hung');
    expect(parseJobRecord(job, out).exitCode).toBeNull();
    expect(readFileSync(join(job, 'status'), 'utf8')).toBe('died\n');
    // A status file left empty (a runner whose write failed on a full disk) reads as died too.
    execFileSync('sh', ['-c', `: > ${job}/status`]);
    expect(parseJobRecord(job, await follow(dir, job, 20_000)).exitCode).toBeNull();
  });

  it('a follower waits while another job holds the lock, then records this one as died', async () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    const job = join(dir, 'jobs', 'job1');
    execFileSync('mkdir', ['-p', job]);
    execFileSync('sh', ['-c', `echo 999999 > ${job}/pid`]);
    const lock = join(dir, 'apt-job.lock');
    const holder = spawn('flock', [lock, 'sleep', '1']);
    leftovers.push(holder.pid!);
    let ended = false;
    holder.on('exit', () => (ended = true));
    // Until the other job holds the lock.
    for (let held = false; !held;) {
      try {
        execFileSync('flock', ['-n', lock, 'true']);
        await new Promise((r) => setTimeout(r, 20));
      } catch {
        held = true;
      }
    }
    const out = await follow(dir, job, 20_000);
    expect(ended).toBe(true);
    expect(parseJobRecord(job, out).exitCode).toBeNull();
  });

  it('a follower that starts after the job ended returns at once with its record', async () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    const job = start(dir, ['true']);
    // Wait for the status the way a lost connection's next apply finds it: already there.
    for (let i = 0; i < 200; i++) {
      try {
        readFileSync(join(job, 'status'));
        break;
      } catch {
        execFileSync('sleep', ['0.05']);
      }
    }
    const out = await follow(dir, job, 20_000);
    expect(parseJobRecord(job, out).exitCode).toBe(0);
  });

  it('the run script starts the job, names it, then follows it to its record: one command', () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    const out = execFileSync(
      'sh',
      [
        '-c',
        local(RUN_SCRIPT, dir),
        'criu-lock-apt-run',
        'job1',
        join(dir, 'pins'),
        '0',
        'sh',
        '-c',
        'echo ran; exit 5',
      ],
      { encoding: 'utf8' },
    );
    const job = join(dir, 'jobs', 'job1');
    expect(out.startsWith(`@@job ${job}\n`)).toBe(true);
    const rec = parseJobRecord(job, out);
    expect(rec.exitCode).toBe(5);
    expect(rec.log).toContain('ran');
    expect(readFileSync(join(job, 'command'), 'utf8')).toBe('sh -c echo ran; exit 5\n');
  });

  it('a job that cannot start ends the run script with the error, before any job line', () => {
    dir = mkdtempSync(join(tmpdir(), 'criu-lock-job-'));
    // The jobs directory cannot be made: a file stands where it should be.
    execFileSync('sh', ['-c', `: > ${join(dir, 'jobs')}`]);
    let failed: { status: number; stdout: string; stderr: string } | undefined;
    try {
      execFileSync(
        'sh',
        ['-c', local(RUN_SCRIPT, dir), 'criu-lock-apt-run', 'job1', join(dir, 'pins'), '0', 'true'],
        {
          encoding: 'utf8',
          stdio: 'pipe',
        },
      );
    } catch (e) {
      failed = e as { status: number; stdout: string; stderr: string };
    }
    expect(failed?.status).not.toBe(0);
    expect(failed?.stdout).toBe('');
    expect(failed?.stderr).toMatch(/mkdir/);
  });
});
