import type { CommandResult } from '../../transport/types.js';

/** The lines of a failed apt/dpkg run worth showing: its E:/W: lines, else the last lines. */
export function summariseOutput(r: CommandResult, maxLines = 4): string {
  const all = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const errors = all.filter((l) => /^(E|W):|^dpkg: error|error:/.test(l));
  const pick = (errors.length > 0 ? errors : all).slice(-maxLines);
  const why = r.timedOut ? `timed out after ${Math.round(r.durationMs / 1000)} s` : `exit code ${r.exitCode}`;
  return `${why}${pick.length > 0 ? `: ${pick.join(' | ')}` : ''}`;
}
