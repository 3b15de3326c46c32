/**
 * The apt transaction runs detached on the host, so a lost SSH connection does not kill dpkg
 * halfway: own session (setsid), stdin from /dev/null, output to a log under
 * /var/lib/criu-lock/jobs/ID/, exit status written last. The controller follows it with one
 * waiting command; when the connection drops, the transaction goes on and the next apply waits
 * for it (it holds /var/lib/criu-lock/apt-job.lock while it runs) and reports how it ended.
 *
 * Pins and a failed transaction: apt_pins keeps the previous pin file in pins.prev (or marks that
 * there was none), and when apt fails the job itself puts it back, so this happens on the host
 * even if the controller is gone. On success the backup is dropped.
 */
import { randomBytes } from 'node:crypto';
import { CriuLockError } from '../errors.js';
import { quote } from '../shell/quote.js';
import type { CommandResult, Transport } from '../transport/types.js';
import { PUT_FILE_SCRIPT } from '../transport/local-transport.js';
import { APT_ENV, STATE_DIR } from './apt.js';
import type { AfterLock } from './host-lock.js';

export const JOBS_DIR = `${STATE_DIR}/jobs`;
export const JOB_LOCK = `${STATE_DIR}/apt-job.lock`;
export const PIN_BACKUP = `${STATE_DIR}/pins.prev`;
export const PIN_BACKUP_ABSENT = `${STATE_DIR}/pins.prev-absent`;
/** How much of apt's log a job record carries (its end). */
const LOG_TAIL_BYTES = 16_384;
/** A job directory as START_SCRIPT names it: JOBS_DIR/ID, the id from newJobId. */
const JOB_DIR_SHAPE = new RegExp(`^${JOBS_DIR.replace(/[.]/g, '\\.')}/[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`);
/** More unfinished jobs than this is not a host criu-lock has worked on. */
const MAX_PENDING_JOBS = 16;
/** Collected jobs kept on the host for reading later. */
const KEEP_JOBS = 10;

/**
 * `sh -c SCRIPT criu-lock-pins-write PINFILE MODE`, the new content on stdin: remember the pin file
 * before it is replaced, then replace it atomically (PUT_FILE_SCRIPT), in one command. Nothing is
 * written when the copy fails (`set -e`).
 */
// The pin file "$1" kept for the job before it is replaced: a copy, or a mark that there was none.
const KEEP_PINS = [
  'set -e',
  `mkdir -p ${STATE_DIR}`,
  `if [ -f "$1" ]; then cp -p -- "$1" ${PIN_BACKUP}.tmp; mv -f ${PIN_BACKUP}.tmp ${PIN_BACKUP}; rm -f ${PIN_BACKUP_ABSENT};`,
  `else : > ${PIN_BACKUP_ABSENT}; rm -f ${PIN_BACKUP}; fi`,
];

export const PIN_WRITE_SCRIPT = [...KEEP_PINS, PUT_FILE_SCRIPT].join('\n');

/**
 * `sh -c SCRIPT criu-lock-pins-back PINFILE [FROM]`: rollback's pin change, with the same backup
 * as PIN_WRITE_SCRIPT first, so the job that follows puts the pin file back when apt fails even
 * with the controller gone. FROM (a file on the host) replaces the pin file atomically; without
 * it the pin file is removed.
 */
export const PIN_BACK_SCRIPT = [
  ...KEEP_PINS,
  'if [ $# -ge 2 ]; then cp -- "$2" "$1.criu-lock-tmp"; mv -f -- "$1.criu-lock-tmp" "$1"; else rm -f -- "$1"; fi',
].join('\n');

/**
 * Runs detached: `sh -c RUNNER criu-lock-apt-job JOBDIR PINFILE RESTORE argv...`. Holds the job
 * lock for its whole life; writes `status` last (atomically), after restoring the pins on failure
 * and recording `dpkg --audit`.
 */
const RUNNER = [
  'j=$1; pin=$2; restore=$3; shift 3',
  `exec 8>>${JOB_LOCK}`,
  'flock 8',
  'echo $$ > "$j/pid"',
  // Not fd 8: a daemon a maintainer script starts would hold the job lock for as long as it runs.
  '"$@" > "$j/log" 2>&1 < /dev/null 8>&-',
  'rc=$?',
  'if [ $rc -ne 0 ] && [ "$restore" = 1 ]; then',
  `  if [ -f ${PIN_BACKUP} ]; then mv -f ${PIN_BACKUP} "$pin" && echo restored > "$j/pins";`,
  `  elif [ -f ${PIN_BACKUP_ABSENT} ]; then rm -f "$pin" ${PIN_BACKUP_ABSENT} && echo removed > "$j/pins"; fi`,
  `elif [ $rc -eq 0 ]; then rm -f ${PIN_BACKUP} ${PIN_BACKUP_ABSENT}; fi`,
  'dpkg --audit > "$j/audit" 2>&1 < /dev/null || true',
  'echo $rc > "$j/status.tmp" && mv -f "$j/status.tmp" "$j/status"',
].join('\n');

/** `sh -c START criu-lock-apt-start ID PINFILE RESTORE argv...`: prints the job dir once started. */
export const START_SCRIPT = [
  'set -e',
  'id=$1; pin=$2; restore=$3; shift 3',
  `mkdir -p ${JOBS_DIR}`,
  `j=${JOBS_DIR}/$id`,
  'mkdir "$j"',
  'date -u +%Y-%m-%dT%H:%M:%SZ > "$j/started"',
  'printf "%s\\n" "$*" > "$j/command"',
  `setsid sh -c ${quote(RUNNER)} criu-lock-apt-job "$j" "$pin" "$restore" "$@" < /dev/null > /dev/null 2>&1 &`,
  'echo "$j"',
].join('\n');

/**
 * `sh -c FOLLOW criu-lock-apt-follow JOBDIR`: waits for `status`, then prints the job's record.
 * Marks the job collected, and keeps only the last few collected jobs.
 */
export const FOLLOW_SCRIPT = [
  'j=$1',
  // The runner holds the job lock from before apt starts (it writes the pid file once it has it)
  // until after it writes the status: wait on the lock, not on a timer. It polls only before the
  // runner has the lock (no pid file yet). A runner that let the lock go without a status died,
  // or could not write it (a full disk): recorded as `died`, as PENDING_SCRIPT does, at once.
  'while [ ! -f "$j/status" ]; do',
  `  flock -s ${JOB_LOCK} true || sleep 0.3`,
  '  [ -f "$j/status" ] && break',
  '  if [ ! -f "$j/pid" ]; then sleep 0.05; continue; fi',
  `  if flock -n ${JOB_LOCK} true; then`,
  '    dpkg --audit > "$j/audit" 2>&1 < /dev/null',
  '    echo died > "$j/status" 2>/dev/null || break',
  '  fi',
  'done',
  // An empty or missing status file: the runner (or this) could not write one.
  'echo "@@status"; s=$(cat "$j/status" 2>/dev/null); echo "${s:-died}"',
  'echo "@@started"; cat "$j/started" 2>/dev/null',
  'echo "@@pins"; cat "$j/pins" 2>/dev/null',
  'echo "@@audit"; head -c 4096 "$j/audit" 2>/dev/null',
  `echo "@@log"; tail -c ${LOG_TAIL_BYTES} "$j/log" 2>/dev/null`,
  'echo; echo "@@end"',
  ': > "$j/collected"',
  `ls -1dt ${JOBS_DIR}/*/collected 2>/dev/null | tail -n +${KEEP_JOBS + 1} | while read -r c; do rm -rf -- "\${c%/collected}"; done`,
].join('\n');

/** How long starting the job may take on the host (the start itself is a few file writes). */
const START_TIMEOUT_S = 60;

/**
 * `sh -c RUN criu-lock-apt-run ID PINFILE RESTORE argv...`: START (bounded on the host by
 * START_TIMEOUT_S, as when it was a command of its own), then `@@job DIR` as soon as the job runs,
 * then FOLLOW: one round trip for the whole transaction. A connection lost after the `@@job` line
 * leaves a running job behind, named; one lost before it may or may not have started one.
 */
export const RUN_SCRIPT = [
  `j=$(timeout -k 2 ${START_TIMEOUT_S} sh -c ${quote(START_SCRIPT)} criu-lock-apt-start "$@") || exit $?`,
  'printf "@@job %s\\n" "$j"',
  'set -- "$j"',
  FOLLOW_SCRIPT,
].join('\n');

/**
 * `sh -c PENDING criu-lock-apt-pending WAITSECONDS`: jobs an earlier apply started and never
 * collected. Waits (up to WAITSECONDS) for a running one through the job lock, then lists them.
 */
export const PENDING_SCRIPT = [
  `[ -d ${JOBS_DIR} ] || exit 0`,
  'pending=',
  `for j in ${JOBS_DIR}/*; do [ -d "$j" ] && [ ! -f "$j/collected" ] && pending="$pending $j"; done`,
  '[ -n "$pending" ] || exit 0',
  `if ! flock -w "$1" ${JOB_LOCK} true; then echo "@@busy"; exit 0; fi`,
  // A job without status whose lock is free died with its host (reboot): record that, never wait.
  'for j in $pending; do [ -f "$j/status" ] || { dpkg --audit > "$j/audit" 2>&1; echo died > "$j/status"; }; echo "@@job $j"; done',
].join('\n');

export interface JobRecord {
  dir: string;
  exitCode: number | null;
  started: string;
  pins: 'restored' | 'removed' | 'unchanged';
  audit: string;
  log: string;
}

export type JobOutcome =
  { kind: 'finished'; record: JobRecord } | { kind: 'connection-lost'; dir: string; error: string };

export function newJobId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`;
}

/** Parses FOLLOW_SCRIPT's output; throws when it is cut short. */
export function parseJobRecord(dir: string, stdout: string): JobRecord {
  const sections = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@')) {
      cur = [];
      sections.set(line.slice(2), cur);
    } else cur?.push(line);
  }
  if (!sections.has('end')) throw new CriuLockError('ssh', `the record of apt job ${dir} is incomplete`);
  const status = (sections.get('status') ?? []).join('').trim();
  const pins = (sections.get('pins') ?? []).join('').trim();
  // The runner writes apt's exit status (0-255); PENDING_SCRIPT writes `died` for a job whose host
  // went down. Anything else is not an answer of these scripts.
  if (!/^\d{1,3}$/.test(status) && status !== 'died') {
    throw new CriuLockError(
      'host-output',
      `apt job ${dir} reports the status ${JSON.stringify(status.slice(0, 40))}, which is no exit status`,
      { hint: `look at ${dir}/status on the host` },
    );
  }
  // The follow script sends the log's last 16 KiB; a host that sends more gets the same cut.
  const log = (sections.get('log') ?? []).join('\n');
  return {
    dir,
    exitCode: status === 'died' ? null : Number(status),
    started: (sections.get('started') ?? []).join('').trim(),
    pins: pins === 'restored' || pins === 'removed' ? pins : 'unchanged',
    audit: (sections.get('audit') ?? []).join('\n').trim(),
    log: log.length > LOG_TAIL_BYTES ? log.slice(-LOG_TAIL_BYTES) : log,
  };
}

/** A connection that looks closed: the command ended without status or signal and was not timed out. */
function looksLost(r: CommandResult): boolean {
  return r.exitCode === null && r.signal === undefined && !r.timedOut;
}

/**
 * Starts the transaction detached and follows it to its end, in one command (RUN_SCRIPT). A lost
 * connection after the job started is an outcome, not an exception; a job that could not start,
 * or may not have, throws.
 */
export async function runJob(
  t: Transport,
  argv: readonly string[],
  opts: { pinFile: string; restorePins: boolean; id?: string; timeoutMs: number },
): Promise<{ dir: string; outcome: JobOutcome }> {
  const id = opts.id ?? newJobId();
  const dir = `${JOBS_DIR}/${id}`;
  const command = [
    'sh',
    '-c',
    RUN_SCRIPT,
    'criu-lock-apt-run',
    id,
    opts.pinFile,
    opts.restorePins ? '1' : '0',
    'env',
    ...Object.entries(APT_ENV).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ];
  // A rejection (no usable connection, or output past the cap) fails the host as it is.
  const r = await t.exec(command, { become: true, timeoutMs: opts.timeoutMs });
  if (!r.stdout.startsWith(`@@job ${dir}\n`)) {
    if (looksLost(r))
      throw new CriuLockError(
        'ssh',
        `connection lost while starting the apt transaction; if it started, it continues on the host (log ${dir}/log) and the next apply waits for it and reports how it ended`,
      );
    const last = r.stderr.trim().split('\n').slice(-1)[0];
    const code =
      r.exitCode === 124 ? `starting it took over ${START_TIMEOUT_S} s` : `exit code ${r.exitCode}`;
    throw new CriuLockError('ssh', `could not start the apt transaction: ${last || code}`);
  }
  return { dir, outcome: await jobOutcome(t, dir, r, opts.timeoutMs) };
}

/** Waits for the job from the controller (a job an earlier apply left). A lost connection is an outcome. */
export async function followJob(t: Transport, dir: string, timeoutMs: number): Promise<JobOutcome> {
  let r: CommandResult;
  try {
    r = await t.exec(['sh', '-c', FOLLOW_SCRIPT, 'criu-lock-apt-follow', dir], { become: true, timeoutMs });
  } catch (e) {
    return { kind: 'connection-lost', dir, error: e instanceof Error ? e.message : String(e) };
  }
  return jobOutcome(t, dir, r, timeoutMs);
}

/** The end of a follow (FOLLOW_SCRIPT's answer `r`): the job's record, a lost connection, or a timeout (throws). */
async function jobOutcome(
  t: Transport,
  dir: string,
  r: CommandResult,
  timeoutMs: number,
): Promise<JobOutcome> {
  if (looksLost(r)) {
    // Tell a closed connection from a killed command: a lost connection refuses the next exec.
    try {
      await t.exec(['true'], { timeoutMs: 10_000 });
    } catch (e) {
      return { kind: 'connection-lost', dir, error: e instanceof Error ? e.message : String(e) };
    }
  }
  if (r.timedOut)
    throw new CriuLockError(
      'ssh',
      `the apt transaction did not finish within ${Math.round(timeoutMs / 1000)} s; it continues on the host (log ${dir}/log)`,
    );
  return { kind: 'finished', record: parseJobRecord(dir, r.stdout) };
}

/**
 * Jobs an earlier apply left behind (its connection was lost): waits for a running one up to
 * `waitSeconds`, then collects each. Returns their records; throws if one is still running.
 */
/**
 * PENDING_SCRIPT as the host lock's follow-up (src/apply/host-lock.ts): it must run with the lock
 * held, and running it in the lock's own command saves a round trip per host.
 */
export function pendingJobsCommand(waitSeconds: number): AfterLock {
  return {
    script: PENDING_SCRIPT,
    name: 'criu-lock-apt-pending',
    args: [String(waitSeconds)],
    timeoutMs: (waitSeconds + 30) * 1000,
  };
}

/** PENDING_SCRIPT's answer `r` → the jobs, each followed to its record. */
export async function collectPendingJobs(
  t: Transport,
  r: CommandResult,
  waitSeconds: number,
): Promise<JobRecord[]> {
  if (r.stdout.includes('@@busy') || r.timedOut) {
    throw new CriuLockError(
      'ssh',
      `an apt transaction started by an earlier apply is still running after ${waitSeconds} s of waiting (see ${JOBS_DIR})`,
      {
        hint: 're-run apply when it has finished',
      },
    );
  }
  const dirs = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('@@job '))
    .map((l) => l.slice(6));
  // Directories the follow script writes into: only ones the start script could have made, and
  // not thousands of them (one apply leaves at most one unfinished job).
  const bad = dirs.find((d) => !JOB_DIR_SHAPE.test(d));
  if (bad !== undefined || dirs.length > MAX_PENDING_JOBS) {
    throw new CriuLockError(
      'host-output',
      bad !== undefined
        ? `the host names ${JSON.stringify(bad.slice(0, 200))} as an unfinished apt job, which is not a job directory of criu-lock's`
        : `the host lists ${dirs.length} unfinished apt jobs; one apply leaves at most one`,
      { hint: `look at ${JOBS_DIR} on the host` },
    );
  }
  const out: JobRecord[] = [];
  for (const dir of dirs) {
    const f = await followJob(t, dir, 60_000);
    if (f.kind === 'connection-lost')
      throw new CriuLockError('ssh', `connection lost while collecting apt job ${dir}: ${f.error}`);
    out.push(f.record);
  }
  return out;
}

/** One line for the recap: how a finished job left the host. */
export function describeJob(rec: JobRecord): string {
  const audit =
    rec.audit === ''
      ? 'dpkg is consistent (dpkg --audit is empty)'
      : `dpkg --audit reports: ${rec.audit.split('\n').slice(0, 2).join(' | ')}`;
  const pins =
    rec.pins === 'restored'
      ? '; the previous pin file was restored'
      : rec.pins === 'removed'
        ? '; the pin file was removed again (there was none before)'
        : '';
  return `${audit}${pins}`;
}

/** Why a job that recorded no status (`died`) failed: how apt ended is not known. */
export const JOB_DIED = `the apt job ended without recording its status (it died, or ${STATE_DIR} is full: df -h ${STATE_DIR}); see the log and dpkg's state on the host`;

/** A finished job as a command result, so its log is summarised like any command's output. */
export function jobResult(argv: readonly string[], rec: JobRecord): CommandResult {
  return {
    command: argv.join(' '),
    exitCode: rec.exitCode,
    stdout: rec.log,
    stderr: '',
    durationMs: 0,
    timedOut: false,
  };
}
