import { z } from 'zod';
import { markApplied } from '../../rollback/host.js';
import { defineModule } from './types.js';

/** After verify passed: marks the transaction captured before the change as applied. */
export const txRecord = defineModule({
  name: 'tx_record',
  args: z.strictObject({}).optional(),
  async run(ctx) {
    const m = ctx.transaction?.manifest;
    if (!m || ctx.checkMode) return { status: 'skipped', message: 'no transaction captured on this host' };
    await markApplied(ctx.transport, m);
    return { status: 'ok', message: `transaction ${m.id} recorded as applied` };
  },
});
