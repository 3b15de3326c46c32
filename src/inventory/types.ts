import type { HostKeyChecking } from '../transport/ssh-options.js';

/** One hop of a ProxyJump chain, with its own settings from the ssh config. */
export interface JumpHost {
  /** As written (`user@host:port`), for messages. */
  spec: string;
  address: string;
  port: number;
  user: string;
  identityFiles: string[];
  identitiesOnly: boolean;
  knownHostsFiles?: string[] | undefined;
  hostKeyChecking?: HostKeyChecking | undefined;
}

/** The settings `criu-lock inventory` explains, with where each came from. */
export type ConnectionField =
  | 'address'
  | 'port'
  | 'user'
  | 'identityFiles'
  | 'identitiesOnly'
  | 'proxyJump'
  | 'knownHostsFiles'
  | 'hostKeyChecking'
  | 'connectTimeout'
  | 'serverAliveInterval';

/** Connection settings resolved from Ansible host variables. Never holds secrets. */
export interface ConnectionSettings {
  kind: 'ssh' | 'local';
  /** Address to connect to (ansible_host, else the inventory name; then the ssh config's HostName). */
  address: string;
  port: number;
  user: string;
  /** Absolute path (after `~` expansion) of ansible_ssh_private_key_file. */
  privateKeyFile?: string | undefined;
  /** ansible_become: run commands as root through `sudo -n` when user is not root. */
  become: boolean;
  /** IdentityFile lines of the ssh config, expanded, tried after privateKeyFile. */
  identityFiles?: string[] | undefined;
  /** IdentitiesOnly: offer only the identity files (agent keys only when they match one). */
  identitiesOnly?: boolean | undefined;
  /** Bastions, in the order they are connected (ProxyJump). */
  proxyJump?: JumpHost[] | undefined;
  /** UserKnownHostsFile of the ssh config (the first is the one written to). */
  knownHostsFiles?: string[] | undefined;
  /** StrictHostKeyChecking of the ssh config. */
  hostKeyChecking?: HostKeyChecking | undefined;
  connectTimeoutMs?: number | undefined;
  serverAliveIntervalMs?: number | undefined;
  /**
   * Something this host needs that criu-lock cannot do (e.g. ProxyCommand): connecting refuses
   * the host with this message instead of connecting the wrong way.
   */
  unsupported?: string | undefined;
}

/** Where each setting came from: `inventory.yaml:3 (ansible_port)`, `ssh config FILE:7 (Port)`, `default`. */
export type ConnectionOrigins = Partial<Record<ConnectionField, string>>;

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through children, including `all`. */
  groups: string[];
  /** Variables merged with Ansible's precedence (host > child group > parent group > all). */
  vars: Record<string, unknown>;
  connection: ConnectionSettings;
  origins?: ConnectionOrigins;
}

export interface InventoryGroup {
  name: string;
  /** Hosts directly in this group. */
  hosts: string[];
  children: string[];
  vars: Record<string, unknown>;
}

export interface Inventory {
  path: string;
  /** Hosts in file order. */
  hosts: InventoryHost[];
  groups: Map<string, InventoryGroup>;
  /**
   * Everything the user should see before a run, as text: inventory problems, ignored variables,
   * skipped vault files, unsupported ssh config per host. Every command prints them.
   */
  warnings: string[];
  /** Files read besides the inventory (group_vars, host_vars, ssh config), for `inventory -v`. */
  sources?: string[];
}
