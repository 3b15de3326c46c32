/**
 * Which paths a lockfile may name. A lock is a file in a pull request, and every path in it is
 * stat'ed and read on every node by `check`, `plan` and `apply`'s verify, so a path must name one
 * file, in one spelling, on a disk: absolute, normalised (no empty, `.` or `..` components, which
 * could walk out of a prefix check), and not under the kernel's virtual file systems, where reading
 * can block (a FIFO-like device), has side effects, or shows another process's memory.
 *
 * Control characters are allowed: Linux file names may hold any byte but NUL and "/", CRIU checks
 * such files like any other, and the lockfile writes them escaped in a double-quoted string.
 */
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'] as const;

const USUAL_PATH = /^(?!\/(?:proc|sys|dev)(?:\/|$))(?:\/[^/\0.][^/\0]*)+$/;

/** Under /proc, /sys or /dev (or one of them itself). */
export function isVirtualFsPath(path: string): boolean {
  return VIRTUAL_ROOTS.some((root) => path === root || path.startsWith(`${root}/`));
}

/** Why `path` cannot be in a lockfile, or undefined when it can. */
export function lockedPathProblem(path: string): string | undefined {
  // Nearly every locked path: components that start with neither "." nor "/", no NUL, not under
  // a virtual root. 20,000 of them are checked at each lockfile load.
  if (USUAL_PATH.test(path)) return undefined;
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (path.includes('\0')) return 'must not contain a NUL byte';
  if (path === '/' || path.endsWith('/')) return 'must name a file, not a directory';
  const parts = path.slice(1).split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..'))
    return 'must be normalised (no "//", "/./" or "/../")';
  if (isVirtualFsPath(path))
    return 'is under /proc, /sys or /dev, which hold no files a package or CRIU restore could lock';
  return undefined;
}
