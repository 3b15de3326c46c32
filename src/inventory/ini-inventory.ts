/**
 * INI inventories, read the way Ansible's `ini` inventory plugin reads them, into the shared model
 * (model.ts).
 */
import { CriuLockError } from '../errors.js';
import { expandHostPattern } from './host-pattern.js';
import {
  addChildGroup,
  addHostToGroup,
  declareGroup,
  newParsedInventory,
  setVariable,
  type ParsedInventory,
} from './model.js';
import { parseIniValue } from './python-literal.js';
import { shlexSplit } from './shlex.js';

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

interface Pending {
  line: number;
  state: 'vars' | 'children';
  name: string;
  parents: string[];
}

export function parseIniInventory(text: string, path: string): ParsedInventory {
  const inv = newParsedInventory(path, 'ini');
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const pending = new Map<string, Pending>();
  let group = 'ungrouped';
  let state: 'hosts' | 'vars' | 'children' = 'hosts';

  const fail = (lineNo: number, message: string, hint: string): never => {
    throw new CriuLockError('inventory', message, { location: { file: path, line: lineNo }, hint });
  };

  const addPendingChildren = (name: string): void => {
    const decl = pending.get(name);
    if (!decl) return;
    pending.delete(name);
    for (const parent of decl.parents) {
      addChildGroup(inv, parent, name, { file: path, line: decl.line });
      if (pending.get(parent)?.state === 'children') addPendingChildren(parent);
    }
  };

  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const loc = { file: path, line: lineNo };
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;

    const section = SECTION.exec(line);
    if (section) {
      const name = section[1] as string;
      const kind = section[2] ?? 'hosts';
      if (kind !== 'hosts' && kind !== 'vars' && kind !== 'children') {
        fail(
          lineNo,
          `section [${name}:${kind}] has unknown type "${kind}"`,
          'sections are [group], [group:vars] or [group:children]',
        );
      }
      group = name;
      state = kind as typeof state;
      if (!inv.groups.has(name)) {
        // [g] or [g:children] declares a group; [g:vars] alone does not (checked at the end).
        if (state === 'vars' && !pending.has(name))
          pending.set(name, { line: lineNo, state, name, parents: [] });
        declareGroup(inv, name, loc);
      }
      const decl = pending.get(name);
      if (decl && state !== 'vars') {
        if (decl.state === 'children') addPendingChildren(name);
        else pending.delete(name);
      }
      return;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      fail(
        lineNo,
        `invalid section "${line}"`,
        'section names contain no spaces: [group], [group:vars] or [group:children]',
      );
    }

    switch (state) {
      case 'hosts': {
        let tokens: string[];
        try {
          tokens = shlexSplit(line);
        } catch (err) {
          return fail(
            lineNo,
            `cannot parse host line: ${(err as Error).message}`,
            'close the quote; quote values containing spaces',
          );
        }
        const [first, ...rest] = tokens;
        if (first === undefined) return;
        const { names, port } = expandHostPattern(first, loc);
        const vars: [string, unknown][] = [];
        for (const token of rest) {
          const eq = token.indexOf('=');
          if (eq <= 0) {
            fail(
              lineNo,
              `expected key=value host variable, got "${token}"`,
              'host lines are: NAME key=value key2="quoted value"',
            );
          }
          vars.push([token.slice(0, eq), parseIniValue(token.slice(eq + 1))]);
        }
        for (const name of names) {
          // As Ansible's InventoryData.add_host: a host:port sets the port only where the host is
          // first seen; a later `host:port` line adds it to a group and leaves the port alone.
          const known = inv.hosts.has(name);
          const host = addHostToGroup(inv, group, name, loc);
          if (port !== undefined && !known) setVariable(host, 'ansible_port', port, loc);
          for (const [k, v] of vars) setVariable(host, k, v, loc);
        }
        return;
      }
      case 'vars': {
        const eq = line.indexOf('=');
        const key = eq < 0 ? '' : line.slice(0, eq).trim();
        if (key === '')
          fail(
            lineNo,
            `expected key=value in [${group}:vars], got "${line}"`,
            'variables are written key=value',
          );
        const raw = line.slice(eq + 1).trim();
        const value = parseIniValue(raw);
        if (typeof value === 'string' && /\s[#;]/.test(value)) {
          inv.warnings.push(
            `${path}:${lineNo}: the value of ${key} contains an inline comment, which Ansible keeps as part of the value`,
          );
        }
        setVariable(declareGroup(inv, group, loc), key, value, loc);
        return;
      }
      case 'children': {
        const m = GROUP_NAME.exec(line);
        if (!m)
          return fail(
            lineNo,
            `expected a group name in [${group}:children], got "${line}"`,
            'list one child group per line',
          );
        const child = m[1] as string;
        if (inv.groups.has(child)) {
          addChildGroup(inv, group, child, loc);
        } else {
          const decl = pending.get(child);
          if (decl) decl.parents.push(group);
          else pending.set(child, { line: lineNo, state: 'children', name: child, parents: [group] });
        }
        return;
      }
    }
  });

  // Like Ansible (INVENTORY_UNRESOLVED_REFERENCE=error): report the first unresolved reference.
  for (const decl of pending.values()) {
    if (decl.state === 'vars') {
      fail(
        decl.line,
        `section [${decl.name}:vars] is for a group that is never declared`,
        `add a [${decl.name}] section or fix the name`,
      );
    }
    fail(
      decl.line,
      `section [${decl.parents[decl.parents.length - 1] ?? ''}:children] includes undefined group "${decl.name}"`,
      `declare it with a [${decl.name}] section (it may be empty) or fix the name`,
    );
  }
  return inv;
}
