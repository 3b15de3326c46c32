/**
 * How a command ended, told apart the way a user needs it (issue 14): it ran and exited (any code),
 * it was killed by a signal, it timed out, or the transport lost it — the channel closed without
 * an exit status, so whether it ran, and how far, is unknown.
 */
import type { CommandResult } from './types.js';

export type CommandOutcome = 'exited' | 'signal' | 'timed-out' | 'lost';

export function commandOutcome(r: CommandResult): CommandOutcome {
  if (r.timedOut) return 'timed-out';
  if (r.exitCode !== null) return 'exited';
  if (r.signal !== undefined) return 'signal';
  return 'lost';
}

export const LOST_TEXT = 'the connection closed before the command reported an exit status';
export const LOST_HINT =
  'the transport lost the command, it did not report a failure: the host or its sshd may be overloaded (MaxSessions, memory) or the connection dropped; re-run for this host';
const SIGNAL_HINT = 'the command was killed on the host (OOM killer? an admin?); re-run for this host';

/** "exit code 3", "killed by SIGKILL", "timed out after 12 s", or the lost-command sentence. */
export function describeEnd(r: CommandResult): string {
  const outcome = commandOutcome(r);
  switch (outcome) {
    case 'exited':
      return `exit code ${r.exitCode}`;
    case 'signal':
      return `killed by ${r.signal}`;
    case 'timed-out':
      return `timed out after ${Math.round(r.durationMs / 1000)} s`;
    case 'lost':
      return LOST_TEXT;
    default: {
      const never: never = outcome;
      return String(never);
    }
  }
}

/** A hint for commands that did not exit by themselves; undefined for an ordinary exit. */
export function endHint(r: CommandResult): string | undefined {
  const outcome = commandOutcome(r);
  if (outcome === 'lost') return LOST_HINT;
  if (outcome === 'signal') return SIGNAL_HINT;
  return undefined;
}
