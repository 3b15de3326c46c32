import { CriuLockError } from '../errors.js';
import { isHealthy } from '../facts/queries.js';
import type { HostFacts } from '../facts/types.js';
import { resolveInstalled } from '../lock/build-lock.js';
import { finalizeLock, type FileEntry, type Lockfile, type PackageEntry } from '../lock/lockfile.js';
import { compareNeeded, type NeededFile } from './needs.js';

export interface CheckpointLockResult {
  lock: Lockfile;
  warnings: string[];
}

/**
 * Pure: the lock a checkpoint needs. Packages are the golden node's owners of the checkpoint's
 * files at their installed versions; the files are recorded as the checkpoint has them (that is
 * what CRIU compares at restore), not as the golden node has them today. Files no package owns
 * are locked as unmanaged. Where the golden node itself differs from the checkpoint, a fleet
 * converged to it would still fail: that is a warning. A file CRIU recorded no size (or mode) of,
 * such as a log open for appending, has no lockfile entry (one needs both): it is left out with a
 * warning, and `check --checkpoint` still compares what CRIU recorded of it.
 */
export function buildCheckpointLock(
  needed: readonly NeededFile[],
  pids: readonly number[],
  owners: ReadonlyMap<string, string>,
  facts: HostFacts,
  source: { host: string; generatedAt: string },
): CheckpointLockResult {
  if (pids.length === 0) {
    throw new CriuLockError('input', 'the checkpoint has no pstree.img (no process tree)', {
      hint: 'pass the whole directory `criu dump -D DIR` wrote',
    });
  }
  const warnings: string[] = [];
  const packages: Record<string, PackageEntry> = {};
  const unmanaged: Record<string, FileEntry> = {};
  for (const n of needed) {
    const ownerName = owners.get(n.path);
    const pkg = ownerName !== undefined ? resolveInstalled(facts, ownerName) : undefined;
    const onGolden = compareNeeded(pkg?.key ?? null, n, facts.files.get(n.path));
    if (onGolden?.type === 'file') {
      warnings.push(
        `golden node ${source.host} differs from the checkpoint: ${onGolden.criu}; converging a fleet to it will not make this checkpoint restore`,
      );
    }
    const { size, mode, buildId } = n.entry;
    if (size === undefined || mode === undefined) {
      warnings.push(
        `${n.path}: the checkpoint records no ${size === undefined ? 'size' : 'mode'} (a file open for appending, such as a log): not locked; check --checkpoint compares the rest`,
      );
      continue;
    }
    const entry: FileEntry = buildId === undefined ? { size, mode } : { size, mode, buildId };
    if (!pkg) {
      warnings.push(
        `${n.path} belongs to no package on ${source.host}: locked as unmanaged (apply cannot provide it)`,
      );
      unmanaged[n.path] = entry;
      continue;
    }
    if (!isHealthy(pkg)) {
      throw new CriuLockError(
        'input',
        `golden node ${source.host}: ${pkg.key} is ${pkg.status} (${pkg.eflag}); refusing to lock a half-installed package`,
        {
          hint: 'repair the golden node first (dpkg --configure -a; apt-get -f install), then generate again',
        },
      );
    }
    const pkgEntry: PackageEntry = packages[pkg.key] ?? { version: pkg.version };
    const sha = facts.debSha256.get(`${pkg.key}=${pkg.version}`);
    if (sha) pkgEntry.sha256 = sha;
    pkgEntry.files = { ...(pkgEntry.files ?? {}), [n.path]: entry };
    packages[pkg.key] = pkgEntry;
  }
  const { id, versionId, codename, architecture } = facts.platform;
  const lock = finalizeLock({
    lockfileVersion: 1,
    source,
    platform: { id, versionId, codename, architecture },
    scope: { kind: 'checkpoint', pids: [...pids].sort((a, b) => a - b) },
    packages,
    unmanaged,
  });
  return { lock, warnings };
}
