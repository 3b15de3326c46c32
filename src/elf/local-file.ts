import { open } from 'node:fs/promises';
import {
  type BuildIdResult,
  ELF_HEAD_BYTES,
  chunkedByteSource,
  readBuildId,
  type ReadBuildIdOptions,
} from './build-id.js';

/** Enough for ELF header + program headers + notes + descriptor, each round fetching what was asked. */
const MAX_ROUNDS = 8;

/**
 * CRIU's build-ID of a local file. Reads the head first and then only the ranges the parser asks
 * for (the same protocol a remote transport uses), never beyond the first 1 MiB.
 * Rejects on I/O errors and if the file shrinks while being read.
 */
export async function readBuildIdFromFile(
  path: string,
  options?: ReadBuildIdOptions,
): Promise<BuildIdResult> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const chunks: Array<{ offset: number; bytes: Uint8Array }> = [];
    const fetch = async (offset: number, length: number): Promise<void> => {
      const bytes = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: file shrank while reading its build-ID`);
        done += bytesRead;
      }
      chunks.push({ offset, bytes });
    };
    await fetch(0, Math.min(size, ELF_HEAD_BYTES));
    for (let round = 0; ; round++) {
      const result = readBuildId(chunkedByteSource(size, chunks), options);
      if (result.kind !== 'need-bytes') return result;
      if (round === MAX_ROUNDS)
        throw new Error(`${path}: build-ID parser still needs bytes after ${MAX_ROUNDS} reads`);
      for (const r of result.ranges) await fetch(r.offset, r.length);
    }
  } finally {
    await fh.close();
  }
}
