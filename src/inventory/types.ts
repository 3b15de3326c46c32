/** Connection settings resolved from Ansible host variables. Never holds secrets. */
export interface ConnectionSettings {
  kind: 'ssh' | 'local';
  /** Address to connect to (ansible_host, else the inventory name). */
  address: string;
  port: number;
  user: string;
  /** Absolute path (after `~` expansion) of ansible_ssh_private_key_file. */
  privateKeyFile?: string | undefined;
  /** ansible_become: run commands as root through `sudo -n` when user is not root. */
  become: boolean;
}

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through children, including `all`. */
  groups: string[];
  /** Variables merged with Ansible's precedence (host > child group > parent group > all). */
  vars: Record<string, unknown>;
  connection: ConnectionSettings;
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
  warnings: string[];
}
