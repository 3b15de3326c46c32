/**
 * Hostile hosts and inputs at the transport (issue 9), against a real OpenSSH server on 127.0.0.1:
 * the output cap, global known_hosts files, and the notes a run must show (keys added by
 * accept-new, ignored @cert-authority and malformed known_hosts lines).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import type { ConnectionSettings } from '../../src/inventory/types.js';
import { connectSsh, createLocalTransport } from '../../src/transport/index.js';
import type { HostKeyChecking, SshOptions } from '../../src/transport/index.js';
import { hostKeyCheckingWarning } from '../../src/transport/host-key-policy.js';
import { OutputLimitError } from '../../src/transport/output-limit.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';

const run = promisify(execFile);

let sshd: TestSshd;
let work: string;

beforeAll(async () => {
  sshd = await startSshd();
  work = await mkdtemp(join(tmpdir(), 'criu-lock-hostile-ssh-'));
});

afterAll(async () => {
  await sshd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function conn(): ConnectionSettings {
  return {
    kind: 'ssh',
    address: '127.0.0.1',
    port: sshd.port,
    user: 'root',
    privateKeyFile: sshd.clientKey,
    become: false,
  };
}

function opts(
  knownHostsFile: string,
  extra: Partial<SshOptions> = {},
  mode: HostKeyChecking = 'strict',
): SshOptions {
  // No global files unless a test names them: this machine's /etc/ssh must not decide a test.
  return {
    knownHostsFile,
    hostKeyChecking: mode,
    connectTimeoutMs: 5_000,
    agentSocket: '',
    globalKnownHostsFiles: [],
    ...extra,
  };
}

async function file(name: string, content: string): Promise<string> {
  const f = join(work, name);
  await writeFile(f, content);
  return f;
}

async function otherKeyBlob(): Promise<string> {
  const dir = await mkdtemp(join(work, 'key-'));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  return (await readFile(join(dir, 'k.pub'), 'utf8')).split(' ')[1] ?? '';
}

async function refusal(p: Promise<unknown>): Promise<CriuLockError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CriuLockError);
    return e as CriuLockError;
  }
  throw new Error('expected a refusal');
}

describe('output cap', () => {
  it('ssh: stops reading past maxOutputBytes and rejects; the connection stays usable', async () => {
    const t = await connectSsh(
      conn(),
      opts(await file('kh-cap', `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`)),
    );
    try {
      const started = Date.now();
      // 1 GiB on offer; the cap is 1 MB.
      const err = await refusal(
        t.exec(['sh', '-c', 'head -c 1073741824 /dev/zero'], { maxOutputBytes: 1_000_000 }),
      );
      expect(err).toBeInstanceOf(OutputLimitError);
      expect(err.message).toMatch(/a command printed more than 1000000 bytes; stopped reading it/);
      expect(Date.now() - started).toBeLessThan(20_000);
      // Under the cap, the same command is an ordinary result.
      const ok = await t.exec(['sh', '-c', 'head -c 500000 /dev/zero'], { maxOutputBytes: 1_000_000 });
      expect(ok.stdout.length).toBe(500_000);
      // stderr counts too.
      await expect(
        t.exec(['sh', '-c', 'head -c 2000000 /dev/zero >&2'], { maxOutputBytes: 1_000_000 }),
      ).rejects.toBeInstanceOf(OutputLimitError);
    } finally {
      await t.close();
    }
  });

  it('local: kills the command past the cap and rejects', async () => {
    const t = createLocalTransport('here');
    await expect(
      t.exec(['sh', '-c', 'head -c 1073741824 /dev/zero'], { maxOutputBytes: 1_000_000 }),
    ).rejects.toBeInstanceOf(OutputLimitError);
    expect((await t.exec(['sh', '-c', 'printf abc'], { maxOutputBytes: 3 })).stdout).toBe('abc');
  });
});

describe('global known_hosts files (GlobalKnownHostsFile)', () => {
  it('a host known only in a global file is accepted under strict checking', async () => {
    const global = await file(
      'ssh_known_hosts',
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
    const user = join(work, 'empty-user-kh');
    const t = await connectSsh(conn(), opts(user, { globalKnownHostsFiles: [join(work, 'absent'), global] }));
    expect((await t.exec(['echo', 'ok'])).stdout).toBe('ok\n');
    await t.close();
    // Nothing was written anywhere.
    await expect(readFile(user, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('a different key in a global file refuses the host and names that file and line', async () => {
    const global = await file(
      'ssh_known_hosts-bad',
      `# fleet keys\n[127.0.0.1]:${sshd.port} ssh-ed25519 ${await otherKeyBlob()}\n`,
    );
    const err = await refusal(
      connectSsh(conn(), opts(join(work, 'empty-user-kh'), { globalKnownHostsFiles: [global] }), {
        name: 'node-g',
      }),
    );
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    expect(err.message).toContain(`${global}:2`);
    expect(err.hint).toContain(`ssh-keygen -f ${global} -R`);
  });

  it('accept-new does not add a key the global file already knows', async () => {
    const global = await file(
      'ssh_known_hosts-ok',
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
    const user = join(work, 'user-kh-accept');
    const notes: string[] = [];
    const t = await connectSsh(
      conn(),
      opts(user, { globalKnownHostsFiles: [global], onNote: (n) => notes.push(n) }, 'accept-new'),
    );
    await t.close();
    expect(notes).toEqual([]);
    await expect(readFile(user, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

describe('notes a run shows', () => {
  it('keys added by accept-new, @cert-authority and malformed lines arrive through SshOptions.onNote', async () => {
    const user = await file(
      'kh-notes',
      `@cert-authority *.example.com ssh-ed25519 ${await otherKeyBlob()}\nthis line is not a key\n`,
    );
    const notes: string[] = [];
    const t = await connectSsh(conn(), opts(user, { onNote: (n) => notes.push(n) }, 'accept-new'));
    await t.close();
    expect(notes).toEqual([
      `${user}:1: @cert-authority lines are not supported by criu-lock; host certificates are not accepted`,
      `${user}:2: malformed known_hosts line, ignored`,
      `Permanently added '[127.0.0.1]:${sshd.port}' (ED25519) to the list of known hosts (${user}).`,
    ]);
    expect(await readFile(user, 'utf8')).toContain(
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
  });

  it('an unreadable global file is a note, not a failure', async () => {
    const dirAsFile = await mkdtemp(join(work, 'dir-'));
    const notes: string[] = [];
    const user = await file(
      'kh-for-dir',
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyType} ${sshd.hostKeyBlob}\n`,
    );
    const t = await connectSsh(
      conn(),
      opts(user, { globalKnownHostsFiles: [dirAsFile], onNote: (n) => notes.push(n) }),
    );
    await t.close();
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(new RegExp(`^${dirAsFile}: cannot read this global known_hosts file \\(EISDIR`));
  });

  it('--host-key-checking off has a warning; the other modes have none', () => {
    expect(hostKeyCheckingWarning('off')).toMatch(/^--host-key-checking off: host keys are not verified/);
    expect(hostKeyCheckingWarning('strict')).toBeUndefined();
    expect(hostKeyCheckingWarning('accept-new')).toBeUndefined();
  });
});
