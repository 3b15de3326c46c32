/**
 * SSH transport on node-ssh/ssh2 with OpenSSH's behaviour: host key policy (host-key-policy.ts,
 * known-hosts-store.ts), agent and identity files (ssh-auth.ts), ProxyJump through shared bastion
 * connections (bastions.ts), and a channel pool per connection (channel-pool.ts).
 */
import { NodeSSH, type Config } from 'node-ssh';
import { CriuLockError } from '../errors.js';
import type { ConnectionSettings } from '../inventory/types.js';
import { BastionPool } from './bastions.js';
import { SshTransport } from './channel-pool.js';
import { withConnectRetry } from './connect-retry.js';
import { endpointWhere, jumpEndpoint, targetEndpoint } from './endpoint.js';
import { prepareLogin, type Login } from './login.js';
import type { BastionLease, SshEndpoint, SshOptions } from './ssh-options.js';
import { handshakeTimeoutMs, openTcp } from './tcp.js';
import type { Transport } from './types.js';

export interface ConnectSshExtras {
  /** Inventory name, used as Transport.host and in messages (default: the address). */
  name?: string;
  /** Non-fatal remarks: key added with accept-new, unusable known_hosts lines, skipped identities. */
  onNote?: (message: string) => void;
}

/**
 * Open a verified SSH connection. Throws CriuLockError: 'host-key' when the host's (or a bastion's)
 * key is refused (nothing is run on it), 'ssh' when the host cannot be reached or authentication
 * fails. A connection that failed before it was ready for a reason that may pass (timeout, reset,
 * closed during the handshake) is tried again (connect-retry.ts); the error says how many attempts
 * were made.
 *
 * `become`: every exec/putFile runs under `sudo -n` when `conn.become` is set and the user is not
 * root; a per-call `become` overrides that default (`become: false` opts out).
 */
export async function connectSsh(
  conn: ConnectionSettings,
  opts: SshOptions,
  extras: ConnectSshExtras = {},
): Promise<Transport> {
  const name = extras.name ?? conn.address;
  const note = extras.onNote ?? opts.onNote ?? (() => undefined);
  if (conn.unsupported !== undefined) {
    throw new CriuLockError('ssh', `${name}: ${conn.unsupported}`, {
      hint: 'replace ProxyCommand with ProxyJump in the ssh config (or the inventory ssh args)',
    });
  }
  const ep = targetEndpoint(name, conn, opts);
  const where = endpointWhere(ep);
  if (ep.hostKeyChecking === 'off' && opts.hostKeyChecking !== 'off') {
    // The run-wide warning covers --host-key-checking off; this one an ssh config that turns it off.
    note(
      `${name}: host key checking is off (StrictHostKeyChecking in the ssh config): its host key is not verified`,
    );
  }

  let lease: BastionLease | undefined;
  let ownPool: BastionPool | undefined;
  if (conn.proxyJump && conn.proxyJump.length > 0) {
    const pool =
      opts.bastions ??
      (ownPool = new BastionPool({
        agentSocket: opts.agentSocket,
        note,
        lingerMs: 0,
        connectRetry: opts.connectRetry,
      }));
    lease = await pool.acquire(conn.proxyJump.map((hop) => jumpEndpoint(hop, name, opts)));
  }
  const release = (): void => {
    lease?.release();
    ownPool?.closeAll();
  };

  let attempt: Connected;
  try {
    attempt = await withConnectRetry(opts.connectRetry, () => connectOnce(ep, opts.agentSocket, note, lease));
  } catch (e) {
    release();
    throw e;
  }
  const { ssh, login } = attempt;
  const client = ssh.connection;
  if (client === null) {
    release();
    throw new CriuLockError('ssh', `${where}: connection closed right after login`);
  }
  await login.afterLogin();
  return new SshTransport(name, where, ssh, client, conn, release);
}

interface Connected {
  ssh: NodeSSH;
  login: Login;
}

/**
 * One connection attempt: a fresh login (its authentication sequence starts over) and, behind a
 * bastion, a fresh channel from it (a failed attempt's channel is gone).
 */
async function connectOnce(
  ep: SshEndpoint,
  agentSocket: string | undefined,
  note: (m: string) => void,
  lease: BastionLease | undefined,
): Promise<Connected> {
  const login = await prepareLogin(ep, agentSocket, note);
  const started = Date.now();
  let sock: Config['sock'];
  try {
    sock = lease
      ? await lease.forward(ep.address, ep.port)
      : await openTcp(ep.address, ep.port, ep.connectTimeoutMs);
  } catch (e) {
    throw login.failure(e);
  }
  const ssh = new NodeSSH();
  try {
    await ssh.connect({
      ...login.config,
      readyTimeout: handshakeTimeoutMs(ep.connectTimeoutMs, started),
      sock,
    } as Config);
  } catch (e) {
    ssh.dispose();
    sock.destroy();
    throw login.failure(e);
  }
  return { ssh, login };
}
