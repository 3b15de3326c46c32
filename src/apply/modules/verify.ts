import { z } from 'zod';
import { compareHost, lockedPaths } from '../../check/compare.js';
import { gatherFacts } from '../../facts/gather.js';
import { defineModule } from './types.js';

/** Re-reads versions and build-IDs; the host is ok only if it now matches the lock. */
export const verify = defineModule({
  name: 'verify',
  args: z.strictObject({}).optional(),
  async run(ctx) {
    if (ctx.checkMode) return { status: 'skipped', message: 'check mode: nothing changed to verify' };
    const facts = await gatherFacts(ctx.transport, { paths: lockedPaths(ctx.lock) });
    const skipped = new Set(ctx.plan.blocked.map((b) => b.package));
    // Unmanaged files (owned by no package) are not apt's to converge: check reports them, verify does not fail on them.
    const findings = compareHost(ctx.lock, facts).filter((f) => !('package' in f) || (f.package !== null && !skipped.has(f.package)));
    if (findings.length === 0) return { status: 'ok', message: 'matches the lock (versions and build-IDs)' };
    const first = findings.slice(0, 3).map((f) => (f.type === 'file' ? f.criu : f.type === 'platform-mismatch' ? `platform ${f.field}` : `${f.package}: ${f.type}`));
    return { status: 'failed', message: `still differs from the lock in ${findings.length} place(s): ${first.join('; ')}` };
  },
});
