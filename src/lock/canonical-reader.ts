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

/**
 * An empty record for entries keyed by package or path. Every key is new, and a plain `{}` gets a
 * hidden class per key added (15,000 for 5,000 packages); a dictionary from the start does not.
 * Object.create(null) gives one; the prototype is then set back, so the record is an ordinary
 * object to every reader (V8 keeps it a dictionary).
 */
function record<T>(): Record<string, T> {
  return Object.setPrototypeOf(Object.create(null), Object.prototype) as Record<string, T>;
}

/** A key no record may take: assigning it would set the prototype instead of adding an entry. */
const PROTO = '__proto__';

/**
 * The canonical JSON of the entries, written as bytes while the scan reads them. Every token is
 * copied from the text: a plain scalar needs no JSON escaping, the digits and hex need none. Only
 * ASCII is written; a quoted token whose JSON is not ASCII stops the writer (`ok` false) and the
 * caller digests the records instead.
 */
class JsonBytes {
  bytes: Uint8Array;
  length = 0;
  ok = true;
  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }
  private room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
  /** Characters `from`..`to` of `s`, which must be ASCII. */
  copy(s: string, from: number, to: number): void {
    this.room(to - from);
    const b = this.bytes;
    let n = this.length;
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        this.ok = false;
        return;
      }
      b[n++] = c;
    }
    this.length = n;
  }
  ascii(s: string): void {
    this.copy(s, 0, s.length);
  }
  /** A string value as JSON: plain scalars are copied between quotes, quoted ones re-encoded. */
  string(text: string, from: number, to: number, value: string): void {
    if (text.charCodeAt(from) === QUOTE) this.ascii(JSON.stringify(value));
    else {
      this.room(to - from + 2);
      this.bytes[this.length++] = QUOTE;
      this.copy(text, from, to);
      this.bytes[this.length++] = QUOTE;
    }
  }
}

/** Where readFileLine found a file line's parts, for the canonical JSON. */
interface FileTokens {
  path: string;
  pathFrom: number;
  pathTo: number;
  sizeFrom: number;
  sizeTo: number;
  modeFrom: number;
  idFrom: number;
  idTo: number;
}

/**
 * `<path>: {size: N, mode: "MMMM"[, buildId: HEX]}` from `start` to `end` of `text`, that is
 * `("(?:[^"\\]|\\.)*"|[^\s"#{][^\s#]*): \{size: (0|[1-9][0-9]*), mode: "([0-7]{4})"(?:, buildId:
 * ("[0-9a-f]+"|[0-9a-f]+))?\}$` with both scalars as YAML reads them; or undefined. Where the
 * parts are goes to `at`.
 */
function readFileLine(text: string, start: number, end: number, at: FileTokens): RawFile | undefined {
  let i: number;
  let path: string | undefined;
  if (text.charCodeAt(start) === QUOTE) {
    // The quoted string ends at the first quote not escaped; JSON.parse then holds it to JSON.
    i = start + 1;
    for (;;) {
      if (i >= end) return undefined;
      const c = text.charCodeAt(i);
      if (c === QUOTE) break;
      i += c === BACKSLASH ? 2 : 1;
    }
    i++;
    if (i >= end) return undefined;
    path = scalar(text.slice(start, i));
  } else {
    // A plain scalar has no spaces, so the first space is the one after its colon.
    const sp = text.indexOf(' ', start);
    if (sp < 0 || sp >= end) return undefined;
    i = sp - 1;
    path = text.slice(start, i);
    if (!isPlainString(path)) return undefined;
  }
  if (path === undefined || !text.startsWith(': {size: ', i)) return undefined;
  at.path = path;
  at.pathFrom = start;
  at.pathTo = i;
  i += 9;
  const sizeFrom = i;
  let c = text.charCodeAt(i);
  // The digits' value as it goes (exact up to 15 digits), so no string is cut for Number().
  let size = 0;
  if (c === DIGIT_0) i++;
  else if (c >= DIGIT_1 && c <= DIGIT_9) {
    do {
      size = size * 10 + (c - DIGIT_0);
      c = text.charCodeAt(++i);
    } while (c >= DIGIT_0 && c <= DIGIT_9);
  } else return undefined;
  at.sizeFrom = sizeFrom;
  at.sizeTo = i;
  if (i - sizeFrom > 15) size = Number(text.slice(sizeFrom, i));
  if (!text.startsWith(', mode: "', i)) return undefined;
  i += 9;
  for (let k = 0; k < 4; k++) {
    c = text.charCodeAt(i + k);
    if (c < DIGIT_0 || c > DIGIT_7) return undefined;
  }
  at.modeFrom = i;
  // Nearly every file is one of two modes: one string each rather than one per file.
  const mode = text.startsWith('0644', i)
    ? '0644'
    : text.startsWith('0755', i)
      ? '0755'
      : text.slice(i, i + 4);
  i += 4;
  if (text.charCodeAt(i) !== QUOTE) return undefined;
  i++;
  if (i + 1 === end && text.charCodeAt(i) === CLOSE_BRACE) {
    at.idFrom = at.idTo = -1;
    return { size, mode };
  }
  if (!text.startsWith(', buildId: ', i)) return undefined;
  i += 11;
  const quoted = text.charCodeAt(i) === QUOTE;
  if (quoted) i++;
  const idFrom = i;
  // Plain hex that is all digits, or digits, one e and digits (1e5), is a number to YAML.
  let letters = 0;
  let onlyE = true;
  for (; i < end; i++) {
    c = text.charCodeAt(i);
    if (c >= DIGIT_0 && c <= DIGIT_9) continue;
    if (c >= LOWER_A && c <= LOWER_F) {
      letters++;
      if (c !== LOWER_E) onlyE = false;
      continue;
    }
    break;
  }
  const idTo = i;
  if (idTo === idFrom) return undefined;
  if (quoted) {
    if (text.charCodeAt(i) !== QUOTE) return undefined;
    i++;
  } else if (
    letters === 0 ||
    (letters === 1 && onlyE && text.charCodeAt(idFrom) !== LOWER_E && text.charCodeAt(idTo - 1) !== LOWER_E)
  ) {
    return undefined;
  }
  if (i + 1 !== end || text.charCodeAt(i) !== CLOSE_BRACE) return undefined;
  at.idFrom = idFrom;
  at.idTo = idTo;
  return { size, mode, buildId: text.slice(idFrom, idTo) };
}

/** `"<path>":{"buildId":…,"mode":…,"size":…}` as JSON.stringify writes a file entry. */
function writeFile(out: JsonBytes, text: string, at: FileTokens, f: RawFile): void {
  out.string(text, at.pathFrom, at.pathTo, at.path);
  if (at.idFrom >= 0) {
    out.ascii(':{"buildId":"');
    out.copy(text, at.idFrom, at.idTo);
    out.ascii('","mode":"');
  } else out.ascii(':{"mode":"');
  out.copy(text, at.modeFrom, at.modeFrom + 4);
  out.ascii('","size":');
  // Up to 15 digits are exactly the number JSON writes; beyond, let JSON say (1e+21, null).
  if (at.sizeTo - at.sizeFrom <= 15) out.copy(text, at.sizeFrom, at.sizeTo);
  else out.ascii(JSON.stringify(f.size));
  out.ascii('}');
}

/** Leading spaces of the line `from`..`to`. */
function indentOf(text: string, from: number, to: number): number {
  let i = from;
  while (i < to && text.charCodeAt(i) === SPACE) i++;
  return i - from;
}

/** The line `from`..`to` is `s`. */
function lineIs(text: string, from: number, to: number, s: string): boolean {
  return to - from === s.length && text.startsWith(s, from);
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
 * The canonical JSON of the entries, as canonicalContent writes the `packages` and `unmanaged`
 * records, written during the scan from the tokens it read. ASCII bytes.
 */
export interface CanonicalEntries {
  packages: Uint8Array;
  unmanaged: Uint8Array;
}

export interface CanonicalScan {
  doc: CanonicalRead;
  /**
   * Absent when the text cannot give it: keys out of order (canonical JSON sorts them), a key
   * that looks like an array index (JSON.stringify puts those first), a package without a
   * version, a quoted token whose JSON is not ASCII.
   */
  entries?: CanonicalEntries;
}

/** Could JSON.stringify move this key ahead of the others (an integer-like key)? */
function mayBeIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= DIGIT_0 && c <= DIGIT_9 && /^[0-9]+$/.test(key);
}

export function readCanonicalLock(text: string): CanonicalRead | undefined {
  return scanCanonicalLock(text)?.doc;
}

/**
 * readCanonicalLock, plus the canonical JSON of the entries (when the text is in canonical order)
 * and, with `rules`, the entry rules checked on the way (undefined when one refuses).
 */
export function scanCanonicalLock(text: string, rules?: EntryRules): CanonicalScan | undefined {
  const header: string[] = [];
  const packages = record<RawPackage>();
  let unmanaged: Record<string, RawFile> | undefined;
  let section: 'header' | 'packages' | 'unmanaged' = 'header';
  let pkg: RawPackage | undefined;
  let pkgKey = '';
  let inFiles = false;
  let seenPackages = false;
  // The canonical JSON, while keys come in order. A package's version and sha256 come before its
  // files in the text and after them in the JSON, so where their tokens are is kept till its end.
  let canonical = true;
  const json = new JsonBytes(text.length + 64);
  const unmanagedJson = new JsonBytes(64);
  let versionFrom = -1;
  let versionTo = -1;
  let shaFrom = -1;
  let shaTo = -1;
  let lastKey: string | undefined;
  let lastPath: string | undefined;
  let lastUnmanaged: string | undefined;
  const at: FileTokens = {
    path: '',
    pathFrom: 0,
    pathTo: 0,
    sizeFrom: 0,
    sizeTo: 0,
    modeFrom: 0,
    idFrom: 0,
    idTo: 0,
  };
  json.ascii('{');
  unmanagedJson.ascii('{');
  /** Ends the current package, if any: its rules, and the end of its canonical JSON. */
  const endPackage = (): boolean => {
    if (pkg === undefined) return true;
    if (rules !== undefined && !rules.packageEntry(pkgKey, pkg)) return false;
    if (canonical && pkg.version === undefined) canonical = false;
    if (canonical) {
      json.ascii('},"sha256":');
      if (pkg.sha256 === undefined) json.ascii('null');
      else json.string(text, shaFrom, shaTo, pkg.sha256);
      json.ascii(',"version":');
      json.string(text, versionFrom, versionTo, pkg.version!);
      json.ascii('}');
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
  for (let next = 0; next <= length;) {
    // The line is text[from, to), without its newline.
    const from = next;
    let to = text.indexOf('\n', from);
    if (to < 0) to = length;
    next = to + 1;
    if (from === to || text.charCodeAt(from) === 0x23 /* # */) continue;
    const indent = indentOf(text, from, to);
    if (flowEmpty && indent > 0) return undefined;
    if (indent < needIndent) return undefined;
    needIndent = 0;
    if (indent === 0) {
      if (!endPackage()) return undefined;
      if (lineIs(text, from, to, 'packages:') || lineIs(text, from, to, 'packages: {}')) {
        if (seenPackages) return undefined; // a duplicate key: the YAML parser reports it
        seenPackages = true;
        section = 'packages';
        needIndent = to - from === 9 ? 2 : 0;
        flowEmpty = needIndent === 0;
      } else if (lineIs(text, from, to, 'unmanaged:') || lineIs(text, from, to, 'unmanaged: {}')) {
        if (unmanaged !== undefined) return undefined;
        section = 'unmanaged';
        unmanaged = record<RawFile>();
        needIndent = to - from === 10 ? 2 : 0;
        flowEmpty = needIndent === 0;
      } else {
        flowEmpty = false;
        section = 'header';
        header.push(text.slice(from, to));
      }
      inFiles = false;
      continue;
    }
    if (section === 'packages') {
      if (indent === 2) {
        // `^ {2}("(?:[^"\\]|\\.)*"|[^\s"#][^\s#]*):$`: a JSON string literal or a plain scalar (no
        // spaces, no '#', no leading quote) is the whole token, so the token is everything
        // between the indent and the final colon, and scalar() decides.
        if (!endPackage() || text.charCodeAt(to - 1) !== COLON) return undefined;
        const key = scalar(text.slice(from + 2, to - 1));
        if (key === undefined || key === PROTO) return undefined;
        if (canonical && (lastKey === undefined || lastKey < key) && !mayBeIndex(key)) {
          if (lastKey !== undefined) json.ascii(',');
          json.string(text, from + 2, to - 1, key);
          json.ascii(':{"files":{');
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
        if (lineIs(text, from, to, '    files:')) {
          if (pkg.files !== undefined) return undefined;
          inFiles = true;
          pkg.files = record<RawFile>();
          needIndent = 6;
          continue;
        }
        const isVersion = text.startsWith('version: ', from + 4);
        if (!isVersion && !text.startsWith('sha256: ', from + 4)) return undefined;
        const valueFrom = from + (isVersion ? 13 : 12);
        const v = scalar(text.slice(valueFrom, to));
        if (v === undefined) return undefined;
        if (isVersion) {
          if (pkg.version !== undefined) return undefined;
          pkg.version = v;
          versionFrom = valueFrom;
          versionTo = to;
        } else {
          if (pkg.sha256 !== undefined) return undefined;
          pkg.sha256 = v;
          shaFrom = valueFrom;
          shaTo = to;
        }
        continue;
      }
      if (indent === 6 && inFiles) {
        const f = readFileLine(text, from + 6, to, at);
        if (!f) return undefined;
        const path = at.path;
        if (path === PROTO || (rules !== undefined && !rules.file(path, f))) return undefined;
        if (canonical && (lastPath === undefined || lastPath < path) && !mayBeIndex(path)) {
          if (lastPath !== undefined) json.ascii(',');
          writeFile(json, text, at, f);
        } else {
          canonical = false;
          if (Object.hasOwn(pkg.files!, path)) return undefined;
        }
        lastPath = path;
        pkg.files![path] = f;
        continue;
      }
      return undefined;
    }
    if (section === 'unmanaged') {
      const f = indent === 2 ? readFileLine(text, from + 2, to, at) : undefined;
      if (!f) return undefined;
      const path = at.path;
      if (path === PROTO || (rules !== undefined && !rules.file(path, f))) return undefined;
      if (canonical && (lastUnmanaged === undefined || lastUnmanaged < path) && !mayBeIndex(path)) {
        if (lastUnmanaged !== undefined) unmanagedJson.ascii(',');
        writeFile(unmanagedJson, text, at, f);
      } else {
        canonical = false;
        if (Object.hasOwn(unmanaged!, path)) return undefined;
      }
      lastUnmanaged = path;
      unmanaged![path] = f;
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
  json.ascii('}');
  unmanagedJson.ascii('}');
  if (!canonical || !json.ok || !unmanagedJson.ok) return { doc };
  return {
    doc,
    entries: {
      packages: json.bytes.subarray(0, json.length),
      unmanaged: unmanagedJson.bytes.subarray(0, unmanagedJson.length),
    },
  };
}
