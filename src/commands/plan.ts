import { isHostFailure } from '../fleet/host-error.js';
import { runFleet } from '../fleet/run.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { PLAN_VERSION, serializePlan, type HostPlan, type PlanFile } from '../plan/plan-file.js';
import { failedHostPlan, type StoreIndex } from '../plan/planner.js';
import { storeIndexFor } from '../store/manifest.js';
import { planWithTransaction } from '../facts/simulate.js';
import { renderPins } from '../plan/pins.js';
import { renderPlan } from '../report/plan-report.js';
import {
  DEFAULT_INVENTORY,
  DEFAULT_LOCKFILE,
  errLine,
  fleetStatus,
  type CommandDeps,
  type CommonOptions,
} from './context.js';
import { gatherForPlan, refreshApt } from './host-steps.js';
import { renderCommand } from '../shell/quote.js';
import { checkOutputFile, writeOutputFile } from './output-path.js';
import { prepareRun, type PreparedRun } from './prepare.js';

export interface PlanOptions extends CommonOptions {
  lockfile: string;
  out?: string | undefined;
  format: 'text' | 'markdown' | 'json';
  detailedExitcode: boolean;
  refresh: boolean;
  /** Package store directory (default: criu-lock.debs/ beside the lockfile, when it exists). */
  store?: string | undefined;
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
  store?: StoreIndex,
): Promise<PlanFile> {
  const desired = renderPins(lock);
  const status = fleetStatus(run.io, 'plan', run.hosts.length, isHostFailure);
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
        const facts = await gatherForPlan(t, lock);
        at('simulate apt');
        return planWithTransaction(t, lock, facts, desired, store);
      });
      run.log(host.name, `planned in ${run.since(start).toFixed(0)} ms`);
      if (isHostFailure(r)) return failedHostPlan(host.name, r.status, r.error);
      return r;
    },
    { forks: opts.forks, onResult: (r) => status.done(r) },
  );
  status.end();
  // Facts are dropped as soon as each host is planned: at 100+ hosts they dominate memory.
  return {
    planVersion: PLAN_VERSION,
    lock: { path: lockPath, digest: lock.digest },
    hosts: fleet.results.map((r) => r.result),
  };
}

export async function runPlan(opts: PlanOptions, deps: CommandDeps): Promise<number> {
  const lock = await loadLock(opts.lockfile);
  if (opts.out) await checkOutputFile(opts.out, '-o');
  const run = await prepareRun(opts, deps);
  const store = storeIndexFor(lock, opts.lockfile, opts.store);
  const plan = await planFleet(run, lock, opts.lockfile, opts, store);
  if (opts.out) {
    await writeOutputFile(opts.out, serializePlan(plan), '-o');
    // The command to copy: with the inventory and lockfile this plan was made with, when not the defaults.
    const argv = ['criu-lock', 'apply', opts.out];
    if (opts.inventory !== DEFAULT_INVENTORY) argv.push('-i', opts.inventory);
    if (opts.lockfile !== DEFAULT_LOCKFILE) argv.push('-l', opts.lockfile);
    errLine(deps.io, `saved plan to ${opts.out}; apply it with: ${renderCommand(argv)}`);
  }
  deps.io.out(renderPlan(plan, opts.format, opts.color));
  return planExitCode(plan, opts.detailedExitcode);
}
