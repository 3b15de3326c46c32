/**
 * A local file's bytes, read only when it is a regular file: opened non-blocking, so a FIFO does
 * not hold the open; fstat'ed, so a FIFO, a directory or a device (a link to /dev/zero) is refused
 * instead of waited on or read without end; its size checked before a byte is read. Symbolic
 * links are followed. Callers word the problems for their own files (the package store, CRIU
 * images), so this returns them rather than throwing.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

export type RegularFileProblem =
  /** open or read failed (ENOENT included). */
  | { kind: 'errno'; err: NodeJS.ErrnoException }
  | { kind: 'not-regular'; what: 'a directory' | 'a FIFO' | 'a device' | 'a socket' }
  /** Not the size the caller expected. */
  | { kind: 'size'; size: number }
  /** Over the caller's cap. */
  | { kind: 'too-large'; size: number }
  /** Fewer bytes than fstat said: the file shrank while it was read. */
  | { kind: 'changed'; read: number; size: number };

export function readRegularFile(
  path: string,
  o: { size?: number; maxBytes: number },
): { bytes: Buffer } | { problem: RegularFileProblem } {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { problem: { kind: 'errno', err: err as NodeJS.ErrnoException } };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const what = st.isDirectory()
        ? 'a directory'
        : st.isFIFO()
          ? 'a FIFO'
          : st.isCharacterDevice() || st.isBlockDevice()
            ? 'a device'
            : 'a socket';
      return { problem: { kind: 'not-regular', what } };
    }
    if (o.size !== undefined && st.size !== o.size) return { problem: { kind: 'size', size: st.size } };
    if (st.size > o.maxBytes) return { problem: { kind: 'too-large', size: st.size } };
    const bytes = Buffer.allocUnsafe(st.size);
    let at = 0;
    while (at < bytes.length) {
      const n = readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    if (at !== bytes.length) return { problem: { kind: 'changed', read: at, size: st.size } };
    return { bytes };
  } catch (err) {
    return { problem: { kind: 'errno', err: err as NodeJS.ErrnoException } };
  } finally {
    closeSync(fd);
  }
}
