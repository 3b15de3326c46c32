/**
 * Debian package and architecture names. These strings end up in apt/dpkg command lines and pin
 * files, so the checks are allow-lists that are at least as strict as Debian's own rules: no
 * upper case, nothing a shell treats specially, and never a leading '-' (option injection).
 */
import { CriuLockError } from '../errors.js';

export class PackageNameError extends CriuLockError {
  /** Why the input was rejected, without the input itself. */
  readonly reason: string;

  constructor(input: string, reason: string) {
    super('input', `invalid package key ${JSON.stringify(input)}: ${reason}`, {
      hint: 'write name or name:arch, e.g. libc6 or libc6:amd64',
    });
    this.name = 'PackageNameError';
    this.reason = reason;
  }
}

export interface PackageKey {
  name: string;
  /** Absent for keys written without one (dpkg-query prints Multi-Arch: foreign/all that way). */
  arch?: string;
}

function isLowerAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 122);
}

/** Why `name` is not a valid package name (Debian policy 5.6.1), or undefined if it is. */
export function packageNameProblem(name: string): string | undefined {
  if (name.length < 2) return 'package name must be at least two characters long';
  if (!isLowerAlnum(name.charCodeAt(0))) {
    return 'package name must start with a lower-case letter or digit';
  }
  for (let i = 1; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // '+', '-' and '.' are the only non-alphanumerics policy allows.
    if (!isLowerAlnum(c) && c !== 43 && c !== 45 && c !== 46) {
      return `character ${JSON.stringify(name.charAt(i))} not allowed in package name (only a-z, 0-9, '+', '-', '.')`;
    }
  }
  return undefined;
}

/**
 * Why `arch` is not a valid architecture name, or undefined if it is. dpkg's
 * `dpkg_arch_name_is_illegal` allows ASCII letters, digits and '-' after a leading alphanumeric;
 * we additionally require lower case, as every real Debian architecture (and wildcard) is.
 */
export function architectureProblem(arch: string): string | undefined {
  if (arch === '') return 'architecture must not be empty';
  if (!isLowerAlnum(arch.charCodeAt(0))) {
    return 'architecture must start with a lower-case letter or digit';
  }
  for (let i = 1; i < arch.length; i++) {
    const c = arch.charCodeAt(i);
    if (!isLowerAlnum(c) && c !== 45) {
      return `character ${JSON.stringify(arch.charAt(i))} not allowed in architecture (only a-z, 0-9, '-')`;
    }
  }
  return undefined;
}

export function isValidPackageName(name: string): boolean {
  return packageNameProblem(name) === undefined;
}

export function isValidArchitecture(arch: string): boolean {
  return architectureProblem(arch) === undefined;
}

/** Parses `name` or `name:arch` (dpkg-query's `${binary:Package}` form). */
export function parsePackageKey(key: string): PackageKey {
  const colon = key.indexOf(':');
  const name = colon >= 0 ? key.slice(0, colon) : key;
  const nameProblem = packageNameProblem(name);
  if (nameProblem !== undefined) throw new PackageNameError(key, nameProblem);
  if (colon < 0) return { name };
  const arch = key.slice(colon + 1);
  // A second ':' lands in `arch` and is rejected there.
  const archProblem = architectureProblem(arch);
  if (archProblem !== undefined) throw new PackageNameError(key, archProblem);
  return { name, arch };
}

export function formatPackageKey(key: PackageKey): string {
  const s = key.arch === undefined ? key.name : `${key.name}:${key.arch}`;
  const nameProblem = packageNameProblem(key.name);
  if (nameProblem !== undefined) throw new PackageNameError(s, nameProblem);
  if (key.arch !== undefined) {
    const archProblem = architectureProblem(key.arch);
    if (archProblem !== undefined) throw new PackageNameError(s, archProblem);
  }
  return s;
}
