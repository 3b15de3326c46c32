import { writeFile } from 'node:fs/promises';
import { runAptUpdate } from '../apply/apt.js';
import { lockedPaths } from '../check/compare.js';
import { gatherFacts } from '../facts/gather.js';
import type { HostFacts } from '../facts/types.js';
import type { InventoryHost } from '../inventory/types.js';
import { loadInventory } from '../inventory/load.js';
import { selectHosts } from '../inventory/limit.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { runFleet } from '../fleet/run.js';
import { PLAN_VERSION, serializePlan, type HostPlan, type PlanFile } from '../plan/plan-file.js';
import { failedHostPlan } from '../plan/planner.js';
import { planWithTransaction } from '../facts/simulate.js';
import { PIN_FILE, renderPins } from '../plan/pins.js';
import { renderPlan } from '../report/plan-report.js';
import type { Transport } from '../transport/types.js';
import { CriuLockError } from '../errors.js';
import { elapsed, isFailure, sshOptions, withHost, type CommonOptions, type Io } from './context.js';

export interface PlanOptions extends CommonOptions {
  lockfile: string;
  out?: string | undefined;
  format: 'text' | 'markdown' | 'json';
  detailedExitcode: boolean;
  refresh: boolean;
}


/** Everything a plan for `lock` needs from a host, in one round trip. */
export async function gatherForPlan(t: Transport, lock: Lockfile): Promise<HostFacts> {
  return gatherFacts(t, { paths: lockedPaths(lock), policyFor: Object.keys(lock.packages).sort(), pinFile: PIN_FILE });
}

export async function refreshApt(t: Transport): Promise<void> {
  const r = await runAptUpdate(t, { lockTimeout: 60, timeoutMs: 600_000 });
  if (r.exitCode !== 0) {
    const last = r.stderr.trim().split('\n').slice(-1)[0] ?? `exit code ${r.exitCode}`;
    throw new CriuLockError('ssh', `apt-get update failed on ${t.host}: ${last}`);
  }
}

export function planExitCode(plan: PlanFile, detailed: boolean): number {
  if (plan.hosts.some((h) => h.status === 'unreachable' || h.status === 'failed')) return 3;
  if (!detailed) return 0;
  return plan.hosts.some((h) => h.status !== 'ok') ? 2 : 0;
}


export async function planFleet(
  lock: Lockfile,
  lockPath: string,
  hosts: readonly InventoryHost[],
  opts: Pick<PlanOptions, 'forks' | 'refresh' | 'verbose'> & CommonOptions,
  io: Io,
): Promise<PlanFile> {
  const desired = renderPins(lock);
  const ssh = sshOptions(opts);
  const run = await runFleet(
    hosts,
    async (host): Promise<HostPlan> => {
      const start = process.hrtime.bigint();
      const r = await withHost(host, ssh, async (t) => {
        if (opts.refresh) await refreshApt(t);
        return planWithTransaction(t, lock, await gatherForPlan(t, lock), desired);
      });
      if (opts.verbose) io.err(`[${host.name}] planned in ${elapsed(start).toFixed(0)} ms\n`);
      if (isFailure(r)) return failedHostPlan(host.name, r.status, r.error);
      return r;
    },
    { forks: opts.forks },
  );
  // Facts are dropped as soon as each host is planned: at 100+ hosts they dominate memory.
  return { planVersion: PLAN_VERSION, lock: { path: lockPath, digest: lock.digest }, hosts: run.results.map((r) => r.result) };
}

export async function runPlan(opts: PlanOptions, io: Io): Promise<number> {
  const lock = await loadLock(opts.lockfile);
  const inv = await loadInventory(opts.inventory);
  const hosts = selectHosts(inv, opts.limit);
  const plan = await planFleet(lock, opts.lockfile, hosts, opts, io);
  if (opts.out) {
    await writeFile(opts.out, serializePlan(plan));
    io.err(`saved plan to ${opts.out}; apply it with: criu-lock apply ${opts.out}\n`);
  }
  io.out(renderPlan(plan, opts.format, opts.color));
  return planExitCode(plan, opts.detailedExitcode);
}
