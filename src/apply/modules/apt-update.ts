import { z } from 'zod';
import { runAptUpdate } from '../apt.js';
import { defineModule } from './types.js';
import { summariseOutput } from './output.js';

/** `apt-get update`; not in the default playbook (plan --refresh does it), available to users. */
export const aptUpdate = defineModule({
  name: 'apt_update',
  args: z.strictObject({ lockTimeout: z.number().int().positive().max(3600).default(120) }).optional(),
  async run(ctx, args) {
    if (ctx.checkMode) return { status: 'skipped', message: 'check mode: would run apt-get update' };
    const r = await runAptUpdate(ctx.transport, {
      lockTimeout: args?.lockTimeout ?? 120,
      timeoutMs: 900_000,
    });
    if (r.exitCode !== 0)
      return { status: 'failed', message: `apt-get update failed: ${summariseOutput(r)}` };
    return { status: 'ok', message: 'apt lists refreshed' };
  },
});
