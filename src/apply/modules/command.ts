import { z } from 'zod';
import { defineModule } from './types.js';
import { failedCommand } from './output.js';

/** A user command (drain a node, restart a service), given as an argument list — never a shell string. */
export const command = defineModule({
  name: 'command',
  args: z.strictObject({
    argv: z.array(z.string().refine((s) => !s.includes('\0'), 'must not contain NUL')).min(1),
    become: z.boolean().default(false),
    timeout: z.number().int().positive().max(86_400).default(600),
    /** Exit codes that count as success. */
    okCodes: z.array(z.number().int()).default([0]),
  }),
  async run(ctx, args) {
    if (ctx.checkMode) return { status: 'skipped', message: `check mode: would run ${args.argv.join(' ')}` };
    const r = await ctx.transport.exec(args.argv, { become: args.become, timeoutMs: args.timeout * 1000 });
    if (r.exitCode === null || !args.okCodes.includes(r.exitCode))
      return failedCommand(args.argv[0] ?? 'command', r);
    return { status: 'changed', message: `ran ${args.argv.join(' ')}` };
  },
});
