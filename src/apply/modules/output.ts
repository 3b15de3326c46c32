import { describeEnd, endHint } from '../../transport/outcome.js';
import type { CommandResult } from '../../transport/types.js';
import type { TaskResult } from './types.js';

/** The lines of a failed apt/dpkg run worth showing: its E:/W: lines, else the last lines. */
export function summariseOutput(r: CommandResult, maxLines = 4): string {
  const all = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const errors = all.filter((l) => /^(E|W):|^dpkg: error|error:/.test(l));
  const pick = (errors.length > 0 ? errors : all).slice(-maxLines);
  const why = describeEnd(r);
  return `${why}${pick.length > 0 ? `: ${pick.join(' | ')}` : ''}`;
}

/**
 * A failed task for a failed command: `WHAT failed: how it ended | its last lines`, with a hint when
 * the transport lost the command or a signal killed it (not the command's own failure).
 */
export function failedCommand(what: string, r: CommandResult): TaskResult {
  const hint = endHint(r);
  return { status: 'failed', message: `${what} failed: ${summariseOutput(r)}`, ...(hint ? { hint } : {}) };
}
