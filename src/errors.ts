/**
 * The one error type users see. `message` is a single line; `hint` tells what to do next.
 * Input errors carry a location so the CLI can print `file:line:col: message`.
 */
import { escapeText } from './report/escape.js';

export type ErrorCode =
  | 'usage'
  | 'input'
  | 'inventory'
  | 'lockfile'
  | 'plan'
  | 'stale-plan'
  | 'ssh'
  | 'host-key'
  | 'become'
  | 'not-implemented'
  | 'sandbox'
  | 'capture'
  | 'rollback'
  | 'host-lock'
  | 'host-output'
  | 'internal';

export interface SourceLocation {
  file: string;
  line?: number;
  col?: number;
}

export class CriuLockError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly location: SourceLocation | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; location?: SourceLocation; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CriuLockError';
    this.code = code;
    this.hint = opts.hint;
    this.location = opts.location;
  }
}

export function formatLocation(loc: SourceLocation | undefined): string {
  if (!loc) return '';
  let s = loc.file;
  if (loc.line !== undefined) {
    s += `:${loc.line}`;
    if (loc.col !== undefined) s += `:${loc.col}`;
  }
  return s;
}

/**
 * One line (plus an optional hint line) as users see it; the stack only with --debug. Messages
 * quote input (host names, patterns, paths, a script's output): its control characters are shown
 * escaped, so an inventory cannot recolour the terminal or forge a line of the report.
 */
export function formatError(err: unknown, debug = false): string {
  if (err instanceof CriuLockError) {
    const where = formatLocation(err.location);
    let out = `error: ${escapeText(`${where ? `${where}: ` : ''}${err.message}`)}`;
    if (err.hint) out += `\n  hint: ${escapeText(err.hint)}`;
    if (debug && err.stack) out += `\n${err.stack}`;
    return out;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  let out = `error: internal error: ${escapeText(e.message)}`;
  out +=
    debug && e.stack ? `\n${e.stack}` : '\n  hint: re-run with --debug for the stack trace and report it';
  return out;
}
