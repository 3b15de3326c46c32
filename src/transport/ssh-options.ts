import type { BastionPool } from './bastions.js';

export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

export interface SshOptions {
  /** OpenSSH known_hosts file to verify (and with accept-new, extend). */
  knownHostsFile: string;
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
  /** Bastion connections shared by the hosts of one run; without it each host opens its own. */
  bastions?: BastionPool | undefined;
}
