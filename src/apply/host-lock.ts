/**
 * The host lock: `flock` on /var/lib/criu-lock/apply.lock, held by a small shell on the host for
 * as long as apply works on it (facts, plan, playbook). A second apply on the same host is refused
 * at once with the holder's start time, and changes nothing: it only opens the existing lock file.
 *
 * The holder is one long-running command on the connection. It prints a byte every quarter second, so it
 * dies of SIGPIPE when the connection is lost and the lock goes with it; the apt transaction that
 * may still be running then has its own lock (see apt-job.ts), which the next apply waits for.
 */
import { randomBytes } from 'node:crypto';
import type { CommandResult, Transport } from '../transport/types.js';
import { STATE_DIR } from './apt.js';

export const HOST_LOCK_FILE = `${STATE_DIR}/apply.lock`;
export const HOST_LOCK_OWNER = `${STATE_DIR}/apply.owner`;
const BUSY = 75;

/**
 * `sh -c SCRIPT criu-lock-hold TOKEN`. Exit 75 with the owner line when the lock is taken. The
 * owner line is written only once the lock is ours; `sleep` runs without fd 9 so that killing the
 * holder releases the lock at once.
 */
export const HOLD_SCRIPT = [
  `d=${STATE_DIR}`,
  'mkdir -p "$d" || exit 70',
  `exec 9>>"$d/apply.lock" || exit 70`,
  `if ! flock -n 9; then cat "$d/apply.owner" 2>/dev/null; exit ${BUSY}; fi`,
  `printf '%s\\t%s\\t%s\\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" > "$d/apply.owner.tmp" && mv -f "$d/apply.owner.tmp" "$d/apply.owner" || exit 70`,
  'while :; do printf . || exit 0; sleep 0.25 9>&-; done',
].join('\n');

/** `sh -c SCRIPT criu-lock-owner TOKEN`: prints the owner line if it is ours. */
const OWNER_SCRIPT = `grep -F "$1	" ${STATE_DIR}/apply.owner 2>/dev/null || true`;

/** Kills our holder (by the pid in the owner line with our token) and removes the owner line. */
const RELEASE_SCRIPT = [
  `o=$(grep -F "$1	" ${STATE_DIR}/apply.owner 2>/dev/null) || exit 0`,
  `rm -f ${STATE_DIR}/apply.owner`,
  'kill "$(printf %s "$o" | cut -f3)" 2>/dev/null || true',
].join('\n');

/** Waits for `p` at most `ms`; the timer never keeps the process alive. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export type HostLockResult =
  | { status: 'locked'; lock: HostLock }
  | { status: 'busy'; message: string }
  | { status: 'error'; message: string };

export interface HostLock {
  token: string;
  since: string;
  release(): Promise<void>;
}

/** The owner line `TOKEN\tSTART\tPID` → a sentence for the refusal. */
export function describeHolder(ownerLine: string): string {
  const [, since, pid] = ownerLine.trim().split('\t');
  if (!since) return 'another criu-lock apply holds the host lock';
  return `another criu-lock apply holds the host lock since ${since}${pid ? ` (holder pid ${pid} on the host)` : ''}`;
}

/**
 * Takes the host lock or reports who has it. `pollMs`/`attempts` bound how long we wait to see
 * our owner line appear (the holder command itself never returns while it holds the lock).
 */
export async function acquireHostLock(
  t: Transport,
  opts: { pollMs?: number; attempts?: number } = {},
): Promise<HostLockResult> {
  const token = randomBytes(12).toString('hex');
  let finished: CommandResult | undefined;
  let failure: string | undefined;
  const holder = t.exec(['sh', '-c', HOLD_SCRIPT, 'criu-lock-hold', token], { become: true }).then(
    (r) => {
      finished = r;
      return r;
    },
    (e: unknown) => {
      failure = e instanceof Error ? e.message : String(e);
      return undefined;
    },
  );
  const attempts = opts.attempts ?? 100;
  for (let i = 0; i < attempts; i++) {
    if (finished || failure !== undefined) break;
    const r = await t.exec(['sh', '-c', OWNER_SCRIPT, 'criu-lock-owner', token], { become: true });
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${token}\t`));
    if (line) {
      const since = line.split('\t')[1] ?? '';
      return {
        status: 'locked',
        lock: {
          token,
          since,
          async release() {
            await t
              .exec(['sh', '-c', RELEASE_SCRIPT, 'criu-lock-release', token], { become: true })
              .catch(() => undefined);
            await settleWithin(holder, 3000);
          },
        },
      };
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
  await settleWithin(holder, 100);
  if (finished?.exitCode === BUSY) {
    return {
      status: 'busy',
      message: `${describeHolder(finished.stdout)}; this apply leaves the host alone`,
    };
  }
  if (failure !== undefined) return { status: 'error', message: `cannot take the host lock: ${failure}` };
  const why = finished
    ? `${finished.stderr.trim().split('\n').slice(-1)[0] || `exit code ${finished.exitCode}`}`
    : 'the lock holder did not report in time';
  return { status: 'error', message: `cannot take the host lock ${HOST_LOCK_FILE}: ${why}` };
}
