import { CriuLockError } from '../errors.js';
import { runFleet } from '../fleet/run.js';
import { loadInventory } from '../inventory/load.js';
import { selectHosts } from '../inventory/limit.js';
import type { InventoryHost } from '../inventory/types.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { loadPlan, type HostPlan, type PlanFile } from '../plan/plan-file.js';
import { savedPlanRefusal } from '../plan/check-saved-plan.js';
import { planWithTransaction } from '../facts/simulate.js';
import { preflightHost } from '../apply/preflight.js';
import type { HostLock } from '../apply/host-lock.js';
import { renderPins } from '../plan/pins.js';
import { renderPlanText } from '../report/plan-report.js';
import { renderApply } from '../report/apply-report.js';
import { openTransport } from '../transport/open.js';
import type { Transport } from '../transport/types.js';
import { loadPlaybook, type ResolvedTask } from '../apply/playbook.js';
import { runPlaybook, type HostOutcome } from '../apply/run-playbook.js';
import { elapsed, toFailure, sshOptions, type CommonOptions, type Io } from './context.js';
import { gatherForPlan } from './plan.js';

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
}

interface Session {
  host: InventoryHost;
  transport?: Transport;
  hostLock?: HostLock;
  plan?: HostPlan;
  /** Set when the host is done before the playbook runs (unreachable, stale, blocked). */
  outcome?: HostOutcome;
}

export interface ApplyReport {
  lock: { path: string; digest: string };
  check: boolean;
  hosts: HostOutcome[];
  /** Hosts not started because a batch failed more than --max-fail-percentage. */
  notStarted: string[];
}

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
  const bad = report.hosts.some((h) => h.status === 'failed' || h.status === 'unreachable' || h.status === 'blocked');
  return bad || report.notStarted.length > 0 ? 3 : 0;
}

export async function applyFleet(lock: Lockfile, opts: ApplyOptions, io: Io, tasks: readonly ResolvedTask[], planFile?: PlanFile): Promise<ApplyReport> {
  const inv = await loadInventory(opts.inventory);
  let hosts = selectHosts(inv, opts.limit);
  if (planFile) {
    const planned = new Set(planFile.hosts.map((h) => h.name));
    const missing = planFile.hosts.filter((h) => !inv.hosts.some((x) => x.name === h.name)).map((h) => h.name);
    if (missing.length > 0) {
      throw new CriuLockError('stale-plan', `plan is stale: host(s) ${missing.join(', ')} are no longer in ${opts.inventory}`, { hint: 'run criu-lock plan again' });
    }
    hosts = hosts.filter((h) => planned.has(h.name));
  }
  const pins = renderPins(lock);
  const ssh = sshOptions(opts);
  const sessions: Session[] = hosts.map((host) => ({ host }));

  // Phase 1: one connection per host, kept for the whole run; facts and a fresh plan.
  await runFleet(
    sessions,
    async (s) => {
      try {
        s.transport = await openTransport(s.host, ssh);
      } catch (err) {
        const f = toFailure(err, 'connect');
        s.outcome = { name: s.host.name, status: 'unreachable', error: f.error, tasks: [], blocked: [] };
        return;
      }
      // Host lock and an earlier apply's apt transaction, before any fact is read (src/apply/preflight.ts).
      const pre = await preflightHost(s.transport, { check: opts.check, say: (m) => io.err(`[${s.host.name}] ${m}\n`) });
      if (pre.status === 'refused') {
        s.outcome = { name: s.host.name, status: 'failed', step: 'host lock', error: pre.message, tasks: [], blocked: [] };
        return;
      }
      s.hostLock = pre.lock;
      try {
        // The plan carries the host's fingerprint; the facts themselves are not kept (memory).
        const start = process.hrtime.bigint();
        s.plan = await planWithTransaction(s.transport, lock, await gatherForPlan(s.transport, lock), pins);
        if (opts.verbose) io.err(`[${s.host.name}] preflight facts gathered in ${elapsed(start).toFixed(0)} ms\n`);
      } catch (err) {
        s.outcome = { name: s.host.name, status: 'failed', step: 'gather facts', error: toFailure(err, 'work').error, tasks: [], blocked: [] };
      }
    },
    { forks: opts.forks },
  );

  try {
    for (const s of sessions) {
      if (s.outcome || !s.plan) continue;
      if (planFile) {
        const planned = planFile.hosts.find((h) => h.name === s.host.name)!;
        const stale = staleReason(planned, s.plan.fingerprint ?? '');
        const refused = stale ? undefined : savedPlanRefusal(lock, planned, s.plan);
        if (stale || refused) {
          s.outcome = {
            name: s.host.name, status: 'failed', step: 'preflight', tasks: [], blocked: [],
            error: stale
              ? `plan is stale for host ${s.host.name}: ${stale}; run criu-lock plan again`
              : `plan refused for host ${s.host.name}: ${refused}; re-create it with criu-lock plan -o FILE`,
          };
          continue;
        }
        // Equal to the fresh plan, which is the one that runs: nothing of the file is trusted.
      }
      if (!mayProceed(s.plan, opts.skipUnavailable)) {
        s.outcome = { name: s.host.name, status: 'blocked', tasks: [], blocked: s.plan.blocked };
      }
    }

    if (!planFile && !opts.yes && !opts.check) {
      const pending = sessions.filter((s) => !s.outcome && s.plan && s.plan.actions.length > 0);
      if (pending.length > 0) {
        io.out(renderPlanText({ planVersion: 1, lock: { path: opts.lockfile, digest: lock.digest }, hosts: sessions.flatMap((s) => (s.plan ? [s.plan] : [])) }, opts.color));
        const ok = io.confirm ? await io.confirm(`Apply these changes to ${pending.length} host(s)? Only "yes" is accepted: `) : false;
        if (!ok) throw new CriuLockError('usage', 'apply cancelled; nothing was changed', { hint: 'answer "yes", or pass --yes, or apply a reviewed plan file' });
      }
    }

    const verbose = (host: string) => (m: string): void => {
      if (opts.verbose) io.err(`[${host}] ${m}\n`);
    };
    let done = 0;
    const runnable = sessions.filter((s) => !s.outcome);
    const total = runnable.length;
    const run = await runFleet(
      runnable,
      async (s): Promise<HostOutcome> => {
        const plan = s.plan!;
        return runPlaybook(tasks, {
          host: s.host.name,
          transport: s.transport!,
          lock,
          plan,
          pins,
          checkMode: opts.check,
          verbose: verbose(s.host.name),
        });
      },
      {
        forks: opts.forks,
        serial: opts.serial,
        maxFailPercentage: opts.maxFailPercentage,
        isFailure: (o) => o.status === 'failed' || o.status === 'unreachable',
        onResult: (o) => {
          done++;
          if (opts.format === 'text') io.err(`${io.isTTY ? '\r\u001b[K' : ''}[${done}/${total}] ${o.name}: ${o.status}${'error' in o ? ` — ${o.error}` : ''}\n`);
        },
      },
    );
    for (const r of run.results) r.item.outcome = r.result;
    return {
      lock: { path: opts.lockfile, digest: lock.digest },
      check: opts.check,
      hosts: sessions.flatMap((s) => (s.outcome ? [s.outcome] : [])),
      notStarted: run.skipped.map((s) => s.host.name),
    };
  } finally {
    await Promise.all(sessions.map((s) => (s.hostLock ? s.hostLock.release() : Promise.resolve())));
    await Promise.all(sessions.map((s) => (s.transport ? s.transport.close().catch(() => undefined) : Promise.resolve())));
  }
}

export async function runApply(opts: ApplyOptions, io: Io): Promise<number> {
  if (!opts.planfile && !opts.yes && !opts.check && !(io.isTTY && io.confirm)) {
    throw new CriuLockError('usage', 'apply without a plan file needs confirmation, and there is no terminal to ask on', {
      hint: 'pass --yes, or review a plan first: criu-lock plan -o plan.json && criu-lock apply plan.json',
    });
  }
  const lock = await loadLock(opts.lockfile);
  let planFile: PlanFile | undefined;
  if (opts.planfile) {
    planFile = await loadPlan(opts.planfile);
    if (planFile.lock.digest !== lock.digest) {
      throw new CriuLockError('stale-plan', `plan is stale: it was made for lock ${planFile.lock.digest}, ${opts.lockfile} is now ${lock.digest}`, {
        hint: 'run criu-lock plan -o FILE again with the current lockfile',
      });
    }
  }
  const tasks = await loadPlaybook(opts.playbook);
  const report = await applyFleet(lock, opts, io, tasks, planFile);
  io.out(renderApply(report, opts.format, opts.color));
  return applyExitCode(report);
}
