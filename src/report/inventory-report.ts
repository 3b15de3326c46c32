/**
 * `criu-lock inventory`: what criu-lock understood of the inventory, per host. It renders only the
 * resolved connection settings, never raw variables, so passwords, tokens and vault blobs written
 * in the inventory cannot leak into a terminal or CI log.
 */
import type { Inventory, InventoryHost } from '../inventory/types.js';

export type InventoryFormat = 'text' | 'json';

export interface InventoryJson {
  inventory: string;
  hosts: {
    name: string;
    groups: string[];
    connection: {
      kind: 'ssh' | 'local';
      address: string;
      port: number;
      user: string;
      become: boolean;
      privateKeyFile: string | null;
    };
  }[];
  warnings: string[];
}

export function renderInventory(hosts: InventoryHost[], inv: Inventory, format: InventoryFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(inventoryJson(hosts, inv), null, 2)}\n`;
    case 'text':
      return renderText(hosts, inv);
    default: {
      const never: never = format;
      throw new Error(`unknown format ${String(never)}`);
    }
  }
}

export function inventoryJson(hosts: InventoryHost[], inv: Inventory): InventoryJson {
  return {
    inventory: inv.path,
    hosts: hosts.map((h) => ({
      name: h.name,
      groups: shownGroups(h),
      // Field by field on purpose: a new field in ConnectionSettings must be added here consciously.
      connection: {
        kind: h.connection.kind,
        address: h.connection.address,
        port: h.connection.port,
        user: h.connection.user,
        become: h.connection.become,
        privateKeyFile: h.connection.privateKeyFile ?? null,
      },
    })),
    warnings: [...inv.warnings],
  };
}

/** `all` is implied for every host; the rest in Ansible's precedence order. */
function shownGroups(h: InventoryHost): string[] {
  return h.groups.filter((g) => g !== 'all');
}

function renderText(hosts: InventoryHost[], inv: Inventory): string {
  const rows = [
    ['HOST', 'ADDRESS', 'USER', 'BECOME', 'CONNECTION', 'GROUPS'],
    ...hosts.map((h) => [
      h.name,
      h.connection.kind === 'local'
        ? '-'
        : `${h.connection.address.includes(':') ? `[${h.connection.address}]` : h.connection.address}:${h.connection.port}`,
      h.connection.user,
      h.connection.become ? 'sudo' : 'no',
      h.connection.kind,
      shownGroups(h).join(',') || '-',
    ]),
  ];
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  const lines = rows.map((r) =>
    r
      .map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  const total = inv.hosts.length;
  lines.push('', `${hosts.length} of ${total} ${total === 1 ? 'host' : 'hosts'} from ${inv.path}`);
  // Warnings are not repeated here: prepareRun prints them to stderr once, as for every command.
  return `${lines.join('\n')}\n`;
}
