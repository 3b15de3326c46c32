import type { ClientChannel } from 'ssh2';
import type { ConnectRetry } from './connect-retry.js';

export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

export interface SshOptions {
  /** OpenSSH known_hosts file to verify (and with accept-new, extend). */
  knownHostsFile: string;
  /**
   * Read after knownHostsFile when neither --known-hosts nor the ssh config names the files:
   * OpenSSH's default UserKnownHostsFile is `~/.ssh/known_hosts ~/.ssh/known_hosts2`.
   */
  defaultKnownHostsFiles2?: readonly string[] | undefined;
  /** Read-only known_hosts files checked too (default GLOBAL_KNOWN_HOSTS_FILES, as ssh(1)). */
  globalKnownHostsFiles?: readonly string[] | undefined;
  /**
   * Remarks the user should see: keys added by accept-new, known_hosts lines ignored
   * (@cert-authority, malformed), unusable identities. The same remark may come once per host.
   */
  onNote?: ((message: string) => void) | undefined;
  hostKeyChecking: HostKeyChecking;
  connectTimeoutMs: number;
  /** ssh-agent socket; defaults to SSH_AUTH_SOCK. */
  agentSocket?: string | undefined;
  keepaliveIntervalMs?: number;
  /**
   * Which of the above were given on the command line: those win over the host's ssh config
   * (UserKnownHostsFile, StrictHostKeyChecking, ConnectTimeout), like `ssh -o`. Defaults do not.
   */
  explicit?: { knownHosts?: boolean; hostKeyChecking?: boolean; connectTimeout?: boolean } | undefined;
  /** Attempts and pauses for connections that fail before they are ready (default DEFAULT_CONNECT_RETRY). */
  connectRetry?: ConnectRetry | undefined;
  /** Bastion connections shared by the hosts of one run (bastions.ts); without it each host opens its own. */
  bastions?: BastionConnector | undefined;
}

/**
 * One SSH server to log in to, a target or a bastion, with the effective settings: the command line
 * (explicit flags) first, then the host's ssh config, then criu-lock's defaults (endpoint.ts).
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
  /** Read-only files looked up after knownHostsFiles (GlobalKnownHostsFile). */
  globalKnownHostsFiles: readonly string[];
  hostKeyChecking: HostKeyChecking;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
}

export interface BastionLease {
  /** A channel from the last bastion to `address:port` (what `ssh -W` / ProxyJump does). */
  forward(address: string, port: number): Promise<ClientChannel>;
  release(): void;
}

export interface BastionConnector {
  /** A logged-in connection to the last hop of `chain` (through the earlier hops). */
  acquire(chain: readonly SshEndpoint[]): Promise<BastionLease>;
}
