import { compareVersions } from '../debian/version.js';
import { isConfiguredStatus } from '../facts/queries.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { indexLock } from '../lock/lock-index.js';
import type { FileEntry, Lockfile } from '../lock/lockfile.js';

export type FileProblem = 'missing' | 'not-regular' | 'size' | 'mode' | 'build-id';

/** One way a host differs from the lock. A union on `type`, so renderers handle each case. */
export type Finding =
  | {
      type: 'platform-mismatch';
      field: 'id' | 'versionId' | 'architecture' | 'codename';
      expected: string;
      actual: string;
    }
  | { type: 'package-missing'; package: string; expected: string }
  | { type: 'version-mismatch'; package: string; expected: string; actual: string }
  | { type: 'package-broken'; package: string; detail: string }
  | {
      type: 'file';
      /** Owning package key, or null for an unmanaged file. */
      package: string | null;
      path: string;
      problem: FileProblem;
      expected?: string;
      actual?: string;
      /** What CRIU would print at restore. */
      criu: string;
    };

/** CRIU prints the whole st_mode in octal (regular file type bits included): 0100755. */
function criuMode(mode: string | undefined): string {
  return mode === undefined ? '?' : `0${(0o100000 | parseInt(mode, 8)).toString(8)}`;
}

/** CRIU prints paths relative to the root ("usr/lib/..."). */
function criuPath(path: string): string {
  return path.replace(/^\/+/, '');
}

export function compareFile(
  pkg: string | null,
  path: string,
  want: FileEntry,
  got: FileFact | undefined,
): Finding | undefined {
  // The common case first, without building any message.
  if (got?.kind === 'elf' || got?.kind === 'file') {
    if (
      got.size === want.size &&
      got.mode === want.mode &&
      (want.buildId === undefined || got.buildId === want.buildId)
    )
      return undefined;
  }
  const rel = criuPath(path);
  if (!got || got.kind === 'missing') {
    return {
      type: 'file',
      package: pkg,
      path,
      problem: 'missing',
      criu: `Can't open file ${rel} on restore: No such file or directory`,
    };
  }
  if (got.kind === 'symlink' || got.kind === 'other' || got.kind === 'unreadable') {
    return {
      type: 'file',
      package: pkg,
      path,
      problem: 'not-regular',
      actual: got.kind,
      criu: `File ${rel} is not a regular file (${got.kind})`,
    };
  }
  if (got.size !== want.size) {
    return {
      type: 'file',
      package: pkg,
      path,
      problem: 'size',
      expected: String(want.size),
      actual: String(got.size),
      criu: `File ${rel} has bad size ${got.size} (expect ${want.size})`,
    };
  }
  if (got.mode !== want.mode) {
    return {
      type: 'file',
      package: pkg,
      path,
      problem: 'mode',
      expected: want.mode,
      actual: got.mode ?? '?',
      criu: `File ${rel} has bad mode ${criuMode(got.mode)} (expect ${criuMode(want.mode)})`,
    };
  }
  // CRIU compares build-IDs only when the dump recorded one.
  if (want.buildId !== undefined && got.buildId !== want.buildId) {
    return {
      type: 'file',
      package: pkg,
      path,
      problem: 'build-id',
      expected: want.buildId,
      actual: got.buildId ?? '(none)',
      criu: `File ${rel} has bad build-ID`,
    };
  }
  return undefined;
}

/** Every path the lock pins, for the probe. */
export function lockedPaths(lock: Lockfile): string[] {
  return [...indexLock(lock).paths];
}

export type PlatformFinding = Extract<Finding, { type: 'platform-mismatch' }>;

export function comparePlatform(lock: Lockfile, facts: HostFacts): PlatformFinding[] {
  const out: PlatformFinding[] = [];
  for (const field of ['id', 'versionId', 'codename', 'architecture'] as const) {
    const expected = lock.platform[field];
    const actual = facts.platform[field];
    if (expected !== actual) out.push({ type: 'platform-mismatch', field, expected, actual });
  }
  return out;
}

/** Pure: how `facts` differ from `lock`, exactly where CRIU looks (versions, then size/mode/build-ID). */
export function compareHost(lock: Lockfile, facts: HostFacts): Finding[] {
  const findings: Finding[] = comparePlatform(lock, facts);
  const index = indexLock(lock);
  for (const { key, entry: want, files } of index.packages) {
    const got = facts.packages.get(key);
    if (!got) findings.push({ type: 'package-missing', package: key, expected: want.version });
    else if (got.version !== want.version && compareVersions(got.version, want.version) !== 0) {
      findings.push({ type: 'version-mismatch', package: key, expected: want.version, actual: got.version });
    } else if (!isConfiguredStatus(got.status)) {
      findings.push({ type: 'package-broken', package: key, detail: `${got.status} (${got.eflag})` });
    }
    for (const [path, entry] of files) {
      const f = compareFile(key, path, entry, facts.files.get(path));
      if (f) findings.push(f);
    }
  }
  for (const [path, entry] of index.unmanaged) {
    const f = compareFile(null, path, entry, facts.files.get(path));
    if (f) findings.push(f);
  }
  return findings;
}
