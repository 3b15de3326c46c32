/**
 * The controller's per-host cache files (stat-cache.ts, apt-readings.ts): where they live, how one
 * is read back only when it is ours, and how one is replaced. A cache is an optimisation only:
 * nothing here throws.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One file per host name; hashed, so no inventory name becomes a path. */
export function cacheFile(dir: string, host: string): string {
  return join(dir, `${createHash('sha256').update(host).digest('hex').slice(0, 32)}.json`);
}

/** A cache file's document when it is one we wrote for this host (format and owner), else undefined. */
export function readOwnDoc(file: string, host: string, format: number): Record<string, unknown> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  return d.format === format && d.host === host ? d : undefined;
}

/** Replaces `file` (a temporary file, then rename); errors are ignored. */
export function writeAtomically(dir: string, file: string, content: () => string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, content(), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // The cleanup may fail the same way (a file where the directory should be: ENOTDIR).
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was written
    }
  }
}

/** A stat tuple's ctime (KNOWN's last field), in seconds. */
export const ctimeOf = (tuple: string): number => Number(tuple.slice(tuple.lastIndexOf(':') + 1));

/**
 * A state (stat tuples joined by commas, `-` for a missing file) a later run may compare with:
 * every ctime in it older than the node's clock when it was taken.
 */
export function settledState(state: string, clock: number): boolean {
  for (const part of state.split(',')) if (part !== '-' && ctimeOf(part) >= clock) return false;
  return true;
}
