/**
 * ProxyJump, ssh-agent and key errors against real OpenSSH servers (test/helpers/sshd.ts): the
 * bastion's own sshd log shows the forwarded connection, hosts behind one bastion share one login,
 * each hop's host key is checked, and a passphrase-protected key works only through the agent.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import type { ConnectionSettings, JumpHost } from '../../src/inventory/types.js';
import { BastionPool } from '../../src/transport/bastions.js';
import { connectSsh, type SshOptions } from '../../src/transport/index.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';

const run = promisify(execFile);

let bastion: TestSshd;
let bastion2: TestSshd;
let target: TestSshd;
let target2: TestSshd;
let work: string;
let knownHosts: string;

beforeAll(async () => {
  // DEBUG1 makes sshd log each direct-tcpip request: the proof that the jump was used.
  bastion = await startSshd({ extraConfig: ['LogLevel DEBUG1'] });
  bastion2 = await startSshd({ extraConfig: ['LogLevel DEBUG1'] });
  target = await startSshd();
  target2 = await startSshd();
  work = await mkdtemp(join(tmpdir(), 'criu-lock-jump-test-'));
  knownHosts = join(work, 'known_hosts');
  const line = (s: TestSshd): string => `[127.0.0.1]:${s.port} ${s.hostKeyType} ${s.hostKeyBlob}`;
  await writeFile(knownHosts, [bastion, bastion2, target, target2].map(line).join('\n') + '\n');
});

afterAll(async () => {
  await Promise.all([bastion, bastion2, target, target2].map((s) => s?.stop()));
  if (work) await rm(work, { recursive: true, force: true });
});

const opts = (over: Partial<SshOptions> = {}): SshOptions => ({
  knownHostsFile: knownHosts,
  hostKeyChecking: 'strict',
  connectTimeoutMs: 5_000,
  agentSocket: '',
  ...over,
});

const hop = (s: TestSshd, over: Partial<JumpHost> = {}): JumpHost => ({
  spec: `root@127.0.0.1:${s.port}`,
  address: '127.0.0.1',
  port: s.port,
  user: 'root',
  identityFiles: [s.clientKey],
  identitiesOnly: false,
  ...over,
});

const conn = (t: TestSshd, over: Partial<ConnectionSettings> = {}): ConnectionSettings => ({
  kind: 'ssh',
  address: '127.0.0.1',
  port: t.port,
  user: 'root',
  privateKeyFile: t.clientKey,
  become: false,
  ...over,
});

const forwardsTo = (s: TestSshd, port: number): number =>
  (s.logs().match(new RegExp(`target 127\\.0\\.0\\.1 port ${port}\\b`, 'g')) ?? []).length;
const logins = (s: TestSshd): number => (s.logs().match(/Accepted publickey/g) ?? []).length;

async function refused(p: Promise<unknown>): Promise<CriuLockError> {
  const e = await p.then(
    () => new Error('expected a refusal'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CriuLockError);
  return e as CriuLockError;
}

describe('ProxyJump', () => {
  it('reaches a host through a bastion; the bastion forwarded the connection', async () => {
    const before = forwardsTo(bastion, target.port);
    const t = await connectSsh(conn(target, { proxyJump: [hop(bastion)] }), opts(), { name: 'behind' });
    try {
      const r = await t.exec(['sh', '-c', 'echo $SSH_CONNECTION']);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${target.port}`));
    } finally {
      await t.close();
    }
    expect(forwardsTo(bastion, target.port)).toBe(before + 1);
  });

  it('shares one bastion login between the hosts behind it', async () => {
    const pool = new BastionPool({ agentSocket: '', lingerMs: 1_000 });
    const bastionLogins = logins(bastion);
    const o = opts({ bastions: pool });
    const [a, b] = await Promise.all([
      connectSsh(conn(target, { proxyJump: [hop(bastion)] }), o, { name: 'a' }),
      connectSsh(conn(target2, { proxyJump: [hop(bastion)] }), o, { name: 'b' }),
    ]);
    try {
      expect((await a.exec(['true'])).exitCode).toBe(0);
      expect((await b.exec(['true'])).exitCode).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
    // A host worked on right after reuses the lingering connection too.
    const c = await connectSsh(conn(target, { proxyJump: [hop(bastion)] }), o, { name: 'c' });
    await c.close();
    pool.closeAll();
    expect(pool.logins).toBe(1);
    expect(logins(bastion)).toBe(bastionLogins + 1);
  });

  it('goes through several hops in order', async () => {
    const first = forwardsTo(bastion, bastion2.port);
    const second = forwardsTo(bastion2, target.port);
    const t = await connectSsh(conn(target, { proxyJump: [hop(bastion), hop(bastion2)] }), opts());
    try {
      expect((await t.exec(['true'])).exitCode).toBe(0);
    } finally {
      await t.close();
    }
    expect(forwardsTo(bastion, bastion2.port)).toBe(first + 1);
    expect(forwardsTo(bastion2, target.port)).toBe(second + 1);
  });

  it("checks the bastion's host key like any host's, and never reaches the target when it is unknown", async () => {
    const onlyTarget = join(work, 'kh-target-only');
    await writeFile(onlyTarget, `[127.0.0.1]:${target.port} ${target.hostKeyType} ${target.hostKeyBlob}\n`);
    const before = forwardsTo(bastion, target.port);
    const err = await refused(
      connectSsh(conn(target, { proxyJump: [hop(bastion)] }), opts({ knownHostsFile: onlyTarget }), {
        name: 'h',
      }),
    );
    expect(err.code).toBe('host-key');
    expect(err.message).toMatch(
      new RegExp(
        `^bastion root@127\\.0\\.0\\.1:${bastion.port} \\(ProxyJump for h\\) .*host key is not known`,
      ),
    );
    expect(forwardsTo(bastion, target.port)).toBe(before);
  });

  it('names the bastion when the bastion cannot reach the host', async () => {
    const err = await refused(
      connectSsh(conn(target, { port: 1, proxyJump: [hop(bastion)] }), opts(), { name: 'h' }),
    );
    expect(err.message).toMatch(/cannot open a channel to 127\.0\.0\.1:1/);
    expect(err.message).toMatch(/ProxyJump for h/);
  });

  it('refuses a host whose ssh config needs ProxyCommand instead of connecting directly', async () => {
    const before = logins(target);
    const err = await refused(
      connectSsh(
        conn(target, { unsupported: 'ssh config /x:3 sets ProxyCommand, which criu-lock does not support' }),
        opts(),
        {
          name: 'pc',
        },
      ),
    );
    expect(err.message).toBe('pc: ssh config /x:3 sets ProxyCommand, which criu-lock does not support');
    expect(logins(target)).toBe(before);
  });
});

describe('keys and ssh-agent', () => {
  let encKey: string;
  let agent: ChildProcess | undefined;
  let agentSock: string;

  beforeAll(async () => {
    encKey = join(work, 'enc_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'sekrit', '-C', 'enc', '-f', encKey]);
    const pub = (await readFile(`${encKey}.pub`, 'utf8')).trim();
    await writeFile(join(target.dir, 'authorized_keys', 'root'), `${target.clientKeyPub}\n${pub}\n`);
    agentSock = join(work, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (
        await readFile(agentSock).then(
          () => true,
          (e: NodeJS.ErrnoException) => e.code !== 'ENOENT',
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const askpass = join(work, 'askpass.sh');
    await writeFile(askpass, '#!/bin/sh\necho sekrit\n');
    await chmod(askpass, 0o755);
    await run('ssh-add', [encKey], {
      env: {
        ...process.env,
        SSH_AUTH_SOCK: agentSock,
        SSH_ASKPASS: askpass,
        SSH_ASKPASS_REQUIRE: 'force',
        DISPLAY: ':0',
      },
    });
  });

  afterAll(() => {
    agent?.kill();
  });

  it('gives a clear per-host error naming a passphrase-protected key when there is no agent', async () => {
    const err = await refused(connectSsh(conn(target, { privateKeyFile: encKey }), opts(), { name: 'h' }));
    expect(err.code).toBe('ssh');
    expect(err.message).toBe(
      `cannot log in to root@127.0.0.1:${target.port}: private key ${encKey} is passphrase-protected and no ssh-agent is available (SSH_AUTH_SOCK is not set)`,
    );
    expect(err.hint).toMatch(/ssh-add/);
  });

  it('uses the ssh-agent by default, so the same key works once it is loaded there', async () => {
    const t = await connectSsh(conn(target, { privateKeyFile: encKey }), opts({ agentSocket: agentSock }));
    try {
      expect((await t.exec(['true'])).exitCode).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('IdentitiesOnly: the agent offers only keys matching the identity files', async () => {
    // The identity file is the (unencrypted) key of another server, not authorized here; the agent
    // holds the authorized key but must not offer it.
    const err = await refused(
      connectSsh(
        conn(target, { privateKeyFile: undefined, identityFiles: [bastion.clientKey], identitiesOnly: true }),
        opts({ agentSocket: agentSock }),
      ),
    );
    expect(err.message).toMatch(/authentication failed/);
    expect(err.message).toMatch(/IdentitiesOnly/);
    const t = await connectSsh(
      conn(target, { privateKeyFile: undefined, identityFiles: [encKey], identitiesOnly: true }),
      opts({ agentSocket: agentSock }),
    );
    await t.close();
  });
});
