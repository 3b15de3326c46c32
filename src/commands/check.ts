import { compareHost, lockedPaths } from '../check/compare.js';
import { gatherWithReadings, statCacheDir } from '../facts/stat-cache.js';
import { isHostFailure } from '../fleet/host-error.js';
import type { CheckReport, HostCheck } from '../fleet/host-result.js';
import { runFleet } from '../fleet/run.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { renderCheck } from '../report/check-report.js';
import { fleetStatus, type CommandDeps, type CommonOptions } from './context.js';
import { prepareRun, type PreparedRun } from './prepare.js';

export type { CheckReport, HostCheck } from '../fleet/host-result.js';

export interface CheckOptions extends CommonOptions {
  lockfile: string;
  format: 'text' | 'markdown' | 'json';
}

export function checkExitCode(report: CheckReport): number {
  if (report.hosts.some(isHostFailure)) return 3;
  if (report.hosts.some((h) => h.status === 'drift')) return 2;
  return 0;
}

export async function checkFleet(
  run: PreparedRun,
  lock: Lockfile,
  lockPath: string,
  opts: Pick<CheckOptions, 'forks'>,
): Promise<CheckReport> {
  const paths = lockedPaths(lock);
  const cacheDir = statCacheDir();
  const status = fleetStatus(run.io, 'check', run.hosts.length, isHostFailure);
  const fleet = await runFleet(
    run.hosts,
    async (host): Promise<HostCheck> => {
      const start = run.clock.monotonicMs();
      const r = await run.withHost(
        host,
        async (t) => compareHost(lock, await gatherWithReadings(t, { paths }, { cacheDir })),
        'gather facts',
      );
      run.log(host.name, `facts gathered and compared in ${run.since(start).toFixed(0)} ms`);
      if (isHostFailure(r)) return r;
      return r.length === 0
        ? { name: host.name, status: 'ok', findings: [] }
        : { name: host.name, status: 'drift', findings: r };
    },
    { forks: opts.forks, onResult: (r) => status.done(r) },
  );
  status.end();
  return { lock: { path: lockPath, digest: lock.digest }, hosts: fleet.results.map((r) => r.result) };
}

export async function runCheck(opts: CheckOptions, deps: CommandDeps): Promise<number> {
  const lock = await loadLock(opts.lockfile);
  const run = await prepareRun(opts, deps);
  const report = await checkFleet(run, lock, opts.lockfile, opts);
  deps.io.out(renderCheck(report, opts.format, opts.color));
  return checkExitCode(report);
}
