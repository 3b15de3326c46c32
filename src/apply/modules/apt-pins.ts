import { z } from 'zod';
import { PIN_FILE } from '../../plan/pins.js';
import { PIN_BACKUP_SCRIPT } from '../apt-job.js';
import { defineModule } from './types.js';
import { failedCommand } from './output.js';

/**
 * Writes the lock's apt preferences atomically, only when the content changes. The previous file
 * is kept first, so a failed apt transaction puts it back (src/apply/apt-job.ts).
 */
export const aptPins = defineModule({
  name: 'apt_pins',
  args: z.strictObject({}).optional(),
  async run(ctx) {
    const write = ctx.plan.actions.find((a) => a.type === 'write-pins');
    if (!write) return { status: 'ok', message: `${PIN_FILE} is up to date` };
    if (ctx.checkMode) return { status: 'changed', message: `would write ${write.path}` };
    const b = await ctx.transport.exec(['sh', '-c', PIN_BACKUP_SCRIPT, 'criu-lock-pins-backup', write.path], {
      become: true,
    });
    if (b.exitCode !== 0) return failedCommand(`keeping a copy of ${write.path}`, b);
    const r = await ctx.transport.putFile(write.path, ctx.pins, { mode: 0o644, become: true });
    if (r.exitCode !== 0) return failedCommand(`writing ${write.path}`, r);
    return { status: 'changed', message: `wrote ${write.path}` };
  },
});
