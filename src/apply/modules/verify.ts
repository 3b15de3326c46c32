import { z } from 'zod';
import { compareHost, lockedPaths } from '../../check/compare.js';
import { gatherWithReadings, statCacheDir } from '../../facts/stat-cache.js';
import { defineModule } from './types.js';

/** Re-reads versions and build-IDs; the host is ok only if it now matches the lock. */
export const verify = defineModule({
  name: 'verify',
  idleWithoutActions: true,
  args: z.strictObject({}).optional(),
  async run(ctx) {
    if (ctx.checkMode) return { status: 'skipped', message: 'check mode: nothing changed to verify' };
    // Nothing changed since preflight, and preflight found nothing to do: the host matched then.
    if (ctx.changedBy.size === 0 && ctx.plan.status === 'ok') {
      return { status: 'ok', message: 'unchanged since preflight, which matched the lock' };
    }
    // When only criu-lock's own modules ran, files can only have moved in the packages apt
    // installed; everything else matched at preflight. dpkg's versions are re-read for all.
    const ownOnly = [...ctx.changedBy].every(
      (m) => m === 'capture' || m === 'store_upload' || m === 'apt_pins' || m === 'apt_install',
    );
    const moved = new Set(ctx.plan.actions.flatMap((a) => (a.type === 'write-pins' ? [] : [a.package])));
    const paths = ownOnly
      ? [...moved].flatMap((key) => Object.keys(ctx.lock.packages[key]?.files ?? {}))
      : lockedPaths(ctx.lock);
    const facts = await gatherWithReadings(ctx.transport, { paths }, { cacheDir: statCacheDir() });
    const skipped = new Set(ctx.plan.blocked.map((b) => b.package));
    const findings = compareHost(ctx.lock, facts).filter((f) => {
      if (f.type === 'platform-mismatch') return true;
      if (f.package === null || skipped.has(f.package)) return false;
      // Files of packages apt did not touch were not re-read (and matched at preflight).
      return f.type !== 'file' || !ownOnly || moved.has(f.package);
    });
    if (findings.length === 0) return { status: 'ok', message: 'matches the lock (versions and build-IDs)' };
    const first = findings
      .slice(0, 3)
      .map((f) =>
        f.type === 'file'
          ? f.criu
          : f.type === 'platform-mismatch'
            ? `platform ${f.field}`
            : `${f.package}: ${f.type}`,
      );
    return {
      status: 'failed',
      message: `still differs from the lock in ${findings.length} place(s): ${first.join('; ')}`,
    };
  },
});
