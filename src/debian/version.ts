/**
 * Debian package versions: a port of dpkg's `parseversion` (lib/dpkg/parsehelp.c) and
 * `verrevcmp`/`dpkg_version_compare` (lib/dpkg/version.c).
 *
 * Validity is stricter than dpkg in a few places, on purpose, because versions from here end up
 * in apt pins and shell commands:
 * - dpkg only *warns* about a non-digit first character or invalid characters and then compares
 *   anyway; we reject both (Debian policy 5.6.12 forbids them).
 * - dpkg trims leading/trailing blanks and parses the epoch with `strtol`, which also accepts a
 *   sign and skips `\n`, `\r`, `\v`, `\f` (so `+1:1.0`, `-0:1.0` and `"\n1:1.0"` pass there); we
 *   accept only `[0-9]+` for the epoch (policy: "a single unsigned integer") and no whitespace.
 * - `dpkg --compare-versions` treats `""` and `<unknown>` as a blank version; we reject them.
 * The reasons we report use dpkg 1.21's wording wherever dpkg has a message for the same case.
 */
import { CriuLockError } from '../errors.js';

export interface DebianVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

export class VersionError extends CriuLockError {
  /** Why the input was rejected, without the input itself (dpkg's wording where it has one). */
  readonly reason: string;

  constructor(input: string, reason: string, hint?: string) {
    super('input', `invalid Debian version ${JSON.stringify(input)}: ${reason}`, {
      hint: hint ?? 'Debian versions look like [epoch:]upstream[-revision], e.g. 1:2.31-0ubuntu9.14',
    });
    this.name = 'VersionError';
    this.reason = reason;
  }
}

// dpkg stores the epoch in an int and rejects anything above INT_MAX.
const MAX_EPOCH = 2147483647; // INT_MAX

// Character codes are written as literals ('0'=48, '9'=57, '+'=43, '-'=45, '.'=46, ':'=58,
// '~'=126) because bundlers turn module-level consts into vars, which V8 then reloads on every
// use in the hot loops.

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

// ASCII only, like dpkg's c_isalpha; `(c | 32)` folds upper case onto lower case.
function isAlpha(c: number): boolean {
  const l = c | 32;
  return l >= 97 && l <= 122;
}

/**
 * dpkg's `order()`: the weight of one character in a non-digit run. The end of the string and a
 * digit both weigh 0, '~' weighs less than that (so "1.0~rc1" < "1.0"), letters weigh their code,
 * and every other character weighs more than any letter.
 */
function order(c: number): number {
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1;
  return c + 256;
}

/**
 * dpkg's `verrevcmp` on the ranges `a[ai, ae)` and `b[bi, be)`. Working on ranges of the original
 * string, with char codes, is what keeps `compareVersions` on strings allocation-free.
 * Returns a negative, zero or positive number (not normalized).
 */
function verrevcmp(
  a: string,
  ai: number,
  ae: number,
  b: string,
  bi: number,
  be: number,
  skip: number,
): number {
  // Shortcut, not part of dpkg: skip the common prefix (versions of one package usually differ
  // late), then back up to the start of the digit run we stopped in, since digit runs compare
  // as whole numbers. Restarting at a non-digit/digit boundary puts the loop below in the same
  // state dpkg's would be in after walking the identical prefix. `skip` is a prefix length the
  // caller already knows to be common, so it is not compared twice.
  const a0 = ai;
  ai += skip;
  bi += skip;
  while (ai < ae && bi < be && a.charCodeAt(ai) === b.charCodeAt(bi)) {
    ai++;
    bi++;
  }
  while (ai > a0 && isDigit(a.charCodeAt(ai - 1))) {
    ai--;
    bi--;
  }
  while (ai < ae || bi < be) {
    // Non-digit run: compare character weights; the end of a string weighs 0 like a digit does.
    for (;;) {
      const ac = ai < ae ? a.charCodeAt(ai) : -1;
      const bc = bi < be ? b.charCodeAt(bi) : -1;
      const aText = ac >= 0 && !isDigit(ac);
      const bText = bc >= 0 && !isDigit(bc);
      if (!aText && !bText) break;
      const ao = aText ? order(ac) : 0;
      const bo = bText ? order(bc) : 0;
      if (ao !== bo) return ao - bo;
      // Equal weights on non-digits means the same character, so both sides advance together.
      ai++;
      bi++;
    }
    // Digit run: numeric comparison without parsing, so arbitrarily long runs work.
    while (ai < ae && a.charCodeAt(ai) === 48) ai++;
    while (bi < be && b.charCodeAt(bi) === 48) bi++;
    let firstDiff = 0;
    for (;;) {
      const ac = ai < ae ? a.charCodeAt(ai) : -1;
      const bc = bi < be ? b.charCodeAt(bi) : -1;
      if (!isDigit(ac) || !isDigit(bc)) break;
      if (firstDiff === 0) firstDiff = ac - bc;
      ai++;
      bi++;
    }
    // The longer digit run (after dropping leading zeros) is the larger number.
    if (ai < ae && isDigit(a.charCodeAt(ai))) return 1;
    if (bi < be && isDigit(b.charCodeAt(bi))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

// Results of the last successful `scan()`. Module-level scratch instead of a returned object so
// the string comparison path allocates nothing; safe because `scan` is synchronous and its
// callers copy the values out before scanning again.
let scanEpoch = 0;
let scanUpstreamStart = 0;
let scanUpstreamEnd = 0;
let scanRevisionStart = 0;

// Character classes for the validating scan, indexed by char code (ASCII only; everything else
// is invalid everywhere): 1 = alnum . + ~ (fine in upstream and revision), 2 = '-', 3 = ':',
// 0 = never allowed. One table load per character is cheaper than a chain of comparisons.
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (isDigit(c) || isAlpha(c) || c === 46 || c === 43 || c === 126) CHAR_CLASS[c] = 1;
  else if (c === 45) CHAR_CLASS[c] = 2;
  else if (c === 58) CHAR_CLASS[c] = 3;
}

/**
 * One pass over `s` that both validates it (same rules as `parseVersion`) and records where the
 * epoch, upstream and revision are. Returns false for any invalid string; `parseVersion` is the
 * slow path that says why.
 */
function scan(s: string): boolean {
  return scanFrom(s, 0, -1, -1);
}

/**
 * `scan`, for when `s[0, from)` has already been checked to hold only characters allowed
 * somewhere in a version (class 1, 2 or 3), with its last '-' at `prefixHyphen` and last ':' at
 * `prefixColon` (-1 if none). `compareVersions` uses this to validate the prefix two strings
 * share only once.
 */
function scanFrom(s: string, from: number, prefixHyphen: number, prefixColon: number): boolean {
  const n = s.length;
  let i = 0;
  let epoch = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    // Saturate instead of overflowing; anything above MAX_EPOCH is rejected below anyway.
    if (epoch <= MAX_EPOCH) epoch = epoch * 10 + (c - 48);
    i++;
  }
  let start = 0;
  let lastColon = prefixColon;
  if (i < n && s.charCodeAt(i) === 58) {
    if (i === 0 || epoch > MAX_EPOCH) return false;
    start = i + 1;
    if (start >= n || !isDigit(s.charCodeAt(start))) return false;
    // The epoch separator is the first ':', so it is the last one only if there is no other.
    if (lastColon === i) lastColon = -1;
  } else {
    // Empty, or upstream not starting with a digit.
    if (i === 0) return false;
    // Without an epoch the first ':' would have been taken as the epoch separator and dpkg
    // reports "epoch in version is not number".
    if (lastColon >= 0) return false;
    epoch = 0;
  }
  let lastHyphen = prefixHyphen;
  // Everything before `i` is digits (or the epoch), everything before `from` is pre-checked.
  let j = start > 0 ? start : i;
  if (j < from) j = from;
  for (; j < n; j++) {
    const c = s.charCodeAt(j);
    const k = c < 128 ? CHAR_CLASS[c]! : 0;
    if (k === 1) continue;
    if (k === 2) lastHyphen = j;
    // ':' is allowed in upstream only after an epoch (and never in the revision, see below).
    else if (k === 3 && start > 0) lastColon = j;
    else return false;
  }
  if (lastHyphen >= 0) {
    if (lastHyphen === n - 1 || lastColon > lastHyphen) return false;
    scanUpstreamEnd = lastHyphen;
    scanRevisionStart = lastHyphen + 1;
  } else {
    scanUpstreamEnd = n;
    scanRevisionStart = n;
  }
  scanEpoch = epoch;
  scanUpstreamStart = start;
  return true;
}

/**
 * dpkg order for two strings, validating both. The common prefix is walked once, checking each
 * character's class there; then each string's own tail is validated and the comparison restarts
 * at the end of that prefix. Versions of one package usually share most of their text, so this
 * roughly halves the characters read compared to validating and comparing separately.
 */
function compareStrings(a: string, b: string): number {
  const m = a.length < b.length ? a.length : b.length;
  let p = 0;
  let prefixHyphen = -1;
  let prefixColon = -1;
  while (p < m) {
    const c = a.charCodeAt(p);
    if (c !== b.charCodeAt(p)) break;
    const k = c < 128 ? CHAR_CLASS[c]! : 0;
    if (k !== 1) {
      if (k === 2) prefixHyphen = p;
      else if (k === 3) prefixColon = p;
      else break; // invalid in both; let the scans below find it
    }
    p++;
  }
  if (!scanFrom(a, p, prefixHyphen, prefixColon)) return throwInvalid(a);
  const aEpoch = scanEpoch;
  const aStart = scanUpstreamStart;
  const aUpEnd = scanUpstreamEnd;
  const aRevStart = scanRevisionStart;
  if (!scanFrom(b, p, prefixHyphen, prefixColon)) return throwInvalid(b);
  if (aEpoch !== scanEpoch) return aEpoch < scanEpoch ? -1 : 1;
  const bStart = scanUpstreamStart;
  const bUpEnd = scanUpstreamEnd;
  const bRevStart = scanRevisionStart;
  // The known common prefix carries over into a part only where both parts start at the same
  // offset; otherwise verrevcmp finds the part's common prefix itself.
  let skip = 0;
  if (aStart === bStart && p > aStart) {
    skip = p - aStart;
    const shortest = (aUpEnd < bUpEnd ? aUpEnd : bUpEnd) - aStart;
    if (skip > shortest) skip = shortest;
  }
  const up = verrevcmp(a, aStart, aUpEnd, b, bStart, bUpEnd, skip);
  if (up !== 0) return up;
  skip = 0;
  if (aRevStart === bRevStart && p > aRevStart) {
    // Both revisions run to the end of their strings, so `p` (<= both lengths) bounds the skip.
    skip = p - aRevStart;
  }
  return verrevcmp(a, aRevStart, a.length, b, bRevStart, b.length, skip);
}

function isWhitespace(c: string): boolean {
  return c.trim() === '';
}

/** The reason `s` is not a valid version, or undefined if it is. Mirrors dpkg's check order. */
function invalidReason(s: string): string | undefined {
  if (s.trim() === '') return 'version string is empty';
  const trimmed = s.trim();
  for (let i = 0; i < trimmed.length; i++) {
    if (isWhitespace(trimmed.charAt(i))) return 'version string has embedded spaces';
  }
  // dpkg silently trims leading/trailing blanks; we don't, so the string we pin is the string we
  // were given.
  if (trimmed !== s) return 'version string has leading or trailing whitespace';
  let rest = s;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const epoch = s.slice(0, colon);
    // Emulates strtol as dpkg uses it (optional sign, then digits) to give dpkg's reasons.
    const signed = epoch.startsWith('+') || epoch.startsWith('-');
    let i = signed ? 1 : 0;
    const digitsStart = i;
    while (i < epoch.length && isDigit(epoch.charCodeAt(i))) i++;
    if (i === digitsStart) return 'epoch in version is empty';
    if (i !== epoch.length) return 'epoch in version is not number';
    const value = Number(epoch.slice(digitsStart));
    if (epoch.startsWith('-') && value !== 0) return 'epoch in version is negative';
    if (value > MAX_EPOCH) return 'epoch in version is too big';
    if (signed) return 'epoch in version has a sign (dpkg accepts one, Debian policy does not)';
    rest = s.slice(colon + 1);
    if (rest === '') return 'nothing after colon in version number';
  }
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen >= 0 ? rest.slice(0, hyphen) : rest;
  const revision = hyphen >= 0 ? rest.slice(hyphen + 1) : '';
  if (hyphen >= 0 && revision === '') return 'revision number is empty';
  if (upstream === '') return 'version number is empty';
  if (!isDigit(upstream.charCodeAt(0))) return 'version number does not start with digit';
  for (let i = 1; i < upstream.length; i++) {
    const c = upstream.charCodeAt(i);
    if (!(isDigit(c) || isAlpha(c) || c === 46 || c === 43 || c === 126 || c === 45 || c === 58)) {
      return 'invalid character in version number';
    }
  }
  for (let i = 0; i < revision.length; i++) {
    const c = revision.charCodeAt(i);
    if (!(isDigit(c) || isAlpha(c) || c === 46 || c === 43 || c === 126)) {
      return 'invalid character in revision number';
    }
  }
  return undefined;
}

export function parseVersion(s: string): DebianVersion {
  if (!scan(s)) {
    // `scan` and `invalidReason` must agree; if they ever don't, say so rather than guess.
    throw new VersionError(s, invalidReason(s) ?? 'rejected by the version scanner');
  }
  return {
    epoch: scanEpoch,
    upstream: s.slice(scanUpstreamStart, scanUpstreamEnd),
    revision: scanRevisionStart < s.length ? s.slice(scanRevisionStart) : '',
  };
}

export function tryParseVersion(s: string): DebianVersion | undefined {
  return scan(s) ? parseVersion(s) : undefined;
}

export function isValidVersion(s: string): boolean {
  return scan(s);
}

/**
 * The canonical string for `v`, as dpkg prints it: `epoch:` only when non-zero, `-revision` only
 * when non-empty. Throws if the parts could not have come from `parseVersion`, or would not parse
 * back to the same parts (e.g. a '-' in upstream with no revision).
 */
export function formatVersion(v: DebianVersion): string {
  // A ':' in upstream needs an explicit epoch to survive a round trip, even when it is 0.
  const epoch = v.epoch !== 0 || v.upstream.includes(':') ? `${v.epoch}:` : '';
  const s = `${epoch}${v.upstream}${v.revision === '' ? '' : `-${v.revision}`}`;
  const back = tryParseVersion(s);
  if (
    !Number.isSafeInteger(v.epoch) ||
    back === undefined ||
    back.epoch !== v.epoch ||
    back.upstream !== v.upstream ||
    back.revision !== v.revision
  ) {
    throw new VersionError(s, 'version parts do not form a valid version', `parts: ${JSON.stringify(v)}`);
  }
  return s;
}

function sign(n: number): -1 | 0 | 1 {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

/**
 * dpkg's version order. Strings are validated (one cheap pass, shared with locating the parts)
 * and compared in place: invalid input throws instead of getting an arbitrary position in the
 * order, and we avoid allocating parsed objects in what is the hottest path of lock planning.
 * `DebianVersion` objects are trusted as coming from `parseVersion`.
 */
export function compareVersions(a: string | DebianVersion, b: string | DebianVersion): -1 | 0 | 1 {
  if (typeof a === 'string' && typeof b === 'string') {
    // Identical text is equal once known valid; plans compare mostly-unchanged versions.
    if (a === b) {
      if (!scan(a)) return throwInvalid(a);
      return 0;
    }
    return sign(compareStrings(a, b));
  }
  const x = spans(a);
  const y = spans(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  const up = verrevcmp(x.up, x.upStart, x.upEnd, y.up, y.upStart, y.upEnd, 0);
  if (up !== 0) return sign(up);
  // An absent revision is the empty range, which verrevcmp treats like "0": 1.0 == 1.0-0.
  return sign(verrevcmp(x.rev, x.revStart, x.revEnd, y.rev, y.revStart, y.revEnd, 0));
}

/** Where epoch, upstream and revision lie, for the mixed string/object path (not the hot one). */
interface Spans {
  epoch: number;
  up: string;
  upStart: number;
  upEnd: number;
  rev: string;
  revStart: number;
  revEnd: number;
}

function spans(v: string | DebianVersion): Spans {
  if (typeof v !== 'string') {
    return {
      epoch: v.epoch,
      up: v.upstream,
      upStart: 0,
      upEnd: v.upstream.length,
      rev: v.revision,
      revStart: 0,
      revEnd: v.revision.length,
    };
  }
  if (!scan(v)) return throwInvalid(v);
  return {
    epoch: scanEpoch,
    up: v,
    upStart: scanUpstreamStart,
    upEnd: scanUpstreamEnd,
    rev: v,
    revStart: scanRevisionStart,
    revEnd: v.length,
  };
}

// Kept out of `compareVersions` so the hot function stays small enough to inline.
function throwInvalid(s: string): never {
  parseVersion(s);
  throw new VersionError(s, 'rejected by the version scanner');
}

export type Relation = '<<' | '<=' | '=' | '>=' | '>>';

export interface VersionConstraint {
  relation: Relation;
  version: DebianVersion;
}

const DEPRECATED_RELATION_HINT =
  "dpkg's deprecated '<' and '>' mean '<=' and '>=', not strictly less/greater; write '<<' or '<=', '>>' or '>='";

/**
 * Parses `"<< 2.32"`, `">=1.0"` and friends (the relations of Debian policy 7.1). Leading,
 * trailing and separating whitespace is optional.
 */
export function parseConstraint(constraint: string): VersionConstraint {
  const s = constraint.trim();
  let relation: Relation;
  let rest: string;
  if (s.startsWith('<<') || s.startsWith('<=') || s.startsWith('>>') || s.startsWith('>=')) {
    relation = s.slice(0, 2) as Relation;
    rest = s.slice(2);
  } else if (s.startsWith('=')) {
    relation = '=';
    rest = s.slice(1);
  } else if (s.startsWith('<') || s.startsWith('>')) {
    const op = s.charAt(0);
    throw new VersionError(
      constraint,
      `relation '${op}' is deprecated and ambiguous in dpkg (it means '${op}='); use '${op}${op}' or '${op}='`,
      DEPRECATED_RELATION_HINT,
    );
  } else {
    throw new VersionError(
      constraint,
      'constraint must start with one of <<, <=, =, >=, >>',
      'write a constraint such as ">= 2.31-0ubuntu9"',
    );
  }
  const version = rest.trim();
  if (version === '') {
    throw new VersionError(
      constraint,
      `no version after '${relation}'`,
      'write a constraint such as ">= 2.31-0ubuntu9"',
    );
  }
  return { relation, version: parseVersion(version) };
}

export function satisfies(version: string | DebianVersion, constraint: string): boolean {
  const { relation, version: wanted } = parseConstraint(constraint);
  const c = compareVersions(version, wanted);
  switch (relation) {
    case '<<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '=':
      return c === 0;
    case '>=':
      return c >= 0;
    case '>>':
      return c > 0;
    default: {
      const unreachable: never = relation;
      return unreachable;
    }
  }
}

export function gt(a: string | DebianVersion, b: string | DebianVersion): boolean {
  return compareVersions(a, b) > 0;
}

export function gte(a: string | DebianVersion, b: string | DebianVersion): boolean {
  return compareVersions(a, b) >= 0;
}

export function lt(a: string | DebianVersion, b: string | DebianVersion): boolean {
  return compareVersions(a, b) < 0;
}

export function lte(a: string | DebianVersion, b: string | DebianVersion): boolean {
  return compareVersions(a, b) <= 0;
}

/** dpkg equality, not string equality: `1.0`, `0:1.0`, `1.00` and `1.0-0` are all equal. */
export function eq(a: string | DebianVersion, b: string | DebianVersion): boolean {
  return compareVersions(a, b) === 0;
}

// Sorting and min/max call compareVersions only when there are two or more items; validate up
// front so a lone invalid version throws just like it would in a longer list.
function assertAllValid(versions: readonly (string | DebianVersion)[]): void {
  for (const v of versions) {
    if (typeof v === 'string' && !scan(v)) throwInvalid(v);
  }
}

/** Ascending dpkg order in a new array; equal versions keep their input order. */
export function sort<T extends string | DebianVersion>(versions: readonly T[]): T[] {
  assertAllValid(versions);
  return [...versions].sort(compareVersions);
}

/** Descending dpkg order in a new array; equal versions keep their input order. */
export function rsort<T extends string | DebianVersion>(versions: readonly T[]): T[] {
  assertAllValid(versions);
  return [...versions].sort((a, b) => compareVersions(b, a));
}

/** The highest version (the first of equals), or undefined for an empty list. */
export function max<T extends string | DebianVersion>(versions: readonly T[]): T | undefined {
  assertAllValid(versions);
  let best: T | undefined;
  for (const v of versions) {
    if (best === undefined || compareVersions(v, best) > 0) best = v;
  }
  return best;
}

/** The lowest version (the first of equals), or undefined for an empty list. */
export function min<T extends string | DebianVersion>(versions: readonly T[]): T | undefined {
  assertAllValid(versions);
  let best: T | undefined;
  for (const v of versions) {
    if (best === undefined || compareVersions(v, best) < 0) best = v;
  }
  return best;
}
