/**
 * YAML inventories, read the way Ansible's `yaml` inventory plugin reads them: top-level keys are
 * groups (`all` and any others), each with optional `hosts`, `children` and `vars`. Parsed as
 * YAML 1.1 because Ansible uses PyYAML: `yes`/`no`/`on` are booleans, `0755` is octal, `<<` merges.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { CriuLockError, formatLocation as fmt, type SourceLocation } from '../errors.js';
import { pyyamlScalars, refuseBadAlias, yamlToJs } from '../input/yaml-source.js';
import { expandHostPattern } from './host-pattern.js';
import {
  addChildGroup,
  addHostToGroup,
  declareGroup,
  newParsedInventory,
  setVariable,
  type ParsedInventory,
} from './model.js';

const SECTIONS = new Set(['hosts', 'children', 'vars']);

interface Entry {
  key: unknown;
  keyLoc: SourceLocation;
  /** Alias-resolved value node; null for `key:` with nothing after it. */
  value: Node | null;
  valueLoc: SourceLocation;
}

export function parseYamlInventory(text: string, path: string): ParsedInventory {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    version: '1.1',
    uniqueKeys: false,
    prettyErrors: false,
    logLevel: 'error',
    customTags: pyyamlScalars,
  });
  const inv = newParsedInventory(path, 'yaml');

  const locAt = (
    node: Node | null | undefined,
    fallback: SourceLocation = { file: path },
  ): SourceLocation => {
    const offset = node?.range?.[0];
    if (offset === undefined) return fallback;
    const { line, col } = lineCounter.linePos(offset);
    return { file: path, line, col };
  };

  const firstError = doc.errors[0];
  if (firstError) {
    const pos = lineCounter.linePos(firstError.pos[0]);
    throw new CriuLockError('inventory', `invalid YAML: ${firstError.message.split('\n')[0] ?? ''}`, {
      location: { file: path, line: pos.line, col: pos.col },
      hint: 'fix the YAML syntax (indentation, quotes, a missing ":")',
    });
  }
  refuseBadAlias(
    doc,
    (offset) => ({ file: path, ...lineCounter.linePos(offset) }),
    'inventory',
    'set the anchor (&name) before its alias (*name), outside the node that uses it',
  );

  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    throw new CriuLockError('inventory', 'the inventory is empty', {
      location: { file: path },
      hint: 'add hosts under all: (see inventory.example.yaml)',
    });
  }
  if (!isMap(root)) {
    throw new CriuLockError(
      'inventory',
      `a YAML inventory must be a mapping of groups, found ${describe(root)}`,
      {
        location: locAt(root),
        hint: 'start with "all:" and list hosts under "hosts:" (see inventory.example.yaml)',
      },
    );
  }

  const entries = (node: Node, context: string): Entry[] =>
    mapEntries(doc, node, context, locAt, inv.warnings);
  const rootEntries = entries(root, 'the inventory');
  for (const e of rootEntries) {
    if (e.key === 'plugin') {
      throw new CriuLockError(
        'inventory',
        'this is an inventory plugin configuration, not a static inventory',
        {
          location: e.keyLoc,
          hint: 'export a static one: ansible-inventory -i THIS_FILE --list --yaml --output inventory.yaml',
        },
      );
    }
    if (e.key === '_meta') {
      throw new CriuLockError(
        'inventory',
        'this is ansible-inventory --list JSON output, not a YAML inventory',
        {
          location: e.keyLoc,
          hint: 'export it with --yaml: ansible-inventory -i SOURCE --list --yaml --output inventory.yaml',
        },
      );
    }
  }

  const stringKey = (e: Entry, what: string): string => {
    if (typeof e.key === 'string' && e.key !== '') return e.key;
    throw new CriuLockError(
      'inventory',
      `${what} ${JSON.stringify(e.key) ?? String(e.key)} must be a non-empty string`,
      {
        location: e.keyLoc,
        hint: 'quote names that YAML reads as numbers, booleans or null, e.g. "1234": or "yes":',
      },
    );
  };

  /** A section given as a plain string means one entry with no value, as Ansible allows. */
  const sectionEntries = (e: Entry, group: string): Entry[] => {
    if (e.value === null || (isScalar(e.value) && e.value.value === null)) return [];
    if (isScalar(e.value) && typeof e.value.value === 'string') {
      return [{ key: e.value.value, keyLoc: e.valueLoc, value: null, valueLoc: e.valueLoc }];
    }
    if (!isMap(e.value)) {
      const hint =
        e.key === 'vars'
          ? 'write each variable as "name: value" on its own line under vars:'
          : `write each ${e.key === 'hosts' ? 'host' : 'group'} as a key ending in ":" on its own line, not as a "- item" list`;
      throw new CriuLockError(
        'inventory',
        `"${String(e.key)}" of group "${group}" must be a mapping, found ${describe(e.value)}`,
        { location: e.valueLoc, hint },
      );
    }
    return entries(e.value, `"${String(e.key)}" of group "${group}"`);
  };

  const parseGroup = (name: string, node: Node | null, loc: SourceLocation): void => {
    declareGroup(inv, name, loc);
    if (node === null || (isScalar(node) && node.value === null)) return;
    // Ansible only warns and skips such a group; its hosts would silently vanish, so refuse.
    if (!isMap(node)) {
      throw new CriuLockError(
        'inventory',
        `group "${name}" must be a mapping with hosts, children or vars, found ${describe(node)}`,
        {
          location: locAt(node, loc),
          hint: `write "${name}:" then "hosts:" indented below it, one host per line`,
        },
      );
    }
    for (const e of entries(node, `group "${name}"`)) {
      if (typeof e.key !== 'string' || !SECTIONS.has(e.key)) {
        inv.warnings.push(
          `${fmt(e.keyLoc)}: unexpected key ${JSON.stringify(e.key) ?? String(e.key)} in group "${name}" is ignored (only hosts, children and vars are valid)`,
        );
        continue;
      }
      for (const item of sectionEntries(e, name)) {
        if (e.key === 'vars') {
          const varName = stringKey(item, 'variable name');
          setVariable(
            declareGroup(inv, name, loc),
            varName,
            toValue(doc, item.value, item.value ? item.valueLoc : item.keyLoc),
            item.value ? item.valueLoc : item.keyLoc,
          );
        } else if (e.key === 'children') {
          const child = stringKey(item, 'group name');
          parseGroup(child, item.value, item.keyLoc);
          addChildGroup(inv, name, child, item.keyLoc);
        } else {
          parseHosts(name, item);
        }
      }
    }
  };

  const parseHosts = (group: string, item: Entry): void => {
    if (typeof item.key !== 'string' || item.key === '') {
      throw new CriuLockError(
        'inventory',
        `host name ${JSON.stringify(item.key) ?? String(item.key)} in group "${group}" must be a string`,
        {
          location: item.keyLoc,
          hint: 'quote host names that YAML reads as numbers, e.g. "1234":',
        },
      );
    }
    const pattern = expandHostPattern(item.key, item.keyLoc);
    let vars: Entry[] = [];
    if (item.value !== null && !(isScalar(item.value) && item.value.value === null)) {
      if (!isMap(item.value)) {
        throw new CriuLockError(
          'inventory',
          `host "${item.key}" must have a mapping of variables or nothing, found ${describe(item.value)}`,
          {
            location: item.valueLoc,
            hint: `write "${item.key}:" alone, or its variables indented below it (ansible_host: 127.0.0.2)`,
          },
        );
      }
      vars = entries(item.value, `host "${item.key}"`);
    }
    for (const name of pattern.names) {
      // As Ansible's InventoryData.add_host: the port of `host:port` counts only where the host is
      // first seen (its variables, ansible_port among them, still apply each time).
      const known = inv.hosts.has(name);
      const host = addHostToGroup(inv, group, name, item.keyLoc);
      if (pattern.port !== undefined && !known) setVariable(host, 'ansible_port', pattern.port, item.keyLoc);
      for (const v of vars) {
        setVariable(
          host,
          stringKey(v, 'variable name'),
          toValue(doc, v.value, v.value ? v.valueLoc : v.keyLoc),
          v.value ? v.valueLoc : v.keyLoc,
        );
      }
    }
  };

  for (const e of rootEntries) parseGroup(stringKey(e, 'group name'), e.value, e.keyLoc);
  return inv;
}

/**
 * The entries of a mapping with aliases resolved and `<<` merge keys applied (explicit keys win).
 * A key written twice keeps its last value, with a warning, as PyYAML under Ansible does.
 */
function mapEntries(
  doc: Document,
  node: Node,
  context: string,
  locAt: (node: Node | null | undefined, fallback?: SourceLocation) => SourceLocation,
  warnings: string[],
): Entry[] {
  const explicit = new Map<unknown, Entry>();
  const merged = new Map<unknown, Entry>();
  if (!isMap(node)) return [];
  for (const pair of node.items) {
    const keyNode = pair.key as Node | null;
    const rawValue = (pair.value ?? null) as Node | null;
    const value = isAlias(rawValue) ? ((rawValue.resolve(doc) ?? null) as Node | null) : rawValue;
    const keyLoc = locAt(keyNode);
    if (isScalar(keyNode) && typeof keyNode.value === 'symbol') {
      // `<<: *anchor` or `<<: [*a, *b]`; earlier sources win among merged ones.
      const sources = isSeq(value)
        ? value.items.map((i) => (isAlias(i) ? (i.resolve(doc) as Node | undefined) : (i as Node)))
        : [value];
      for (const source of sources) {
        if (!source || !isMap(source)) continue;
        for (const e of mapEntries(doc, source, context, locAt, warnings))
          if (!merged.has(e.key)) merged.set(e.key, e);
      }
      continue;
    }
    const key: unknown = isScalar(keyNode)
      ? keyNode.value
      : keyNode === null
        ? null
        : yamlToJs(() => keyNode.toJS(doc) as unknown, keyLoc, 'inventory', 'write the key as a plain name');
    if (explicit.has(key)) {
      warnings.push(
        `${fmt(keyLoc)}: duplicate key ${JSON.stringify(key) ?? String(key)} in ${context}; the last one is used`,
      );
      explicit.delete(key);
    }
    explicit.set(key, { key, keyLoc, value, valueLoc: value ? locAt(value, keyLoc) : keyLoc });
  }
  const out = [...explicit.values()];
  for (const [key, e] of merged) if (!explicit.has(key)) out.push(e);
  return out;
}

function toValue(doc: Document, node: Node | null, loc: SourceLocation): unknown {
  return node === null
    ? null
    : yamlToJs(
        () => node.toJS(doc) as unknown,
        loc,
        'inventory',
        'use fewer aliases (*name) in the inventory',
      );
}

function describe(node: Node | null): string {
  if (node === null) return 'nothing';
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'a mapping';
  // Never the value itself: a mis-indented password would end up in the message.
  if (isScalar(node)) return node.value === null ? 'null' : `a ${typeof node.value}`;
  return 'something else';
}
