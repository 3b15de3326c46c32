import { z } from 'zod';
import { PIN_FILE } from '../../plan/pins.js';
import { PIN_WRITE_SCRIPT } from '../apt-job.js';
import { defineModule } from './types.js';
import { failedCommand } from './output.js';

/**
 * Writes the lock's apt preferences atomically, only when the content changes. The previous file
 * is kept first, in the same command, so a failed apt transaction puts it back (src/apply/apt-job.ts).
 */
export const aptPins = defineModule({
  name: 'apt_pins',
  idleWithoutActions: true,
  args: z.strictObject({}).optional(),
  async run(ctx) {
    const write = ctx.plan.actions.find((a) => a.type === 'write-pins');
    if (!write) return { status: 'ok', message: `${PIN_FILE} is up to date` };
    if (ctx.checkMode) return { status: 'changed', message: `would write ${write.path}` };
    const r = await ctx.transport.exec(
      ['sh', '-c', PIN_WRITE_SCRIPT, 'criu-lock-pins-write', write.path, '0644'],
      {
        become: true,
        stdin: ctx.pins,
      },
    );
    if (r.exitCode !== 0) return failedCommand(`keeping a copy of ${write.path} and writing it`, r);
    return { status: 'changed', message: `wrote ${write.path}` };
  },
});
