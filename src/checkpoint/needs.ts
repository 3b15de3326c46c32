import { compareFile, type Finding } from '../check/compare.js';
import type { HostFacts } from '../facts/types.js';
import type { FileEntry } from '../lock/lockfile.js';
import { isRegularMode, type Checkpoint } from './images.js';

/**
 * What a checkpoint demands of the host it is restored on, and the pure comparisons built on it.
 * CRIU validates, at restore, every regular file the dump recorded (mapped or open): its size,
 * then its mode (whole st_mode), then its build-ID when one was recorded. Devices, directories,
 * pipes and sockets carry no such record and are left to CRIU.
 */
export interface NeededFile {
  path: string;
  entry: FileEntry;
}

/** Regular files of the checkpoint with what CRIU will demand of them, one per path, sorted. */
export function neededFiles(cp: Checkpoint): NeededFile[] {
  const byPath = new Map<string, NeededFile>();
  for (const f of cp.files) {
    if (f.stMode === undefined || !isRegularMode(f.stMode) || f.size === undefined) continue;
    if (byPath.has(f.path)) continue;
    const entry: FileEntry = { size: f.size, mode: (f.stMode & 0o7777).toString(8).padStart(4, '0') };
    if (f.buildId !== undefined) entry.buildId = f.buildId;
    byPath.set(f.path, { path: f.path, entry });
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Pure: each needed file that would fail a restore on the host whose facts these are, in CRIU's words. */
export function compareCheckpoint(
  needed: readonly NeededFile[],
  facts: Pick<HostFacts, 'files'>,
  owners?: ReadonlyMap<string, string>,
): Finding[] {
  const out: Finding[] = [];
  for (const n of needed) {
    const f = compareFile(owners?.get(n.path) ?? null, n.path, n.entry, facts.files.get(n.path));
    if (f) out.push(f);
  }
  return out;
}

/** /usr-merge: dpkg may know a file as /lib/... while the process maps /usr/lib/... (and back). */
export function aliasOf(path: string): string | undefined {
  const usr = /^\/usr\/(bin|sbin|lib|lib32|lib64|libx32)(\/.*)$/.exec(path);
  if (usr) return `/${usr[1]}${usr[2]}`;
  const root = /^\/(bin|sbin|lib|lib32|lib64|libx32)(\/.*)$/.exec(path);
  if (root) return `/usr/${root[1]}${root[2]}`;
  return undefined;
}

/** `dpkg-query -S` arguments for each path and its /usr-merge alias. */
export function ownerQueryPaths(paths: readonly string[]): string[] {
  return [...new Set(paths.flatMap((p) => [p, ...(aliasOf(p) !== undefined ? [aliasOf(p)!] : [])]))];
}

/**
 * Parses `dpkg-query -S PATH...` output ("libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6",
 * "pkg1, pkg2: /path", "diversion by ..." lines ignored) into path → owning package names, for
 * the paths asked (an alias answer counts for the path it aliases). First owner wins.
 */
export function parseOwners(stdout: string, paths: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith('diversion by ')) continue;
    const m = /^([a-z0-9][a-z0-9+.:-]*(?:, [a-z0-9][a-z0-9+.:-]*)*): (\/.*)$/.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const owner = m[1].split(', ')[0] ?? '';
    if (!found.has(m[2])) found.set(m[2], owner);
  }
  const out = new Map<string, string>();
  for (const p of paths) {
    const alias = aliasOf(p);
    const o = found.get(p) ?? (alias !== undefined ? found.get(alias) : undefined);
    if (o !== undefined) out.set(p, o);
  }
  return out;
}
