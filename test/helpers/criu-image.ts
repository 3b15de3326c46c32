import { IMG_COMMON_MAGIC } from '../../src/checkpoint/images.js';

/** A CRIU image file as CRIU frames it: the two magics, then each entry after its 32-bit length. */
export function criuImage(magic: number, entries: readonly Uint8Array[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(IMG_COMMON_MAGIC, 0);
  head.writeUInt32LE(magic, 4);
  const parts: Buffer[] = [head];
  for (const e of entries) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(e.length, 0);
    parts.push(len, Buffer.from(e));
  }
  return Buffer.concat(parts);
}
