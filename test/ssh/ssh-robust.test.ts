/**
 * The SSH transport on a loaded controller (issue 14), against a real OpenSSH server on 127.0.0.1:
 * a command's exit status must survive an event loop that reads the whole channel at once, and a
 * command the transport lost must not read as "exit code null".
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionSettings } from '../../src/inventory/types.js';
import { connectSsh } from '../../src/transport/index.js';
import type { SshOptions } from '../../src/transport/index.js';
import { useSshd } from '../helpers/sshd.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
/**
 * A login whose shell is /bin/sh: commands must come back within milliseconds for the race below,
 * and a login shell that reads rc files (bash sources ~/.bashrc under sshd) takes seconds.
 */
const user = `clr${process.pid}`;

const fx = useSshd('criu-lock-ssh-robust-');

beforeAll(async () => {
  if (isRoot) {
    // '*' instead of useradd's default '!': sshd without PAM refuses accounts with a locked password.
    await run('useradd', ['--no-create-home', '--shell', '/bin/sh', '--password', '*', user]);
    await fx.sshd.authorize(user);
  }
});

afterAll(async () => {
  if (isRoot) await run('userdel', [user]).catch(() => undefined);
});

const conn = (): ConnectionSettings => fx.conn(user);

function sshOpts(): SshOptions {
  return {
    knownHostsFile: fx.knownHosts,
    hostKeyChecking: 'strict',
    connectTimeoutMs: 10_000,
    agentSocket: '',
  };
}

/**
 * Makes every turn of the event loop take `ms` of CPU, as a controller on a machine with load 30
 * does: whatever the server sent meanwhile (exec accepted, exit status, EOF, close) is then read
 * and parsed in one go.
 */
function starveEventLoop(ms: number): () => void {
  const timer = setInterval(() => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      // busy: the server's packets pile up in the socket
    }
  }, 0);
  return () => clearInterval(timer);
}

describe.runIf(isRoot)('a starved event loop', () => {
  it('keeps the exit status of commands whose whole channel arrives in one read', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      const stop = starveEventLoop(300);
      const results = [];
      try {
        // One after another, like apply's tasks: each exec round trip spans several loop turns.
        for (const code of [0, 3, 0, 7, 0, 1]) results.push(await t.exec(['sh', '-c', `exit ${code}`]));
      } finally {
        stop();
      }
      expect(results.map((r) => r.exitCode)).toEqual([0, 3, 0, 7, 0, 1]);
    } finally {
      await t.close();
    }
  });
});
