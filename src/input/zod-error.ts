/**
 * "zod issue → located error", once: the first issue of a failed parse as one CriuLockError that
 * names the offending path (or unknown key) and, when the source can say, its file:line:col.
 */
import type { z } from 'zod';
import { CriuLockError, type ErrorCode, type SourceLocation } from '../errors.js';

export interface IssueErrorOptions {
  code: ErrorCode;
  hint: string;
  /** Named in the message when the issue is at the root (e.g. "plan", "playbook"). */
  what: string;
  /** Prefix of the message (e.g. `task "x": invalid args for command: `). */
  prefix?: string;
  /** Prefix of the issue's path in the message and for locating (e.g. a task's place in its file). */
  pathPrefix?: ReadonlyArray<PropertyKey>;
  /** Where a path is; default: just the file. */
  locate?: (path: ReadonlyArray<PropertyKey>, key?: string) => SourceLocation;
  file: string;
}

/** The message for an issue: `unknown key "k" in a.b` or `a.b: message`. */
export function issueMessage(issue: z.core.$ZodIssue, what: string): { message: string; key?: string } {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    return { message: `unknown key ${JSON.stringify(key)}${path ? ` in ${path}` : ''}`, key };
  }
  return { message: `${path || what}: ${issue.message}` };
}

export function issueError(error: z.ZodError, opts: IssueErrorOptions): CriuLockError {
  const issue = error.issues[0]!;
  const { message, key } = issueMessage(issue, opts.what);
  const fullPath = [...(opts.pathPrefix ?? []), ...issue.path];
  const location = opts.locate ? opts.locate(fullPath, key) : { file: opts.file };
  return new CriuLockError(opts.code, `${opts.prefix ?? ''}${message}`, { hint: opts.hint, location });
}

/** `schema.parse` that throws the located CriuLockError. */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  opts: IssueErrorOptions,
): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw issueError(parsed.error, opts);
  return parsed.data;
}
