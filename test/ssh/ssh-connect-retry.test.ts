/**
 * Connect retry (issue 14) against real OpenSSH servers on 127.0.0.1: a connection closed before
 * the banner (what sshd's MaxStartups does) or a handshake that times out is tried again and then
 * works; an authentication failure or a refused host key is not tried again. A small TCP proxy in
 * front of the sshd decides what each connection gets and counts them.
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import type { ConnectionSettings, JumpHost } from '../../src/inventory/types.js';
import type { ConnectRetry } from '../../src/transport/connect-retry.js';
import { connectSsh, type SshOptions, type Transport } from '../../src/transport/index.js';
import { startSshd, useSshd, type TestSshd } from '../helpers/sshd.js';

const fx = useSshd('criu-lock-connect-retry-');

/** What the proxy does with one connection. */
type Treatment = 'close' | 'silent' | 'cut' | 'forward';

interface Proxy {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  stop(): Promise<void>;
}

/** A TCP proxy to `targetPort`; `treat(n)` decides what the n-th connection (1-based) gets. */
async function startProxy(targetPort: number, treat: (n: number) => Treatment): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  };
  const proxy = { port: 0, connections: 0, stop };
  const server = createServer((client) => {
    track(client);
    const how = treat(++proxy.connections);
    // sshd beyond MaxStartups: this line, then close, before its banner.
    if (how === 'close') client.end('Exceeded MaxStartups\r\n');
    // 'silent': accepted, never a byte back, as a server too busy to answer: the ready timeout.
    if (how === 'close' || how === 'silent') return;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    track(upstream);
    client.pipe(upstream).pipe(client);
    // 'cut': the server's banner gets through, then both sides are closed: a close in the key
    // exchange, which ssh2 reports with no error at all.
    if (how === 'cut') upstream.once('data', () => setImmediate(() => client.destroy()));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  proxy.port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  function stop(): Promise<void> {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  }
  return proxy;
}

const proxies: Proxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
});

/** A proxy in front of the fixture's sshd, known in a known_hosts file of its own (the port differs). */
async function proxyToSshd(
  treat: (n: number) => Treatment,
  hostKeyBlob?: string,
): Promise<Proxy & { kh: string }> {
  const p = await startProxy(fx.sshd.port, treat);
  proxies.push(p);
  const kh = join(fx.work, `known_hosts-${p.port}`);
  await writeFile(kh, `[127.0.0.1]:${p.port} ${fx.sshd.hostKeyType} ${hostKeyBlob ?? fx.sshd.hostKeyBlob}\n`);
  return Object.assign(p, { kh });
}

/** Fast pauses: the tests are about which attempts happen, not how long they wait. */
const quick: ConnectRetry = { attempts: 3, baseDelayMs: 20 };

function sshOpts(knownHostsFile: string, over: Partial<SshOptions> = {}): SshOptions {
  return {
    knownHostsFile,
    hostKeyChecking: 'strict',
    connectTimeoutMs: 10_000,
    agentSocket: '',
    globalKnownHostsFiles: [],
    connectRetry: quick,
    ...over,
  };
}

const through = (p: Proxy, over: Partial<ConnectionSettings> = {}): ConnectionSettings => ({
  ...fx.conn(),
  port: p.port,
  ...over,
});

async function works(t: Transport): Promise<void> {
  try {
    const r = await t.exec(['echo', 'ran']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('ran\n');
  } finally {
    await t.close();
  }
}

async function refused(p: Promise<unknown>): Promise<CriuLockError> {
  const e = await p.then(
    () => new Error('expected the connection to fail'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CriuLockError);
  return e as CriuLockError;
}

describe('connect retry', () => {
  it('connects on the second attempt when the first is closed before the banner', async () => {
    const p = await proxyToSshd((n) => (n === 1 ? 'close' : 'forward'));
    await works(await connectSsh(through(p), sshOpts(p.kh)));
    expect(p.connections).toBe(2);
  });

  it('connects on the second attempt when the first handshake times out', async () => {
    const p = await proxyToSshd((n) => (n === 1 ? 'silent' : 'forward'));
    const started = Date.now();
    await works(await connectSsh(through(p), sshOpts(p.kh, { connectTimeoutMs: 3_000 })));
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(p.connections).toBe(2);
  });

  it('gives up after the last attempt and says how many were made', async () => {
    const p = await proxyToSshd(() => 'close');
    const err = await refused(connectSsh(through(p), sshOpts(p.kh)));
    expect(err.code).toBe('ssh');
    expect(err.message).toMatch(
      new RegExp(
        `^cannot connect to root@127\\.0\\.0\\.1:${p.port}: connection closed by the host \\(.*\\) \\(3 attempts\\)$`,
      ),
    );
    expect(err.hint).toContain('MaxStartups');
    expect(p.connections).toBe(3);
  });

  it('does not retry an authentication failure', async () => {
    const p = await proxyToSshd(() => 'forward');
    const err = await refused(connectSsh(through(p, { user: 'daemon' }), sshOpts(p.kh)));
    expect(err.message).toBe(
      `cannot log in to daemon@127.0.0.1:${p.port}: authentication failed (tried ${fx.sshd.clientKey})`,
    );
    expect(p.connections).toBe(1);
  });

  it('does not retry a refused host key', async () => {
    // Another ed25519 key than the server's: the client key will do.
    const p = await proxyToSshd(() => 'forward', fx.sshd.clientKeyPub.split(' ')[1]);
    const err = await refused(connectSsh(through(p), sshOpts(p.kh)));
    expect(err.code).toBe('host-key');
    expect(p.connections).toBe(1);
  });

  it('connects on the second attempt when the first is closed in the key exchange', async () => {
    const p = await proxyToSshd((n) => (n === 1 ? 'cut' : 'forward'));
    await works(await connectSsh(through(p), sshOpts(p.kh)));
    expect(p.connections).toBe(2);
  });

  it('retries a bastion and the host behind it, each on its own', async () => {
    const bastion = await proxyToSshd((n) => (n === 1 ? 'cut' : 'forward'));
    const target = await proxyToSshd((n) => (n === 1 ? 'close' : 'forward'));
    const kh = join(fx.work, 'known_hosts-jump');
    await writeFile(
      kh,
      [bastion, target]
        .map((p) => `[127.0.0.1]:${p.port} ${fx.sshd.hostKeyType} ${fx.sshd.hostKeyBlob}\n`)
        .join(''),
    );
    const hop: JumpHost = {
      spec: `root@127.0.0.1:${bastion.port}`,
      address: '127.0.0.1',
      port: bastion.port,
      user: 'root',
      identityFiles: [fx.sshd.clientKey],
      identitiesOnly: false,
    };
    await works(await connectSsh(through(target, { proxyJump: [hop] }), sshOpts(kh)));
    expect(bastion.connections).toBe(2);
    expect(target.connections).toBe(2);
  });
});

describe("sshd's own MaxStartups", () => {
  let busy: TestSshd;
  beforeAll(async () => {
    busy = await startSshd({ extraConfig: ['MaxStartups 1'] });
  });
  afterAll(async () => {
    await busy?.stop();
  });

  /** An unauthenticated connection holding sshd's only startup slot: it got the banner. */
  async function holdTheSlot(): Promise<Socket> {
    for (;;) {
      const s = connect({ host: '127.0.0.1', port: busy.port });
      s.on('error', () => undefined);
      const first = await Promise.race([
        once(s, 'data').then(([b]) => (b as Buffer).toString('latin1')),
        once(s, 'close').then(() => ''),
      ]);
      if (first.startsWith('SSH-')) return s;
      // The slot was still taken (startSshd's port probe): try again.
      s.destroy();
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('a connection sshd drops is tried again once the slot is free', async () => {
    const kh = join(fx.work, 'known_hosts-busy');
    await writeFile(kh, `[127.0.0.1]:${busy.port} ${busy.hostKeyType} ${busy.hostKeyBlob}\n`);
    const holder = await holdTheSlot();
    let pauses = 0;
    const retry: ConnectRetry = {
      attempts: 3,
      baseDelayMs: 0,
      // The pause frees the slot, and leaves sshd time to notice.
      sleep: async () => {
        pauses++;
        holder.destroy();
        await new Promise((r) => setTimeout(r, 1_000));
      },
    };
    try {
      const t = await connectSsh(
        { ...fx.conn(), port: busy.port, privateKeyFile: busy.clientKey },
        sshOpts(kh, { connectRetry: retry }),
      );
      await works(t);
    } finally {
      holder.destroy();
    }
    expect(pauses).toBeGreaterThanOrEqual(1);
    expect(busy.logs()).toMatch(/drop connection #\d+ from .* past MaxStartups/);
  });
});
