import { runFleet } from '../fleet/run.js';
import { loadInventory } from '../inventory/load.js';
import { selectHosts } from '../inventory/limit.js';
import { readTransactions } from '../rollback/host.js';
import { historyEntries } from '../rollback/planner.js';
import { renderHistory, type HistoryHost } from '../rollback/report.js';
import { isFailure, sshOptions, withHost, type CommonOptions, type Io } from './context.js';

export interface HistoryOptions extends CommonOptions {
  format: 'text' | 'json';
}

/** Lists each host's transactions (newest first) and the disk they take; changes nothing. */
export async function runHistory(opts: HistoryOptions, io: Io): Promise<number> {
  const inv = await loadInventory(opts.inventory);
  const hosts = selectHosts(inv, opts.limit);
  const ssh = sshOptions(opts);
  const run = await runFleet(
    hosts,
    async (host): Promise<HistoryHost> => {
      const r = await withHost(host, ssh, (t) => readTransactions(t));
      if (isFailure(r)) return { name: host.name, status: r.status, error: r.error };
      return { name: host.name, status: 'ok', diskBytes: r.diskBytes, transactions: historyEntries(r.manifests), unreadable: r.unreadable };
    },
    { forks: opts.forks },
  );
  const results = run.results.map((r) => r.result);
  io.out(renderHistory(results, opts.format, opts.color));
  return results.some((h) => h.status !== 'ok') ? 3 : 0;
}
