/**
 * From an inventory file to hosts with connection settings, following Ansible: group membership
 * through children, variable precedence (all < parent < child < host, ties by
 * ansible_group_priority then name), connection variables and their legacy aliases.
 * `buildInventory` and `resolveConnection` are pure; `loadInventory` adds the file system.
 */
import { access, constants, readFile, stat } from 'node:fs/promises';
import { decodeUtf8 } from '../input/utf8.js';
import os from 'node:os';
import nodePath from 'node:path';
import { CriuLockError, formatLocation, type SourceLocation } from '../errors.js';
import { loadSshConfig, type SshConfigFile } from '../transport/ssh-config.js';
import { parseIniInventory } from './ini-inventory.js';
import {
  looksLikeInventoryJson,
  parseInventoryJson,
  parseJsonText,
  runInventoryScript,
} from './json-inventory.js';
import { applySshSettings, localUserName, parseSshArgs, type ArgsProxy } from './ssh-settings.js';
import { loadVarsFor, type VarsFilesContext } from './vars-files.js';
import { readVaultPassword } from './vault.js';
import type { LocatedValue, ParsedInventory } from './model.js';
import type {
  ConnectionOrigins,
  ConnectionSettings,
  Inventory,
  InventoryGroup,
  InventoryHost,
} from './types.js';
import { parseYamlInventory } from './yaml-inventory.js';

export type InventoryFormat = 'yaml' | 'ini' | 'json';

/** Variables from group_vars/ and host_vars/ files, per group and host name. */
export interface VarsFiles {
  groups: Map<string, Map<string, LocatedValue>>;
  hosts: Map<string, Map<string, LocatedValue>>;
  files: string[];
}

export interface ResolveOptions {
  /** Base for relative key paths; Ansible hands them to ssh as-is, so they are relative to the cwd. */
  cwd?: string;
  homeDir?: string;
  /** User when no ansible_user is set: the current user name, else root. */
  defaultUser?: string;
  /** Where a variable's winning value was written, for error locations. */
  locate?: (variable: string) => SourceLocation | undefined;
  onWarning?: (warning: ConnectionWarning) => void;
}

export interface BuildOptions extends Omit<ResolveOptions, 'locate' | 'onWarning'> {
  varsFiles?: VarsFiles | undefined;
  /** The loaded ssh config; its settings come after the inventory's, as with Ansible's ssh. */
  sshConfig?: SshConfigFile | undefined;
}

export interface ConnectionWarning {
  host: string;
  variable: string;
  message: string;
}

const HINT_MISSING = 'create one from inventory.example.yaml or pass -i';

export interface LoadOptions extends Omit<BuildOptions, 'sshConfig' | 'varsFiles'> {
  /** --ssh-config: a file, `none`, or undefined for ~/.ssh/config. */
  sshConfig?: string | undefined;
  /** --vault-password-file. */
  vaultPasswordFile?: string | undefined;
}

/**
 * Reads an inventory as Ansible would (YAML, INI, ansible-inventory JSON or an executable printing
 * it), its group_vars/ and host_vars/, and the ssh config; every warning is in `warnings`.
 */
export async function loadInventory(path: string, opts: LoadOptions = {}): Promise<Inventory> {
  const warnings: string[] = [];
  const parsed = await readParsedInventory(path);
  const vaultPassword =
    opts.vaultPasswordFile === undefined ? undefined : await readVaultPassword(opts.vaultPasswordFile);
  const varsFiles = await loadVarsFiles(parsed, nodePath.dirname(path), { vaultPassword, warnings });
  const home = opts.homeDir ?? os.homedir();
  let sshConfig: SshConfigFile | undefined;
  if (opts.sshConfig !== 'none') {
    const file = opts.sshConfig ?? nodePath.join(home, '.ssh', 'config');
    sshConfig = await loadSshConfig(file, { homeDir: home, required: opts.sshConfig !== undefined });
  }
  const inventory = buildInventory(parsed, {
    cwd: opts.cwd,
    homeDir: opts.homeDir,
    defaultUser: opts.defaultUser,
    varsFiles,
    sshConfig,
  });
  inventory.warnings.unshift(...warnings);
  inventory.sources = [...varsFiles.files, ...(sshConfig ? sshConfigFiles(sshConfig) : [])];
  return inventory;
}

function sshConfigFiles(c: SshConfigFile): string[] {
  const out = c.entries.length > 0 ? [c.file] : [];
  for (const e of c.entries)
    if (e.kind === 'include') for (const f of e.files) out.push(...sshConfigFiles(f));
  return out;
}

async function readParsedInventory(path: string): Promise<ParsedInventory> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CriuLockError('inventory', `inventory file ${path} not found`, {
        location: { file: path },
        hint: HINT_MISSING,
        cause: err,
      });
    }
    if (code === 'EISDIR') {
      throw new CriuLockError(
        'inventory',
        `${path} is a directory; inventory directories are not supported`,
        {
          location: { file: path },
          hint: 'pass the inventory file itself with -i',
          cause: err,
        },
      );
    }
    throw new CriuLockError('inventory', `cannot read inventory ${path}: ${(err as Error).message}`, {
      location: { file: path },
      hint: 'check the path and its permissions',
      cause: err,
    });
  }
  // Ansible's script plugin: an executable file with a shebang is run with --list (whatever its
  // own bytes are); any other file is read as text, which must be UTF-8.
  if (bytes[0] === 0x23 && bytes[1] === 0x21 && (await isExecutable(path))) return runInventoryScript(path);
  return parseInventoryText(decodeUtf8(bytes, path, 'inventory'), path);
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** group_vars/ and host_vars/ beside the inventory for every group and host it names. */
export async function loadVarsFiles(
  parsed: ParsedInventory,
  baseDir: string,
  ctx: VarsFilesContext,
): Promise<VarsFiles> {
  const out: VarsFiles = { groups: new Map(), hosts: new Map(), files: [] };
  for (const [subdir, names, target] of [
    ['group_vars', [...parsed.groups.keys()], out.groups],
    ['host_vars', [...parsed.hosts.keys()], out.hosts],
  ] as const) {
    const isDir = await stat(nodePath.join(baseDir, subdir)).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) continue;
    // Looked up concurrently (large inventories), merged and warned about in inventory order.
    const results = await Promise.all(
      names.map(async (name) => {
        const own: VarsFilesContext = { vaultPassword: ctx.vaultPassword, warnings: [] };
        return { name, own, r: await loadVarsFor(baseDir, subdir, name, own) };
      }),
    );
    for (const { name, own, r } of results) {
      ctx.warnings.push(...own.warnings);
      if (r.files.length > 0) {
        target.set(name, r.vars);
        out.files.push(...r.files);
      }
    }
  }
  return out;
}

export function inventoryFromText(text: string, path: string, opts: BuildOptions = {}): Inventory {
  return buildInventory(parseInventoryText(text, path), opts);
}

export function parseInventoryText(text: string, path: string): ParsedInventory {
  const format = detectInventoryFormat(text, path);
  if (format === 'json' || (format === 'yaml' && /^\s*\{/.test(text))) {
    // ansible-inventory --list output, or a YAML-style inventory written as JSON.
    let data: unknown;
    try {
      data = JSON.parse(text) as unknown;
    } catch {
      data = undefined;
    }
    if (data !== undefined && looksLikeInventoryJson(data)) return parseInventoryJson(data, path);
    if (data === undefined && format === 'json')
      parseJsonText(
        text,
        path,
        path,
        'fix the JSON (ansible-inventory -i SOURCE --list writes this shape)',
        false,
      );
  }
  return format === 'ini' ? parseIniInventory(text, path) : parseYamlInventory(text, path);
}

/** By extension like Ansible's plugins; for other names by the first meaningful line. */
export function detectInventoryFormat(text: string, path: string): InventoryFormat {
  const ext = nodePath.extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.ini' || ext === '.cfg') return 'ini';
  const first = text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#') && !l.startsWith(';'));
  if (first === undefined) return 'yaml';
  if (first.startsWith('---') || first.startsWith('{') || /^[^\s=#;[]+:(\s|$)/.test(first)) return 'yaml';
  return 'ini';
}

interface GroupInfo {
  name: string;
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Map<string, LocatedValue>;
  priority: number;
  depth: number;
}

/** Ansible's inventory semantics on top of what the file says. */
export function buildInventory(parsed: ParsedInventory, opts: BuildOptions = {}): Inventory {
  const groups = new Map<string, GroupInfo>();
  for (const g of parsed.groups.values()) {
    const vars = new Map(g.vars);
    let priority = 1;
    const prio = vars.get('ansible_group_priority');
    if (prio !== undefined) {
      priority = parseGroupPriority(g.name, prio);
      // Ansible turns it into the group's priority instead of storing a variable.
      vars.delete('ansible_group_priority');
    }
    groups.set(g.name, {
      name: g.name,
      hosts: [...g.hosts],
      children: [...g.children],
      parents: [],
      vars,
      priority,
      depth: 0,
    });
  }
  const group = (name: string): GroupInfo => groups.get(name) as GroupInfo;
  for (const g of groups.values()) for (const c of g.children) group(c).parents.push(g.name);

  // reconcile_inventory: every group descends from all (top-level YAML groups, INI sections).
  for (const g of groups.values()) {
    if (g.name !== 'all' && g.parents.length === 0) {
      group('all').children.push(g.name);
      g.parents.push('all');
    }
  }

  // Depth is the longest path from `all`, as Group.add_child_group maintains it. Remembered per
  // group: groups that are children of several groups in turn (a "diamond" lattice) have
  // exponentially many paths, and a 2 KB inventory took minutes without it.
  const depths = new Map<string, number>();
  const depthOf = (name: string, onPath = new Set<string>()): number => {
    if (name === 'all' || onPath.has(name)) return 0;
    const known = depths.get(name);
    if (known !== undefined) return known;
    onPath.add(name);
    let d = 0;
    for (const p of group(name).parents) d = Math.max(d, depthOf(p, onPath) + 1);
    onPath.delete(name);
    depths.set(name, d);
    return d;
  };
  for (const g of groups.values()) g.depth = depthOf(g.name);

  const ancestorsOf = (names: Iterable<string>): Set<string> => {
    const out = new Set<string>();
    const stack = [...names];
    while (stack.length > 0) {
      const n = stack.pop() as string;
      if (out.has(n)) continue;
      out.add(n);
      stack.push(...group(n).parents);
    }
    return out;
  };

  // Host → the groups that list it directly, in group order. Built once: scanning every group's
  // host list per host was quadratic (20,000 hosts took seconds).
  const directIndex = (): Map<string, string[]> => {
    const out = new Map<string, string[]>();
    for (const g of groups.values()) {
      for (const h of g.hosts) {
        const list = out.get(h);
        if (list === undefined) out.set(h, [g.name]);
        else if (list[list.length - 1] !== g.name) list.push(g.name);
      }
    }
    return out;
  };
  let direct = directIndex();
  const directGroups = (host: string): string[] => direct.get(host) ?? [];
  const ungrouped = group('ungrouped');
  const removed = new Set<string>();
  const added: string[] = [];
  const present = new Set(ungrouped.hosts);
  for (const host of parsed.hosts.keys()) {
    const real = [...ancestorsOf(directGroups(host))].filter((n) => n !== 'all' && n !== 'ungrouped');
    if (real.length > 0) {
      removed.add(host);
      present.delete(host);
    } else if (!present.has(host)) {
      present.add(host);
      added.push(host);
    }
  }
  ungrouped.hosts = [...ungrouped.hosts.filter((h) => !removed.has(h)), ...added];
  direct = directIndex();

  const warnings = [...parsed.warnings];
  const collected: ConnectionWarning[] = [];
  const hosts: InventoryHost[] = [];
  for (const parsedHost of parsed.hosts.values()) {
    const memberOf = [...ancestorsOf(directGroups(parsedHost.name))].map(group).sort(compareGroups);
    // Ansible's precedence: inventory group vars (all, then groups by depth/priority/name), then
    // group_vars/ files in the same order, then the host's inventory vars, then host_vars/.
    const merged = new Map<string, LocatedValue>();
    for (const g of memberOf) for (const [k, v] of g.vars) merged.set(k, v);
    for (const g of memberOf) for (const [k, v] of opts.varsFiles?.groups.get(g.name) ?? []) merged.set(k, v);
    for (const [k, v] of parsedHost.vars) merged.set(k, v);
    for (const [k, v] of opts.varsFiles?.hosts.get(parsedHost.name) ?? []) merged.set(k, v);
    const vars = Object.fromEntries([...merged].map(([k, v]) => [k, v.value]));
    const locate = (v: string): SourceLocation | undefined =>
      v === 'inventory_hostname' ? parsedHost.loc : merged.get(v)?.loc;
    const warnHost = (variable: string) => (message: string) =>
      collected.push({ host: parsedHost.name, variable, message });
    let connection = resolveConnection(parsedHost.name, vars, parsed.path, {
      ...opts,
      locate,
      onWarning: (w) => collected.push(w),
    });
    const withSsh = withSshSettings(parsedHost.name, connection, vars, locate, opts, (m) =>
      warnHost('ssh')(m),
    );
    connection = withSsh.connection;
    hosts.push({
      name: parsedHost.name,
      groups: memberOf.map((g) => g.name),
      vars,
      connection,
      origins: withSsh.origins,
    });
    if (groups.has(parsedHost.name))
      warnings.push(`"${parsedHost.name}" is both a group and a host; host patterns will pick the host`);
  }
  warnings.push(...summarizeWarnings(collected));

  const outGroups = new Map<string, InventoryGroup>();
  for (const g of groups.values()) {
    outGroups.set(g.name, {
      name: g.name,
      hosts: [...g.hosts],
      children: [...g.children],
      vars: Object.fromEntries([...g.vars].map(([k, v]) => [k, v.value])),
    });
  }
  return { path: parsed.path, hosts, groups: outGroups, warnings };
}

const ALIASES = {
  address: ['ansible_ssh_host', 'ansible_host'],
  port: ['ansible_ssh_port', 'ansible_port'],
  user: ['ansible_ssh_user', 'ansible_user'],
  identityFiles: ['ansible_ssh_private_key_file', 'ansible_private_key_file'],
} as const;

/** Origins of the inventory-set fields, then the ssh config and ProxyJump from ssh arguments. */
function withSshSettings(
  name: string,
  conn: ConnectionSettings,
  vars: Record<string, unknown>,
  locate: (v: string) => SourceLocation | undefined,
  opts: BuildOptions,
  warn: (message: string) => void,
): { connection: ConnectionSettings; origins: ConnectionOrigins } {
  const setBy = (names: readonly string[]): string | undefined =>
    names.find((n) => vars[n] !== undefined && vars[n] !== null);
  const origins: ConnectionOrigins = {};
  const from = { address: false, port: false, user: false };
  for (const field of ['address', 'port', 'user', 'identityFiles'] as const) {
    const v = setBy(ALIASES[field]);
    if (v !== undefined) {
      const loc = locate(v);
      origins[field] = `${loc ? formatLocation(loc) : 'inventory'} (${v})`;
      if (field !== 'identityFiles') from[field] = true;
    } else if (field === 'address') {
      origins.address = 'inventory host name';
    } else if (field !== 'identityFiles') {
      origins[field] = field === 'port' ? 'default' : 'default (local user)';
    }
  }
  let args: ArgsProxy = { ignored: [] };
  for (const v of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const text = vars[v];
    if (typeof text !== 'string') continue;
    const loc = locate(v);
    const parsed = parseSshArgs(text, `${loc ? formatLocation(loc) : 'inventory'} (${v})`);
    args = {
      proxyJump: args.proxyJump ?? (args.proxyCommand ? undefined : parsed.proxyJump),
      proxyCommand: args.proxyCommand ?? (args.proxyJump ? undefined : parsed.proxyCommand),
      ignored: [...args.ignored, ...parsed.ignored],
    };
  }
  const out = applySshSettings(name, conn, origins, from, args, {
    config: opts.sshConfig,
    homeDir: opts.homeDir ?? os.homedir(),
    localUser: opts.defaultUser ?? localUserName(),
    warn: (_host, message) => warn(message),
  });
  const a = out.connection.address;
  if (out.connection.kind === 'ssh' && (!ADDRESS.test(a) || a.startsWith('-'))) {
    throw new CriuLockError(
      'inventory',
      `host "${name}": HostName ${JSON.stringify(a)} is not a valid host name`,
      {
        hint: `check ${out.origins.address ?? 'the ssh config'}`,
      },
    );
  }
  return out;
}

/** Ansible's sort_groups: by depth, then ansible_group_priority, then name; later ones win. */
function compareGroups(a: GroupInfo, b: GroupInfo): number {
  if (a.depth !== b.depth) return a.depth - b.depth;
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function parseGroupPriority(group: string, v: LocatedValue): number {
  const n =
    typeof v.value === 'number'
      ? v.value
      : typeof v.value === 'string' && /^\s*[+-]?\d+\s*$/.test(v.value)
        ? Number(v.value)
        : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new CriuLockError('inventory', `ansible_group_priority of group "${group}" must be an integer`, {
      location: v.loc,
      hint: 'e.g. ansible_group_priority: 10 (higher wins among groups of the same depth)',
    });
  }
  return n;
}

/** One line per kind of warning, naming the hosts, so a fleet does not print hundreds of lines. */
function summarizeWarnings(list: ConnectionWarning[]): string[] {
  const byMessage = new Map<string, Set<string>>();
  for (const w of list) {
    const hosts = byMessage.get(w.message) ?? new Set<string>();
    hosts.add(w.host);
    byMessage.set(w.message, hosts);
  }
  return [...byMessage].map(([message, set]) => {
    const hosts = [...set];
    const shown = hosts.slice(0, 5).join(', ');
    const more = hosts.length > 5 ? ` and ${hosts.length - 5} more` : '';
    return `${hosts.length === 1 ? 'host' : 'hosts'} ${shown}${more}: ${message}`;
  });
}

// ---------------------------------------------------------------------------------------------
// Connection variables

const USER_NAME = /^[A-Za-z_][A-Za-z0-9._-]*\$?$/;
const ADDRESS = /^[A-Za-z0-9_.:%-]+$/;
const TRUE_WORDS = new Set(['y', 'yes', 'on', '1', 'true', 't']);
const FALSE_WORDS = new Set(['n', 'no', 'off', '0', 'false', 'f']);
const PASSWORD_VARS = [
  'ansible_password',
  'ansible_ssh_pass',
  'ansible_ssh_password',
  'ansible_become_password',
  'ansible_become_pass',
  'ansible_sudo_pass',
];
const SSH_ARG_VARS = ['ansible_ssh_common_args', 'ansible_ssh_extra_args'];
const CONNECTIONS: Record<string, ConnectionSettings['kind']> = {
  ssh: 'ssh',
  'ansible.builtin.ssh': 'ssh',
  smart: 'ssh',
  paramiko: 'ssh',
  paramiko_ssh: 'ssh',
  'ansible.builtin.paramiko_ssh': 'ssh',
  local: 'local',
  'ansible.builtin.local': 'local',
};

/** Ansible's boolean(value, strict=False) vocabulary; anything else is an error here, not false. */
export function parseAnsibleBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === 'string') {
    const s = value.trim().toLowerCase();
    if (TRUE_WORDS.has(s)) return true;
    if (FALSE_WORDS.has(s)) return false;
  }
  return undefined;
}

export function resolveConnection(
  name: string,
  vars: Record<string, unknown>,
  inventoryPath: string,
  opts: ResolveOptions = {},
): ConnectionSettings {
  const where = (variable: string): SourceLocation => opts.locate?.(variable) ?? { file: inventoryPath };
  const fail = (variable: string, message: string, hint: string): never => {
    throw new CriuLockError('inventory', `host "${name}": ${message}`, { location: where(variable), hint });
  };
  const warn = (variable: string, message: string): void =>
    opts.onWarning?.({ host: name, variable, message });
  const defined = (v: string): boolean => vars[v] !== undefined && vars[v] !== null;

  /** The first alias wins, as in Ansible's MAGIC_VARIABLE_MAPPING (ansible_ssh_* before ansible_*). */
  const pick = (names: string[]): { variable: string; value: unknown } | undefined => {
    const present = names.filter(defined);
    const [first, ...others] = present;
    if (first === undefined) return undefined;
    for (const other of others) {
      if (vars[other] !== vars[first])
        warn(other, `both ${first} and ${other} are set; ${first} wins, as in Ansible`);
    }
    return { variable: first, value: vars[first] };
  };
  const text = (p: { variable: string; value: unknown }, what: string, numbersOk = false): string => {
    if (typeof p.value === 'number' && numbersOk) return String(p.value);
    if (typeof p.value !== 'string')
      return fail(
        p.variable,
        `${p.variable} must be ${what}, found a ${kindOf(p.value)}`,
        `set ${p.variable} to ${what}`,
      );
    if (/\{\{|\{%/.test(p.value)) {
      return fail(
        p.variable,
        `${p.variable} is a Jinja2 template, which criu-lock does not evaluate`,
        `write the literal value of ${p.variable} in the inventory`,
      );
    }
    return p.value;
  };

  for (const v of PASSWORD_VARS) {
    if (defined(v))
      warn(v, `${v} is set, but passwords are not supported (SSH keys or ssh-agent only); it is ignored`);
  }
  if (defined('ansible_ssh_args'))
    warn('ansible_ssh_args', 'ansible_ssh_args is ignored; criu-lock passes no extra ssh arguments');
  for (const v of SSH_ARG_VARS) {
    if (!defined(v)) continue;
    const value = text({ variable: v, value: vars[v] }, 'a string of ssh arguments');
    let ignored: string[];
    try {
      ignored = parseSshArgs(value, v).ignored;
    } catch {
      return fail(v, `${v} cannot be split into arguments`, 'close the quote');
    }
    if (ignored.length > 0) {
      warn(
        v,
        `${v}: only ProxyJump (-J, -o ProxyJump=) is used; ${ignored.length} other ssh argument(s) ignored`,
      );
    }
  }

  const connPick = pick(['ansible_connection']);
  const connName = connPick ? text(connPick, 'a connection type') : 'ssh';
  const kind = CONNECTIONS[connName];
  if (kind === undefined) {
    return fail(
      'ansible_connection',
      `ansible_connection "${connName}" is not supported`,
      'use ssh (paramiko and smart are treated as ssh) or local',
    );
  }

  const addrPick = pick(['ansible_ssh_host', 'ansible_host']);
  let address = addrPick ? text(addrPick, 'a host name or address') : name;
  const addrVar = addrPick?.variable ?? 'inventory_hostname';
  if (/^\[.*\]$/.test(address)) address = address.slice(1, -1);
  if (!ADDRESS.test(address) || address.startsWith('-') || address.length > 253) {
    fail(
      addrVar,
      `${addrPick ? addrPick.variable : 'the host name'} ${JSON.stringify(address)} is not a valid host name or IP address`,
      addrPick
        ? 'use a plain DNS name or IP address (no user@, spaces or options)'
        : 'set ansible_host to the address to connect to',
    );
  }

  let port = 22;
  const portPick = pick(['ansible_ssh_port', 'ansible_port']);
  if (portPick) {
    const raw = text(portPick, 'a port number', true).trim();
    port = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      fail(
        portPick.variable,
        `${portPick.variable} ${JSON.stringify(portPick.value)} is not a port number`,
        'use an integer from 1 to 65535',
      );
    }
  }

  const userPick = pick(['ansible_ssh_user', 'ansible_user']);
  const user = userPick ? text(userPick, 'a user name') : (opts.defaultUser ?? currentUser());
  if (!USER_NAME.test(user) || user.length > 32) {
    fail(
      userPick?.variable ?? 'ansible_user',
      `user ${JSON.stringify(user)} is not a valid user name`,
      'use a POSIX user name such as deploy or root',
    );
  }

  let privateKeyFile: string | undefined;
  const keyPick = pick(['ansible_ssh_private_key_file', 'ansible_private_key_file']);
  if (keyPick) {
    const raw = text(keyPick, 'a file path');
    if (raw === '' || hasControlChars(raw)) {
      fail(
        keyPick.variable,
        `${keyPick.variable} is not a usable file path`,
        'give the path of the private key file',
      );
    }
    privateKeyFile = expandKeyPath(raw, opts, () =>
      fail(
        keyPick.variable,
        `${keyPick.variable} uses ~user, which is not supported`,
        'use ~/... or an absolute path',
      ),
    );
  }

  let become = false;
  const becomePick = pick(['ansible_become']);
  if (becomePick) {
    const b = parseAnsibleBoolean(becomePick.value);
    if (b === undefined) {
      fail(
        'ansible_become',
        `ansible_become must be a boolean, found ${JSON.stringify(becomePick.value) ?? kindOf(becomePick.value)}`,
        'use true/false (or yes/no)',
      );
    }
    become = b === true;
  }
  if (become) {
    const method = pick(['ansible_become_method']);
    const methodName = method ? text(method, 'a become method') : 'sudo';
    if (methodName !== 'sudo' && methodName !== 'ansible.builtin.sudo') {
      fail(
        'ansible_become_method',
        `ansible_become_method "${methodName}" is not supported`,
        'only sudo (passwordless, sudo -n) is supported',
      );
    }
    const becomeUser = pick(['ansible_become_user']);
    const becomeUserName = becomeUser ? text(becomeUser, 'a user name') : 'root';
    if (becomeUserName !== 'root') {
      fail(
        'ansible_become_user',
        `ansible_become_user "${becomeUserName}" is not supported`,
        'criu-lock needs root: remove ansible_become_user or set it to root',
      );
    }
  }

  return { kind, address, port, user, privateKeyFile, become };
}

/** `~` as os.path.expanduser does; relative paths against the cwd, where Ansible's ssh resolves them. */
function expandKeyPath(raw: string, opts: ResolveOptions, tildeUser: () => never): string {
  const home = opts.homeDir ?? os.homedir();
  if (raw === '~') return home;
  if (raw.startsWith('~/')) return nodePath.join(home, raw.slice(2));
  if (raw.startsWith('~')) return tildeUser();
  return nodePath.resolve(opts.cwd ?? process.cwd(), raw);
}

function hasControlChars(s: string): boolean {
  return [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

function currentUser(): string {
  const name = localUserName();
  return USER_NAME.test(name) ? name : 'root';
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'object') return 'mapping';
  return typeof value;
}
