import { writeFile } from 'node:fs/promises';
import { isHostFailure } from '../fleet/host-error.js';
import { runFleet } from '../fleet/run.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { PLAN_VERSION, serializePlan, type HostPlan, type PlanFile } from '../plan/plan-file.js';
import { failedHostPlan, planHost } from '../plan/planner.js';
import { renderPins } from '../plan/pins.js';
import { renderPlan } from '../report/plan-report.js';
import type { CommandDeps, CommonOptions } from './context.js';
import { gatherForPlan, refreshApt } from './host-steps.js';
import { prepareRun, type PreparedRun } from './prepare.js';

export interface PlanOptions extends CommonOptions {
  lockfile: string;
  out?: string | undefined;
  format: 'text' | 'markdown' | 'json';
  detailedExitcode: boolean;
  refresh: boolean;
}

export function planExitCode(plan: PlanFile, detailed: boolean): number {
  if (plan.hosts.some(isHostFailure)) return 3;
  if (!detailed) return 0;
  return plan.hosts.some((h) => h.status !== 'ok') ? 2 : 0;
}

/** Plans every host of the run against the lock; a host that cannot be read is a result, not an exception. */
export async function planFleet(
  run: PreparedRun,
  lock: Lockfile,
  lockPath: string,
  opts: Pick<PlanOptions, 'forks' | 'refresh'>,
): Promise<PlanFile> {
  const desired = renderPins(lock);
  const fleet = await runFleet(
    run.hosts,
    async (host): Promise<HostPlan> => {
      const start = run.clock.monotonicMs();
      const r = await run.withHost(host, async (t, at) => {
        if (opts.refresh) {
          at('refresh');
          await refreshApt(t);
        }
        at('gather facts');
        return gatherForPlan(t, lock);
      });
      run.log(host.name, `facts gathered in ${run.since(start).toFixed(0)} ms`);
      if (isHostFailure(r)) return failedHostPlan(host.name, r.status, r.error);
      return planHost(lock, r, desired);
    },
    { forks: opts.forks },
  );
  // Facts are dropped as soon as each host is planned: at 100+ hosts they dominate memory.
  return {
    planVersion: PLAN_VERSION,
    lock: { path: lockPath, digest: lock.digest },
    hosts: fleet.results.map((r) => r.result),
  };
}

export async function runPlan(opts: PlanOptions, deps: CommandDeps): Promise<number> {
  const lock = await loadLock(opts.lockfile);
  const run = await prepareRun(opts, deps);
  const plan = await planFleet(run, lock, opts.lockfile, opts);
  if (opts.out) {
    await writeFile(opts.out, serializePlan(plan));
    deps.io.err(`saved plan to ${opts.out}; apply it with: criu-lock apply ${opts.out}\n`);
  }
  deps.io.out(renderPlan(plan, opts.format, opts.color));
  return planExitCode(plan, opts.detailedExitcode);
}
