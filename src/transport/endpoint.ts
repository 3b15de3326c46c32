import type { ConnectionSettings, JumpHost } from '../inventory/types.js';
import type { HostKeyChecking, SshOptions } from './ssh-options.js';

/**
 * One SSH server to log in to, a target or a bastion, with the effective settings: the command line
 * (explicit flags) first, then the host's ssh config, then criu-lock's defaults.
 */
export interface SshEndpoint {
  role: 'target' | 'bastion';
  /** For messages: the inventory name, or `bastion SPEC (ProxyJump for HOST)`. */
  label: string;
  address: string;
  port: number;
  user: string;
  /** Explicit key files in order: ansible_ssh_private_key_file, then IdentityFile lines. */
  identityFiles: string[];
  identitiesOnly: boolean;
  /** Files to look host keys up in; new keys (accept-new) go to the first. */
  knownHostsFiles: string[];
  hostKeyChecking: HostKeyChecking;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
}

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
    knownHostsFiles: ex.knownHosts ? [opts.knownHostsFile] : (conn.knownHostsFiles ?? [opts.knownHostsFile]),
    hostKeyChecking: ex.hostKeyChecking
      ? opts.hostKeyChecking
      : (conn.hostKeyChecking ?? opts.hostKeyChecking),
    connectTimeoutMs: ex.connectTimeout
      ? opts.connectTimeoutMs
      : (conn.connectTimeoutMs ?? opts.connectTimeoutMs),
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
    knownHostsFiles: ex.knownHosts ? [opts.knownHostsFile] : (hop.knownHostsFiles ?? [opts.knownHostsFile]),
    hostKeyChecking: ex.hostKeyChecking
      ? opts.hostKeyChecking
      : (hop.hostKeyChecking ?? opts.hostKeyChecking),
    connectTimeoutMs: opts.connectTimeoutMs,
    keepaliveIntervalMs: opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
  };
}

/** `user@address:port`, as messages show an endpoint. */
export function endpointWhere(e: Pick<SshEndpoint, 'user' | 'address' | 'port'>): string {
  return `${e.user}@${e.address}:${e.port}`;
}
