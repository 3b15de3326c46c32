import { z } from 'zod';
import { defineModule } from './types.js';
import { summariseOutput } from './output.js';

/** `apt-get update`; not in the default playbook (plan --refresh does it), available to users. */
export const aptUpdate = defineModule({
  name: 'apt_update',
  args: z.strictObject({ lockTimeout: z.number().int().positive().max(3600).default(120) }).optional(),
  async run(ctx, args) {
    if (ctx.checkMode) return { status: 'skipped', message: 'check mode: would run apt-get update' };
    const r = await ctx.transport.exec(['apt-get', 'update', '-q', '-o', `DPkg::Lock::Timeout=${args?.lockTimeout ?? 120}`], {
      env: { LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' },
      become: true,
      timeoutMs: 900_000,
    });
    if (r.exitCode !== 0) return { status: 'failed', message: `apt-get update failed: ${summariseOutput(r)}` };
    return { status: 'ok', message: 'apt lists refreshed' };
  },
});
