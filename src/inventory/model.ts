/**
 * The parsed inventory model that every reader (INI, YAML, ansible-inventory JSON) fills and
 * `load.ts` turns into an `Inventory`: groups, hosts and variables as written, each value with the
 * place it was written, so errors and `criu-lock inventory` can point at it.
 */
import { CriuLockError, type SourceLocation } from '../errors.js';

export interface LocatedValue {
  value: unknown;
  /** Where the value was written, so a bad `ansible_port` is reported at its own line. */
  loc: SourceLocation;
}

export interface ParsedGroup {
  name: string;
  loc: SourceLocation;
  /** Hosts listed directly in the group, in file order. */
  hosts: string[];
  children: string[];
  vars: Map<string, LocatedValue>;
}

export interface ParsedHost {
  name: string;
  loc: SourceLocation;
  vars: Map<string, LocatedValue>;
}

/** An inventory as written: no inheritance, no reconciliation, no connection settings yet. */
export interface ParsedInventory {
  path: string;
  format: 'yaml' | 'ini' | 'json';
  /** Insertion order is file order; `all` and `ungrouped` always exist (as in Ansible). */
  groups: Map<string, ParsedGroup>;
  hosts: Map<string, ParsedHost>;
  warnings: string[];
}

export function newParsedInventory(path: string, format: ParsedInventory['format']): ParsedInventory {
  const inv: ParsedInventory = { path, format, groups: new Map(), hosts: new Map(), warnings: [] };
  const loc = { file: path };
  declareGroup(inv, 'all', loc);
  declareGroup(inv, 'ungrouped', loc);
  addChildGroup(inv, 'all', 'ungrouped', loc);
  return inv;
}

export function declareGroup(inv: ParsedInventory, name: string, loc: SourceLocation): ParsedGroup {
  const existing = inv.groups.get(name);
  if (existing) return existing;
  if (name === '') {
    throw new CriuLockError('inventory', 'empty group name', {
      location: loc,
      hint: 'give the group a name',
    });
  }
  const group: ParsedGroup = { name, loc, hosts: [], children: [], vars: new Map() };
  inv.groups.set(name, group);
  return group;
}

const groupMembers = new WeakMap<ParsedGroup, Set<string>>();

export function addHostToGroup(
  inv: ParsedInventory,
  groupName: string,
  hostName: string,
  loc: SourceLocation,
): ParsedHost {
  if (hostName === '') {
    throw new CriuLockError('inventory', `empty host name in group "${groupName}"`, {
      location: loc,
      hint: 'give every host a name',
    });
  }
  const group = declareGroup(inv, groupName, loc);
  let host = inv.hosts.get(hostName);
  if (!host) {
    host = { name: hostName, loc, vars: new Map() };
    inv.hosts.set(hostName, host);
  }
  // A Set beside the array: `includes` per added host made large groups quadratic.
  let members = groupMembers.get(group);
  if (members === undefined || members.size !== group.hosts.length) {
    members = new Set(group.hosts);
    groupMembers.set(group, members);
  }
  if (!members.has(hostName)) {
    members.add(hostName);
    group.hosts.push(hostName);
  }
  return host;
}

/** Ansible refuses loops in the group graph ("creates a recursive dependency loop"); so do we. */
export function addChildGroup(
  inv: ParsedInventory,
  parentName: string,
  childName: string,
  loc: SourceLocation,
): void {
  const parent = declareGroup(inv, parentName, loc);
  declareGroup(inv, childName, loc);
  if (childName === 'all' || childName === parentName || isDescendant(inv, childName, parentName)) {
    throw new CriuLockError(
      'inventory',
      `making group "${childName}" a child of "${parentName}" creates a loop of groups`,
      {
        location: loc,
        hint: 'a group cannot contain itself, directly or through its children (and "all" is nobody\'s child)',
      },
    );
  }
  if (!parent.children.includes(childName)) parent.children.push(childName);
}

function isDescendant(inv: ParsedInventory, root: string, wanted: string): boolean {
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (name === wanted) return true;
    if (seen.has(name)) continue;
    seen.add(name);
    stack.push(...(inv.groups.get(name)?.children ?? []));
  }
  return false;
}

/** Later definitions replace earlier ones, as Ansible's set_variable does (hash_behaviour=replace). */
export function setVariable(
  target: { vars: Map<string, LocatedValue> },
  key: string,
  value: unknown,
  loc: SourceLocation,
): void {
  target.vars.set(key, { value, loc });
}
