export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

export interface SshOptions {
  /** OpenSSH known_hosts file to verify (and with accept-new, extend). */
  knownHostsFile: string;
  hostKeyChecking: HostKeyChecking;
  connectTimeoutMs: number;
  /** ssh-agent socket; defaults to SSH_AUTH_SOCK. */
  agentSocket?: string | undefined;
  keepaliveIntervalMs?: number;
}
