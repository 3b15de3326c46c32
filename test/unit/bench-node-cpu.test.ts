/**
 * The bench's node-CPU meter (tools/bench/node-cpu.ts) on this machine's cgroups: what a process put
 * in the cgroup spends, and what its children spend, is counted; a process outside is not; closing
 * leaves no cgroup behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { openNodeCpuMeter, type NodeCpuMeter } from '../../tools/bench/node-cpu.js';

const opened = process.getuid?.() === 0 ? openNodeCpuMeter(`criu-lock-test-${process.pid}`) : undefined;
const meter: NodeCpuMeter | undefined = opened?.meter;
if (opened?.meter !== undefined) opened.meter.close(); // each test opens its own

/** A shell that waits for a line on stdin, then has a child burn `ms` of its own CPU (user + system), and exits. */
function burner(ms: number): ChildProcess {
  const script = `read go; perl -e '1 while do { my @t = times; $t[0] + $t[1] < ${ms / 1000} }' ; exit 0`;
  return spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
}

const exited = (c: ChildProcess): Promise<void> =>
  new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', () => resolve())));

let open: NodeCpuMeter | undefined;
afterEach(() => {
  open?.close();
  open = undefined;
});

describe.skipIf(meter === undefined)('node CPU meter (root, cgroups)', () => {
  it('counts the attached process and the children it forks later, not a process outside', async () => {
    const r = openNodeCpuMeter(`criu-lock-test-${process.pid}-a`);
    open = r.meter;
    const m = r.meter!;
    const inside = burner(300);
    const outside = burner(300);
    m.attach([inside.pid!]);
    const before = m.readS();
    inside.stdin!.end('go\n');
    outside.stdin!.end('go\n');
    await Promise.all([exited(inside), exited(outside)]);
    const spent = m.readS() - before;
    // The child perl spends 0.3 s of user CPU (plus its own start); the outside one's 0.3 s must not count.
    expect(spent).toBeGreaterThanOrEqual(0.3);
    expect(spent).toBeLessThan(0.5);
  });

  it('a pid that has gone is skipped; close moves processes out and removes the cgroup', async () => {
    const name = `criu-lock-test-${process.pid}-b`;
    const r = openNodeCpuMeter(name);
    const m = r.meter!;
    const gone = spawn('true');
    await exited(gone);
    const sleeper = spawn('sleep', ['5']);
    m.attach([gone.pid!, sleeper.pid!]);
    const root = m.kind === 'v1' ? '/sys/fs/cgroup/cpuacct' : '/sys/fs/cgroup';
    expect(readFileSync(`${root}/${name}/cgroup.procs`, 'utf8').trim()).toBe(String(sleeper.pid));
    m.close();
    expect(existsSync(`${root}/${name}`)).toBe(false);
    expect(readFileSync(`/proc/${sleeper.pid}/cgroup`, 'utf8')).not.toContain(name);
    sleeper.kill();
    await exited(sleeper);
  });
});
