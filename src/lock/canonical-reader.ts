import { parse } from 'yaml';
import { isPlainString } from './yaml-scalar.js';

/**
 * Reads a lockfile laid out exactly as serializeLock writes it, line by line, without building a
 * YAML document (which costs seconds for 5,000 packages). It only accepts what YAML would read
 * identically: a plain scalar must be one serializeLock could have written plain, a quoted one
 * must be JSON. Anything else returns undefined and the caller uses the YAML parser.
 */
const KEY_LINE = /^ {2}("(?:[^"\\]|\\.)*"|[^\s"#][^\s#]*):$/;
const FIELD = /^ {4}(version|sha256): ("(?:[^"\\]|\\.)*"|\S+)$/;
const FILE_LINE =
  /^ {2}( {4})?("(?:[^"\\]|\\.)*"|[^\s"#{][^\s#]*): \{size: (0|[1-9][0-9]*), mode: "([0-7]{4})"(?:, buildId: ("[0-9a-f]+"|[0-9a-f]+))?\}$/;

function scalar(token: string): string | undefined {
  if (token.startsWith('"')) {
    try {
      const v: unknown = JSON.parse(token);
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  }
  return isPlainString(token) ? token : undefined;
}

/** An entry as read: the shape is fixed, the values are not yet checked against the schema. */
export interface RawFile {
  size: number;
  mode: string;
  buildId?: string;
}

export interface RawPackage {
  version?: string;
  sha256?: string;
  files?: Record<string, RawFile>;
}

/** The header as YAML reads it, plus the entries. */
export type CanonicalRead = Record<string, unknown> & {
  packages: Record<string, RawPackage>;
  unmanaged?: Record<string, RawFile>;
};

export function readCanonicalLock(text: string): CanonicalRead | undefined {
  const lines = text.split('\n');
  const header: string[] = [];
  const packages: Record<string, RawPackage> = {};
  let unmanaged: Record<string, RawFile> | undefined;
  let section: 'header' | 'packages' | 'unmanaged' = 'header';
  let pkg: (typeof packages)[string] | undefined;
  let inFiles = false;
  let seenPackages = false;
  const file = (m: RegExpExecArray): [string, RawFile] | undefined => {
    const path = scalar(m[2]!);
    if (path === undefined) return undefined;
    const f: RawFile = { size: Number(m[3]), mode: m[4]! };
    if (m[5] !== undefined) {
      // A build-ID of digits only, or like 1e5, is a number to YAML unless quoted.
      const id = scalar(m[5]);
      if (id === undefined) return undefined;
      f.buildId = id;
    }
    return [path, f];
  };
  // A block header (`packages:`, `unmanaged:`, a package key, `    files:`) with nothing under it
  // is null to YAML; reading it as an empty map would accept what YAML rejects. So after one, the
  // next line must be indented deeper: this many spaces (0: no such requirement).
  let needIndent = 0;
  // After `packages: {}` or `unmanaged: {}` an indented line is a YAML error, not an entry.
  let flowEmpty = false;
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    if (flowEmpty && line.startsWith(' ')) return undefined;
    if (needIndent > 0 && !line.startsWith(' '.repeat(needIndent))) return undefined;
    needIndent = 0;
    if (!line.startsWith(' ')) {
      if (line === 'packages:' || line === 'packages: {}') {
        if (seenPackages) return undefined; // a duplicate key: the YAML parser reports it
        seenPackages = true;
        section = 'packages';
        needIndent = line === 'packages:' ? 2 : 0;
        flowEmpty = needIndent === 0;
      } else if (line === 'unmanaged:' || line === 'unmanaged: {}') {
        if (unmanaged !== undefined) return undefined;
        section = 'unmanaged';
        unmanaged = {};
        needIndent = line === 'unmanaged:' ? 2 : 0;
        flowEmpty = needIndent === 0;
      } else {
        flowEmpty = false;
        section = 'header';
        header.push(line);
      }
      pkg = undefined;
      inFiles = false;
      continue;
    }
    if (section === 'packages') {
      let m = KEY_LINE.exec(line);
      if (m) {
        const key = scalar(m[1]!);
        if (key === undefined || key in packages) return undefined;
        pkg = packages[key] = {};
        inFiles = false;
        needIndent = 4;
        continue;
      }
      if (!pkg) return undefined;
      m = FIELD.exec(line);
      if (m && !inFiles) {
        const v = scalar(m[2]!);
        if (v === undefined || pkg[m[1] as 'version' | 'sha256'] !== undefined) return undefined;
        pkg[m[1] as 'version' | 'sha256'] = v;
        continue;
      }
      if (line === '    files:' && !inFiles && pkg.files === undefined) {
        inFiles = true;
        pkg.files = {};
        needIndent = 6;
        continue;
      }
      m = FILE_LINE.exec(line);
      if (m && inFiles && m[1] !== undefined) {
        const f = file(m);
        if (!f || f[0] in pkg.files!) return undefined;
        pkg.files![f[0]] = f[1];
        continue;
      }
      return undefined;
    }
    if (section === 'unmanaged') {
      const m = FILE_LINE.exec(line);
      const f = m && m[1] === undefined ? file(m) : undefined;
      if (!f || f[0] in unmanaged!) return undefined;
      unmanaged![f[0]] = f[1];
      continue;
    }
    return undefined;
  }
  if (needIndent > 0) return undefined;
  let head: unknown;
  try {
    head = parse(header.join('\n'), { uniqueKeys: true });
  } catch {
    return undefined;
  }
  if (head === null || typeof head !== 'object' || Array.isArray(head)) return undefined;
  const h = head as Record<string, unknown>;
  if ('packages' in h || 'unmanaged' in h || !seenPackages) return undefined;
  return { ...h, packages, ...(unmanaged !== undefined ? { unmanaged } : {}) };
}
