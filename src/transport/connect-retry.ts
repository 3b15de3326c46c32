/**
 * Connect retry (issue 14): a connection that failed before it was ready is tried again, a few
 * times with a growing, jittered pause, when the failure says the host or the controller was only
 * busy. Nothing has run on a host before its connection is ready, so another attempt is always
 * safe; only whether it can help decides. Used for targets (ssh-transport.ts) and bastions
 * (bastions.ts) alike.
 */
import { CriuLockError } from '../errors.js';

export interface ConnectRetry {
  /** Connection attempts in all, the first included (1: no retry). */
  attempts: number;
  /** Pause after the first failed attempt; it doubles after each further one, plus up to half as jitter. */
  baseDelayMs: number;
  /** For tests: the jitter's source (default Math.random) and the pause itself. */
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * 3 attempts, pauses of 250–375 ms and 500–750 ms: a host that times out every time is given up
 * after at most 3 × --connect-timeout + 1.125 s. The jitter spreads the hosts that failed together
 * (one burst of handshakes beyond sshd's MaxStartups) so they do not all come back at once.
 */
export const DEFAULT_CONNECT_RETRY: ConnectRetry = { attempts: 3, baseDelayMs: 250 };

/**
 * Whether a connection error (as ssh2 or node-ssh report it, before the connection was ready) may
 * go away on its own:
 * - ssh2's readyTimeout ('client-timeout'): handshakes queue up on a loaded controller or node;
 * - ECONNRESET / EPIPE, ssh2's "Connection lost before handshake", and node-ssh's close before
 *   ready ("No response from server", ETIMEDOUT): OpenSSH's MaxStartups drops surplus unauthenticated
 *   connections by closing them, before or right after the banner.
 * Not: authentication failures and host key refusals (the answer will not change), DNS failures,
 * no route, and connection refused (nothing listens on the port: sshd MaxStartups does not refuse,
 * it accepts and closes, and a full listen queue drops the SYN, which ends as a timeout).
 */
export function isTransientConnectError(e: unknown): boolean {
  if (e instanceof CriuLockError) return false;
  const err = (e ?? {}) as { code?: unknown; level?: unknown; message?: unknown };
  if (err.level === 'client-timeout') return true;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ETIMEDOUT') return true;
  return err.message === 'Connection lost before handshake';
}

/**
 * The error for a connection that closed after the banner but before it was ready: ssh2's Client
 * emits none then (only 'close'), node-ssh rejects with this one; bastions (bastions.ts) use it too.
 */
export function closedBeforeReady(): Error {
  return Object.assign(new Error('No response from server'), { code: 'ETIMEDOUT' });
}

/** The pause after failed attempt `n` (1-based): base × 2^(n-1), plus up to half of that. */
export function retryDelayMs(retry: ConnectRetry, n: number): number {
  const d = retry.baseDelayMs * 2 ** (n - 1);
  return Math.round(d + (retry.random ?? Math.random)() * (d / 2));
}

/** One failed attempt: the error to report, and whether another attempt may succeed. */
export class ConnectAttemptError extends Error {
  constructor(
    readonly error: CriuLockError,
    readonly transient: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

/**
 * Runs `attempt` until it succeeds, fails for good (it throws anything but a transient
 * ConnectAttemptError) or the attempts are used up. The error of the last attempt is thrown, saying
 * how many were made when there was more than one.
 */
export async function withConnectRetry<T>(
  retry: ConnectRetry | undefined,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  const r = retry ?? DEFAULT_CONNECT_RETRY;
  const sleep = r.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      if (!(e instanceof ConnectAttemptError)) throw e;
      if (!e.transient || n >= r.attempts) throw n > 1 ? withAttemptCount(e.error, n) : e.error;
    }
    await sleep(retryDelayMs(r, n));
  }
}

function withAttemptCount(err: CriuLockError, n: number): CriuLockError {
  return new CriuLockError(err.code, `${err.message} (${n} attempts)`, {
    ...(err.hint !== undefined ? { hint: err.hint } : {}),
    cause: err.cause,
  });
}
