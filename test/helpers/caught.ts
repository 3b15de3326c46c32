import { CriuLockError } from '../../src/errors.js';

/** The CriuLockError `fn` throws; anything else it throws fails the test, as does no error. */
export function caught(fn: () => unknown): CriuLockError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CriuLockError) return err;
    throw err;
  }
  throw new Error('expected a CriuLockError');
}

/** As caught, for a promise (or a function whose result is awaited). */
export async function caughtAsync(p: Promise<unknown> | (() => unknown)): Promise<CriuLockError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof CriuLockError) return err;
    throw err;
  }
  throw new Error('expected a CriuLockError');
}
