/**
 * `ansible-inventory --list` JSON (and what inventory scripts print for `--list`), read like
 * Ansible's `script` inventory plugin: top-level keys are groups, each either a list of hosts or a
 * mapping with `hosts` (list), `children` (list) and `vars`; `_meta.hostvars` holds per-host
 * variables. Without `_meta`, a script is asked `--host NAME` for each host, as Ansible does.
 * Through this, every inventory plugin (cloud, CMDB) works: Ansible runs it, we read its output.
 */
import { execFile } from 'node:child_process';
import nodePath from 'node:path';
import { CriuLockError, type SourceLocation } from '../errors.js';
import { jsonErrorLine } from '../input/json-position.js';
import {
  addChildGroup,
  addHostToGroup,
  declareGroup,
  newParsedInventory,
  setVariable,
  type ParsedInventory,
} from './model.js';

/** Is this parsed JSON the ansible-inventory/script shape (not a YAML-style inventory in JSON)? */
export function looksLikeInventoryJson(data: unknown): boolean {
  if (!isObject(data)) return false;
  if ('_meta' in data) return true;
  return Object.values(data).some(
    (g) => Array.isArray(g) || (isObject(g) && (Array.isArray(g.hosts) || Array.isArray(g.children))),
  );
}

export function parseInventoryJson(
  data: unknown,
  path: string,
  hostVarsFallback?: ReadonlyMap<string, Record<string, unknown>>,
  /** A script's output: a group object without hosts, vars or children is a host (see below). */
  script = false,
): ParsedInventory {
  const inv = newParsedInventory(path, 'json');
  const loc: SourceLocation = { file: path };
  const fail = (message: string, hint: string): never => {
    throw new CriuLockError('inventory', message, { location: loc, hint });
  };
  if (!isObject(data)) {
    return fail(
      'ansible-inventory JSON must be an object of groups',
      'produce it with ansible-inventory -i SOURCE --list',
    );
  }
  const meta = data._meta;
  let hostvars: Record<string, unknown> = {};
  if (meta !== undefined) {
    if (!isObject(meta) || (meta.hostvars !== undefined && !isObject(meta.hostvars))) {
      fail(
        '"_meta" must be an object with a "hostvars" object',
        'produce it with ansible-inventory -i SOURCE --list',
      );
    }
    hostvars = ((meta as Record<string, unknown>).hostvars as Record<string, unknown> | undefined) ?? {};
  }
  const strings = (v: unknown, what: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) {
      return fail(
        `${what} must be a list of names`,
        'hosts and children are lists of strings in ansible-inventory JSON',
      );
    }
    return v as string[];
  };
  const children: [string, string][] = [];
  for (const [group, g] of Object.entries(data)) {
    if (group === '_meta') continue;
    declareGroup(inv, group, loc);
    if (Array.isArray(g)) {
      for (const h of strings(g, `group "${group}"`)) addHostToGroup(inv, group, h, loc);
      continue;
    }
    if (g === null) continue;
    if (!isObject(g)) {
      fail(
        `group "${group}" must be a list of hosts or an object`,
        'each group is {"hosts": [...], "children": [...], "vars": {...}}',
      );
    }
    let grp = g as Record<string, unknown>;
    // Ansible's script plugin: `"w3": {"ansible_host": ...}` (none of hosts, vars, children) is
    // group w3 holding host w3, those being the group's variables.
    if (script && !('hosts' in grp) && !('vars' in grp) && !('children' in grp))
      grp = { hosts: [group], vars: grp };
    for (const h of strings(grp.hosts, `"hosts" of group "${group}"`)) addHostToGroup(inv, group, h, loc);
    for (const c of strings(grp.children, `"children" of group "${group}"`)) children.push([group, c]);
    if (grp.vars !== undefined && grp.vars !== null) {
      if (!isObject(grp.vars))
        fail(`"vars" of group "${group}" must be an object`, 'vars is an object of name: value');
      for (const [k, v] of Object.entries(grp.vars as Record<string, unknown>)) {
        setVariable(declareGroup(inv, group, loc), k, v, loc);
      }
    }
  }
  for (const [parent, child] of children) addChildGroup(inv, parent, child, loc);
  for (const host of inv.hosts.values()) {
    // Own keys only: a host named "constructor" must not find Object.prototype's.
    const hv =
      (Object.hasOwn(hostvars, host.name) ? hostvars[host.name] : undefined) ??
      hostVarsFallback?.get(host.name);
    if (hv === undefined || hv === null) continue;
    if (!isObject(hv))
      fail(
        `_meta.hostvars of "${host.name}" must be an object`,
        'hostvars map each host to an object of variables',
      );
    for (const [k, v] of Object.entries(hv as Record<string, unknown>)) setVariable(host, k, v, loc);
  }
  return inv;
}

/**
 * JSON.parse with a located error. `output`: the text is what the script at `path` printed, so the
 * line is named in the message; as a location it would point into the script.
 */
export function parseJsonText(
  text: string,
  path: string,
  what: string,
  hint = 'an inventory script must print the JSON of ansible-inventory --list on stdout',
  output = true,
): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const line = jsonErrorLine(text, e);
    const where = output && line !== undefined ? ` (its line ${line})` : '';
    throw new CriuLockError('inventory', `${what} is not valid JSON${where}: ${(e as Error).message}`, {
      location: line === undefined || output ? { file: path } : { file: path, line },
      hint,
    });
  }
}

/** Runs an executable inventory with `--list` (and `--host NAME` when it gives no `_meta`). */
export async function runInventoryScript(path: string, timeoutMs = 120_000): Promise<ParsedInventory> {
  const list = await runScript(path, ['--list'], timeoutMs);
  const data = parseJsonText(list, path, `the output of ${path} --list`);
  let fallback: Map<string, Record<string, unknown>> | undefined;
  // As Ansible: without _meta.hostvars (a `_meta` without it too), each host is asked with --host.
  if (isObject(data) && !(isObject(data._meta) && 'hostvars' in data._meta)) {
    // Only the group structure first, to learn the host names.
    const names = [...parseInventoryJson(data, path, undefined, true).hosts.keys()];
    fallback = new Map();
    for (const name of names) {
      const out = await runScript(path, ['--host', name], timeoutMs);
      const hv = parseJsonText(out, path, `the output of ${path} --host ${name}`);
      // As Ansible: the answer for one host is an object of its variables, nothing else.
      if (!isObject(hv)) {
        throw new CriuLockError(
          'inventory',
          `${path} --host ${name} printed JSON that is not an object of variables`,
          {
            location: { file: path },
            hint: 'an inventory script prints {"var": value, ...} for --host NAME',
          },
        );
      }
      fallback.set(name, hv);
    }
  }
  return parseInventoryJson(data, path, fallback, true);
}

function runScript(path: string, args: string[], timeoutMs: number): Promise<string> {
  // Absolute: execFile looks a name without a "/" up in $PATH, which would run another program.
  const file = nodePath.resolve(path);
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
        reject(
          new CriuLockError(
            'inventory',
            `inventory script ${path} ${args.join(' ')} failed: ${last || err.message}`,
            {
              location: { file: path },
              hint: 'run it by hand with --list; a script inventory must print ansible-inventory JSON',
              cause: err,
            },
          ),
        );
      } else resolve(stdout);
    });
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
