/**
 * Ansible host patterns for --limit, and the golden node. Terms are evaluated as Ansible's
 * InventoryManager does: every plain term first (union), then `&` terms (intersection), then
 * `!` terms (exclusion). Unlike Ansible, a term that matches nothing is an error, not a warning:
 * a typo in --limit must not silently shrink (or, with `!`, widen) the set of hosts touched.
 */
import { CriuLockError } from '../errors.js';
import { compileGlob } from '../pattern/glob.js';
import type { Inventory, InventoryHost } from './types.js';

const SUBSCRIPT = /^(.+)\[(?:(-?\d+)|(\d+)([:-])(\d*))\]$/;

/**
 * Ansible's split_host_pattern: with a comma anywhere, the terms are the comma-separated parts and
 * nothing else (`web,db:!web1` is `web` and `db:!web1`, a term that matches nothing); without
 * one, `:` separates terms, except inside `[x:y]` and in an IPv6 address.
 */
export function splitHostPattern(pattern: string): string[] {
  if (pattern.includes(',')) {
    return pattern
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
  }
  const p = pattern.trim();
  if (p === '') return [];
  if (isIpv6(p.replace(/^[!&]/, ''))) return [p];
  return [...p.matchAll(/(?:[^\s:[\]]|\[[^\]]*\])+/g)].map((m) => m[0]);
}

function isIpv6(s: string): boolean {
  return /^[0-9a-fA-F:]+$/.test(s) && (s.includes('::') || s.split(':').length === 8);
}

export function selectHosts(inv: Inventory, pattern: string | undefined): InventoryHost[] {
  if (inv.hosts.length === 0) {
    throw new CriuLockError('inventory', `${inv.path} has no hosts`, {
      hint: 'add hosts under all: (see inventory.example.yaml)',
    });
  }
  const terms = splitHostPattern(pattern ?? 'all');
  // Ansible reads an empty --limit as "all". An unset shell variable (--limit "$HOSTS") must not
  // widen a run to the whole fleet.
  if (terms.length === 0) {
    throw new CriuLockError('usage', `host pattern ${JSON.stringify(pattern)} names no host or group`, {
      hint: 'leave --limit out to select every host, or name hosts and groups (web*:&dc1)',
    });
  }
  const regular = terms.filter((t) => !t.startsWith('!') && !t.startsWith('&'));
  const intersect = terms.filter((t) => t.startsWith('&'));
  const exclude = terms.filter((t) => t.startsWith('!'));
  if (regular.length === 0) regular.push('all');

  // Sets, not arrays: with 20,000 hosts an `includes` per host is 400 million comparisons.
  const byName = new Map(inv.hosts.map((h) => [h.name, h]));
  let selected = new Set<InventoryHost>();
  for (const term of regular) {
    // A term naming a host exactly selects that host, even if a group has the same name.
    const exact = byName.get(term);
    for (const h of exact ? [exact] : matchTerm(inv, term, pattern)) selected.add(h);
  }
  for (const term of intersect) {
    const found = new Set(matchTerm(inv, term.slice(1), pattern));
    selected = new Set([...selected].filter((h) => found.has(h)));
  }
  for (const term of exclude) {
    const found = new Set(matchTerm(inv, term.slice(1), pattern));
    selected = new Set([...selected].filter((h) => !found.has(h)));
  }

  if (selected.size === 0) {
    throw new CriuLockError('usage', `host pattern "${pattern ?? 'all'}" selects no hosts`, {
      hint: 'each term matches something, but the & and ! terms removed every host',
    });
  }
  // Inventory order, without a sort: walk the inventory once.
  return inv.hosts.filter((h) => selected.has(h));
}

/** Ansible's _match_one_pattern: group names first, host names too for globs and regexes. */
function matchTerm(inv: Inventory, term: string, whole: string | undefined): InventoryHost[] {
  const nothing = (why: string): CriuLockError =>
    new CriuLockError(
      'usage',
      // JSON quoting: a pattern pasted with a terminal escape sequence is shown, not obeyed.
      `host pattern ${JSON.stringify(term)}${whole !== undefined && whole !== term ? ` (in ${JSON.stringify(whole)})` : ''} ${why}`,
      {
        hint: knownNames(inv),
      },
    );
  if (term === '') throw nothing('is empty');
  if (term.startsWith('@')) {
    throw new CriuLockError('usage', `limit files (${term}) are not supported`, {
      hint: 'list the hosts in the pattern: a,b,c',
    });
  }

  let expr = term;
  let subscript: { start: number; end: number | undefined } | undefined;
  const sub = term.startsWith('~') ? null : SUBSCRIPT.exec(term);
  if (sub) {
    expr = sub[1] as string;
    subscript =
      sub[2] !== undefined
        ? { start: Number(sub[2]), end: undefined }
        : { start: Number(sub[3]), end: sub[5] ? Number(sub[5]) : -1 };
  }

  let test: (name: string) => boolean;
  if (expr.startsWith('~')) {
    let re: RegExp;
    try {
      // Python's re.match: anchored at the start only.
      re = new RegExp(`^(?:${expr.slice(1)})`);
    } catch {
      throw new CriuLockError('usage', `host pattern "${term}" is not a valid regular expression`, {
        hint: 'after ~ comes a regular expression, e.g. ~node-(a|b)',
      });
    }
    test = (name) => re.test(name);
  } else {
    // No RegExp for globs: they match in linear time (pattern/glob.ts).
    test = compileGlob(expr);
  }

  const groups = new Set([...inv.groups.keys()].filter(test));
  const byName = groups.size === 0 || expr.startsWith('~') || /[.?*[]/.test(expr);
  // One pass in inventory order: a host is in if one of its groups matched or (for globs and
  // regexes, or when no group matched) its name does.
  let hosts = inv.hosts.filter((h) => h.groups.some((g) => groups.has(g)) || (byName && test(h.name)));

  if (subscript && hosts.length > 0) {
    // Ansible indexes its own list here, not the inventory's order (see subscriptOrder).
    hosts = subscriptOrder(inv, groups, byName ? test : undefined);
    const { start, end } = subscript;
    if (end === undefined) {
      const h = hosts[start < 0 ? hosts.length + start : start];
      hosts = h ? [h] : [];
    } else {
      hosts = hosts.slice(start, (end === -1 ? hosts.length - 1 : end) + 1);
    }
  }
  if (hosts.length === 0)
    throw nothing(subscript ? 'matches no hosts at that index' : 'matches no host or group');
  return hosts;
}

/**
 * The list Ansible's _match_one_pattern applies a subscript (`web[0]`, `db[-1]`, `g[1:3]`) to: for
 * each matching group, in inventory order, its Group.get_hosts() (the group's own hosts in the
 * order they were added to it, then its child groups' hosts, level by level, each host once);
 * then, for globs, regexes or when no group matched, the matching host names in inventory order.
 */
function subscriptOrder(
  inv: Inventory,
  groups: ReadonlySet<string>,
  byName: ((name: string) => boolean) | undefined,
): InventoryHost[] {
  const byHost = new Map(inv.hosts.map((h) => [h.name, h]));
  const out: InventoryHost[] = [];
  for (const g of groups) {
    const levels = [g];
    const visited = new Set(levels);
    for (let i = 0; i < levels.length; i++) {
      for (const c of inv.groups.get(levels[i]!)?.children ?? []) {
        if (!visited.has(c)) {
          visited.add(c);
          levels.push(c);
        }
      }
    }
    const seen = new Set<string>();
    for (const name of levels) {
      for (const h of inv.groups.get(name)?.hosts ?? []) {
        const host = byHost.get(h);
        if (host === undefined || seen.has(h)) continue;
        seen.add(h);
        out.push(host);
      }
    }
  }
  if (byName) for (const h of inv.hosts) if (byName(h.name)) out.push(h);
  return out;
}

/**
 * fnmatch.translate: `*`, `?`, `[seq]`, `[!seq]`; the whole name must match, case-sensitively.
 * Kept for callers of the library API; matching itself uses compileGlob, which cannot backtrack.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j++;
      if (glob[j] === ']') j++;
      while (j < glob.length && glob[j] !== ']') j++;
      if (j >= glob.length) {
        re += '\\[';
      } else {
        let body = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        else if (body.startsWith('^')) body = `\\${body}`;
        re += `[${body}]`;
        i = j;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^(?:${re})$`, 's');
}

function knownNames(inv: Inventory): string {
  const list = (names: string[]): string =>
    names.slice(0, 8).join(', ') + (names.length > 8 ? `, ... (${names.length} in all)` : '');
  const groups = [...inv.groups.keys()].filter((g) => g !== 'all' && g !== 'ungrouped');
  const hosts = inv.hosts.map((h) => h.name);
  return `known groups: ${groups.length > 0 ? list(groups) : '(none)'}; hosts: ${hosts.length > 0 ? list(hosts) : '(none)'}`;
}

/** The golden node: `--golden HOST` if given (it must be in the inventory), else the one host of group golden. */
export function findGolden(inv: Inventory, override?: string): InventoryHost {
  if (override !== undefined) {
    const host = inv.hosts.find((h) => h.name === override);
    if (!host) {
      throw new CriuLockError('usage', `--golden ${override}: no such host in ${inv.path}`, {
        hint: knownNames(inv),
      });
    }
    return host;
  }
  if (!inv.groups.has('golden')) {
    throw new CriuLockError('inventory', `no golden node: ${inv.path} has no group "golden"`, {
      location: { file: inv.path },
      hint: 'add a group "golden" with exactly one host (see inventory.example.yaml), or pass --golden HOST',
    });
  }
  const members = inv.hosts.filter((h) => h.groups.includes('golden'));
  const [only, ...rest] = members;
  if (only === undefined) {
    throw new CriuLockError('inventory', `no golden node: group "golden" in ${inv.path} has no hosts`, {
      location: { file: inv.path },
      hint: 'put the reference node in group "golden", or pass --golden HOST',
    });
  }
  if (rest.length > 0) {
    const names = members.map((h) => h.name);
    throw new CriuLockError(
      'inventory',
      `group "golden" has ${members.length} hosts (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}); it must have exactly one`,
      {
        location: { file: inv.path },
        hint: 'keep one host in group "golden", or choose one with --golden HOST',
      },
    );
  }
  return only;
}
