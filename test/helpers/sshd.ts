/**
 * A real, throwaway OpenSSH server on 127.0.0.1 for tests: own host key, own config, random port,
 * key-only login. Needs /usr/sbin/sshd and ssh-keygen (Debian: openssh-server, openssh-client);
 * run as root to log in as other users (the become tests create one).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import type { ConnectionSettings } from '../../src/inventory/types.js';

const run = promisify(execFile);

export interface TestSshd {
  host: '127.0.0.1';
  port: number;
  /** Temp directory holding keys, config and logs. */
  dir: string;
  /** Host public key line as in ssh_host_ed25519_key.pub: `ssh-ed25519 AAAA... comment`. */
  hostKeyPub: string;
  hostKeyType: string;
  /** Base64 blob of the host public key (second field of hostKeyPub). */
  hostKeyBlob: string;
  /** Path of the client private key (ed25519, no passphrase) authorized for every authorized user. */
  clientKey: string;
  clientKeyPub: string;
  /** Authorize the client key for another login user (e.g. one created by a test). */
  authorize(user: string): Promise<void>;
  /** What sshd has logged so far (-e sends its log to stderr); useful in failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Users whose login is authorized with the client key (default: root and the current user). */
  users?: string[];
  /** Extra sshd_config lines, placed first so they win over the defaults (no Match blocks). */
  extraConfig?: string[];
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<TestSshd> {
  const dir = await mkdtemp(join(tmpdir(), 'criu-lock-sshd-'));
  // sshd reads authorized_keys as the logging-in user, so the directory must be traversable.
  await chmod(dir, 0o755);
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'client_ed25519');
  const akDir = join(dir, 'authorized_keys');
  await mkdir(akDir, { mode: 0o755 });
  await chmod(akDir, 0o755);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'criu-lock-test-host', '-f', hostKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'criu-lock-test-client', '-f', clientKey]);
  const hostKeyPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim();
  const clientKeyPub = (await readFile(`${clientKey}.pub`, 'utf8')).trim();
  const [hostKeyType = '', hostKeyBlob = ''] = hostKeyPub.split(' ');

  const authorize = async (user: string): Promise<void> => {
    const file = join(akDir, user);
    await writeFile(file, `${clientKeyPub}\n`, { mode: 0o644 });
    await chmod(file, 0o644);
  };
  for (const u of opts.users ?? [...new Set(['root', userInfo().username])]) await authorize(u);

  // Privilege separation directory; sshd refuses to start as root without it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);

  let lastError = '';
  for (let tries = 0; tries < 5; tries++) {
    const port = await freePort();
    const config = join(dir, 'sshd_config');
    await writeFile(
      config,
      [
        // sshd keeps the first value it reads for a keyword, so extra lines go first to override.
        ...(opts.extraConfig ?? []),
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${akDir}/%u`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'LogLevel INFO',
        '',
      ].join('\n'),
    );
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (b: Buffer) => {
      log += b.toString('utf8');
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const ready = await Promise.race([
      waitForPort(port, 10_000).then(
        () => 'ready' as const,
        () => 'timeout' as const,
      ),
      exited.then(() => 'exited' as const),
    ]);
    if (ready === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    if (ready === 'ready') {
      return {
        host: '127.0.0.1',
        port,
        dir,
        hostKeyPub,
        hostKeyType,
        hostKeyBlob,
        clientKey,
        clientKeyPub,
        authorize,
        logs: () => log,
        stop: () => stopSshd(child, exited, dir),
      };
    }
    lastError = log;
    if (!/Address already in use|Cannot bind/i.test(log)) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`sshd did not start: ${lastError}`);
}

async function stopSshd(child: ChildProcess, exited: Promise<unknown>, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
  await rm(dir, { recursive: true, force: true });
}

/** A port that was free a moment ago (sshd may still lose the race; startSshd retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A file's sshd (useSshd): read its fields inside tests and hooks, once beforeAll has run. */
export interface SshdFixture {
  sshd: TestSshd;
  /** A scratch directory, removed after the file's tests. */
  work: string;
  /** known_hosts naming the sshd's host key at [127.0.0.1]:port. */
  knownHosts: string;
  /** Connection settings for `user` (default root) with the sshd's client key. */
  conn(user?: string): ConnectionSettings;
}

/** Starts one sshd before a test file's tests and stops it after; registers vitest hooks. */
export function useSshd(prefix: string): SshdFixture {
  const f = {
    conn(user = 'root'): ConnectionSettings {
      return {
        kind: 'ssh',
        address: '127.0.0.1',
        port: f.sshd.port,
        user,
        privateKeyFile: f.sshd.clientKey,
        become: false,
      };
    },
  } as SshdFixture;
  beforeAll(async () => {
    f.sshd = await startSshd();
    f.work = await mkdtemp(join(tmpdir(), prefix));
    f.knownHosts = join(f.work, 'known_hosts');
    await writeFile(f.knownHosts, `[127.0.0.1]:${f.sshd.port} ${f.sshd.hostKeyType} ${f.sshd.hostKeyBlob}\n`);
  });
  afterAll(async () => {
    await f.sshd?.stop();
    if (f.work) await rm(f.work, { recursive: true, force: true });
  });
  return f;
}
