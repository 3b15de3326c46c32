/**
 * What the sandbox nodes spend while one run is measured. Every node's sshd goes into one cgroup;
 * the sessions, shells, apt runs and detached jobs it forks inherit it, so the cgroup's CPU counter
 * read before and after a run is all the CPU the nodes spent serving it (sshd included, the
 * controller and the floor's ssh clients not). On a fleet of real machines this is the part that
 * runs in parallel on every node; on the sandbox it shares the controller's cores, which is why the
 * wall ratio alone does not say who spent what.
 *
 * cgroup v1 (`cpuacct.usage`, ns) when the cpuacct hierarchy is mounted, else cgroup v2
 * (`cpu.stat` usage_usec). Needs root; without a writable hierarchy `openNodeCpuMeter` returns
 * undefined and the bench reports no node figure rather than a wrong one.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NodeCpuMeter {
  /** `v1` or `v2`: which counter is read. */
  readonly kind: 'v1' | 'v2';
  /** Moves these processes (the nodes' sshd listeners) into the cgroup; gone pids are skipped. */
  attach(pids: readonly number[]): void;
  /** CPU seconds the cgroup's processes have used since it was made. */
  readS(): number;
  /** Moves every process back to the hierarchy's root and removes the cgroup. */
  close(): void;
}

const V1_ROOT = '/sys/fs/cgroup/cpuacct';
const V2_ROOT = '/sys/fs/cgroup';

/** The meter, or undefined (with the reason) when this machine cannot give one. */
export function openNodeCpuMeter(
  name = `criu-lock-bench-nodes-${process.pid}`,
): { meter: NodeCpuMeter } | { meter: undefined; reason: string } {
  const v1 = existsSync(join(V1_ROOT, 'cpuacct.usage'));
  const v2 = !v1 && existsSync(join(V2_ROOT, 'cgroup.controllers'));
  if (!v1 && !v2) return { meter: undefined, reason: 'no cpuacct (v1) or unified (v2) cgroup hierarchy' };
  const root = v1 ? V1_ROOT : V2_ROOT;
  const dir = join(root, name);
  try {
    mkdirSync(dir);
  } catch (e) {
    return { meter: undefined, reason: `cannot make ${dir}: ${(e as Error).message}` };
  }
  const procs = join(dir, 'cgroup.procs');
  const readS = (): number => {
    if (v1) return Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e9;
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
    if (!m) throw new Error(`${dir}/cpu.stat has no usage_usec`);
    return Number(m[1]) / 1e6;
  };
  const move = (to: string, pids: readonly number[]): void => {
    for (const pid of pids) {
      try {
        writeFileSync(to, `${pid}\n`);
      } catch (e) {
        // ESRCH: the process has gone since; anything else is a real failure.
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
  };
  return {
    meter: {
      kind: v1 ? 'v1' : 'v2',
      attach: (pids) => move(procs, pids),
      readS,
      close: () => {
        // A process may fork while we move; a few passes empty the cgroup.
        for (let pass = 0; pass < 5; pass++) {
          const left = readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
          if (left.length === 0) break;
          move(join(root, 'cgroup.procs'), left);
        }
        try {
          rmdirSync(dir);
        } catch {
          // still busy: left for the next close or the machine's end; it holds no resources
        }
      },
    },
  };
}
