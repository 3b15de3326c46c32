import { parse } from 'yaml';
import { isPlainString } from './yaml-scalar.js';

/**
 * Reads a lockfile laid out exactly as serializeLock writes it, line by line, without building a
 * YAML document (which costs seconds for 5,000 packages). It only accepts what YAML would read
 * identically: a plain scalar must be one serializeLock could have written plain, a quoted one
 * must be JSON. Anything else returns undefined and the caller uses the YAML parser.
 *
 * Lines are taken apart with indexOf and charCodeAt rather than regexes: for 15,000 file lines a
 * match array and its sliced strings per line were most of the reader's time. What each line
 * may be is written beside its code as the regex it used to be.
 */

const SPACE = 0x20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
const DIGIT_0 = 0x30;
const DIGIT_1 = 0x31;
const DIGIT_7 = 0x37;
const DIGIT_9 = 0x39;
const LOWER_A = 0x61;
const LOWER_E = 0x65;
const LOWER_F = 0x66;

/** A plain or JSON-quoted scalar as YAML reads it, or undefined where YAML might read it otherwise. */
function scalar(token: string): string | undefined {
  if (token.charCodeAt(0) === QUOTE) {
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

/** A key no record may take: assigning it would set the prototype instead of adding an entry. */
const PROTO = '__proto__';

/**
 * `<path>: {size: N, mode: "MMMM"[, buildId: HEX]}` from `start` to the end of `line`, that is
 * `("(?:[^"\\]|\\.)*"|[^\s"#{][^\s#]*): \{size: (0|[1-9][0-9]*), mode: "([0-7]{4})"(?:, buildId:
 * ("[0-9a-f]+"|[0-9a-f]+))?\}$` with both scalars as YAML reads them; or undefined.
 */
function readFileLine(line: string, start: number): [string, RawFile] | undefined {
  const end = line.length;
  let i: number;
  let path: string | undefined;
  if (line.charCodeAt(start) === QUOTE) {
    // The quoted string ends at the first quote not escaped; JSON.parse then holds it to JSON.
    i = start + 1;
    for (;;) {
      if (i >= end) return undefined;
      const c = line.charCodeAt(i);
      if (c === QUOTE) break;
      i += c === BACKSLASH ? 2 : 1;
    }
    i++;
    path = scalar(line.slice(start, i));
    if (path === undefined || line.charCodeAt(i) !== COLON) return undefined;
  } else {
    // A plain scalar has no spaces, so the first space is the one after its colon.
    const sp = line.indexOf(' ', start);
    if (sp < 0 || line.charCodeAt(sp - 1) !== COLON) return undefined;
    i = sp - 1;
    path = line.slice(start, i);
    if (!isPlainString(path)) return undefined;
  }
  if (!line.startsWith(': {size: ', i)) return undefined;
  i += 9;
  const sizeStart = i;
  let c = line.charCodeAt(i);
  if (c === DIGIT_0) i++;
  else if (c >= DIGIT_1 && c <= DIGIT_9) {
    do c = line.charCodeAt(++i);
    while (c >= DIGIT_0 && c <= DIGIT_9);
  } else return undefined;
  const size = Number(line.slice(sizeStart, i));
  if (!line.startsWith(', mode: "', i)) return undefined;
  i += 9;
  for (let k = 0; k < 4; k++) {
    c = line.charCodeAt(i + k);
    if (c < DIGIT_0 || c > DIGIT_7) return undefined;
  }
  const mode = line.slice(i, i + 4);
  i += 4;
  if (line.charCodeAt(i) !== QUOTE) return undefined;
  i++;
  if (i + 1 === end && line.charCodeAt(i) === CLOSE_BRACE) return [path, { size, mode }];
  if (!line.startsWith(', buildId: ', i)) return undefined;
  i += 11;
  const quoted = line.charCodeAt(i) === QUOTE;
  if (quoted) i++;
  const idStart = i;
  // Plain hex that is all digits, or digits, one e and digits (1e5), is a number to YAML.
  let letters = 0;
  let onlyE = true;
  for (; ; i++) {
    c = line.charCodeAt(i);
    if (c >= DIGIT_0 && c <= DIGIT_9) continue;
    if (c >= LOWER_A && c <= LOWER_F) {
      letters++;
      if (c !== LOWER_E) onlyE = false;
      continue;
    }
    break;
  }
  const idEnd = i;
  if (idEnd === idStart) return undefined;
  if (quoted) {
    if (c !== QUOTE) return undefined;
    i++;
  } else if (
    letters === 0 ||
    (letters === 1 &&
      onlyE &&
      line.charCodeAt(idStart) !== LOWER_E &&
      line.charCodeAt(idEnd - 1) !== LOWER_E)
  ) {
    return undefined;
  }
  if (i + 1 !== end || line.charCodeAt(i) !== CLOSE_BRACE) return undefined;
  return [path, { size, mode, buildId: line.slice(idStart, idEnd) }];
}

/**
 * The key token of `  <key>:`, which must be `^ {2}("(?:[^"\\]|\\.)*"|[^\s"#][^\s#]*):$`: a JSON
 * string literal or a plain scalar (no spaces, no '#', no leading quote) is the whole token, so
 * it is everything between the indent and the final colon, and scalar() decides.
 */
function keyToken(line: string): string | undefined {
  return line.charCodeAt(line.length - 1) === COLON ? line.slice(2, -1) : undefined;
}

/** `"<path>":{"buildId":…,"mode":…,"size":…}` as JSON.stringify writes a file entry. */
function fileJson(line: string, start: number, path: string, f: RawFile): string {
  const key = jsonOf(path, line.charCodeAt(start) !== QUOTE);
  // A digit string reads as a finite number or Infinity, which JSON writes as null.
  const size = Number.isFinite(f.size) ? `${f.size}` : 'null';
  // The build-ID and the mode are hex and octal digits: nothing to escape.
  return f.buildId === undefined
    ? `${key}:{"mode":"${f.mode}","size":${size}}`
    : `${key}:{"buildId":"${f.buildId}","mode":"${f.mode}","size":${size}}`;
}

/** Leading spaces of `line`. */
function indentOf(line: string): number {
  let n = 0;
  while (line.charCodeAt(n) === SPACE) n++;
  return n;
}

/**
 * The entry rules of the Lockfile schema and of the key and path checks, applied by the scan as it
 * reads each entry so that a valid lock is walked once. Returning false declines the fast path.
 */
export interface EntryRules {
  /** A package as read, at its end: key, version (possibly missing), sha256. Not its files. */
  packageEntry(key: string, p: RawPackage): boolean;
  /** A file of a package or an unmanaged file. */
  file(path: string, f: RawFile): boolean;
}

/**
 * The canonical JSON text of the entries (what canonicalContent writes for `packages` and
 * `unmanaged`), written during the scan from the tokens it read. `packages` is in chunks that
 * concatenate to the packages object, so a digest can take it in pieces.
 */
export interface CanonicalEntries {
  packages: string[];
  unmanaged: string;
}

export interface CanonicalScan {
  doc: CanonicalRead;
  /**
   * Absent when the text cannot give it: keys out of order (canonical JSON sorts them), a key
   * that looks like an array index (JSON.stringify puts those first), a package without a version.
   */
  entries?: CanonicalEntries;
}

/** What a plain or quoted token's value looks like in JSON. */
function jsonOf(value: string, plain: boolean): string {
  // A plain scalar is in isPlainString's alphabet: nothing JSON escapes.
  return plain ? `"${value}"` : JSON.stringify(value);
}

/** Could JSON.stringify move this key ahead of the others (an integer-like key)? */
function mayBeIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= DIGIT_0 && c <= DIGIT_9 && /^[0-9]+$/.test(key);
}

/** Canonical JSON chunks are cut at about this many characters. */
const CHUNK = 1 << 16;

export function readCanonicalLock(text: string): CanonicalRead | undefined {
  return scanCanonicalLock(text)?.doc;
}

/**
 * readCanonicalLock, plus the canonical JSON of the entries (when the text is in canonical order)
 * and, with `rules`, the entry rules checked on the way (undefined when one refuses).
 */
export function scanCanonicalLock(text: string, rules?: EntryRules): CanonicalScan | undefined {
  const header: string[] = [];
  const packages: Record<string, RawPackage> = {};
  let unmanaged: Record<string, RawFile> | undefined;
  let section: 'header' | 'packages' | 'unmanaged' = 'header';
  let pkg: RawPackage | undefined;
  let pkgKey = '';
  let inFiles = false;
  let seenPackages = false;
  // The canonical JSON, while the keys come in order: done chunks, the chunk being written, the
  // current package's key, version and sha256 as JSON and its files so far, and the last keys.
  let canonical = true;
  const chunks: string[] = [];
  let chunk = '';
  let keyJson = '';
  let versionJson = '';
  let shaJson = 'null';
  let filesJson = '';
  let unmanagedJson = '';
  let lastKey: string | undefined;
  let lastPath: string | undefined;
  let lastUnmanaged: string | undefined;
  /** Ends the current package, if any: its rules, and its canonical JSON. */
  let written = 0;
  /** Ends the current package, if any: its rules, and its canonical JSON. */
  const endPackage = (): boolean => {
    if (pkg === undefined) return true;
    if (rules !== undefined && !rules.packageEntry(pkgKey, pkg)) return false;
    if (canonical && pkg.version === undefined) canonical = false;
    if (canonical) {
      chunk += `${written++ === 0 ? '' : ','}${keyJson}:{"files":{${filesJson}},"sha256":${shaJson},"version":${versionJson}}`;
      if (chunk.length >= CHUNK) {
        chunks.push(chunk);
        chunk = '';
      }
    }
    pkg = undefined;
    return true;
  };
  // A block header (`packages:`, `unmanaged:`, a package key, `    files:`) with nothing under it
  // is null to YAML; reading it as an empty map would accept what YAML rejects. So after one, the
  // next line must be indented deeper: this many spaces (0: no such requirement).
  let needIndent = 0;
  // After `packages: {}` or `unmanaged: {}` an indented line is a YAML error, not an entry.
  let flowEmpty = false;
  const length = text.length;
  for (let from = 0; from <= length; ) {
    let to = text.indexOf('\n', from);
    if (to < 0) to = length;
    const line = text.slice(from, to);
    from = to + 1;
    if (line === '' || line.charCodeAt(0) === 0x23 /* # */) continue;
    const indent = indentOf(line);
    if (flowEmpty && indent > 0) return undefined;
    if (indent < needIndent) return undefined;
    needIndent = 0;
    if (indent === 0) {
      if (!endPackage()) return undefined;
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
      inFiles = false;
      continue;
    }
    if (section === 'packages') {
      if (indent === 2) {
        if (!endPackage()) return undefined;
        const token = keyToken(line);
        const key = token === undefined ? undefined : scalar(token);
        if (key === undefined || key === PROTO) return undefined;
        if (canonical && (lastKey === undefined || lastKey < key) && !mayBeIndex(key)) {
          keyJson = jsonOf(key, token!.charCodeAt(0) !== QUOTE);
          versionJson = '';
          shaJson = 'null';
          filesJson = '';
        } else {
          canonical = false;
          if (Object.hasOwn(packages, key)) return undefined;
        }
        lastKey = key;
        lastPath = undefined;
        pkgKey = key;
        pkg = packages[key] = {};
        inFiles = false;
        needIndent = 4;
        continue;
      }
      if (!pkg) return undefined;
      if (indent === 4 && !inFiles) {
        // `^ {4}(version|sha256): ("(?:[^"\\]|\\.)*"|\S+)$`, or `    files:`.
        if (line === '    files:') {
          if (pkg.files !== undefined) return undefined;
          inFiles = true;
          pkg.files = {};
          needIndent = 6;
          continue;
        }
        const field = line.startsWith('version: ', 4)
          ? 'version'
          : line.startsWith('sha256: ', 4)
            ? 'sha256'
            : undefined;
        if (field === undefined || pkg[field] !== undefined) return undefined;
        const token = line.slice(field === 'version' ? 13 : 12);
        const v = scalar(token);
        if (v === undefined) return undefined;
        pkg[field] = v;
        if (canonical) {
          const json = jsonOf(v, token.charCodeAt(0) !== QUOTE);
          if (field === 'version') versionJson = json;
          else shaJson = json;
        }
        continue;
      }
      if (indent === 6 && inFiles) {
        const f = readFileLine(line, 6);
        if (!f || f[0] === PROTO) return undefined;
        const [path, entry] = f;
        if (rules !== undefined && !rules.file(path, entry)) return undefined;
        if (canonical && (lastPath === undefined || lastPath < path) && !mayBeIndex(path)) {
          filesJson += `${lastPath === undefined ? '' : ','}${fileJson(line, 6, path, entry)}`;
        } else {
          canonical = false;
          if (Object.hasOwn(pkg.files!, path)) return undefined;
        }
        lastPath = path;
        pkg.files![path] = entry;
        continue;
      }
      return undefined;
    }
    if (section === 'unmanaged') {
      const f = indent === 2 ? readFileLine(line, 2) : undefined;
      if (!f || f[0] === PROTO) return undefined;
      const [path, entry] = f;
      if (rules !== undefined && !rules.file(path, entry)) return undefined;
      if (canonical && (lastUnmanaged === undefined || lastUnmanaged < path) && !mayBeIndex(path)) {
        unmanagedJson += `${lastUnmanaged === undefined ? '' : ','}${fileJson(line, 2, path, entry)}`;
      } else {
        canonical = false;
        if (Object.hasOwn(unmanaged!, path)) return undefined;
      }
      lastUnmanaged = path;
      unmanaged![path] = entry;
      continue;
    }
    return undefined;
  }
  if (needIndent > 0 || !endPackage()) return undefined;
  let head: unknown;
  try {
    head = parse(header.join('\n'), { uniqueKeys: true });
  } catch {
    return undefined;
  }
  if (head === null || typeof head !== 'object' || Array.isArray(head)) return undefined;
  const h = head as Record<string, unknown>;
  if ('packages' in h || 'unmanaged' in h || !seenPackages) return undefined;
  const doc = { ...h, packages, ...(unmanaged !== undefined ? { unmanaged } : {}) };
  if (!canonical) return { doc };
  if (chunk !== '' || chunks.length === 0) chunks.push(chunk);
  chunks[0] = `{${chunks[0]!}`;
  chunks[chunks.length - 1] += '}';
  return { doc, entries: { packages: chunks, unmanaged: `{${unmanagedJson}}` } };
}
