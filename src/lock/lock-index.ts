import { detach } from '../detach.js';
import { fileMode } from '../facts/parse.js';
import type { HostFacts, LockVerdicts } from '../facts/types.js';
import type { FileEntry, Lockfile, PackageEntry } from './lockfile.js';

export interface IndexedLockPackage {
  key: string;
  entry: PackageEntry;
  files: ReadonlyArray<readonly [string, FileEntry]>;
}

/**
 * A locked package's strings the facts parser shares: its key, and its version as a flat string (a
 * V8 slice of a larger string compares through a runtime call); and its place in `packages`.
 */
export interface SharedLockPackage {
  key: string;
  version: string;
  slot: number;
}

/**
 * A locked path, its build-ID as a flat string, its size and mode, and its place in `paths`. A
 * path locked under two packages (or a package and `unmanaged`) has one such entry: the last
 * package's, in the lock's order.
 */
export interface SharedLockPath {
  path: string;
  buildId: string | undefined;
  size: number;
  mode: string;
  slot: number;
}

/** A lock's packages and files in sorted order, computed once per lock and shared by every host. */
export interface LockIndex {
  packages: readonly IndexedLockPackage[];
  unmanaged: ReadonlyArray<readonly [string, FileEntry]>;
  /** Package keys, for membership tests. */
  keys: ReadonlySet<string>;
  /**
   * The packages in the same order, and by key; the paths in the same order, and by path. The
   * facts parser shares their strings (LockedStrings), and the planner compares with the same.
   */
  sharedPackages: readonly SharedLockPackage[];
  byKey: ReadonlyMap<string, SharedLockPackage>;
  sharedPaths: readonly SharedLockPath[];
  byPath: ReadonlyMap<string, SharedLockPath>;
  /** Every locked path (package files and unmanaged), sorted and unique. */
  paths: readonly string[];
}

/**
 * Whether a package's locked entry for a path is the one shared for that path (LockIndex.byPath):
 * the parser's verdict on the path (LockVerdicts.fileAtLock) is then a verdict on this entry too.
 * A path locked under two packages may hold two different entries.
 */
export function isSharedEntry(shared: SharedLockPath, entry: FileEntry): boolean {
  return entry.size === shared.size && entry.mode === shared.mode && entry.buildId === shared.buildId;
}

/**
 * The parser's verdicts on these facts (decision 23), when it made them against this very lock
 * index and for the very Maps the facts hold; undefined otherwise (facts made by hand, parsed
 * without the lock, or rebuilt since).
 */
export function verdictsFor(facts: HostFacts, locked: LockIndex): LockVerdicts | undefined {
  const v = facts.lockVerdicts;
  if (
    v === undefined ||
    v.locked !== locked ||
    v.packages !== facts.packages ||
    v.files !== facts.files ||
    v.packageAtLock.length !== locked.packages.length ||
    v.fileAtLock.length !== locked.paths.length
  )
    return undefined;
  return v;
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const cache = new WeakMap<Lockfile, LockIndex>();

function sortedFiles(files: Record<string, FileEntry> | undefined): Array<readonly [string, FileEntry]> {
  return Object.keys(files ?? {})
    .sort(byCodeUnit)
    .map((path) => [path, files![path]!] as const);
}

// Planning 10,000 hosts against one lock would otherwise sort the same keys 10,000 times.
export function indexLock(lock: Lockfile): LockIndex {
  let index = cache.get(lock);
  if (!index) {
    const packages = Object.keys(lock.packages)
      .sort(byCodeUnit)
      .map((key) => ({ key, entry: lock.packages[key]!, files: sortedFiles(lock.packages[key]!.files) }));
    const unmanaged = sortedFiles(lock.unmanaged);
    const paths = [
      ...new Set([
        ...packages.flatMap((p) => p.files.map(([path]) => path)),
        ...unmanaged.map(([path]) => path),
      ]),
    ].sort(byCodeUnit);
    const sharedPackages = packages.map((p, slot) => ({
      key: p.key,
      version: detach(p.entry.version),
      slot,
    }));
    const entries = new Map([...unmanaged, ...packages.flatMap((p) => p.files)]);
    const sharedPaths = paths.map((path, slot) => {
      const { buildId, size, mode } = entries.get(path)!;
      return {
        path,
        buildId: buildId === undefined ? undefined : detach(buildId),
        size,
        // The literals the facts parser gives the usual modes: compared by identity.
        mode: fileMode(mode),
        slot,
      };
    });
    index = {
      packages,
      unmanaged,
      paths,
      keys: new Set(packages.map((p) => p.key)),
      sharedPackages,
      byKey: new Map(sharedPackages.map((p) => [p.key, p])),
      sharedPaths,
      byPath: new Map(sharedPaths.map((f) => [f.path, f])),
    };
    cache.set(lock, index);
  }
  return index;
}
