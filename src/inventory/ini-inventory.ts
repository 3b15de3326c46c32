/**
 * INI inventories, read the way Ansible's `ini` inventory plugin reads them, plus the parsed model
 * (groups, hosts, located variables) that both file formats fill and `load.ts` turns into an
 * `Inventory`. The model lives here because host patterns (`web[01:03]`, `host:port`) are shared
 * with the YAML reader and this module has no dependency on it.
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
  format: 'yaml' | 'ini';
  /** Insertion order is file order; `all` and `ungrouped` always exist (as in Ansible). */
  groups: Map<string, ParsedGroup>;
  hosts: Map<string, ParsedHost>;
  warnings: string[];
}

export function newParsedInventory(path: string, format: 'yaml' | 'ini'): ParsedInventory {
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

// ---------------------------------------------------------------------------------------------
// Host patterns: `name`, `name:port`, `[v6addr]:port`, ranges `web[01:03]`, `db-[a:c]`, `[1:9:2]`.

export interface HostPattern {
  names: string[];
  port: number | undefined;
}

const BRACKETED_HOSTPORT = /^\[(.+)\]:(\d+)$/;
// A host part without colons (ranges may contain them inside brackets), then `:port`.
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):(\d+)$/;
const PLAIN_HOST = /^[A-Za-z0-9_.\-[\]:]+$/;
const ASCII_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Ansible's `_expand_hostpattern`: split an optional port, then expand `[x:y]` ranges. */
export function expandHostPattern(pattern: string, loc: SourceLocation): HostPattern {
  let host = pattern;
  let port: number | undefined;
  const m = BRACKETED_HOSTPORT.exec(pattern) ?? HOSTPORT.exec(pattern);
  // Like parse_address: only a recognisable host keeps its port split off; anything else is a name.
  if (m?.[1] !== undefined && m[2] !== undefined && PLAIN_HOST.test(m[1])) {
    host = m[1];
    port = Number(m[2]);
  }
  if (port === undefined && pattern.trim().endsWith(':')) {
    throw new CriuLockError(
      'inventory',
      `invalid host pattern "${pattern}": a trailing ":" must be followed by a port`,
      {
        location: loc,
        hint: 'write host:PORT, or remove the colon',
      },
    );
  }
  const names = host.includes('[') ? expandHostRange(host, loc) : [host];
  for (const name of names) {
    if (name.trim() === '---') {
      throw new CriuLockError('inventory', `invalid host pattern "${pattern}"`, {
        location: loc,
        hint: '"---" starts a YAML document: name the file .yaml so it is read as YAML',
      });
    }
  }
  return { names, port };
}

/**
 * Ansible's expand_hostname_range: the first `[begin:end(:step)]` is expanded (numeric with the
 * zero padding of `begin`, or single ASCII letters), then the rest recursively.
 */
export function expandHostRange(line: string, loc: SourceLocation): string[] {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  const bad = (why: string): CriuLockError =>
    new CriuLockError('inventory', `invalid host range in "${line}": ${why}`, {
      location: loc,
      hint: 'ranges look like web[01:10], web[1:10:2] or db-[a:f]',
    });
  if (open < 0 || close < 0) throw bad('unbalanced brackets');
  const head = line.slice(0, open);
  const tail = line.slice(close + 1);
  const bounds = line.slice(open + 1, close).split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw bad('host range must be begin:end or begin:end:step');
  const beg = bounds[0] === '' ? '0' : (bounds[0] as string);
  const end = bounds[1] as string;
  const stepText = bounds[2] ?? '1';
  if (end === '') throw bad('host range must specify an end value');
  if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw bad('the step must be a positive integer');
  const step = Number(stepText);

  const seq: string[] = [];
  if (/^[A-Za-z]$/.test(beg) && /^[A-Za-z]$/.test(end)) {
    const from = ASCII_LETTERS.indexOf(beg);
    const to = ASCII_LETTERS.indexOf(end);
    if (from > to) throw bad('host range must have begin <= end');
    for (let i = from; i <= to; i += step) seq.push(ASCII_LETTERS[i] as string);
  } else if (/^\d+$/.test(beg) && /^\d+$/.test(end)) {
    const padded = beg.startsWith('0') && beg.length > 1;
    if (padded && beg.length !== end.length)
      throw bad('begin and end must have the same width when zero-padded');
    const from = Number(beg);
    const to = Number(end);
    // Ansible silently yields no hosts here; an empty range is always a typo, so say so.
    if (from > to) throw bad('host range must have begin <= end');
    if (to - from > 100_000 * step) throw bad('host range is too large');
    for (let i = from; i <= to; i += step) seq.push(padded ? String(i).padStart(beg.length, '0') : String(i));
  } else {
    throw bad('bounds must be both numbers or both single letters');
  }

  const out: string[] = [];
  for (const part of seq) {
    const name = head + part + tail;
    if (name.includes('[')) out.push(...expandHostRange(name, loc));
    else out.push(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// INI

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
          const host = addHostToGroup(inv, group, name, loc);
          if (port !== undefined) setVariable(host, 'ansible_port', port, loc);
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

/**
 * POSIX shlex.split(line, comments=True), which Ansible uses for host lines: quotes group words,
 * backslash escapes, and `#` outside quotes starts a comment even in the middle of a word.
 */
export function shlexSplit(line: string): string[] {
  const tokens: string[] = [];
  let cur = '';
  let inToken = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (inToken) tokens.push(cur);
      cur = '';
      inToken = false;
      i++;
    } else if (c === '#') {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error('no closing quotation');
      cur += line.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (c === '"') {
      inToken = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new Error('no closing quotation');
        const d = line[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        const next = line[i + 1];
        if (d === '\\' && (next === '"' || next === '\\')) {
          cur += next;
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new Error('no escaped character');
      cur += line[i + 1] as string;
      inToken = true;
      i += 2;
    } else {
      cur += c;
      inToken = true;
      i++;
    }
  }
  if (inToken) tokens.push(cur);
  return tokens;
}

/**
 * Ansible gives INI values to Python's ast.literal_eval and keeps the text when that fails:
 * `22` is a number, `True` a boolean, `'22'` or "'x y'" a string, `yes`/`true` stay strings.
 */
export function parseIniValue(raw: string): unknown {
  const parsed = literalEval(raw);
  return parsed.ok ? parsed.value : raw;
}

type Eval = { ok: true; value: unknown } | { ok: false };
type Token =
  { t: 'num'; v: number } | { t: 'str'; v: string } | { t: 'name'; v: string } | { t: 'op'; v: string };

class NotALiteral extends Error {}
/** Thrown for most INI values (an address is not a Python literal): one instance, no stack capture per value. */
const NOT_A_LITERAL = new NotALiteral();

const NUMBER = new RegExp(
  '^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+' +
    '|(?:(?:\\d(?:_?\\d)*)?\\.\\d(?:_?\\d)*|\\d(?:_?\\d)*\\.)(?:[eE][+-]?\\d(?:_?\\d)*)?' +
    '|\\d(?:_?\\d)*[eE][+-]?\\d(?:_?\\d)*' +
    '|[1-9](?:_?\\d)*|0(?:_?0)*)',
);
const STRING_START = /^([rRbBuU]|[rR][bB]|[bB][rR])?('''|"""|'|")/;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let s = src;
  for (;;) {
    s = s.replace(/^[ \t\f\r\n]+/, '');
    if (s === '' || s.startsWith('#')) return out;
    const str = STRING_START.exec(s);
    if (str) {
      const prefix = (str[1] ?? '').toLowerCase();
      const quote = str[2] as string;
      let i = str[0].length;
      let body = '';
      for (;;) {
        if (i >= s.length) throw NOT_A_LITERAL;
        if (s.startsWith(quote, i)) break;
        const c = s[i] as string;
        if (c === '\\') {
          if (i + 1 >= s.length) throw NOT_A_LITERAL;
          body += s.slice(i, i + 2);
          i += 2;
        } else {
          if (c === '\n' && quote.length === 1) throw NOT_A_LITERAL;
          body += c;
          i++;
        }
      }
      out.push({ t: 'str', v: prefix.includes('r') ? body : unescapePython(body) });
      s = s.slice(i + quote.length);
      continue;
    }
    const num = NUMBER.exec(s);
    if (num && /^[0-9.]/.test(s)) {
      const text = num[0];
      // `0755`, `1j`, `12abc`: not a plain Python number literal.
      if (/^[A-Za-z0-9_.]/.test(s.slice(text.length))) throw NOT_A_LITERAL;
      const clean = text.replace(/_/g, '');
      const value = /^0[oO]/.test(clean)
        ? parseInt(clean.slice(2), 8)
        : /^0[bB]/.test(clean)
          ? parseInt(clean.slice(2), 2)
          : Number(clean);
      if (
        !Number.isFinite(value) ||
        (Number.isInteger(value) && !/[.eE]/.test(clean) && !Number.isSafeInteger(value))
      ) {
        throw NOT_A_LITERAL;
      }
      out.push({ t: 'num', v: value });
      s = s.slice(text.length);
      continue;
    }
    const name = /^[A-Za-z_]\w*/.exec(s);
    if (name) {
      out.push({ t: 'name', v: name[0] });
      s = s.slice(name[0].length);
      continue;
    }
    const op = s[0] as string;
    if (!'[](){},:+-'.includes(op)) throw NOT_A_LITERAL;
    out.push({ t: 'op', v: op });
    s = s.slice(1);
  }
}

function unescapePython(body: string): string {
  return body.replace(
    /\\(\n|[\\'"abfnrtv]|[0-7]{1,3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|x|u|U|.)/gs,
    (all, e: string) => {
      const simple: Record<string, string> = {
        '\n': '',
        '\\': '\\',
        "'": "'",
        '"': '"',
        a: '\x07',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
        v: '\v',
      };
      const s = simple[e];
      if (s !== undefined) return s;
      if (/^[0-7]/.test(e)) return String.fromCodePoint(parseInt(e, 8));
      if (/^[xuU][0-9a-fA-F]+$/.test(e)) {
        const cp = parseInt(e.slice(1), 16);
        if (cp > 0x10ffff) throw NOT_A_LITERAL;
        return String.fromCodePoint(cp);
      }
      if (e === 'x' || e === 'u' || e === 'U' || e.startsWith('N{')) throw NOT_A_LITERAL;
      return all;
    },
  );
}

function literalEval(src: string): Eval {
  try {
    const tokens = tokenize(src.replace(/^[ \t]+/, ''));
    let pos = 0;
    const peek = (): Token | undefined => tokens[pos];
    const isOp = (v: string): boolean => {
      const t = peek();
      return t?.t === 'op' && t.v === v;
    };
    const expectOp = (v: string): void => {
      if (!isOp(v)) throw NOT_A_LITERAL;
      pos++;
    };

    const value = (): unknown => {
      const t = peek();
      if (!t) throw NOT_A_LITERAL;
      pos++;
      switch (t.t) {
        case 'num':
          return t.v;
        case 'str': {
          let s = t.v;
          while (peek()?.t === 'str') s += (tokens[pos++] as { v: string }).v;
          return s;
        }
        case 'name':
          if (t.v === 'True') return true;
          if (t.v === 'False') return false;
          if (t.v === 'None') return null;
          throw NOT_A_LITERAL;
        case 'op': {
          if (t.v === '-' || t.v === '+') {
            const n = peek();
            if (n?.t !== 'num') throw NOT_A_LITERAL;
            pos++;
            return t.v === '-' ? -n.v : n.v;
          }
          if (t.v === '[') return sequence(']').items;
          if (t.v === '(') {
            const { items, trailingComma } = sequence(')');
            return items.length === 1 && !trailingComma ? items[0] : items;
          }
          if (t.v === '{') return braces();
          throw NOT_A_LITERAL;
        }
      }
    };

    const sequence = (close: string): { items: unknown[]; trailingComma: boolean } => {
      const items: unknown[] = [];
      let trailingComma = false;
      while (!isOp(close)) {
        items.push(value());
        trailingComma = false;
        if (isOp(',')) {
          pos++;
          trailingComma = true;
        } else if (!isOp(close)) throw NOT_A_LITERAL;
      }
      pos++;
      return { items, trailingComma };
    };

    const braces = (): unknown => {
      if (isOp('}')) {
        pos++;
        return {};
      }
      const first = value();
      if (!isOp(':')) {
        // A set: no JSON equivalent, an array keeps its members.
        const items = [first];
        while (isOp(',')) {
          pos++;
          if (isOp('}')) break;
          items.push(value());
        }
        expectOp('}');
        return items;
      }
      const obj: Record<string, unknown> = {};
      let key = first;
      for (;;) {
        expectOp(':');
        if (typeof key === 'object' && key !== null) throw NOT_A_LITERAL;
        obj[String(key)] = value();
        if (isOp(',')) pos++;
        if (isOp('}')) {
          pos++;
          return obj;
        }
        key = value();
      }
    };

    const first = value();
    if (pos === tokens.length) return { ok: true, value: first };
    // `1, 2` is a tuple in Python's eval mode.
    const items = [first];
    while (isOp(',')) {
      pos++;
      if (pos === tokens.length) break;
      items.push(value());
    }
    if (pos !== tokens.length) return { ok: false };
    return { ok: true, value: items };
  } catch (err) {
    if (err instanceof NotALiteral) return { ok: false };
    throw err;
  }
}
