import type { z } from 'zod';
import type { Lockfile } from '../../lock/lockfile.js';
import type { HostPlan } from '../../plan/plan-file.js';
import type { Transport } from '../../transport/types.js';
import type { TransactionContext } from '../../rollback/apply-transaction.js';

export interface ModuleContext {
  host: string;
  transport: Transport;
  lock: Lockfile;
  /** The host's reviewed (or fresh) plan; blocked packages are already left out when skipping. */
  plan: HostPlan;
  /** Rendered pin file for the lock. */
  pins: string;
  /** Local package store directory: the .debs of `source: store` actions (store_upload). */
  storeDir?: string;
  /** --check: report what would change, change nothing. */
  checkMode: boolean;
  /** Modules whose tasks reported `changed` so far on this host (set by the playbook runner). */
  changedBy: ReadonlySet<string>;
  verbose: (message: string) => void;
  /** The rollback transaction this apply records on the host; undefined with --no-capture. */
  transaction?: TransactionContext | undefined;
}

export type TaskStatus = 'ok' | 'changed' | 'skipped' | 'failed';

export interface TaskResult {
  status: TaskStatus;
  message: string;
  /** What to do next, for a failure (e.g. a command the transport lost). */
  hint?: string;
}

/** A playbook module: validated arguments, check mode, idempotent. */
export interface Module<A> {
  name: string;
  args: z.ZodType<A, unknown>;
  /** See defineModule. */
  idleWithoutActions?: boolean;
  run(ctx: ModuleContext, args: A): Promise<TaskResult>;
}

/** Builds a module with its argument type inferred from the schema. */
export function defineModule<S extends z.ZodType>(m: {
  name: string;
  args: S;
  /**
   * True when the module runs no command on a host whose plan is `ok` with no actions: apply may
   * then finish such a host at preflight, and free its lock and connection (issue 14).
   */
  idleWithoutActions?: boolean;
  run(ctx: ModuleContext, args: z.infer<S>): Promise<TaskResult>;
}): Module<z.infer<S>> {
  return m as Module<z.infer<S>>;
}
