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
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
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
  const doc = parseDocument(text, { prettyErrors: false, ...opts.yaml, lineCounter: lc });
  const at = (offset: number): SourceLocation => {
    const pos = lc.linePos(offset);
    return { file, line: pos.line, col: pos.col };
  };
  const syntax = doc.errors[0];
  if (syntax) {
    throw new CriuLockError(opts.code, `invalid YAML: ${syntax.message.split('\n')[0] ?? ''}`, {
      location: at(syntax.pos[0]),
      hint: opts.hint,
    });
  }
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
