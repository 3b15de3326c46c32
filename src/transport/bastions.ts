/**
 * ProxyJump: connections to bastions, shared by every host behind them during a run. A chain
 * `a,b` is a connection to `a`, then one to `b` through a direct-tcpip channel of `a`, each hop
 * verified and authenticated like any host. Connections are reference-counted and closed shortly
 * after the last host using them closes (so hosts worked on one after another reuse them too).
 * Only types are imported at the top: ssh2 loads when the first bastion is needed.
 */
import type { Socket } from 'node:net';
import type { Client, ClientChannel } from 'ssh2';
import { CriuLockError } from '../errors.js';
import { closedBeforeReady, withConnectRetry, type ConnectRetry } from './connect-retry.js';
import { endpointWhere } from './endpoint.js';
import type { BastionConnector, BastionLease, SshEndpoint } from './ssh-options.js';

interface Entry {
  key: string;
  client: Promise<Client>;
  refs: number;
  parent: Entry | undefined;
  timer: NodeJS.Timeout | undefined;
  lost: boolean;
}

export class BastionPool implements BastionConnector {
  private readonly entries = new Map<string, Entry>();
  /** How many bastion logins this pool made (tests check that a bastion is shared). */
  logins = 0;

  constructor(
    private readonly opts: {
      agentSocket?: string | undefined;
      note?: (m: string) => void;
      lingerMs?: number;
      connectRetry?: ConnectRetry | undefined;
    } = {},
  ) {}

  async acquire(chain: readonly SshEndpoint[]): Promise<BastionLease> {
    const entry = this.entry(chain);
    let client: Client;
    try {
      client = await entry.client;
    } catch (e) {
      this.unref(entry);
      throw e;
    }
    let released = false;
    return {
      forward: (address, port) => forward(client, address, port, chain[chain.length - 1]),
      release: () => {
        if (released) return;
        released = true;
        this.unref(entry);
      },
    };
  }

  /** Closes every bastion connection now. */
  closeAll(): void {
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      void e.client.then((c) => c.end()).catch(() => undefined);
    }
    this.entries.clear();
  }

  private entry(chain: readonly SshEndpoint[]): Entry {
    const key = chain.map((h) => endpointWhere(h)).join(' > ');
    const existing = this.entries.get(key);
    if (existing && !existing.lost) {
      existing.refs++;
      if (existing.timer) clearTimeout(existing.timer);
      existing.timer = undefined;
      return existing;
    }
    const hop = chain[chain.length - 1] as SshEndpoint;
    const parent = chain.length > 1 ? this.entry(chain.slice(0, -1)) : undefined;
    const entry: Entry = {
      key,
      client: Promise.resolve(null as never),
      refs: 1,
      parent,
      timer: undefined,
      lost: false,
    };
    entry.client = this.login(hop, parent, entry);
    // A failed login is not cached: the next host retries.
    entry.client.catch(() => {
      entry.lost = true;
    });
    this.entries.set(key, entry);
    return entry;
  }

  private async login(hop: SshEndpoint, parent: Entry | undefined, entry: Entry): Promise<Client> {
    const note = this.opts.note ?? (() => undefined);
    // Loaded on first use: commands import this module, and --help must not load the SSH stack.
    const [{ prepareLogin }, { handshakeTimeoutMs, openTcp }, { default: ssh2 }] = await Promise.all([
      import('./login.js'),
      import('./tcp.js'),
      import('ssh2'),
    ]);
    // Each attempt has its own login and its own way in: a channel of the previous bastion, or a
    // TCP connection with TCP_NODELAY (every later hop and host behind it crosses that socket).
    const { client, login } = await withConnectRetry(this.opts.connectRetry, async () => {
      const forwarded = parent ? await forwardToHop(await parent.client, hop) : undefined;
      const login = await prepareLogin(hop, this.opts.agentSocket, note);
      const started = Date.now();
      let sock: ClientChannel | Socket;
      try {
        sock = forwarded ?? (await openTcp(hop.address, hop.port, hop.connectTimeoutMs));
      } catch (e) {
        throw login.failure(e);
      }
      const client = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', (e) => reject(login.failure(e)));
        // A close after the banner comes without an error; without this the login would wait forever.
        client.once('close', () => reject(login.failure(closedBeforeReady())));
        client.connect({
          ...login.config,
          readyTimeout: handshakeTimeoutMs(hop.connectTimeoutMs, started),
          sock,
        });
      }).catch((e: unknown) => {
        client.end();
        sock.destroy();
        throw e;
      });
      return { client, login };
    });
    this.logins++;
    client.on('error', () => {
      entry.lost = true;
    });
    client.on('close', () => {
      entry.lost = true;
    });
    await login.afterLogin();
    return client;
  }

  private unref(entry: Entry): void {
    entry.refs--;
    if (entry.refs > 0) return;
    const close = (): void => {
      if (entry.refs > 0) return;
      if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
      void entry.client.then((c) => c.end()).catch(() => undefined);
      if (entry.parent) this.unref(entry.parent);
    };
    const linger = this.opts.lingerMs ?? 2_000;
    if (linger <= 0 || entry.lost) close();
    else {
      entry.timer = setTimeout(close, linger);
      entry.timer.unref();
    }
  }
}

function forwardToHop(parent: Client, hop: SshEndpoint): Promise<ClientChannel> {
  return forward(parent, hop.address, hop.port, undefined).catch((e: unknown) => {
    throw new CriuLockError(
      'ssh',
      `cannot reach ${hop.label} through the previous bastion: ${(e as Error).message}`,
      {
        hint: 'check the hop address as the previous bastion sees it',
      },
    );
  });
}

function forward(
  client: Client,
  address: string,
  port: number,
  via: SshEndpoint | undefined,
): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, address, port, (err, channel) => {
      if (err) {
        reject(
          new CriuLockError(
            'ssh',
            `${via ? `${via.label}: ` : ''}cannot open a channel to ${address}:${port}: ${err.message}`,
            {
              cause: err,
              hint: 'the bastion could not connect there: check the address as the bastion sees it, and AllowTcpForwarding on the bastion',
            },
          ),
        );
      } else resolve(channel);
    });
  });
}
