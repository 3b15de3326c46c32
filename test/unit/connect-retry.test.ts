/**
 * Connect retry (issue 14): which connection errors are tried again, the pauses between attempts,
 * and the error that ends the attempts. The real handshakes are in test/ssh/ssh-connect-retry.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import {
  closedBeforeReady,
  ConnectAttemptError,
  isTransientConnectError,
  retryDelayMs,
  withConnectRetry,
  type ConnectRetry,
} from '../../src/transport/connect-retry.js';
import { connectError } from '../../src/transport/ssh-auth.js';

/** An error as ssh2 (or node's socket under it) reports it. */
function sshErr(message: string, fields: { level?: string; code?: string } = {}): Error {
  return Object.assign(new Error(message), fields);
}

describe('isTransientConnectError', () => {
  it.each([
    ['the ready timeout', sshErr('Timed out while waiting for handshake', { level: 'client-timeout' })],
    ['a reset', sshErr('read ECONNRESET', { level: 'client-socket', code: 'ECONNRESET' })],
    ['a write to a closed socket', sshErr('write EPIPE', { level: 'client-socket', code: 'EPIPE' })],
    [
      'a close before the banner (MaxStartups)',
      sshErr('Connection lost before handshake', { level: 'protocol' }),
    ],
    ["node-ssh's close before ready", sshErr('No response from server', { code: 'ETIMEDOUT' })],
    ['the bastion close before ready', closedBeforeReady()],
    [
      'a TCP connect timeout',
      sshErr('connect ETIMEDOUT 10.0.0.1:22', { level: 'client-socket', code: 'ETIMEDOUT' }),
    ],
  ])('retries %s', (_what, e) => {
    expect(isTransientConnectError(e)).toBe(true);
  });

  it.each([
    [
      'an authentication failure',
      sshErr('All configured authentication methods failed', { level: 'client-authentication' }),
    ],
    ['a refused host key', sshErr('Host denied (verification failed)', { level: 'handshake' })],
    ['no common algorithm', sshErr('Handshake failed: no matching host key format', { level: 'handshake' })],
    [
      'connection refused',
      sshErr('connect ECONNREFUSED 127.0.0.1:22', { level: 'client-socket', code: 'ECONNREFUSED' }),
    ],
    ['a DNS failure', sshErr('getaddrinfo ENOTFOUND nowhere', { level: 'client-socket', code: 'ENOTFOUND' })],
    ['a DNS timeout', sshErr('getaddrinfo EAI_AGAIN nowhere', { level: 'client-socket', code: 'EAI_AGAIN' })],
    [
      'no route',
      sshErr('connect EHOSTUNREACH 10.0.0.1:22', { level: 'client-socket', code: 'EHOSTUNREACH' }),
    ],
    ['a bad packet', sshErr('Bad packet length 999999', { level: 'protocol' })],
    ['an agent failure', sshErr('Failed to connect to agent', { level: 'agent' })],
    ["criu-lock's own error (bastion channel refused)", new CriuLockError('ssh', 'cannot open a channel')],
    ['nothing', undefined],
  ])('does not retry %s', (_what, e) => {
    expect(isTransientConnectError(e)).toBe(false);
  });
});

describe('retryDelayMs', () => {
  it('doubles from the base, with up to half of it as jitter', () => {
    const at = (random: number, n: number): number =>
      retryDelayMs({ attempts: 3, baseDelayMs: 250, random: () => random }, n);
    expect([at(0, 1), at(0, 2), at(0, 3)]).toEqual([250, 500, 1000]);
    expect([at(0.999999, 1), at(0.999999, 2)]).toEqual([375, 750]);
    expect(at(0.5, 1)).toBe(313);
  });
});

describe('withConnectRetry', () => {
  const transient = (): ConnectAttemptError =>
    new ConnectAttemptError(
      connectError(
        sshErr('Timed out while waiting for handshake', { level: 'client-timeout' }),
        'root@h:22',
        [],
      ),
      true,
    );
  const final = (): ConnectAttemptError =>
    new ConnectAttemptError(
      connectError(
        sshErr('All configured authentication methods failed', { level: 'client-authentication' }),
        'root@h:22',
        ['/k'],
      ),
      false,
    );

  /** Runs `outcomes` in order (an error is thrown, anything else returned) and records the pauses. */
  async function run(
    outcomes: unknown[],
    retry: Partial<ConnectRetry> = {},
  ): Promise<{ result?: unknown; error?: unknown; calls: number; pauses: number[] }> {
    const pauses: number[] = [];
    let calls = 0;
    const policy: ConnectRetry = {
      attempts: 3,
      baseDelayMs: 100,
      random: () => 0,
      sleep: (ms) => {
        pauses.push(ms);
        return Promise.resolve();
      },
      ...retry,
    };
    try {
      const result = await withConnectRetry(policy, (n) => {
        calls++;
        expect(n).toBe(calls);
        const o = outcomes[n - 1];
        return o instanceof Error ? Promise.reject(o) : Promise.resolve(o);
      });
      return { result, calls, pauses };
    } catch (error) {
      return { error, calls, pauses };
    }
  }

  it('returns the first success without pausing', async () => {
    expect(await run(['ok'])).toEqual({ result: 'ok', calls: 1, pauses: [] });
  });

  it('tries again after transient failures, with growing pauses', async () => {
    expect(await run([transient(), transient(), 'ok'])).toEqual({
      result: 'ok',
      calls: 3,
      pauses: [100, 200],
    });
  });

  it('gives up after the last attempt, saying how many were made', async () => {
    const r = await run([transient(), transient(), transient(), 'never']);
    expect(r.calls).toBe(3);
    expect(r.pauses).toEqual([100, 200]);
    const err = r.error as CriuLockError;
    expect(err).toBeInstanceOf(CriuLockError);
    expect(err.code).toBe('ssh');
    expect(err.message).toBe('cannot connect to root@h:22: timed out (3 attempts)');
    expect(err.hint).toContain('--connect-timeout');
    expect((err.cause as Error).message).toBe('Timed out while waiting for handshake');
  });

  it('does not retry a failure that will not pass, and says nothing of attempts', async () => {
    const r = await run([final(), 'never']);
    expect(r.calls).toBe(1);
    expect(r.pauses).toEqual([]);
    expect((r.error as CriuLockError).message).toBe(
      'cannot log in to root@h:22: authentication failed (tried /k)',
    );
  });

  it('counts the attempts when a later one fails for good', async () => {
    const r = await run([transient(), final(), 'never']);
    expect(r.calls).toBe(2);
    expect((r.error as CriuLockError).message).toMatch(/authentication failed \(tried \/k\) \(2 attempts\)$/);
  });

  it('passes other errors through at once (an unreadable key, a refused bastion channel)', async () => {
    const own = new CriuLockError('ssh', 'cannot read private key /k');
    const r = await run([own, 'never']);
    expect(r).toEqual({ error: own, calls: 1, pauses: [] });
  });

  it('attempts: 1 turns the retry off', async () => {
    const r = await run([transient(), 'never'], { attempts: 1 });
    expect(r.calls).toBe(1);
    expect((r.error as CriuLockError).message).toBe('cannot connect to root@h:22: timed out');
  });
});

describe('connectError', () => {
  it("reads ssh2's close before the banner as a close, with MaxStartups in the hint", () => {
    const err = connectError(
      sshErr('Connection lost before handshake', { level: 'protocol' }),
      'root@h:22',
      [],
    );
    expect(err.message).toBe(
      'cannot connect to root@h:22: connection closed by the host (Connection lost before handshake)',
    );
    expect(err.hint).toContain('MaxStartups');
  });

  it("reads node-ssh's close before ready as a close, not a timeout", () => {
    const err = connectError(closedBeforeReady(), 'root@h:22', []);
    expect(err.message).toBe(
      'cannot connect to root@h:22: connection closed by the host (No response from server)',
    );
  });

  it('still reads a TCP connect timeout as a timeout', () => {
    const err = connectError(sshErr('connect ETIMEDOUT 10.0.0.1:22', { code: 'ETIMEDOUT' }), 'root@h:22', []);
    expect(err.message).toBe('cannot connect to root@h:22: timed out');
  });
});
