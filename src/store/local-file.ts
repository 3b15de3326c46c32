/**
 * The package store's files as the controller reads them. Only a regular file is read: a FIFO is
 * refused instead of waited on forever, a directory instead of failing as EISDIR, a device (a
 * link to /dev/zero) instead of read without end. A size the manifest gives is compared before a
 * byte is read, so a huge file costs a stat, not its whole length in memory. Symbolic links are
 * followed: what is read is checked against the manifest's sha256 by every caller.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { CriuLockError } from '../errors.js';

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

const reason = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'is missing';
  if (err.code === 'EACCES') return 'is not readable (permission denied)';
  return `cannot be read: ${err.code ?? err.message}`;
};

/** The file's bytes; throws StoreFileError when it is missing, not a regular file, or not `size` bytes. */
export function readStoreFile(file: string, size?: number): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new StoreFileError(file, reason(e));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new StoreFileError(
        file,
        `is not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'})`,
      );
    if (size !== undefined && st.size !== size)
      throw new StoreFileError(file, `has ${st.size} bytes, the manifest says ${size}`);
    if (st.size > MAX_BYTES) throw new StoreFileError(file, `is too large (${st.size} bytes)`);
    const bytes = Buffer.allocUnsafe(st.size);
    let at = 0;
    while (at < bytes.length) {
      const n = readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    if (at !== bytes.length)
      throw new StoreFileError(file, `changed while it was read (${at} of ${st.size} bytes)`);
    return bytes;
  } catch (e) {
    if (e instanceof StoreFileError) throw e;
    throw new StoreFileError(file, reason(e));
  } finally {
    closeSync(fd);
  }
}
