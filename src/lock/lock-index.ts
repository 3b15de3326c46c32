import type { FileEntry, Lockfile, PackageEntry } from './lockfile.js';

/** A lock's packages and files in sorted order, computed once per lock and shared by every host. */
export interface LockIndex {
  packages: ReadonlyArray<{
    key: string;
    entry: PackageEntry;
    files: ReadonlyArray<readonly [string, FileEntry]>;
  }>;
  unmanaged: ReadonlyArray<readonly [string, FileEntry]>;
  /** Package keys, for membership tests. */
  keys: ReadonlySet<string>;
  /** Every locked path (package files and unmanaged), sorted and unique. */
  paths: readonly string[];
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
    index = { packages, unmanaged, paths, keys: new Set(packages.map((p) => p.key)) };
    cache.set(lock, index);
  }
  return index;
}
