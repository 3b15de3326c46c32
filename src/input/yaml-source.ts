/**
 * "YAML with a line counter → located error", once: parse a YAML document keeping positions,
 * turn a syntax error into one `file:line:col` error, and locate any path of the document later
 * (for schema errors found after parsing).
 */
import {
  isMap,
  isPair,
  isScalar,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type Tags,
} from 'yaml';
import { CriuLockError, type ErrorCode, type SourceLocation } from '../errors.js';

export interface YamlSource {
  doc: Document;
  file: string;
  /**
   * Where `path` is in the file; with `key`, the position of that key inside the map at `path`
   * (an unknown key). Walks up to the nearest node with a position.
   */
  locate: (path: ReadonlyArray<PropertyKey>, key?: string) => SourceLocation;
}

export interface YamlSourceOptions {
  /** Error code of a syntax error. */
  code: ErrorCode;
  /** Hint of a syntax error. */
  hint: string;
  yaml?: ParseOptions & DocumentOptions & SchemaOptions;
}

export function parseYamlSource(text: string, file: string, opts: YamlSourceOptions): YamlSource {
  const lc = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, logLevel: 'error', ...opts.yaml, lineCounter: lc });
  const at = (offset: number): SourceLocation => {
    const pos = lc.linePos(offset);
    return { file, line: pos.line, col: pos.col };
  };
  // Our own formats: a warning (an unknown tag such as `!custom`) is an error too.
  const syntax = doc.errors[0] ?? doc.warnings[0];
  if (syntax) {
    throw new CriuLockError(opts.code, `invalid YAML: ${syntax.message.split('\n')[0] ?? ''}`, {
      location: at(syntax.pos[0]),
      hint: opts.hint,
    });
  }
  refuseBadAlias(doc, at, opts.code, opts.hint);
  const locate = (path: ReadonlyArray<PropertyKey>, key?: string): SourceLocation => {
    let node: unknown = doc.getIn(path as unknown[], true);
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === key);
      if (pair && isScalar(pair.key)) node = pair.key;
    }
    for (let depth = path.length; (!node || !(node as { range?: unknown }).range) && depth > 0; depth--) {
      node = doc.getIn(path.slice(0, depth - 1) as unknown[], true);
    }
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    return range ? at(range[0]) : { file };
  };
  return { doc, file, locate };
}

/**
 * Refuses the aliases the yaml library would only trip over later, when the document becomes
 * JavaScript: one whose anchor is not set before it (an error thrown from deep inside, or a value
 * silently dropped where the caller walks the nodes itself), and one inside the very node it names
 * (`h: &x {a: 1, <<: *x}`), which recurses without end.
 */
export function refuseBadAlias(
  doc: Document,
  at: (offset: number) => SourceLocation,
  code: ErrorCode,
  hint: string,
): void {
  let bad: { offset: number; message: string } | undefined;
  visit(doc, {
    Alias(_key, node, path) {
      const target = node.resolve(doc);
      const why =
        target === undefined
          ? `alias *${node.source} has no anchor &${node.source} before it`
          : path.includes(target)
            ? `alias *${node.source} is inside the node &${node.source} it names`
            : undefined;
      if (why === undefined) return undefined;
      bad = { offset: node.range?.[0] ?? 0, message: why };
      return visit.BREAK;
    },
  });
  if (bad) throw new CriuLockError(code, `invalid YAML: ${bad.message}`, { location: at(bad.offset), hint });
}

/**
 * `convert()` (a toJS call), with what the yaml library throws there (too many aliases, the
 * resource-exhaustion guard) as one located error instead of an internal one.
 */
export function yamlToJs<T>(convert: () => T, location: SourceLocation, code: ErrorCode, hint: string): T {
  try {
    return convert();
  } catch (err) {
    if (err instanceof CriuLockError) throw err;
    throw new CriuLockError(code, `invalid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`, {
      location,
      hint,
    });
  }
}

/**
 * YAML 1.1 plain scalars as PyYAML's resolver (and so Ansible) reads them. Pass as `customTags`
 * with `version: '1.1'`. Where the yaml library's 1.1 schema reads more:
 * - booleans: yes/no, true/false, on/off in three spellings each; the library also takes `y` and
 *   `n`, so a host named `n` became `false`;
 * - integers: decimal without a leading zero (`09` is a string), sexagesimal from 1 (`01:30` is a
 *   string);
 * - floats: a dot is required and an exponent has a sign (`1e5`, `1.0e5` and `-.5` are strings);
 *   the library read `e1` or `.` as NaN, and `2e3` as 2000.
 */
export function pyyamlScalars(tags: Tags): Tags {
  const TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
  const FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
  const INT = /^[-+]?(?:0|[1-9][0-9_]*)$/;
  const INT_TIME = /^[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+$/;
  const FLOAT = /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?)$/;
  const out: Tags = [];
  for (const t of tags) {
    if (typeof t !== 'object' || !('test' in t) || !t.test) {
      out.push(t);
      continue;
    }
    const format = 'format' in t ? t.format : undefined;
    if (t.tag === 'tag:yaml.org,2002:bool') out.push({ ...t, test: t.test.test('true') ? TRUE : FALSE });
    else if (t.tag === 'tag:yaml.org,2002:int' && format === undefined) out.push({ ...t, test: INT });
    else if (t.tag === 'tag:yaml.org,2002:int' && format === 'TIME') out.push({ ...t, test: INT_TIME });
    else if (t.tag === 'tag:yaml.org,2002:float' && format === 'EXP')
      continue; // within FLOAT now
    else if (t.tag === 'tag:yaml.org,2002:float' && format === undefined && t.test.test('1.5'))
      out.push({ ...t, test: FLOAT });
    else out.push(t);
  }
  return out;
}
