import { z } from 'zod';
import type { PackageAction } from '../../plan/plan-file.js';
import { PIN_FILE } from '../../plan/pins.js';
import { formatBytes, pruneTransactions, readAndCapture } from '../../rollback/host.js';
import { rebuildPackage } from '../../store/rebuild.js';
import { defineModule } from './types.js';

/**
 * Before anything changes: records the versions, .debs, pin file and marks apply will replace
 * (a transaction, for `criu-lock rollback`). A capture that fails fails the host before any
 * change; with --no-capture it is skipped and the recap says so.
 */
export const capture = defineModule({
  name: 'capture',
  args: z.strictObject({}).optional(),
  async run(ctx) {
    const tx = ctx.transaction;
    if (!tx)
      return { status: 'skipped', message: 'capture off (--no-capture): this apply cannot be rolled back' };
    const actions = ctx.plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
    const pins = ctx.plan.actions.find((a) => a.type === 'write-pins');
    if (ctx.checkMode)
      return {
        status: 'skipped',
        message: `check mode: would record ${actions.length} package(s) and the pin file for rollback`,
      };
    // The state read and the capture in one round trip while the host is as the plan saw it.
    const res = await readAndCapture(
      ctx.transport,
      actions.map((a) => ({ package: a.package, before: a.from })),
      PIN_FILE,
      (now) => ({
        id: tx.id,
        host: ctx.host,
        kind: 'apply',
        lockDigest: ctx.lock.digest,
        rollbackOf: null,
        packages: actions.map((a) => ({
          package: a.package,
          before: now.versions.get(a.package) ?? null,
          after: a.to,
        })),
        pinPath: PIN_FILE,
        pinsAfter: pins ? pins.sha256 : now.pinSha256,
        now: tx.now,
        // Last source of a replaced version: rebuilt from its installed files, as the store does.
        rebuild: (t, p) => rebuildPackage(t, p, { onWarning: (w) => ctx.verbose(`rebuild: ${w}`) }),
        keep: tx.keep,
      }),
    );
    const kept = res.retention ?? (await pruneTransactions(ctx.transport, tx.keep));
    tx.manifest = res.manifest;
    tx.bytes = res.bytes;
    tx.diskBytes = kept.diskBytes;
    tx.kept = kept.count;
    return {
      status: 'changed',
      message: `transaction ${tx.id}: ${actions.length} package(s) captured (${formatBytes(res.bytes)}); ${kept.count} transaction(s) kept, ${formatBytes(kept.diskBytes)}${kept.pruned.length ? `, ${kept.pruned.length} older pruned` : ''}`,
    };
  },
});
