import { isHostFailure } from '../fleet/host-error.js';
import { runFleet } from '../fleet/run.js';
import { readTransactions } from '../rollback/host.js';
import { historyEntries } from '../rollback/planner.js';
import { renderHistory, type HistoryHost } from '../rollback/report.js';
import type { CommandDeps, CommonOptions } from './context.js';
import { prepareRun } from './prepare.js';

export interface HistoryOptions extends CommonOptions {
  format: 'text' | 'json';
}

/** Lists each host's transactions (newest first) and the disk they take; changes nothing. */
export async function runHistory(opts: HistoryOptions, deps: CommandDeps): Promise<number> {
  const run = await prepareRun(opts, deps);
  const fleet = await runFleet(
    run.hosts,
    async (host): Promise<HistoryHost> => {
      const r = await run.withHost(host, (t) => readTransactions(t), 'read transactions');
      if (isHostFailure(r)) return r;
      return {
        name: host.name,
        status: 'ok',
        diskBytes: r.diskBytes,
        transactions: historyEntries(r.manifests),
        unreadable: r.unreadable,
      };
    },
    { forks: opts.forks },
  );
  const results = fleet.results.map((r) => r.result);
  deps.io.out(renderHistory(results, opts.format, opts.color));
  return results.some((h) => h.status !== 'ok') ? 3 : 0;
}
