/**
 * `criu-lock inventory`: what criu-lock understood of the inventory, per host. It renders only the
 * resolved connection settings, never raw variables, so passwords, tokens and vault blobs written
 * in the inventory cannot leak into a terminal or CI log.
 */
import type { Inventory, InventoryHost, JumpHost } from '../inventory/types.js';
import { MAX_TIMER_MS } from '../transport/util.js';
import { escapeText } from './escape.js';

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
      identityFiles: string[];
      identitiesOnly: boolean;
      /** Bastions in connection order, as `user@address:port`. */
      proxyJump: string[];
      knownHostsFiles: string[] | null;
      hostKeyChecking: string | null;
      connectTimeoutMs: number | null;
      serverAliveIntervalMs: number | null;
      unsupported: string | null;
    };
    /** Where each setting came from: `FILE:LINE (variable)`, `ssh config FILE:LINE (Keyword)`, `default`. */
    origins: Record<string, string>;
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
        identityFiles: h.connection.identityFiles ?? [],
        identitiesOnly: h.connection.identitiesOnly ?? false,
        proxyJump: (h.connection.proxyJump ?? []).map(hopText),
        knownHostsFiles: h.connection.knownHostsFiles ?? null,
        hostKeyChecking: h.connection.hostKeyChecking ?? null,
        connectTimeoutMs: h.connection.connectTimeoutMs ?? null,
        serverAliveIntervalMs: h.connection.serverAliveIntervalMs ?? null,
        unsupported: h.connection.unsupported ?? null,
      },
      origins: { ...h.origins },
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
  // reduce, not Math.max(...): an inventory may hold more hosts than a call has arguments.
  const widths = rows[0]?.map((_, col) => rows.reduce((w, r) => Math.max(w, (r[col] ?? '').length), 0)) ?? [];
  const lines = rows.map((r) =>
    r
      .map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  const total = inv.hosts.length;
  const details = hosts.filter((h) => h.connection.kind === 'ssh').map(settingsText);
  if (details.length > 0) {
    lines.push('');
    for (const d of details) for (const l of d) lines.push(l);
  }
  lines.push('', `${hosts.length} of ${total} ${total === 1 ? 'host' : 'hosts'} from ${inv.path}`);
  // Warnings are not repeated here: prepareRun prints them to stderr once, as for every command.
  // Names and settings come from the inventory (a script's, a CMDB's): escaped line by line.
  return `${lines.map(escapeText).join('\n')}\n`;
}

function hopText(h: JumpHost): string {
  return `${h.user}@${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}`;
}

/** Each resolved SSH setting of a host and where it came from (inventory, group_vars, ssh config). */
function settingsText(h: InventoryHost): string[] {
  const c = h.connection;
  const o = h.origins ?? {};
  const rows: [string, string, string | undefined][] = [
    ['address', c.address, o.address],
    ['port', String(c.port), o.port],
    ['user', c.user, o.user],
  ];
  const keys = [...(c.privateKeyFile ? [c.privateKeyFile] : []), ...(c.identityFiles ?? [])];
  if (keys.length > 0) rows.push(['identity', keys.join(', '), o.identityFiles]);
  if (c.identitiesOnly) rows.push(['identities-only', 'yes', o.identitiesOnly]);
  if (c.proxyJump?.length) rows.push(['proxy-jump', c.proxyJump.map(hopText).join(' > '), o.proxyJump]);
  if (c.knownHostsFiles) rows.push(['known-hosts', c.knownHostsFiles.join(', '), o.knownHostsFiles]);
  if (c.hostKeyChecking) rows.push(['host-key-checking', c.hostKeyChecking, o.hostKeyChecking]);
  if (c.connectTimeoutMs !== undefined)
    rows.push([
      'connect-timeout',
      c.connectTimeoutMs >= MAX_TIMER_MS ? 'none' : `${c.connectTimeoutMs / 1000}s`,
      o.connectTimeout,
    ]);
  if (c.serverAliveIntervalMs !== undefined)
    rows.push(['server-alive', `${c.serverAliveIntervalMs / 1000}s`, o.serverAliveInterval]);
  if (c.unsupported) rows.push(['NOT CONNECTED', c.unsupported, undefined]);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return [
    `${h.name}:`,
    ...rows.map(([k, v, from]) =>
      `  ${k.padEnd(w0)}  ${from ? `${v.padEnd(w1)}  from ${from}` : v}`.trimEnd(),
    ),
  ];
}
