import { compareHost, lockedPaths, type Finding } from '../check/compare.js';
import { gatherFacts } from '../facts/gather.js';
import { loadInventory } from '../inventory/load.js';
import { selectHosts } from '../inventory/limit.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { runFleet } from '../fleet/run.js';
import { renderCheck } from '../report/check-report.js';
import { elapsed, isFailure, sshOptions, withHost, type CommonOptions, type Io } from './context.js';

export interface CheckOptions extends CommonOptions {
  lockfile: string;
  format: 'text' | 'markdown' | 'json';
}

export type HostCheck =
  | { name: string; status: 'ok'; findings: [] }
  | { name: string; status: 'drift'; findings: Finding[] }
  | { name: string; status: 'unreachable' | 'failed'; error: string };

export interface CheckReport {
  lock: { path: string; digest: string };
  hosts: HostCheck[];
}

export function checkExitCode(report: CheckReport): number {
  if (report.hosts.some((h) => h.status === 'unreachable' || h.status === 'failed')) return 3;
  if (report.hosts.some((h) => h.status === 'drift')) return 2;
  return 0;
}

export async function checkFleet(lock: Lockfile, lockPath: string, opts: CheckOptions, io: Io): Promise<CheckReport> {
  const inv = await loadInventory(opts.inventory);
  const hosts = selectHosts(inv, opts.limit);
  const paths = lockedPaths(lock);
  const ssh = sshOptions(opts);
  const run = await runFleet(
    hosts,
    async (host): Promise<HostCheck> => {
      const start = process.hrtime.bigint();
      const r = await withHost(host, ssh, async (t) => compareHost(lock, await gatherFacts(t, { paths })));
      if (opts.verbose) io.err(`[${host.name}] facts gathered and compared in ${elapsed(start).toFixed(0)} ms\n`);
      if (isFailure(r)) return { name: host.name, status: r.status, error: r.error };
      return r.length === 0 ? { name: host.name, status: 'ok', findings: [] } : { name: host.name, status: 'drift', findings: r };
    },
    { forks: opts.forks },
  );
  return { lock: { path: lockPath, digest: lock.digest }, hosts: run.results.map((r) => r.result) };
}

export async function runCheck(opts: CheckOptions, io: Io): Promise<number> {
  const lock = await loadLock(opts.lockfile);
  const report = await checkFleet(lock, opts.lockfile, opts, io);
  io.out(renderCheck(report, opts.format, opts.color));
  return checkExitCode(report);
}
