import { hostError, type HostError, type HostOutcome, type TaskRecord } from '../fleet/host-result.js';
import { MODULES } from './modules/registry.js';
import type { ModuleContext, TaskResult } from './modules/types.js';
import type { HostPlan } from '../plan/plan-file.js';
import type { ResolvedTask } from './playbook.js';

/** What apply did to one host (the shared host-result union): never an exception. */
export type { HostOutcome, TaskRecord } from '../fleet/host-result.js';

/**
 * True when `tasks` would run no command on a host with this plan: the plan is `ok` with no
 * actions, and each task runs only on changes or is a module idle without actions.
 */
export function runsNothing(tasks: readonly ResolvedTask[], plan: HostPlan): boolean {
  if (plan.status !== 'ok' || plan.actions.length > 0) return false;
  return tasks.every((t) => t.when === 'changes' || MODULES.get(t.module)?.idleWithoutActions === true);
}

/** Runs the tasks in order on one host; the first failing task ends the host's run. */
export async function runPlaybook(
  tasks: readonly ResolvedTask[],
  base: Omit<ModuleContext, 'changedBy'>,
): Promise<HostOutcome> {
  const records: TaskRecord[] = [];
  const changedBy = new Set<string>();
  const ctx: ModuleContext = { ...base, changedBy };
  const hasChanges = ctx.plan.actions.length > 0;
  for (const task of tasks) {
    if (task.when === 'changes' && !hasChanges) {
      records.push({
        name: task.name,
        module: task.module,
        status: 'skipped',
        message: 'no changes on this host',
        durationMs: 0,
      });
      continue;
    }
    const mod = MODULES.get(task.module)!;
    const start = process.hrtime.bigint();
    let result: TaskResult;
    let thrown: HostError | undefined;
    try {
      result = await mod.run(ctx, task.args);
    } catch (err) {
      thrown = hostError(err, task.name);
      result = { status: 'failed', message: thrown.message };
    }
    const durationMs = Number(process.hrtime.bigint() - start) / 1e6;
    records.push({
      name: task.name,
      module: task.module,
      status: result.status,
      message: result.message,
      durationMs,
    });
    if (result.status === 'changed') changedBy.add(task.module);
    ctx.verbose(`${task.module}: ${result.status} in ${durationMs.toFixed(0)} ms — ${result.message}`);
    if (result.status === 'failed') {
      const error = thrown ?? {
        code: 'task-failed',
        message: result.message,
        ...(result.hint ? { hint: result.hint } : {}),
        step: task.name,
      };
      return { name: ctx.host, status: 'failed', error, tasks: records, blocked: ctx.plan.blocked };
    }
  }
  const changed = records.some((r) => r.status === 'changed');
  if (ctx.plan.blocked.length > 0)
    return { name: ctx.host, status: 'blocked', tasks: records, blocked: ctx.plan.blocked };
  return { name: ctx.host, status: changed ? 'changed' : 'ok', tasks: records, blocked: [] };
}
