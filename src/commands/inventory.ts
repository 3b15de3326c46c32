import { renderInventory, type InventoryFormat } from '../report/inventory-report.js';
import type { CommandDeps, CommonOptions } from './context.js';
import { prepareRun } from './prepare.js';

export interface InventoryOptions extends CommonOptions {
  format: InventoryFormat;
}

/** `criu-lock inventory`: the resolved hosts and their connection settings; connects nowhere. */
export async function runInventory(opts: InventoryOptions, deps: CommandDeps): Promise<number> {
  const run = await prepareRun(opts, deps);
  deps.io.out(renderInventory(run.hosts, run.inventory, opts.format));
  return 0;
}
