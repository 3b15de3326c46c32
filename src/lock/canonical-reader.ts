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

const INDENT = ['', ' ', '  ', '   ', '    ', '     ', '      '];

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

/**
 * A record without a prototype. V8 keeps it as a hash table from the start; a plain `{}` gets a new
 * hidden class for each new key, and every package key and file path is new, which made building
 * the records cost more than reading the text. `__proto__` is an ordinary key in it, too.
 */
function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

export function readCanonicalLock(text: string): CanonicalRead | undefined {
  const lines = text.split('\n');
  const header: string[] = [];
  const packages = record<RawPackage>();
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
    if (needIndent > 0 && !line.startsWith(INDENT[needIndent]!)) return undefined;
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
        unmanaged = record<RawFile>();
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
        if (key === undefined || Object.hasOwn(packages, key)) return undefined;
        pkg = packages[key] = {};
        inFiles = false;
        needIndent = 4;
        continue;
      }
      if (!pkg) return undefined;
      m = FIELD.exec(line);
      if (m && !inFiles) {
        const v = scalar(m[2]!);
        if (v === undefined) return undefined;
        // Named stores: a computed key here was a megamorphic store, a tenth of the read.
        if (m[1] === 'version') {
          if (pkg.version !== undefined) return undefined;
          pkg.version = v;
        } else {
          if (pkg.sha256 !== undefined) return undefined;
          pkg.sha256 = v;
        }
        continue;
      }
      if (line === '    files:' && !inFiles && pkg.files === undefined) {
        inFiles = true;
        pkg.files = record<RawFile>();
        needIndent = 6;
        continue;
      }
      m = FILE_LINE.exec(line);
      if (m && inFiles && m[1] !== undefined) {
        const f = file(m);
        if (!f || Object.hasOwn(pkg.files!, f[0])) return undefined;
        pkg.files![f[0]] = f[1];
        continue;
      }
      return undefined;
    }
    if (section === 'unmanaged') {
      const m = FILE_LINE.exec(line);
      const f = m && m[1] === undefined ? file(m) : undefined;
      if (!f || Object.hasOwn(unmanaged!, f[0])) return undefined;
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
