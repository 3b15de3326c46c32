/**
 * The failure half of every command's host result, with a structured error that JSON outputs
 * keep (code, message, hint, step) instead of a flattened string. Dependency-free apart from
 * errors.ts, so file schemas (the plan file) can use it.
 */
import { z } from 'zod';
import { CriuLockError, type ErrorCode } from '../errors.js';

/** Error codes a host failure can carry: the CLI's codes plus a playbook task that failed. */
export type HostErrorCode = ErrorCode | 'task-failed';

/** Where the host's work stopped: connect, gather facts, refresh, preflight, or a task's name. */
export const HostError = z.strictObject({
  code: z.string().min(1),
  message: z.string(),
  hint: z.string().optional(),
  step: z.string().min(1),
});
/** `code` is a HostErrorCode when criu-lock wrote it; a plan file read back holds a string. */
export type HostError = z.infer<typeof HostError>;

export type FailureStatus = 'unreachable' | 'failed';

/** The failure half of every command's host result. */
export interface HostFailure {
  name: string;
  status: FailureStatus;
  error: HostError;
}

export function hostError(err: unknown, step: string): HostError {
  if (err instanceof CriuLockError)
    return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), step };
  return { code: 'internal', message: err instanceof Error ? err.message : String(err), step };
}

/** A connection that could not be opened is `unreachable`; anything later is `failed`. */
export function hostFailure(name: string, err: unknown, step: string): HostFailure {
  return { name, status: step === 'connect' ? 'unreachable' : 'failed', error: hostError(err, step) };
}

export function isHostFailure<R>(r: R): r is R & HostFailure {
  if (typeof r !== 'object' || r === null || !('status' in r)) return false;
  return r.status === 'unreachable' || r.status === 'failed';
}

/** The error as one line of text output: what went wrong, then the hint in parentheses. */
export function errorText(e: HostError): string {
  return e.message + (e.hint ? ` (hint: ${e.hint})` : '');
}
