import { join } from 'node:path';
import { compareFile, type Finding } from '../check/compare.js';
import { CriuLockError } from '../errors.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { isRegularMode, type Checkpoint, type CheckpointFile } from './images.js';

/**
 * What a checkpoint demands of the host it is restored on, and the pure comparisons built on it.
 * CRIU opens, at restore, every regular file the dump recorded (mapped or open) and compares what
 * the dump recorded of it: its size (not recorded for a file open O_WRONLY|O_APPEND, such as a
 * log), its mode (whole st_mode), its build-ID when one was recorded. Devices, directories, pipes
 * and sockets are left to CRIU (it compares their mode too; see docs/checkpoints.md).
 */
export interface NeededEntry {
  /** Absent when CRIU recorded none: then only existence, mode and build-ID are compared. */
  size?: number;
  /** Permission bits as four octal digits ("0755"), as a lockfile writes them; absent when CRIU
   * recorded no mode (images older than the mode field). */
  mode?: string;
  /** Lowercase hex of the words CRIU stored (the note, zero-padded to a multiple of 4 bytes). */
  buildId?: string;
}

export interface NeededFile {
  path: string;
  entry: NeededEntry;
}

/** Far above a real checkpoint (a process maps a few hundred files); each is probed on every host. */
export const MAX_NEEDED_FILES = 100_000;

function describe(f: CheckpointFile): string {
  const parts = f.stMode === undefined ? [] : [`mode 0${f.stMode.toString(8)}`];
  if (f.size !== undefined) parts.push(`size ${f.size}`);
  if (f.buildId !== undefined) parts.push(`build-ID ${f.buildId}`);
  return parts.join(', ');
}

/**
 * Regular files of the checkpoint with what CRIU will demand of them, one per path, sorted. CRIU
 * checks every record, so two records of one path (two opens of a file) demand both: a size one
 * of them lacks (the log opened for appending) is demanded by the other. Two records that differ
 * in what both recorded cannot both match one file, so CRIU would fail on every host: that is
 * refused as input, before any host is asked.
 */
export function neededFiles(cp: Checkpoint): NeededFile[] {
  const file = join(cp.dir, cp.image);
  // Per path, every value some record of it recorded.
  const byPath = new Map<string, CheckpointFile>();
  for (const f of cp.files) {
    // CRIU records size only for regular files: without a mode (older images), the size says it.
    if (f.stMode === undefined ? f.size === undefined : !isRegularMode(f.stMode)) continue;
    const had = byPath.get(f.path);
    if (had === undefined) {
      if (byPath.size === MAX_NEEDED_FILES) {
        throw new CriuLockError('input', `more than ${MAX_NEEDED_FILES} regular files recorded`, {
          hint: 'real checkpoints record some hundred; is this image corrupt, or not written by CRIU?',
          location: { file },
        });
      }
      byPath.set(f.path, { ...f });
      continue;
    }
    const differ = <T>(x: T | undefined, y: T | undefined): boolean =>
      x !== undefined && y !== undefined && x !== y;
    if (differ(had.stMode, f.stMode) || differ(had.size, f.size) || differ(had.buildId, f.buildId)) {
      throw new CriuLockError(
        'input',
        `${f.path} is recorded twice, differently (${describe(had)}; ${describe(f)}): no file matches both, so CRIU would fail to restore it on any host`,
        {
          hint: 'the file changed while the dump ran; dump again with nothing else writing to it',
          location: { file },
        },
      );
    }
    had.stMode ??= f.stMode;
    had.size ??= f.size;
    had.buildId ??= f.buildId;
  }
  const out: NeededFile[] = [];
  for (const [path, { stMode, size, buildId }] of byPath) {
    const entry: NeededEntry = {};
    if (size !== undefined) entry.size = size;
    if (stMode !== undefined) entry.mode = (stMode & 0o7777).toString(8).padStart(4, '0');
    if (buildId !== undefined) entry.buildId = buildId;
    out.push({ path, entry });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * CRIU's build-ID test: the host's note, rounded up to 32-bit words, is as long as the recorded
 * words, and its bytes (not the padding after them) are the recorded ones.
 */
export function buildIdMatches(recorded: string, host: string | null | undefined): boolean {
  if (host === undefined || host === null) return false;
  return Math.ceil(host.length / 8) * 8 === recorded.length && recorded.startsWith(host);
}

/** Pure: how one host's file would fail CRIU's checks of one needed file, or undefined when it passes. */
export function compareNeeded(
  pkg: string | null,
  n: NeededFile,
  got: FileFact | undefined,
): Finding | undefined {
  const { size, mode, buildId } = n.entry;
  // What CRIU did not record, or records in words, cannot differ: the host's own value stands in.
  const want = {
    mode: mode ?? got?.mode ?? '0000',
    size: size ?? got?.size ?? 0,
    ...(buildId === undefined
      ? {}
      : { buildId: buildIdMatches(buildId, got?.buildId) ? (got!.buildId as string) : buildId }),
  };
  return compareFile(pkg, n.path, want, got);
}

/** Pure: each needed file that would fail a restore on the host whose facts these are, in CRIU's words. */
export function compareCheckpoint(
  needed: readonly NeededFile[],
  facts: Pick<HostFacts, 'files'>,
  owners?: ReadonlyMap<string, string>,
): Finding[] {
  const out: Finding[] = [];
  for (const n of needed) {
    const f = compareNeeded(owners?.get(n.path) ?? null, n, facts.files.get(n.path));
    if (f) out.push(f);
  }
  return out;
}

/**
 * Why `dpkg-query -S` cannot be asked who owns `path`, or undefined: it reads one path per
 * argument but answers one per line, so a newline or carriage return would forge or hide an
 * answer, and no argument can hold a NUL. Checked at load too, so such a checkpoint fails before
 * any host is contacted instead of on every host.
 */
export function ownerQueryProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (/[\n\r\0]/.test(path))
    return 'holds a newline, carriage return or NUL, which `dpkg-query -S` cannot answer for';
  return undefined;
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
