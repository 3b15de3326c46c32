/**
 * The package store's files as the controller reads them (src/input/regular-file.ts): only a
 * regular file, and only when it has the size the manifest gives, so a huge file costs a stat,
 * not its whole length in memory. Symbolic links are followed: what is read is checked against the
 * manifest's sha256 by every caller.
 */
import { CriuLockError } from '../errors.js';
import { readRegularFile, type RegularFileProblem } from '../input/regular-file.js';

/** Node's largest Buffer from one read; no .deb comes near it. */
const MAX_BYTES = 2 ** 31 - 1;

export class StoreFileError extends CriuLockError {
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super('input', `package store file ${file} ${why}`, {
      location: { file },
      hint: 'criu-lock vendor --verify lists every bad file; run criu-lock vendor again to replace them',
    });
  }
}

/** What is wrong with a store file, in the words that follow its path. */
function why(p: RegularFileProblem, expected: number | undefined): string {
  switch (p.kind) {
    case 'errno':
      if (p.err.code === 'ENOENT') return 'is missing';
      if (p.err.code === 'EACCES') return 'is not readable (permission denied)';
      return `cannot be read: ${p.err.code ?? p.err.message}`;
    case 'not-regular':
      return `is not a regular file (${p.what === 'a directory' ? 'a directory' : 'a device, FIFO or socket'})`;
    case 'size':
      return `has ${p.size} bytes, the manifest says ${expected}`;
    case 'too-large':
      return `is too large (${p.size} bytes)`;
    case 'changed':
      return `changed while it was read (${p.read} of ${p.size} bytes)`;
    default: {
      const never: never = p;
      return String(never);
    }
  }
}

/** The file's bytes; throws StoreFileError when it is missing, not a regular file, or not `size` bytes. */
export function readStoreFile(file: string, size?: number): Buffer {
  const r = readRegularFile(file, { ...(size === undefined ? {} : { size }), maxBytes: MAX_BYTES });
  if ('problem' in r) throw new StoreFileError(file, why(r.problem, size));
  return r.bytes;
}
