import type { ConnectionSettings } from '../inventory/types.js';
import { createLocalTransport } from './local-transport.js';
import type { SshOptions } from './ssh-options.js';
import { connectSsh, type ConnectSshExtras } from './ssh-transport.js';
import type { Transport } from './types.js';

/** The transport an inventory host asks for: `ansible_connection: local` runs here, anything else over SSH. */
export function openTransport(
  host: { name: string; connection: ConnectionSettings },
  opts: SshOptions,
  extras: Omit<ConnectSshExtras, 'name'> = {},
): Promise<Transport> {
  const conn = host.connection;
  switch (conn.kind) {
    case 'local':
      return Promise.resolve(createLocalTransport(host.name, { become: conn.become }));
    case 'ssh':
      return connectSsh(conn, opts, { ...extras, name: host.name });
    default: {
      const never: never = conn.kind;
      throw new Error(`unknown connection kind ${String(never)}`);
    }
  }
}
