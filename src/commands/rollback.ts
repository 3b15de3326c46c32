import { randomBytes } from 'node:crypto';
import type { HostLock } from '../apply/host-lock.js';
import { preflightHost } from '../apply/preflight.js';
import { CriuLockError } from '../errors.js';
import { hostFailure } from '../fleet/host-error.js';
import { runFleet } from '../fleet/run.js';
import type { InventoryHost } from '../inventory/types.js';
import { readCurrent, readTransactions } from '../rollback/host.js';
import { makeTxId, txDir, TxId, type TxManifest } from '../rollback/manifest.js';
import {
  describeChange,
  lastNotCompleted,
  olderTransaction,
  planRollback,
  selectTarget,
  type CurrentState,
  type RollbackPlan,
} from '../rollback/planner.js';
import { renderRollback, type RollbackHostResult, type RollbackSummary } from '../rollback/report.js';
import { capturedDebsProblem, executeRollback, RollbackStepError } from '../rollback/rollback-host.js';
import type { Transport } from '../transport/types.js';
import { errLine, progress, type CommandDeps, type CommonOptions } from './context.js';
import { onInterrupt } from './interrupt.js';
import { prepareRun } from './prepare.js';

export interface RollbackOptions extends CommonOptions {
  /** A transaction id; undefined: the most recent one (--last). */
  to?: string | undefined;
  check: boolean;
  yes: boolean;
  force: boolean;
  keepTransactions: number;
  format: 'text' | 'json';
}

interface Session {
  host: InventoryHost;
  transport?: Transport;
  /** Held from before the host's transactions are read until its rollback ends (not with --check). */
  hostLock?: HostLock | undefined;
  plan?: RollbackPlan;
  now?: CurrentState & { arch: string };
  result?: RollbackHostResult;
}

function summarise(plan: RollbackPlan, now: CurrentState): RollbackSummary {
  return {
    install: plan.install.map((i) => ({
      package: i.package,
      from: now.versions.get(i.package) ?? null,
      to: i.version,
    })),
    remove: plan.remove.map((r) => ({ package: r, from: now.versions.get(r) ?? null })),
    pins: plan.pins,
    forced: plan.changes.map(describeChange),
  };
}

export async function runRollback(opts: RollbackOptions, deps: CommandDeps): Promise<number> {
  const { io } = deps;
  if (opts.to !== undefined && !TxId.safeParse(opts.to).success) {
    throw new CriuLockError('usage', `--to ${JSON.stringify(opts.to)} is not a transaction id`, {
      hint: 'ids look like 20261129T011233Z-a1b2c3; criu-lock history lists them',
    });
  }
  if (!Number.isInteger(opts.keepTransactions) || opts.keepTransactions < 1) {
    throw new CriuLockError('usage', '--keep-transactions must be a positive integer', {
      hint: 'e.g. --keep-transactions 5',
    });
  }
  if (!opts.yes && !opts.check && !(io.isTTY && io.confirm)) {
    throw new CriuLockError('usage', 'rollback needs confirmation, and there is no terminal to ask on', {
      hint: 'pass --yes, or look first with --check',
    });
  }
  const run = await prepareRun(opts, deps);
  const sessions: Session[] = run.hosts.map((host) => ({ host }));
  const interrupt = onInterrupt(io);
  try {
    // Phase 1: read each host's transactions and state, decide.
    await runFleet(
      sessions,
      async (s) => {
        try {
          s.transport = await run.connect(s.host);
        } catch (err) {
          s.result = { ...hostFailure(s.host.name, err, 'connect'), target: null };
          return;
        }
        try {
          // Same rule as apply: one criu-lock change per host at a time, and an apt transaction an
          // earlier run left behind is waited for (and reported) before the state is read.
          const pre = await preflightHost(s.transport, {
            check: opts.check,
            say: (m) => errLine(run.io, `[${s.host.name}] ${m}`),
          });
          if (pre.status === 'refused') {
            s.result = {
              name: s.host.name,
              status: 'failed',
              error: { code: 'host-lock', message: pre.message, step: 'host lock' },
              target: null,
            };
            return;
          }
          s.hostLock = pre.lock;
          const txs = await readTransactions(s.transport);
          const target = selectTarget(txs.manifests, opts.to);
          if (!target.ok) {
            // A transaction cut off before its manifest was written is there, but not readable.
            const unreadable = txs.unreadable.length
              ? `; ${txs.unreadable.length} transaction director${txs.unreadable.length === 1 ? 'y is' : 'ies are'} unreadable (${txs.unreadable
                  .slice(0, 3)
                  .map((u) => `${u.id}: ${u.error}`)
                  .join('; ')}), see criu-lock history`
              : '';
            s.result = {
              name: s.host.name,
              status: 'failed',
              error: {
                code: 'rollback',
                message: `${target.error}${unreadable}`,
                hint: target.hint,
                step: 'select',
              },
              target: null,
            };
            return;
          }
          const read = (t: TxManifest): Promise<CurrentState & { arch: string }> =>
            readCurrent(
              s.transport!,
              t.packages.map((p) => p.package),
              t.pins.path,
            );
          let { tx, rolledBackBy } = target;
          s.now = await read(tx);
          // --last and transactions that never completed (lastNotCompleted).
          const passed: string[] = [];
          for (;;) {
            const choice = opts.to === undefined && !opts.force ? lastNotCompleted(tx, s.now) : 'take';
            if (choice === 'refuse') {
              s.result = {
                name: s.host.name,
                status: 'refused',
                target: tx.id,
                reason: `the newest transaction ${tx.id}${tx.kind === 'rollback' ? ` (a rollback of ${tx.rollbackOf ?? '?'})` : ''} never completed, yet the host is as it would have left it (its apt job finished after the connection was lost); name what to undo: --to ${tx.id} undoes it`,
                changes: [],
              };
              return;
            }
            const older = choice === 'pass' ? olderTransaction(txs.manifests, tx.id) : undefined;
            if (!older) break;
            passed.push(tx.id);
            ({ tx, rolledBackBy } = older);
            s.now = await read(tx);
          }
          if (passed.length > 0)
            errLine(
              io,
              `[${s.host.name}] passing over ${passed.join(', ')}: never completed, and nothing of it reached the host`,
            );
          const decision = planRollback(tx, s.now, { force: opts.force, rolledBackBy });
          if (decision.type === 'refused') {
            s.result = {
              name: s.host.name,
              status: 'refused',
              target: tx.id,
              reason: decision.reason,
              changes: decision.changes.map(describeChange),
              ...(decision.remedy ? { remedy: decision.remedy } : {}),
            };
          } else if (decision.plan.nothingToDo) {
            s.result = {
              name: s.host.name,
              status: 'ok',
              target: tx.id,
              message: `already as captured before transaction ${tx.id}`,
            };
          } else if (opts.check) {
            // What the real run checks first, read only: a --check that passes is a rollback that can start.
            const debs = await capturedDebsProblem(s.transport, decision.plan);
            s.result = debs
              ? {
                  name: s.host.name,
                  status: 'failed',
                  error: {
                    code: 'rollback',
                    message: debs,
                    hint: `the transaction's .debs under ${txDir(tx.id)} were removed or changed on the host; roll back to another transaction (criu-lock history), or converge with criu-lock apply`,
                    step: 'check .debs',
                  },
                  target: tx.id,
                }
              : {
                  name: s.host.name,
                  status: 'would-roll-back',
                  target: tx.id,
                  summary: summarise(decision.plan, s.now),
                };
          } else {
            s.plan = decision.plan;
          }
        } catch (err) {
          s.result = { ...hostFailure(s.host.name, err, 'read'), target: null };
        }
      },
      { forks: opts.forks, stop: interrupt.stopped },
    );

    const pending = sessions.filter((s) => !s.result && s.plan);
    if (pending.length > 0 && !opts.yes) {
      io.out(
        renderRollback(
          pending.map((s) => ({
            name: s.host.name,
            status: 'would-roll-back',
            target: s.plan!.tx.id,
            summary: summarise(s.plan!, s.now!),
          })),
          { format: 'text', check: true, color: opts.color },
        ),
      );
      const ok = io.confirm
        ? await io.confirm(`Roll back ${pending.length} host(s)? Only "yes" is accepted: `)
        : false;
      if (!ok)
        throw new CriuLockError('usage', 'rollback cancelled; nothing was changed', {
          hint: 'answer "yes", or pass --yes',
        });
    }

    // Phase 2: one rollback transaction per host.
    const fleet = await runFleet(
      pending,
      async (s): Promise<RollbackHostResult> => {
        const plan = s.plan!;
        const date = run.clock.now();
        const id = makeTxId(date, randomBytes(3).readUIntBE(0, 3));
        try {
          const r = await executeRollback(s.transport!, s.host.name, plan, s.now!, {
            id,
            date,
            keep: opts.keepTransactions,
            lockTimeout: 120,
            nativeArch: s.now!.arch,
          });
          return {
            name: s.host.name,
            status: 'rolled-back',
            target: plan.tx.id,
            transaction: r.transaction,
            diskBytes: r.diskBytes,
            summary: summarise(plan, s.now!),
          };
        } catch (err) {
          const step = err instanceof RollbackStepError ? err.step : 'rollback';
          const f = hostFailure(s.host.name, err, step);
          return { ...f, error: { ...f.error, code: 'rollback' }, target: plan.tx.id };
        }
      },
      {
        forks: opts.forks,
        onResult: (r) => {
          if (opts.format === 'text') progress(io, `${r.name}: ${r.status}`);
        },
        stop: interrupt.stopped,
      },
    );
    for (const r of fleet.results) r.item.result = r.result;
    // Hosts an interrupt kept from starting (either phase): nothing was changed on them.
    for (const s of sessions)
      if (!s.result && interrupt.stopped())
        s.result = {
          name: s.host.name,
          status: 'failed',
          error: {
            code: 'rollback',
            message: 'not started: the run was interrupted; nothing was changed',
            step: 'interrupted',
          },
          target: s.plan?.tx.id ?? null,
        };
    const results = sessions.flatMap((s) => (s.result ? [s.result] : []));
    io.out(renderRollback(results, { format: opts.format, check: opts.check, color: opts.color }));
    return results.some((r) => r.status === 'refused' || r.status === 'failed' || r.status === 'unreachable')
      ? 3
      : 0;
  } finally {
    interrupt.dispose();
    await Promise.all(
      sessions.map((s) => (s.hostLock ? s.hostLock.release().catch(() => undefined) : Promise.resolve())),
    );
    await Promise.all(
      sessions.map((s) => (s.transport ? s.transport.close().catch(() => undefined) : Promise.resolve())),
    );
  }
}
