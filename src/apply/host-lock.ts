/**
 * The host lock: `flock` on /var/lib/criu-lock/apply.lock, held by a small process on the host for
 * as long as apply works on it (facts, plan, playbook). A second apply on the same host is refused
 * at once with the holder's start time, and changes nothing: it only opens the existing lock file.
 *
 * The holder is one long-running command on the connection whose standard input the controller
 * keeps open: it ends, and the lock with it, when that input ends. Apply closes the input to
 * release the lock (no second command: on a fleet each exec costs the node an sshd session), and
 * a lost connection closes it too; the apt transaction that may still be running then has its
 * own lock (see apt-job.ts), which the next apply waits for. Once the lock is taken the holder is
 * a single perl process (perl-base is Essential) blocked in select(): it starts no processes and
 * wakes only when its input ends (issue 14).
 */
import { randomBytes } from 'node:crypto';
import { detach } from '../detach.js';
import type { CommandResult, Transport } from '../transport/types.js';
import { STATE_DIR } from './apt.js';

export const HOST_LOCK_FILE = `${STATE_DIR}/apply.lock`;
export const HOST_LOCK_OWNER = `${STATE_DIR}/apply.owner`;
const BUSY = 75;

/**
 * `sh -c SCRIPT criu-lock-hold TOKEN`. Exit 75 with the owner line when the lock is taken. Once
 * the lock is ours the shell execs perl, which keeps fd 9 and the pid: it writes the owner line
 * (token, start, its pid) and holds until its standard input ends, then removes the line and
 * exits. So the line exists only while a holder runs, releaseScript (the fallback for a holder
 * that does not end) kills exactly the process that has the lock, and no child outlives it with
 * fd 9.
 */
export function holdScript(dir: string = STATE_DIR): string {
  const perl = [
    'my ($d, $token) = @ARGV;',
    'my @t = gmtime;',
    // Why it failed on stderr (a full /var/lib/criu-lock says so), then exit 70.
    'sub fail { print STDERR "writing $d/apply.owner: $!\\n"; exit 70 }',
    'open(my $o, ">", "$d/apply.owner.tmp") or fail();',
    'printf $o "%s\\t%04d-%02d-%02dT%02d:%02d:%02dZ\\t%d\\n", $token, $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0], $$;',
    'close($o) or fail();',
    'rename("$d/apply.owner.tmp", "$d/apply.owner") or fail();',
    'my $in = "";',
    'vec($in, fileno(STDIN), 1) = 1;',
    // Input is never sent, only ended: any read that is not data (EOF, error) ends the hold.
    'while (1) { my $r = $in; next if select($r, undef, undef, undef) < 1; last unless sysread(STDIN, my $b, 512) }',
    'unlink("$d/apply.owner");',
  ].join(' ');
  return [
    `d=${dir}`,
    'mkdir -p "$d" || exit 70',
    'exec 9>>"$d/apply.lock" || exit 70',
    `if ! flock -n 9; then cat "$d/apply.owner" 2>/dev/null; exit ${BUSY}; fi`,
    `exec perl -e '${perl}' "$d" "$1"`,
  ].join('\n');
}

/**
 * `sh -c SCRIPT criu-lock-owner TOKEN THEN [SCRIPT NAME ARG...]`: prints the owner line once it is
 * ours, then runs the optional follow-up script in the same command; with THEN `stdin`, it then
 * prints THEN_MARK and the token on a line of their own and runs the script on its standard input
 * (`sh -s`). It waits on the host, up to OWNER_WAIT_TRIES × 20 ms, instead of the controller
 * polling with one command per try: the holder writes the line milliseconds after it starts.
 * Exit 1: not ours in that time.
 */
export function ownerScript(dir: string = STATE_DIR): string {
  return [
    'i=0',
    `until grep -F "$1	" ${dir}/apply.owner 2>/dev/null; do`,
    `  i=$((i + 1)); [ "$i" -le ${OWNER_WAIT_TRIES} ] || exit 1`,
    '  sleep 0.02',
    'done',
    'token=$1 then=$2',
    'shift 2',
    '[ "$#" -eq 0 ] || sh -c "$@" </dev/null || exit',
    '[ "$then" = stdin ] || exit 0',
    `printf '${THEN_MARK} %s\\n' "$token"`,
    'exec sh -s',
  ].join('\n');
}
const THEN_MARK = '@@then';
const OWNER_WAIT_TRIES = 250;

/**
 * Kills our holder (by the pid in the owner line with our token) and removes the owner line: for
 * a holder that did not end with its input.
 */
export function releaseScript(dir: string = STATE_DIR): string {
  return [
    `o=$(grep -F "$1	" ${dir}/apply.owner 2>/dev/null) || exit 0`,
    `rm -f ${dir}/apply.owner`,
    'kill "$(printf %s "$o" | cut -f3)" 2>/dev/null || true',
  ].join('\n');
}

/** How long release waits for the holder to end with its input before killing it. */
const RELEASE_WAIT_MS = 5_000;

/** Whether `p` settles within `ms`. */
async function endsWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let ended = false;
  await settleWithin(
    p.then(() => (ended = true)),
    ms,
  );
  return ended;
}

/** Waits for `p` at most `ms`; the timer never keeps the process alive. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export type HostLockResult =
  /**
   * `after`: what the follow-up printed once the lock was ours (empty without one); `then`: the
   * result of the `then` script, when it ran.
   */
  | { status: 'locked'; lock: HostLock; after: CommandResult; then?: CommandResult }
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
  if (!since) return 'another criu-lock run (an apply or a rollback) holds the host lock';
  return `another criu-lock run (an apply or a rollback) holds the host lock since ${since}${pid ? ` (holder pid ${pid} on the host)` : ''}`;
}

/** A script run on the host right after the lock is taken, in the same command (no round trip). */
export interface AfterLock {
  script: string;
  /** Its `$0`. */
  name: string;
  args: string[];
  timeoutMs: number;
}

/**
 * A script run by `sh -s` after `after`, still in the same command: the facts probe, so that
 * taking the lock and reading the host cost one round trip.
 */
export interface ThenScript {
  script: string;
  timeoutMs: number;
}

/** The owner command's output past its owner line → what `after` printed and what `then` did. */
export function splitOwnerOutput(
  r: CommandResult,
  token: string,
): { after: CommandResult; then?: CommandResult } {
  const mark = `${THEN_MARK} ${token}\n`;
  const first = r.stdout.startsWith(mark);
  const i = first ? 0 : r.stdout.indexOf(`\n${mark}`) + 1;
  if (!first && i === 0) return { after: r };
  return {
    // The mark is printed only once the follow-up has finished, successfully.
    after: { ...r, stdout: r.stdout.slice(0, i), exitCode: 0, timedOut: false },
    then: { ...r, stdout: r.stdout.slice(i + mark.length) },
  };
}

/**
 * Takes the host lock or reports who has it: two commands, the holder (which never returns while
 * it holds the lock) and one that waits on the host for the holder's owner line and then runs
 * `after` and `then`. `dir` is for tests.
 */
export async function acquireHostLock(
  t: Transport,
  opts: { dir?: string; after?: AfterLock; then?: ThenScript } = {},
): Promise<HostLockResult> {
  const dir = opts.dir ?? STATE_DIR;
  const token = randomBytes(12).toString('hex');
  let finished: CommandResult | undefined;
  let failure: string | undefined;
  const input = new AbortController();
  const holder = t
    .exec(['sh', '-c', holdScript(dir), 'criu-lock-hold', token], { become: true, holdStdin: input.signal })
    .then(
      (r) => {
        finished = r;
        return r;
      },
      (e: unknown) => {
        failure = e instanceof Error ? e.message : String(e);
        return undefined;
      },
    );
  const after = opts.after ? [opts.after.script, opts.after.name, ...opts.after.args] : [];
  const timeoutMs =
    opts.after || opts.then ? (opts.after?.timeoutMs ?? 0) + (opts.then?.timeoutMs ?? 0) : undefined;
  // Settles with the owner line and what followed it when the line is ours; else with undefined.
  const owner = t
    .exec(['sh', '-c', ownerScript(dir), 'criu-lock-owner', token, opts.then ? 'stdin' : '-', ...after], {
      become: true,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(opts.then ? { stdin: opts.then.script } : {}),
    })
    .then(
      (r) => {
        const nl = r.stdout.indexOf('\n');
        const line = r.stdout.slice(0, nl < 0 ? undefined : nl);
        if (!line.startsWith(`${token}\t`)) return undefined;
        return { line, ...splitOwnerOutput({ ...r, stdout: nl < 0 ? '' : r.stdout.slice(nl + 1) }, token) };
      },
      () => undefined,
    );
  // A holder that ends has lost or never had the lock, whatever the owner command says later.
  // The race settles with a boolean: the pending holder keeps the race's promise, and with it its
  // value, until release, and the owner's answer holds the probe's (about 1.6 MiB on a first run).
  const ours = await Promise.race([owner.then((o) => o !== undefined), holder.then(() => false)]);
  const got = ours ? await owner : undefined;
  if (got !== undefined && finished === undefined && failure === undefined) {
    return {
      status: 'locked',
      after: got.after,
      ...(got.then ? { then: got.then } : {}),
      lock: {
        token,
        // A copy: a substring would keep the owner command's whole output (the probe's answer, about
        // 1.6 MiB on a first run) alive for as long as the lock is held.
        since: detach(got.line.split('\t')[1] ?? ''),
        async release() {
          // Ending the holder's input ends the holder; the command's close is its exit, after
          // which the flock is free. Only a holder that does not end is killed by a command.
          input.abort();
          if (await endsWithin(holder, RELEASE_WAIT_MS)) return;
          await t
            .exec(['sh', '-c', releaseScript(dir), 'criu-lock-release', token], { become: true })
            .catch(() => undefined);
          await settleWithin(holder, 3000);
        },
      },
    };
  }
  input.abort();
  await settleWithin(holder, 100);
  if (finished?.exitCode === BUSY) {
    return {
      status: 'busy',
      message: `${describeHolder(finished.stdout)}; this run leaves the host alone`,
    };
  }
  if (failure !== undefined) return { status: 'error', message: `cannot take the host lock: ${failure}` };
  const why = finished
    ? `${finished.stderr.trim().split('\n').slice(-1)[0] || `exit code ${finished.exitCode}`}`
    : 'the lock holder did not report in time';
  return { status: 'error', message: `cannot take the host lock ${HOST_LOCK_FILE}: ${why}` };
}
