import type { ConnectionSettings, JumpHost } from '../inventory/types.js';
import { GLOBAL_KNOWN_HOSTS_FILES } from './known-hosts-store.js';
import { MAX_TIMER_MS } from './util.js';
import type { SshEndpoint, SshOptions } from './ssh-options.js';

export type { SshEndpoint } from './ssh-options.js';

const DEFAULT_KEEPALIVE_MS = 15_000;

export function targetEndpoint(name: string, conn: ConnectionSettings, opts: SshOptions): SshEndpoint {
  const ex = opts.explicit ?? {};
  return {
    role: 'target',
    label: name,
    address: conn.address,
    port: conn.port,
    user: conn.user,
    identityFiles: [...(conn.privateKeyFile ? [conn.privateKeyFile] : []), ...(conn.identityFiles ?? [])],
    identitiesOnly: conn.identitiesOnly ?? false,
    knownHostsFiles: ex.knownHosts ? [opts.knownHostsFile] : (conn.knownHostsFiles ?? defaultFiles(opts)),
    globalKnownHostsFiles: opts.globalKnownHostsFiles ?? GLOBAL_KNOWN_HOSTS_FILES,
    hostKeyChecking: ex.hostKeyChecking
      ? opts.hostKeyChecking
      : (conn.hostKeyChecking ?? opts.hostKeyChecking),
    // Timers hold at most 2^31-1 ms (24.8 days): a longer ConnectTimeout means "wait", not the
    // 1 ms Node would make of it.
    connectTimeoutMs: Math.min(
      MAX_TIMER_MS,
      ex.connectTimeout ? opts.connectTimeoutMs : (conn.connectTimeoutMs ?? opts.connectTimeoutMs),
    ),
    keepaliveIntervalMs: conn.serverAliveIntervalMs ?? opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
  };
}

export function jumpEndpoint(hop: JumpHost, forHost: string, opts: SshOptions): SshEndpoint {
  const ex = opts.explicit ?? {};
  return {
    role: 'bastion',
    label: `bastion ${hop.spec} (ProxyJump for ${forHost})`,
    address: hop.address,
    port: hop.port,
    user: hop.user,
    identityFiles: hop.identityFiles,
    identitiesOnly: hop.identitiesOnly,
    knownHostsFiles: ex.knownHosts ? [opts.knownHostsFile] : (hop.knownHostsFiles ?? defaultFiles(opts)),
    globalKnownHostsFiles: opts.globalKnownHostsFiles ?? GLOBAL_KNOWN_HOSTS_FILES,
    hostKeyChecking: ex.hostKeyChecking
      ? opts.hostKeyChecking
      : (hop.hostKeyChecking ?? opts.hostKeyChecking),
    connectTimeoutMs: Math.min(MAX_TIMER_MS, opts.connectTimeoutMs),
    keepaliveIntervalMs: opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
  };
}

/** `user@address:port`, as messages show an endpoint. */
export function endpointWhere(e: Pick<SshEndpoint, 'user' | 'address' | 'port'>): string {
  return `${e.user}@${e.address}:${e.port}`;
}

/** known_hosts, then known_hosts2 (read only: accept-new writes to the first), as ssh(1) by default. */
function defaultFiles(opts: SshOptions): string[] {
  return [opts.knownHostsFile, ...(opts.defaultKnownHostsFiles2 ?? [])];
}
