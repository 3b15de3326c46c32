import { describeJob, JOB_DIED, jobResult, PIN_BACK_SCRIPT, runJob } from '../apply/apt-job.js';
import { rebuildPackage } from '../store/rebuild.js';
import { APT_ENV } from '../apply/apt.js';
import { summariseOutput } from '../apply/modules/output.js';
import { commandOutcome, endHint } from '../transport/outcome.js';
import { CriuLockError } from '../errors.js';
import { gatherFacts } from '../facts/gather.js';
import { SIMULATE_SCRIPT } from '../facts/simulate.js';
import { renderCommand } from '../shell/quote.js';
import type { Transport } from '../transport/types.js';
import { captureTransaction, markApplied, pruneTransactions, readCurrent } from './host.js';
import { txDir, type TxManifest } from './manifest.js';
import {
  parseSimulation,
  rollbackAptArgv,
  rollbackTxPackages,
  unexpectedRemovals,
  type CurrentState,
  type RollbackPlan,
} from './planner.js';

/**
 * The captured .debs the plan installs, checked on the host against their recorded sha256 (read
 * only: `rollback --check` runs it too). Undefined when all are there and intact.
 */
export async function capturedDebsProblem(t: Transport, plan: RollbackPlan): Promise<string | undefined> {
  if (plan.install.length === 0) return undefined;
  const r = await t.exec(['sha256sum', '--', ...plan.install.map((i) => i.debPath)], { become: true });
  const got = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line);
    if (m) got.set(m[2]!, m[1]!);
  }
  const bad = plan.install.filter((i) => got.get(i.debPath) !== i.sha256);
  if (bad.length === 0) return undefined;
  return `captured .deb(s) missing or changed: ${bad.map((b) => `${b.debPath} (want sha256 ${b.sha256.slice(0, 12)}, got ${got.get(b.debPath)?.slice(0, 12) ?? 'nothing'})`).join(', ')}`;
}

/**
 * `sh -c SCRIPT criu-lock-rb-sim FROM sh -c SIMULATE_SCRIPT ...`: apply's simulation script
 * (src/facts/simulate.ts), which takes the pin file to simulate under on its standard input, with
 * that input read from FROM, a file on the host (the captured pins, or /dev/null for none).
 */
const FROM_FILE = 'f=$1; shift; exec "$@" < "$f"';

/** A failed rollback step, as a value the command turns into the host's result. */
export class RollbackStepError extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RollbackRun {
  /** The transaction this rollback recorded (so it can be rolled back in turn). */
  transaction: string;
  diskBytes: number;
}

/**
 * Runs a rollback plan on one host: .debs checked, the rollback captured as its own transaction,
 * pins put back, one apt transaction (simulated first: no removal beyond the recorded ones),
 * marks restored, then verified against the captured versions and build-IDs.
 */
export async function executeRollback(
  t: Transport,
  host: string,
  plan: RollbackPlan,
  now: CurrentState,
  opts: { id: string; date: Date; keep: number; lockTimeout: number; nativeArch: string },
): Promise<RollbackRun> {
  const tx = plan.tx;
  const step = async <R>(name: string, fn: () => Promise<R>): Promise<R> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RollbackStepError) throw err;
      throw new RollbackStepError(
        name,
        err instanceof CriuLockError ? err.message : err instanceof Error ? err.message : String(err),
      );
    }
  };

  await step('check .debs', async () => {
    const problem = await capturedDebsProblem(t, plan);
    if (problem) throw new RollbackStepError('check .debs', problem);
  });

  // The rollback is a transaction too: record what it replaces before changing anything.
  const own = await step('capture', () =>
    captureTransaction(
      t,
      {
        id: opts.id,
        host,
        kind: 'rollback',
        lockDigest: null,
        rollbackOf: tx.id,
        packages: rollbackTxPackages(plan, now),
        pinPath: tx.pins.path,
        pinsAfter: tx.pins.before,
        now: opts.date,
        rebuild: (h, p) => rebuildPackage(h, p),
      },
      now,
    ),
  );

  // The pin file as it was (from a file on the host), or none; the previous one is kept so the
  // apt job can put it back by itself when apt fails (PIN_BACK_SCRIPT).
  const pinsBack = async (from: string, pinsWere: string | null): Promise<void> => {
    const argv = ['sh', '-c', PIN_BACK_SCRIPT, 'criu-lock-pins-back', tx.pins.path];
    const r = await t.exec(pinsWere === null ? argv : [...argv, from], { become: true });
    if (r.exitCode !== 0)
      throw new RollbackStepError('pins', `restoring ${tx.pins.path} failed: ${summariseOutput(r)}`);
  };
  /** Puts back the pin file this rollback replaced; false when that failed too. */
  const undoPins = async (): Promise<boolean> => {
    if (plan.pins === 'keep') return true;
    return pinsBack(`${txDir(opts.id)}/pins.before`, now.pinSha256).then(
      () => true,
      () => false,
    );
  };
  const changesPins = async (): Promise<void> => {
    if (plan.pins !== 'keep')
      await pinsBack(`${txDir(tx.id)}/pins.before`, plan.pins === 'remove' ? null : tx.pins.before);
  };

  if (plan.install.length === 0 && plan.remove.length === 0) await changesPins();
  else {
    // Simulated under the pin file the rollback leaves, in a private copy of preferences.d: the
    // real pin file changes only once apt has accepted the transaction, so a simulation refused
    // or cut off (a lost connection) leaves the host exactly as it was.
    const pinsAfter =
      plan.pins === 'restore'
        ? `${txDir(tx.id)}/pins.before`
        : plan.pins === 'keep' && now.pinSha256 !== null
          ? tx.pins.path
          : '/dev/null';
    const sim = await t.exec(
      [
        'sh',
        '-c',
        FROM_FILE,
        'criu-lock-rb-sim',
        pinsAfter,
        'sh',
        '-c',
        SIMULATE_SCRIPT,
        'criu-lock-sim',
        tx.pins.path,
        ...rollbackAptArgv(plan, { simulate: true, lockTimeout: opts.lockTimeout }),
      ],
      { become: true, env: { ...APT_ENV }, timeoutMs: 600_000 },
    );
    if (sim.exitCode !== 0) {
      const hint = endHint(sim);
      throw new RollbackStepError(
        'simulate',
        `apt-get -s ${commandOutcome(sim) === 'exited' ? 'refused the rollback' : 'did not finish'}: ${summariseOutput(sim)}; nothing was changed${hint ? ` (${hint})` : ''}`,
      );
    }
    let removes: string[];
    try {
      removes = parseSimulation(sim.stdout).removes;
    } catch (e) {
      throw new RollbackStepError('simulate', `${(e as Error).message}; nothing was changed`);
    }
    const extra = unexpectedRemovals(removes, plan.remove, opts.nativeArch);
    if (extra.length > 0) {
      throw new RollbackStepError(
        'simulate',
        `apt would also remove ${extra.join(', ')}, which the transaction did not install; nothing was changed`,
      );
    }
    await changesPins();
    // Detached on the host like apply's transaction, so a lost connection does not interrupt it.
    const argv = rollbackAptArgv(plan, { simulate: false, lockTimeout: opts.lockTimeout });
    const { dir, outcome } = await runJob(t, argv, {
      pinFile: tx.pins.path,
      // The job puts the pin file back when apt fails, as for apply: the controller may be gone.
      restorePins: plan.pins !== 'keep',
      timeoutMs: 1_800_000,
    });
    if (outcome.kind === 'connection-lost') {
      throw new RollbackStepError(
        'apt',
        `connection lost during apt; the transaction continues on the host (log ${dir}/log); the next apply or rollback waits for it and reports how it ended`,
      );
    }
    if (outcome.record.exitCode !== 0) {
      // The job restored the pin file itself; the controller only does it when the job could not.
      const pinsNow =
        plan.pins === 'keep'
          ? 'the pin file was not changed'
          : outcome.record.pins !== 'unchanged'
            ? 'the pin file was put back as it was before the rollback'
            : (await undoPins())
              ? 'the pin file was put back as it was before the rollback'
              : `the pin file could NOT be put back (see ${tx.pins.path})`;
      const log = jobResult(argv, outcome.record);
      throw new RollbackStepError(
        'apt',
        `${outcome.record.exitCode === null ? JOB_DIED : `apt-get install failed: ${summariseOutput(log)}`}; ${describeJob(outcome.record)}; ${pinsNow}; log ${dir}/log`,
      );
    }
  }

  if (plan.marks.auto.length > 0 || plan.marks.manual.length > 0) {
    const lines = [
      ...(plan.marks.auto.length ? [renderCommand(['apt-mark', 'auto', ...plan.marks.auto])] : []),
      ...(plan.marks.manual.length ? [renderCommand(['apt-mark', 'manual', ...plan.marks.manual])] : []),
    ];
    const r = await t.exec(['sh', '-c', lines.join(' && ')], { become: true, env: { ...APT_ENV } });
    if (r.exitCode !== 0) throw new RollbackStepError('marks', `apt-mark failed: ${summariseOutput(r)}`);
  }

  await step('verify', () => verifyCaptured(t, tx));
  await step('record', () => markApplied(t, own.manifest));
  const kept = await step('retention', () => pruneTransactions(t, opts.keep));
  return { transaction: opts.id, diskBytes: kept.diskBytes };
}

/** Versions, pin file and build-IDs equal what the transaction captured before it changed anything. */
export async function verifyCaptured(t: Transport, tx: TxManifest): Promise<void> {
  const now = await readCurrent(
    t,
    tx.packages.map((p) => p.package),
    tx.pins.path,
  );
  const problems: string[] = [];
  for (const p of tx.packages) {
    const v = now.versions.get(p.package) ?? null;
    if (v !== p.before)
      problems.push(`${p.package} is ${v ?? '(absent)'}, captured ${p.before ?? '(absent)'}`);
    const isAuto = now.auto.has(p.package);
    if (p.auto !== null && v !== null && isAuto !== p.auto)
      problems.push(
        `${p.package} is marked ${isAuto ? 'auto' : 'manual'}, captured ${p.auto ? 'auto' : 'manual'}`,
      );
  }
  if (now.pinSha256 !== tx.pins.before)
    problems.push(
      `${tx.pins.path} is ${now.pinSha256 ? `sha256 ${now.pinSha256.slice(0, 12)}` : 'absent'}, captured ${tx.pins.before ? `sha256 ${tx.pins.before.slice(0, 12)}` : 'absent'}`,
    );
  if (tx.files.length > 0) {
    const facts = await gatherFacts(t, { paths: tx.files.map((f) => f.path) });
    for (const f of tx.files) {
      const got = facts.files.get(f.path);
      if (!got || got.kind !== 'elf' || (got.buildId ?? null) !== f.buildId)
        problems.push(
          `${f.path} build-ID ${got?.buildId ?? got?.kind ?? 'unknown'}, captured ${f.buildId ?? 'none'}`,
        );
    }
  }
  if (problems.length > 0)
    throw new RollbackStepError(
      'verify',
      `after the rollback the host still differs from the captured state in ${problems.length} place(s): ${problems.slice(0, 3).join('; ')}`,
    );
}
