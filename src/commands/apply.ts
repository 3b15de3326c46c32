import { randomBytes } from 'node:crypto';
import type { TransactionContext } from '../rollback/apply-transaction.js';
import { makeTxId } from '../rollback/manifest.js';
import { loadPlaybook, type ResolvedTask } from '../apply/playbook.js';
import type { ModuleContext } from '../apply/modules/types.js';
import { runPlaybook, runsNothing } from '../apply/run-playbook.js';
import { CriuLockError } from '../errors.js';
import { errorText, hostFailure, isHostFailure } from '../fleet/host-error.js';
import type { ApplyReport, HostOutcome } from '../fleet/host-result.js';
import { runFleet } from '../fleet/run.js';
import type { InventoryHost } from '../inventory/types.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { loadPlan, type HostPlan, type PlanFile } from '../plan/plan-file.js';
import { renderPins } from '../plan/pins.js';
import type { StoreIndex } from '../plan/planner.js';
import { storeDir, storeIndexFor } from '../store/manifest.js';
import { savedPlanRefusal } from '../plan/check-saved-plan.js';
import { planWithTransaction } from '../facts/simulate.js';
import { preflightHost } from '../apply/preflight.js';
import type { HostLock } from '../apply/host-lock.js';
import { renderApply } from '../report/apply-report.js';
import { renderPlanText } from '../report/plan-report.js';
import type { Transport } from '../transport/types.js';
import { errLine, fleetStatus, progress, type CommandDeps, type CommonOptions } from './context.js';
import { onInterrupt } from './interrupt.js';
import { prepareForPlan } from './host-steps.js';
import { runProbe } from '../facts/gather.js';
import { prepareRun, type PreparedRun } from './prepare.js';

export type { ApplyReport } from '../fleet/host-result.js';

export interface ApplyOptions extends CommonOptions {
  lockfile: string;
  planfile?: string | undefined;
  check: boolean;
  yes: boolean;
  serial?: string | undefined;
  maxFailPercentage?: number | undefined;
  skipUnavailable: boolean;
  playbook?: string | undefined;
  format: 'text' | 'json';
  /** Package store directory (default: criu-lock.debs/ beside the lockfile, when it exists). */
  store?: string | undefined;
  /** Record a rollback transaction before changing a host (false: --no-capture). */
  capture?: boolean | undefined;
  /** Transactions kept per host (--keep-transactions, default 5). */
  keepTransactions?: number | undefined;
}

/**
 * After preflight a host is either finished (its outcome is known), ready for the playbook, or
 * settled: its playbook runs no command, so it already ran, and its lock and connection are gone.
 * A settled host still takes its place in --serial batches, as a ready one does.
 */
type Preflight =
  | { host: InventoryHost; state: 'done'; outcome: HostOutcome; plan?: HostPlan }
  | { host: InventoryHost; state: 'settled'; outcome: HostOutcome; plan: HostPlan }
  | {
      host: InventoryHost;
      state: 'ready';
      transport: Transport;
      plan: HostPlan;
      hostLock?: HostLock | undefined;
    };

function staleReason(planned: HostPlan, current: string): string | undefined {
  if (planned.fingerprint === null) return `it was ${planned.status} when the plan was made`;
  if (planned.fingerprint !== current) return 'its dpkg state or apt pins changed since the plan was made';
  return undefined;
}

/** Hosts that may proceed past a blocked plan: only with --skip-unavailable, only for unavailable versions. */
function mayProceed(plan: HostPlan, skipUnavailable: boolean): boolean {
  if (plan.blocked.length === 0) return true;
  return skipUnavailable && plan.blocked.every((b) => b.reason === 'version-unavailable');
}

export function applyExitCode(report: ApplyReport): number {
  const bad = report.hosts.some((h) => isHostFailure(h) || h.status === 'blocked');
  return bad || report.notStarted.length > 0 ? 3 : 0;
}

/** The plan file's hosts must all still be in the inventory; the run is limited to them. */
function hostsOfPlan(
  run: PreparedRun,
  planFile: PlanFile | undefined,
  inventoryPath: string,
): InventoryHost[] {
  if (!planFile) return run.hosts;
  const missing = planFile.hosts
    .filter((h) => !run.inventory.hosts.some((x) => x.name === h.name))
    .map((h) => h.name);
  if (missing.length > 0) {
    throw new CriuLockError(
      'stale-plan',
      `plan is stale: host(s) ${missing.join(', ')} are no longer in ${inventoryPath}`,
      { hint: 'run criu-lock plan again' },
    );
  }
  const planned = new Set(planFile.hosts.map((h) => h.name));
  const hosts = run.hosts.filter((h) => planned.has(h.name));
  // Nothing to apply is not "everything applied": exit 0 with 0 hosts would read as success.
  if (hosts.length === 0) {
    const names = planFile.hosts.map((h) => h.name);
    throw new CriuLockError(
      'usage',
      names.length === 0
        ? 'the plan file names no host'
        : `--limit selects none of the plan's hosts (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`,
      {
        hint:
          names.length === 0
            ? 'save a plan of the hosts to apply: criu-lock plan -o FILE'
            : 'limit the run to hosts the plan names, or plan those hosts',
      },
    );
  }
  return hosts;
}

/**
 * Phase 1, per host: connect (the connection is kept for the whole run), gather facts, plan
 * afresh, compare with the saved plan, decide whether the host may be touched.
 */
async function preflight(
  run: PreparedRun,
  host: InventoryHost,
  lock: Lockfile,
  pins: string,
  opts: ApplyOptions,
  saved: HostPlan | undefined,
  store: StoreIndex | undefined,
  tasks: readonly ResolvedTask[],
): Promise<Preflight> {
  const done = (outcome: HostOutcome): Preflight => ({ host, state: 'done', outcome });
  let transport: Transport;
  const connectStart = run.clock.monotonicMs();
  try {
    transport = await run.connect(host);
    run.log(host.name, `connected in ${run.since(connectStart).toFixed(0)} ms`);
  } catch (err) {
    return done({ ...hostFailure(host.name, err, 'connect'), tasks: [], blocked: [] });
  }
  // Host lock, and an earlier apply's apt transaction, before any fact is read (src/apply/preflight.ts).
  const lockStart = run.clock.monotonicMs();
  // The facts probe runs in the lock's own command once the lock is ours: one round trip for both.
  const probe = prepareForPlan(host.name, lock);
  const locked = await preflightHost(transport, {
    check: opts.check,
    say: (m) => errLine(run.io, `[${host.name}] ${m}`),
    then: probe,
  });
  if (locked.status === 'refused') {
    await transport.close().catch(() => undefined);
    return done({
      name: host.name,
      status: 'failed',
      error: { code: 'host-lock', message: locked.message, step: 'host lock' },
      tasks: [],
      blocked: [],
    });
  }
  const hostLock = locked.lock;
  if (hostLock)
    run.log(
      host.name,
      `host lock taken, no apt transaction pending${locked.then ? ', facts read' : ''}, in ${run.since(lockStart).toFixed(0)} ms`,
    );
  const release = async (): Promise<void> => {
    await hostLock?.release();
    await transport.close().catch(() => undefined);
  };
  let plan: HostPlan;
  try {
    // The plan carries the host's fingerprint; the facts themselves are not kept (memory).
    const start = run.clock.monotonicMs();
    const facts = await probe.finish(transport, locked.then ?? (await runProbe(transport, probe)));
    plan = await planWithTransaction(transport, lock, facts, pins, store);
    run.log(host.name, `preflight facts gathered and apt simulated in ${run.since(start).toFixed(0)} ms`);
  } catch (err) {
    await release();
    return done({ ...hostFailure(host.name, err, 'gather facts'), tasks: [], blocked: [] });
  }
  if (saved) {
    const why = staleReason(saved, plan.fingerprint ?? '');
    // Nothing of the file is trusted: it must equal the fresh plan, which is the one that runs.
    const refused = why ? undefined : savedPlanRefusal(lock, saved, plan);
    if (why || refused) {
      await release();
      return done({
        name: host.name,
        status: 'failed',
        error: why
          ? {
              code: 'stale-plan',
              message: `plan is stale for host ${host.name}: ${why}`,
              hint: 'run criu-lock plan again',
              step: 'preflight',
            }
          : {
              code: 'plan',
              message: `plan refused for host ${host.name}: ${refused}`,
              hint: 're-create it with criu-lock plan -o FILE; plan files are checked, not trusted',
              step: 'preflight',
            },
        tasks: [],
        blocked: [],
      });
    }
  }
  if (!mayProceed(plan, opts.skipUnavailable)) {
    await release();
    return { ...done({ name: host.name, status: 'blocked', tasks: [], blocked: plan.blocked }), plan };
  }
  if (runsNothing(tasks, plan)) {
    // Nothing will run on this host: its outcome is known now, so neither its lock nor its
    // connection is held for the rest of the run (issue 14: a no-op apply of 1,000 hosts kept
    // 1,000 connections open to the end).
    const outcome = await runPlaybook(tasks, playbookContext(run, opts, host, transport, lock, plan, pins));
    await release();
    return { host, state: 'settled', outcome, plan };
  }
  return { host, state: 'ready', transport, plan, hostLock };
}

/** What the playbook's modules get for one host (without a rollback transaction). */
function playbookContext(
  run: PreparedRun,
  opts: ApplyOptions,
  host: InventoryHost,
  transport: Transport,
  lock: Lockfile,
  plan: HostPlan,
  pins: string,
): Omit<ModuleContext, 'changedBy'> {
  return {
    host: host.name,
    transport,
    lock,
    plan,
    pins,
    storeDir: storeDir(opts.lockfile, opts.store),
    checkMode: opts.check,
    verbose: (m) => run.log(host.name, m),
  };
}

/** A rollback transaction for one host: a sortable id from the run's clock. */
function newTransaction(run: PreparedRun, keep: number): TransactionContext {
  const now = run.clock.now();
  return { id: makeTxId(now, randomBytes(3).readUIntBE(0, 3)), keep, now };
}

export async function applyFleet(
  run: PreparedRun,
  lock: Lockfile,
  opts: ApplyOptions,
  tasks: readonly ResolvedTask[],
  planFile?: PlanFile,
  stop: () => boolean = () => false,
): Promise<ApplyReport> {
  const { io } = run;
  const hosts = hostsOfPlan(run, planFile, opts.inventory);
  const pins = renderPins(lock);
  const store = storeIndexFor(lock, opts.lockfile, opts.store);
  const saved = (name: string): HostPlan | undefined => planFile?.hosts.find((h) => h.name === name);
  // The long phase on a big fleet (connect, lock, facts, simulation): a status line on a terminal.
  const status = fleetStatus(
    io,
    'preflight',
    hosts.length,
    (p: Preflight) => p.state === 'done' && isHostFailure(p.outcome),
  );
  const preRun = await runFleet(
    hosts,
    (host) => preflight(run, host, lock, pins, opts, saved(host.name), store, tasks),
    { forks: opts.forks, onResult: (p) => status.done(p), stop },
  );
  const pre = preRun.results.map((r) => r.result);
  status.end();
  const ready = pre.filter((p) => p.state !== 'done');
  const open = ready.filter((p) => p.state === 'ready');
  try {
    if (!planFile && !opts.yes && !opts.check) {
      const pending = ready.filter((p) => p.plan.actions.length > 0);
      if (pending.length > 0) {
        io.out(
          renderPlanText(
            {
              planVersion: 1,
              lock: { path: opts.lockfile, digest: lock.digest },
              hosts: pre.flatMap((p) => (p.plan ? [p.plan] : [])),
            },
            opts.color,
          ),
        );
        const ok = io.confirm
          ? await io.confirm(`Apply these changes to ${pending.length} host(s)? Only "yes" is accepted: `)
          : false;
        if (!ok)
          throw new CriuLockError('usage', 'apply cancelled; nothing was changed', {
            hint: 'answer "yes", or pass --yes, or apply a reviewed plan file',
          });
      }
    }

    const capture = opts.capture !== false;
    let done = 0;
    const outcomes = new Map<string, HostOutcome>();
    const fleet = await runFleet(
      ready,
      async (p): Promise<HostOutcome> => {
        if (p.state === 'settled') return p.outcome;
        const transaction = capture ? newTransaction(run, opts.keepTransactions ?? 5) : undefined;
        const outcome = await runPlaybook(tasks, {
          ...playbookContext(run, opts, p.host, p.transport, lock, p.plan, pins),
          transaction,
        });
        return transaction?.manifest ? { ...outcome, transaction: transaction.id } : outcome;
      },
      {
        forks: opts.forks,
        serial: opts.serial,
        maxFailPercentage: opts.maxFailPercentage,
        isFailure: isHostFailure,
        stop,
        onResult: (o) => {
          done++;
          if (opts.format === 'text')
            progress(
              io,
              `[${done}/${ready.length}] ${o.name}: ${o.status}${isHostFailure(o) ? ` — ${errorText(o.error)}` : ''}`,
            );
        },
      },
    );
    for (const r of fleet.results) outcomes.set(r.item.host.name, r.result);
    const notStarted = new Set([
      ...preRun.skipped.map((h) => h.name),
      ...fleet.skipped.map((p) => p.host.name),
    ]);
    return {
      lock: { path: opts.lockfile, digest: lock.digest },
      check: opts.check,
      capture: opts.capture !== false,
      hosts: pre.flatMap((p) => {
        const o = p.state === 'done' ? p.outcome : outcomes.get(p.host.name);
        return o && !notStarted.has(p.host.name) ? [o] : [];
      }),
      notStarted: [...notStarted],
      ...(stop() && notStarted.size > 0 ? { interrupted: true } : {}),
    };
  } finally {
    const releaseStart = run.clock.monotonicMs();
    await Promise.all(open.map((p) => (p.hostLock ? p.hostLock.release() : Promise.resolve())));
    run.log('*', `host locks released in ${run.since(releaseStart).toFixed(0)} ms`);
    await Promise.all(open.map((p) => p.transport.close().catch(() => undefined)));
  }
}

export async function runApply(opts: ApplyOptions, deps: CommandDeps): Promise<number> {
  const { io } = deps;
  if (!opts.planfile && !opts.yes && !opts.check && !(io.isTTY && io.confirm)) {
    throw new CriuLockError(
      'usage',
      'apply without a plan file needs confirmation, and there is no terminal to ask on',
      {
        hint: 'pass --yes, or review a plan first: criu-lock plan -o plan.json && criu-lock apply plan.json',
      },
    );
  }
  const lock = await loadLock(opts.lockfile);
  let planFile: PlanFile | undefined;
  if (opts.planfile) {
    planFile = await loadPlan(opts.planfile);
    if (planFile.lock.digest !== lock.digest) {
      throw new CriuLockError(
        'stale-plan',
        `plan is stale: it was made for lock ${planFile.lock.digest}, ${opts.lockfile} is now ${lock.digest}`,
        {
          hint: 'run criu-lock plan -o FILE again with the current lockfile',
        },
      );
    }
  }
  const tasks = await loadPlaybook(opts.playbook);
  const run = await prepareRun(opts, deps);
  const interrupt = onInterrupt(io);
  let report: ApplyReport;
  try {
    report = await applyFleet(run, lock, opts, tasks, planFile, interrupt.stopped);
  } finally {
    interrupt.dispose();
  }
  io.out(renderApply(report, opts.format, opts.color));
  return applyExitCode(report);
}
