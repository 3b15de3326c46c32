/**
 * The one place for the zod schemas of Debian names and versions used by every file criu-lock
 * reads (lockfile, plan file) and every flag that names a package. The rules themselves live in
 * names.ts and version.ts; these wrap them so a schema error says what is wrong.
 */
import { z } from 'zod';
import { architectureProblem, PackageNameError, packageNameProblem, parsePackageKey } from './names.js';
import { isValidVersion } from './version.js';

/** Why `ref` (`name` or `name:arch`) is not a valid package reference, or undefined. */
export function packageRefProblem(ref: string): string | undefined {
  try {
    parsePackageKey(ref);
    return undefined;
  } catch (err) {
    if (err instanceof PackageNameError) return err.reason;
    throw err;
  }
}

/** Why `key` is not a `name:arch` key (what facts, locks, plans and apt requests use), or undefined. */
export function packageKeyProblem(key: string): string | undefined {
  const why = packageRefProblem(key);
  if (why !== undefined) return why;
  return key.includes(':') ? undefined : 'a package key needs an architecture (name:arch)';
}

const fromProblem =
  (problem: (s: string) => string | undefined) =>
  (s: string, ctx: z.RefinementCtx): void => {
    const why = problem(s);
    if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
  };

export const DebVersion = z.string().refine(isValidVersion, { message: 'is not a valid Debian version' });
export const DebPackageName = z.string().superRefine(fromProblem(packageNameProblem));
export const DebArchitecture = z.string().superRefine(fromProblem(architectureProblem));
/** `name:arch`. */
export const DebPackageKey = z.string().superRefine(fromProblem(packageKeyProblem));
/** `name` or `name:arch`. */
export const DebPackageRef = z.string().superRefine(fromProblem(packageRefProblem));
