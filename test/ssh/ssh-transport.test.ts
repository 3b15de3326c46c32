/**
 * The SSH transport against a real OpenSSH server on 127.0.0.1 (see test/helpers/sshd.ts).
 * Runs as root: the become tests create a throwaway user and a sudoers.d file, removed afterwards.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import type { ConnectionSettings } from '../../src/inventory/types.js';
import {
  connectSsh,
  createLocalTransport,
  formatKnownHostsLine,
  isSudoPasswordRequired,
  openTransport,
} from '../../src/transport/index.js';
import type { HostKeyChecking, SshOptions } from '../../src/transport/index.js';
import { inlineStdin } from '../../src/transport/channel-pool.js';
import { freePort, startSshd, type TestSshd } from '../helpers/sshd.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

let sshd: TestSshd;
let work: string;
let knownHosts: string;

beforeAll(async () => {
  sshd = await startSshd();
  work = await mkdtemp(join(tmpdir(), 'criu-lock-ssh-test-'));
  knownHosts = join(work, 'known_hosts');
  await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`);
});

afterAll(async () => {
  await sshd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function conn(over: Partial<ConnectionSettings> = {}): ConnectionSettings {
  return {
    kind: 'ssh',
    address: '127.0.0.1',
    port: sshd.port,
    user: 'root',
    privateKeyFile: sshd.clientKey,
    become: false,
    ...over,
  };
}

function sshOpts(
  file = knownHosts,
  hostKeyChecking: HostKeyChecking = 'strict',
  connectTimeoutMs = 5_000,
): SshOptions {
  // agentSocket '' keeps a developer's own ssh-agent out of the tests.
  return { knownHostsFile: file, hostKeyChecking, connectTimeoutMs, agentSocket: '' };
}

async function khFile(name: string, content: string): Promise<string> {
  const file = join(work, name);
  await writeFile(file, content);
  return file;
}

async function otherKeyBlob(): Promise<string> {
  const dir = await mkdtemp(join(work, 'key-'));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  return (await readFile(join(dir, 'k.pub'), 'utf8')).split(' ')[1] ?? '';
}

async function connectError(p: Promise<unknown>): Promise<CriuLockError> {
  const err = await p.then(
    () => {
      throw new Error('expected the connection to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CriuLockError);
  return err as CriuLockError;
}

const acceptedLogins = (): number => (sshd.logs().match(/Accepted publickey/g) ?? []).length;

describe('exec', () => {
  it('returns stdout, stderr and the exit code without rejecting', async () => {
    const t = await connectSsh(conn(), sshOpts(), { name: 'node-a' });
    try {
      expect(t.host).toBe('node-a');
      const r = await t.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false });
      expect(r.command).toBe(`sh -c 'echo out; echo err >&2; exit 3'`);
      const ok = await t.exec(['true']);
      expect(ok.exitCode).toBe(0);
      const missing = await t.exec(['criu-lock-no-such-command']);
      expect(missing.exitCode).toBe(127);
    } finally {
      await t.close();
    }
  });

  it('feeds stdin (text and bytes) and always closes it', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      expect((await t.exec(['cat'], { stdin: 'hello\nworld' })).stdout).toBe('hello\nworld');
      const bytes = Buffer.from([0, 1, 2, 255, 10, 39, 34]);
      expect((await t.exec(['wc', '-c'], { stdin: bytes })).stdout.trim()).toBe(String(bytes.length));
      // No stdin given: cat must see EOF, not hang.
      expect(await t.exec(['cat'], { timeoutMs: 5_000 })).toMatchObject({
        exitCode: 0,
        stdout: '',
        timedOut: false,
      });
    } finally {
      await t.close();
    }
  });

  it('small text input travels in the command line, exactly; larger input and bytes on the stream', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      // Quotes, backslashes, $, a percent sign, no final newline, and trailing newlines.
      for (const text of [`it's "$HOME" \\n %s %% \`id\``, 'a\n\n\n', '', 'x'.repeat(60 * 1024)]) {
        const r = await t.exec(['sh', '-c', 'cat; exit 3'], { stdin: text });
        expect(r.exitCode).toBe(3);
        expect(r.stdout).toBe(text);
        expect(r.command).toBe(`sh -c 'cat; exit 3'`);
      }
      // Past the limit, or a line that quoting would make too long for one argument: on the stream.
      const big = 'y'.repeat(60 * 1024 + 1);
      expect((await t.exec(['cat'], { stdin: big })).stdout).toBe(big);
      const quotes = "'".repeat(40 * 1024);
      expect(inlineStdin('cat', quotes)).toBeUndefined();
      expect((await t.exec(['cat'], { stdin: quotes })).stdout).toBe(quotes);
      // A command that reads nothing still ends with its own status.
      expect((await t.exec(['sh', '-c', 'exit 4'], { stdin: 'unread' })).exitCode).toBe(4);
    } finally {
      await t.close();
    }
    expect(inlineStdin('cat', 'x'.repeat(60 * 1024))).toBe(`printf '%s' ${'x'.repeat(60 * 1024)} | cat`);
    expect(inlineStdin('cat', 'x'.repeat(60 * 1024 + 1))).toBeUndefined();
    expect(inlineStdin('cat', Buffer.from('abc'))).toBeUndefined();
    expect(inlineStdin('cat', 'a\0b')).toBeUndefined();
  });

  it('delivers awkward arguments verbatim', async () => {
    const marker = join(work, 'pwned');
    const args = [
      `it's "quoted"`,
      'a b  c',
      `$(touch ${marker})`,
      `; touch ${marker}`,
      `\`touch ${marker}\``,
      '*',
      'line1\nline2',
      '',
      '\\ backslash \\n',
      'ünïcødé ✓',
      '--',
      '-n',
    ];
    const t = await connectSsh(conn(), sshOpts());
    try {
      for (const arg of args) {
        const r = await t.exec(['printf', '%s', arg]);
        expect(r.stdout).toBe(arg);
        expect(r.exitCode).toBe(0);
      }
      const all = await t.exec(['sh', '-c', 'for a in "$@"; do printf "<%s>" "$a"; done', 'sh', ...args]);
      expect(all.stdout).toBe(args.map((a) => `<${a}>`).join(''));
      expect(existsSync(marker)).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('applies env through the command line, values quoted', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      const r = await t.exec(['sh', '-c', 'printf "%s|%s" "$FOO" "$LC_ALL"'], {
        env: { FOO: `a b $x 'q'`, LC_ALL: 'C' },
      });
      expect(r.stdout).toBe(`a b $x 'q'|C`);
    } finally {
      await t.close();
    }
  });

  it('runs many commands concurrently on one connection', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      const before = acceptedLogins();
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, i) => t.exec(['sh', '-c', `sleep 0.2; echo ${i}`])),
      );
      expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 25 }, (_, i) => `${i}\n`));
      expect(acceptedLogins()).toBe(before);
    } finally {
      await t.close();
    }
  });

  it('times out: timedOut is set and the call returns promptly', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      const r = await t.exec(['sleep', '30.25'], { timeoutMs: 500 });
      expect(r.timedOut).toBe(true);
      expect(r.exitCode).toBe(124);
      expect(r.command).toBe('timeout -k 2s 0.500s sleep 30.25');
      expect(r.durationMs).toBeLessThan(5_000);
      // The remote command was signalled, not left running (sshd is on this machine).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const ps = await run('ps', ['-eo', 'args']);
      expect(ps.stdout).not.toContain('sleep 30.25');
      // The connection stays usable.
      expect((await t.exec(['echo', 'still here'])).stdout).toBe('still here\n');
    } finally {
      await t.close();
    }
  });

  it('rejects exec after close', async () => {
    const t = await connectSsh(conn(), sshOpts());
    await t.close();
    await expect(t.exec(['true'])).rejects.toMatchObject({ code: 'ssh' });
  });
});

describe('putFile', () => {
  it('writes atomically with the requested mode, leaving no temp files', async () => {
    const dir = await mkdtemp(join(work, 'put-'));
    const dest = join(dir, `pin file's "name"`);
    const content = `Package: libc6\nPin: version 2.31-0ubuntu9.14\n$(touch ${join(dir, 'pwned')}) 'q' "d"\n`;
    const t = await connectSsh(conn(), sshOpts());
    try {
      const r = await t.putFile(dest, content, { mode: 0o640 });
      expect(r.exitCode).toBe(0);
      expect(await readFile(dest, 'utf8')).toBe(content);
      expect((await stat(dest)).mode & 0o7777).toBe(0o640);
      expect(r.command).not.toContain('libc6');

      // Replacing is a rename: a new inode, never a partially written old one.
      const inode = (await stat(dest)).ino;
      const bytes = Buffer.from([0, 1, 2, 3, 255]);
      expect((await t.putFile(dest, bytes)).exitCode).toBe(0);
      expect(await readFile(dest)).toEqual(bytes);
      expect((await stat(dest)).ino).not.toBe(inode);
      // No mode given: the existing file's mode is kept.
      expect((await stat(dest)).mode & 0o7777).toBe(0o640);

      const fresh = join(dir, 'fresh');
      expect((await t.putFile(fresh, 'x')).exitCode).toBe(0);
      expect((await stat(fresh)).mode & 0o7777).toBe(0o644);

      expect((await readdir(dir)).sort()).toEqual(['fresh', `pin file's "name"`]);
    } finally {
      await t.close();
    }
  });

  it('reports a failure as a result, not an exception', async () => {
    const t = await connectSsh(conn(), sshOpts());
    try {
      const r = await t.putFile(join(work, 'no-such-dir', 'f'), 'x');
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/mktemp/);
    } finally {
      await t.close();
    }
  });
});

describe('host key verification', () => {
  const line = (names: string): string => `${names} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`;

  it('accepts a host known by a plain [host]:port line', async () => {
    const file = await khFile(
      'kh-plain',
      formatKnownHostsLine('127.0.0.1', sshd.port, sshd.hostKeyType, sshd.hostKeyBlob) + '\n',
    );
    const t = await connectSsh(conn(), sshOpts(file));
    expect((await t.exec(['echo', 'ok'])).stdout).toBe('ok\n');
    await t.close();
  });

  it('accepts a host known through one of several names with wildcards', async () => {
    const other = await otherKeyBlob();
    const file = await khFile(
      'kh-multi',
      `# fleet\n\nnode-z ssh-ed25519 ${other}\n${line(`other.example,[127.0.0.?]:${sshd.port},!node-q`)}`,
    );
    const t = await connectSsh(conn(), sshOpts(file));
    await t.close();
  });

  it('accepts a host known by a hashed |1| entry written by ssh-keygen -H', async () => {
    const file = await khFile('kh-hashed', line(`[127.0.0.1]:${sshd.port}`));
    await run('ssh-keygen', ['-H', '-f', file]);
    const text = await readFile(file, 'utf8');
    expect(text.startsWith('|1|')).toBe(true);
    const t = await connectSsh(conn(), sshOpts(file));
    await t.close();
  });

  it('strict: refuses an unknown host with a hint, logging in to nothing', async () => {
    const file = await khFile('kh-port22-only', line('127.0.0.1'));
    const before = acceptedLogins();
    const err = await connectError(connectSsh(conn(), sshOpts(file), { name: 'node-a' }));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('node-a');
    expect(err.message).toContain('not known');
    expect(err.message).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
    expect(err.hint).toContain(`ssh-keyscan -p ${sshd.port} 127.0.0.1 >> ${file}`);
    expect(err.hint).toContain('--host-key-checking accept-new');
    expect(acceptedLogins()).toBe(before);
  });

  it('strict: a missing known_hosts file means unknown, not an error', async () => {
    const err = await connectError(connectSsh(conn(), sshOpts(join(work, 'nope', 'known_hosts'))));
    expect(err.code).toBe('host-key');
  });

  it('accept-new: records the key (creating file and directory), then strict succeeds', async () => {
    const dir = join(work, 'fresh-ssh-dir');
    const file = join(dir, 'known_hosts');
    const notes: string[] = [];
    // Several connections learning the same host at once add one line.
    const ts = await Promise.all(
      Array.from({ length: 5 }, () =>
        connectSsh(conn(), sshOpts(file, 'accept-new'), { onNote: (n) => notes.push(n) }),
      ),
    );
    await Promise.all(ts.map((t) => t.close()));
    expect(await readFile(file, 'utf8')).toBe(
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(notes.filter((n) => n.startsWith('Permanently added'))).toHaveLength(1);

    const t = await connectSsh(conn(), sshOpts(file, 'strict'));
    expect((await t.exec(['echo', 'ok'])).stdout).toBe('ok\n');
    await t.close();
  });

  it('accept-new: appends after existing lines, even without a final newline', async () => {
    const other = await otherKeyBlob();
    const file = await khFile('kh-append', `node-z ssh-ed25519 ${other}`);
    const t = await connectSsh(conn(), sshOpts(file, 'accept-new'));
    await t.close();
    expect(await readFile(file, 'utf8')).toBe(
      `node-z ssh-ed25519 ${other}\n${line(`[127.0.0.1]:${sshd.port}`)}`,
    );
  });

  it.each(['strict', 'accept-new'] as const)(
    '%s: refuses a changed key with the OpenSSH explanation',
    async (policy) => {
      const other = await otherKeyBlob();
      const file = await khFile(
        `kh-changed-${policy}`,
        `# header\n[127.0.0.1]:${sshd.port} ssh-ed25519 ${other}\n`,
      );
      const before = acceptedLogins();
      const err = await connectError(connectSsh(conn(), sshOpts(file, policy), { name: 'node-a' }));
      expect(err.code).toBe('host-key');
      expect(err.message).toContain('WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!');
      const { stdout } = await run('ssh-keygen', ['-lf', join(sshd.dir, 'ssh_host_ed25519_key.pub')]);
      const fp = stdout.split(' ')[1] ?? 'missing';
      expect(err.message).toContain(`The ED25519 key fingerprint is ${fp}`);
      expect(err.message).toContain(`Offending ED25519 key in ${file}:2`);
      expect(err.message).not.toContain('\n');
      expect(err.hint).toContain('man-in-the-middle');
      expect(err.hint).toContain(`ssh-keygen -f ${file} -R '[127.0.0.1]:${sshd.port}'`);
      expect(acceptedLogins()).toBe(before);
      expect(await readFile(file, 'utf8')).toBe(`# header\n[127.0.0.1]:${sshd.port} ssh-ed25519 ${other}\n`);
    },
  );

  it('refuses a revoked key even though it is also listed as known', async () => {
    const file = await khFile(
      'kh-revoked',
      `${line(`[127.0.0.1]:${sshd.port}`)}@revoked * ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
    const before = acceptedLogins();
    const err = await connectError(connectSsh(conn(), sshOpts(file, 'accept-new')));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain(`revoked in ${file}:2`);
    expect(acceptedLogins()).toBe(before);
  });

  it('off: accepts any key and writes nothing', async () => {
    const file = join(work, 'kh-off-never-created');
    const t = await connectSsh(conn(), sshOpts(file, 'off'));
    await t.close();
    expect(existsSync(file)).toBe(false);
  });

  it('openTransport picks ssh for ssh hosts and local for local ones', async () => {
    const t = await openTransport({ name: 'node-a', connection: conn() }, sshOpts());
    expect(t.host).toBe('node-a');
    expect((await t.exec(['echo', 'x'])).stdout).toBe('x\n');
    await t.close();
    const l = await openTransport({ name: 'me', connection: conn({ kind: 'local' }) }, sshOpts());
    expect((await l.exec(['printf', '%s', 'a b'])).stdout).toBe('a b');
    await l.close();
  });
});

describe('connection errors', () => {
  it('a closed port fails fast, naming host:port', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await connectError(connectSsh(conn({ port }), sshOpts(knownHosts, 'strict', 2_000)));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err.code).toBe('ssh');
    expect(err.message).toBe(`cannot connect to root@127.0.0.1:${port}: connection refused`);
    expect(err.hint).toBeTruthy();
  });

  it('a server that never speaks is tried 3 times, each within the connect timeout', async () => {
    const sockets: Socket[] = [];
    const server: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    try {
      const started = Date.now();
      // The default retry (connect-retry.ts): 3 attempts, pauses of 250-375 and 500-750 ms.
      const err = await connectError(connectSsh(conn({ port }), sshOpts(knownHosts, 'strict', 2_000)));
      const elapsed = Date.now() - started;
      expect(sockets).toHaveLength(3);
      expect(elapsed).toBeGreaterThanOrEqual(3 * 1_900 + 750);
      expect(elapsed).toBeLessThan(3 * 2_000 + 1_125 + 3_000);
      expect(err.code).toBe('ssh');
      expect(err.message).toBe(`cannot connect to root@127.0.0.1:${port}: timed out (3 attempts)`);
      expect(err.hint).toContain('--connect-timeout');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('authentication failure names the user, host and what was tried', async () => {
    const err = await connectError(connectSsh(conn({ user: 'daemon' }), sshOpts()));
    expect(err.code).toBe('ssh');
    expect(err.message).toBe(
      `cannot log in to daemon@127.0.0.1:${sshd.port}: authentication failed (tried ${sshd.clientKey})`,
    );
    expect(err.hint).toContain('authorized_keys');
  });

  it('an unreadable identity file is a clear error', async () => {
    const err = await connectError(connectSsh(conn({ privateKeyFile: join(work, 'no-key') }), sshOpts()));
    expect(err.code).toBe('ssh');
    expect(err.message).toContain('cannot read private key');
  });
});

describe.runIf(isRoot && existsSync('/usr/bin/sudo'))('become (sudo -n)', () => {
  const user = `clt${process.pid}`;
  const sudoers = `/etc/sudoers.d/criu-lock-test-${user}`;
  const rootFile = `/etc/criu-lock-test-${user}`;

  beforeAll(async () => {
    // '*' instead of useradd's default '!': sshd without PAM refuses accounts with a locked password.
    await run('useradd', ['--create-home', '--shell', '/bin/sh', '--password', '*', user]);
    await sshd.authorize(user);
  });

  afterAll(async () => {
    await unlink(sudoers).catch(() => undefined);
    await unlink(rootFile).catch(() => undefined);
    await run('userdel', ['--remove', user]).catch(() => undefined);
  });

  it('with passwordless sudo: commands and putFile run as root; become: false opts out', async () => {
    await writeFile(sudoers, `${user} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
    await run('visudo', ['-cf', sudoers]);
    const t = await connectSsh(conn({ user, become: true }), sshOpts());
    try {
      const r = await t.exec(['id', '-u']);
      expect(r.command).toBe('sudo -n -- id -u');
      expect(r.stdout).toBe('0\n');
      const own = await t.exec(['id', '-un'], { become: false });
      expect(own.stdout).toBe(`${user}\n`);
      const env = await t.exec(['sh', '-c', 'printf %s "$X"'], { env: { X: 'kept through sudo' } });
      expect(env.stdout).toBe('kept through sudo');

      // A timed-out root command is killed too (timeout runs inside sudo).
      const slow = await t.exec(['sleep', '30.35'], { timeoutMs: 500 });
      expect(slow).toMatchObject({ timedOut: true, command: 'sudo -n -- timeout -k 2s 0.500s sleep 30.35' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await run('ps', ['-eo', 'args'])).stdout).not.toContain('sleep 30.35');

      const put = await t.putFile(rootFile, 'root owned\n', { mode: 0o600 });
      expect(put.exitCode).toBe(0);
      const st = await stat(rootFile);
      expect(st.uid).toBe(0);
      expect(st.mode & 0o777).toBe(0o600);
      expect(await readFile(rootFile, 'utf8')).toBe('root owned\n');
    } finally {
      await t.close();
      await unlink(sudoers);
    }
  });

  it('without a sudo rule: a clear "password required" result, no hang', async () => {
    await unlink(rootFile).catch(() => undefined);
    const t = await connectSsh(conn({ user, become: true }), sshOpts());
    try {
      const r = await t.exec(['id', '-u'], { timeoutMs: 20_000 });
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(isSudoPasswordRequired(r)).toBe(true);
      const put = await t.putFile(rootFile, 'x');
      expect(isSudoPasswordRequired(put)).toBe(true);
      expect(existsSync(rootFile)).toBe(false);
      // Not confused with an ordinary failure.
      expect(
        isSudoPasswordRequired(await t.exec(['sh', '-c', 'echo nope >&2; exit 1'], { become: false })),
      ).toBe(false);
    } finally {
      await t.close();
    }
  });
});

describe('local transport', () => {
  it('runs argv without a shell and returns the same result shape', async () => {
    const t = createLocalTransport('me', { become: true });
    expect(t.host).toBe('me');
    const lit = await t.exec(['printf', '%s', `$(id) ; 'q' "d"`]);
    // Root: become needs no sudo.
    expect(lit).toMatchObject({ exitCode: 0, stdout: `$(id) ; 'q' "d"`, stderr: '', timedOut: false });
    expect(lit.command).toBe(`printf %s '$(id) ; '\\''q'\\'' "d"'`);
    const r = await t.exec(['sh', '-c', 'cat; echo err >&2; exit 5'], { stdin: 'in', env: { A: '1' } });
    expect(r).toMatchObject({ exitCode: 5, stdout: 'in', stderr: 'err\n' });
    expect((await t.exec(['sh', '-c', 'printf %s "$A"'], { env: { A: 'x y' } })).stdout).toBe('x y');
    const missing = await t.exec(['criu-lock-no-such-command']);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('ENOENT');
  });

  it('a timeout kills the whole process group', async () => {
    const t = createLocalTransport('me');
    const r = await t.exec(['sh', '-c', 'sleep 30.45; echo never'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.stdout).toBe('');
    expect(r.durationMs).toBeLessThan(3_000);
    expect((await run('ps', ['-eo', 'args'])).stdout).not.toContain('sleep 30.45');
  });

  it('putFile writes atomically with mode, keeps an existing mode, reports failures as results', async () => {
    const dir = await mkdtemp(join(work, 'local-put-'));
    const t = createLocalTransport('me');
    const dest = join(dir, 'f');
    expect((await t.putFile(dest, 'one', { mode: 0o600 })).exitCode).toBe(0);
    const first = await stat(dest);
    expect(first.mode & 0o7777).toBe(0o600);
    expect((await t.putFile(dest, Buffer.from('two'))).exitCode).toBe(0);
    const second = await stat(dest);
    expect(second.ino).not.toBe(first.ino);
    expect(second.mode & 0o7777).toBe(0o600);
    expect(await readFile(dest, 'utf8')).toBe('two');
    expect((await t.putFile(join(dir, 'g'), 'x')).exitCode).toBe(0);
    expect((await stat(join(dir, 'g'))).mode & 0o7777).toBe(0o644);
    expect((await readdir(dir)).sort()).toEqual(['f', 'g']);
    const bad = await t.putFile(join(dir, 'missing', 'f'), 'x');
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('ENOENT');
  });
});
