export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

export interface SshOptions {
  /** OpenSSH known_hosts file to verify (and with accept-new, extend). */
  knownHostsFile: string;
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
}
