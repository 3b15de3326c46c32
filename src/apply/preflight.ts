/**
 * Before apply reads a host's facts: take the host lock, then wait for (and report) an apt
 * transaction an earlier apply left running when its connection was lost. `--check` changes
 * nothing on hosts, so it takes no lock and collects nothing. A `then` script (the facts probe)
 * runs in the lock's own command once the lock is ours and no such transaction was found.
 */
import type { CommandResult, Transport } from '../transport/types.js';
import { collectPendingJobs, describeJob, pendingJobsCommand } from './apt-job.js';
import { acquireHostLock, type HostLock, type ThenScript } from './host-lock.js';

/** How long apply waits for an earlier apply's apt transaction to finish. */
export const PENDING_JOB_WAIT_S = 900;

export type Preflight =
  /** `then`: the then script's result, when it ran with nothing collected before it. */
  { status: 'ok'; lock?: HostLock; then?: CommandResult } | { status: 'refused'; message: string };

export async function preflightHost(
  t: Transport,
  opts: { check: boolean; say: (m: string) => void; waitSeconds?: number; then?: ThenScript },
): Promise<Preflight> {
  if (opts.check) return { status: 'ok' };
  const wait = opts.waitSeconds ?? PENDING_JOB_WAIT_S;
  // The pending jobs are listed by the lock's own command, once the lock is ours.
  const got = await acquireHostLock(t, {
    after: pendingJobsCommand(wait),
    ...(opts.then ? { then: opts.then } : {}),
  });
  if (got.status !== 'locked') return { status: 'refused', message: got.message };
  let collected = 0;
  try {
    for (const rec of await collectPendingJobs(t, got.after, wait)) {
      collected++;
      const how =
        rec.exitCode === 0
          ? 'succeeded'
          : rec.exitCode === null
            ? 'was interrupted (the host went down?)'
            : `failed with exit code ${rec.exitCode}`;
      opts.say(
        `an apt transaction started ${rec.started || 'earlier'} by an earlier apply or rollback whose connection was lost ${how}; ${describeJob(rec)} (log ${rec.dir}/log)`,
      );
    }
  } catch (e) {
    await got.lock.release();
    return { status: 'refused', message: e instanceof Error ? e.message : String(e) };
  }
  // Collecting a job reads its record and may tidy the host after it: the probe that ran before
  // that is not the state to plan from.
  return { status: 'ok', lock: got.lock, ...(got.then && collected === 0 ? { then: got.then } : {}) };
}
