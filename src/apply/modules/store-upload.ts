import { z } from 'zod';
import type { PackageAction } from '../../plan/plan-file.js';
import { storeActions, uploadStoreFiles } from '../../store/upload.js';
import { defineModule } from './types.js';

/**
 * Uploads the package-store .debs this host's plan installs, each checked by sha256 on the host.
 * Runs before the pins and the apt transaction, so a refused file leaves the host untouched.
 */
export const storeUpload = defineModule({
  name: 'store_upload',
  idleWithoutActions: true,
  args: z.strictObject({}).optional(),
  async run(ctx) {
    const actions = ctx.plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
    const wanted = storeActions(actions);
    if (wanted.length === 0) return { status: 'ok', message: 'nothing to install from the package store' };
    if (ctx.checkMode)
      return {
        status: 'skipped',
        message: `check mode: would upload ${wanted.length} .deb(s) from the package store`,
      };
    if (!ctx.storeDir)
      return {
        status: 'failed',
        message: 'the plan installs from the package store, but no store is in use',
      };
    const r = await uploadStoreFiles(ctx.transport, ctx.storeDir, actions);
    if (!r.ok) return { status: 'failed', message: r.error };
    return {
      status: 'changed',
      message: `uploaded ${r.files - r.reused} .deb(s) (${r.bytes} bytes${r.reused ? `, ${r.reused} already there` : ''}), sha256 checked on the host`,
    };
  },
});
