/**
 * Files every connection of a run reads (known_hosts, identity files), read and parsed once per
 * process while they stay the same. Before, each of N connections read and parsed every
 * known_hosts file, whose length itself grows with the fleet: O(N²) on a 1,000-node run
 * (issue 14). A file is "the same" while its device, inode, size, mtime and ctime are; any write
 * (an accept-new append, an edit, a replace) moves one of them, so the next reader parses again.
 */
import { readFile, stat } from 'node:fs/promises';

interface Entry {
  stamp: string;
  value: Promise<unknown>;
}

const cache = new Map<string, Entry>();

/**
 * `parse(readFile(file))`, from the cache while the file's stat is unchanged. Errors of stat and
 * readFile reach the caller as they would without a cache (and nothing is kept for them).
 */
export async function readParsed<T>(file: string, kind: string, parse: (data: Buffer) => T): Promise<T> {
  const st = await stat(file, { bigint: true });
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const key = `${kind}\0${file}`;
  const hit = cache.get(key);
  if (hit?.stamp === stamp) return hit.value as Promise<T>;
  const value = readFile(file).then(parse);
  cache.set(key, { stamp, value });
  value.catch(() => {
    if (cache.get(key)?.value === value) cache.delete(key);
  });
  return value;
}

/** For tests: forget everything. */
export function clearFileCache(): void {
  cache.clear();
}
