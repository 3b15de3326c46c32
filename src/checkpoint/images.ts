import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { CriuLockError } from '../errors.js';

/**
 * CRIU's image files, as far as criu-lock reads them: `files.img` (CRIU >= 3.15 keeps every open or
 * mapped file there as a `file_entry`) and the older `reg-files.img` (bare `reg_file_entry`s).
 *
 * Layout of a CRIU protobuf image: u32 IMG_COMMON_MAGIC, u32 image magic, then entries, each a u32
 * length followed by that many bytes of protobuf; all little-endian. The schema below is written
 * from the field numbers of CRIU's images/fdinfo.proto, regfile.proto and fown.proto (proto2).
 */
export const IMG_COMMON_MAGIC = 0x54564319;
export const FILES_MAGIC = 0x56303138;
export const REG_FILES_MAGIC = 0x50363636;
export const PSTREE_MAGIC = 0x50273030;

/** fd_types.REG in fdinfo.proto. */
const FD_TYPE_REG = 1;

const root = protobuf.Root.fromJSON({
  nested: {
    criu: {
      nested: {
        fown_entry: {
          fields: {
            uid: { rule: 'required', type: 'uint32', id: 1 },
            euid: { rule: 'required', type: 'uint32', id: 2 },
            signum: { rule: 'required', type: 'uint32', id: 3 },
            pid_type: { rule: 'required', type: 'uint32', id: 4 },
            pid: { rule: 'required', type: 'uint32', id: 5 },
          },
        },
        reg_file_entry: {
          fields: {
            id: { rule: 'required', type: 'uint32', id: 1 },
            flags: { rule: 'required', type: 'uint32', id: 2 },
            pos: { rule: 'required', type: 'uint64', id: 3 },
            fown: { rule: 'required', type: 'fown_entry', id: 5 },
            name: { rule: 'required', type: 'string', id: 6 },
            mnt_id: { type: 'sint32', id: 7, options: { default: -1 } },
            size: { type: 'uint64', id: 8 },
            ext: { type: 'bool', id: 9 },
            mode: { type: 'uint32', id: 10 },
            build_id: { rule: 'repeated', type: 'uint32', id: 11, options: { packed: false } },
            checksum: { type: 'uint32', id: 12 },
            checksum_config: { type: 'uint32', id: 13 },
            checksum_parameter: { type: 'uint32', id: 14 },
          },
        },
        pstree_entry: {
          fields: {
            pid: { rule: 'required', type: 'uint32', id: 1 },
            ppid: { rule: 'required', type: 'uint32', id: 2 },
            pgid: { rule: 'required', type: 'uint32', id: 3 },
            sid: { rule: 'required', type: 'uint32', id: 4 },
            threads: { rule: 'repeated', type: 'uint32', id: 5, options: { packed: false } },
          },
        },
        // Only the members criu-lock needs; the other fd types are skipped as unknown fields.
        file_entry: {
          fields: {
            type: { rule: 'required', type: 'uint32', id: 1 },
            id: { rule: 'required', type: 'uint32', id: 2 },
            reg: { type: 'reg_file_entry', id: 3 },
          },
        },
      },
    },
  },
});

export const RegFileEntry = root.lookupType('criu.reg_file_entry');
export const FileEntry = root.lookupType('criu.file_entry');
export const PstreeEntry = root.lookupType('criu.pstree_entry');

/** One regular-file record of a checkpoint, as CRIU will check it at restore. */
export interface CheckpointFile {
  /** Absolute path inside the dumped process's root ("/usr/lib/x86_64-linux-gnu/libc.so.6"). */
  path: string;
  /** CRIU's file id (shared by every fd and mapping of the same open file). */
  id: number;
  /** Size CRIU will demand, when recorded. */
  size?: number;
  /** Whole st_mode as recorded (file type bits included), when recorded. */
  stMode?: number;
  /** Lowercase hex build-ID, when CRIU recorded one (ELF files it could read the note of). */
  buildId?: string;
}

export interface Checkpoint {
  dir: string;
  /** `files.img` or `reg-files.img`. */
  image: string;
  files: CheckpointFile[];
  /** Pids of the dumped process tree (pstree.img), root first; empty when the image is absent. */
  pids: number[];
}

interface RawRegFile {
  id: number;
  name: string;
  size?: number | { toNumber(): number };
  mode?: number;
  build_id?: number[];
}

/** CRIU stores the build-ID as 32-bit words copied from the note (little-endian on the host that dumped). */
export function buildIdFromWords(words: readonly number[]): string {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
  return b.toString('hex');
}

export function buildIdToWords(hex: string): number[] {
  const b = Buffer.from(hex.length % 8 === 0 ? hex : hex.padEnd(Math.ceil(hex.length / 8) * 8, '0'), 'hex');
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(b.readUInt32LE(i));
  return out;
}

/** Splits an image into its protobuf entries after checking both magics. `file` names errors. */
export function splitEntries(buf: Buffer, expectMagic: number, file: string): Buffer[] {
  if (buf.length < 8) {
    throw new CriuLockError('input', `${file}: not a CRIU image (${buf.length} bytes)`, {
      hint: 'pass the directory `criu dump -D DIR` wrote',
    });
  }
  const common = buf.readUInt32LE(0);
  const magic = buf.readUInt32LE(4);
  if (common !== IMG_COMMON_MAGIC || magic !== expectMagic) {
    throw new CriuLockError(
      'input',
      `${file}: bad magic 0x${common.toString(16)} 0x${magic.toString(16)} (expect 0x${IMG_COMMON_MAGIC.toString(16)} 0x${expectMagic.toString(16)})`,
      { hint: 'not a CRIU image, or written by an incompatible CRIU version' },
    );
  }
  const out: Buffer[] = [];
  let off = 8;
  while (off < buf.length) {
    if (off + 4 > buf.length) {
      throw new CriuLockError('input', `${file}: truncated entry header at byte ${off}`, {
        hint: 'the image is cut short; dump again',
      });
    }
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) {
      throw new CriuLockError(
        'input',
        `${file}: entry at byte ${off - 4} claims ${len} bytes, ${buf.length - off} left`,
        {
          hint: 'the image is cut short; dump again',
        },
      );
    }
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}

function toFile(r: RawRegFile): CheckpointFile {
  const f: CheckpointFile = { path: r.name, id: r.id };
  if (r.size !== undefined && r.size !== null)
    f.size = typeof r.size === 'number' ? r.size : r.size.toNumber();
  if (r.mode !== undefined && r.mode !== null) f.stMode = r.mode;
  if (r.build_id && r.build_id.length > 0) f.buildId = buildIdFromWords(r.build_id);
  return f;
}

function decode(type: protobuf.Type, entry: Buffer, file: string, index: number): Record<string, unknown> {
  try {
    return type.toObject(type.decode(entry), { defaults: false });
  } catch (err) {
    throw new CriuLockError(
      'input',
      `${file}: entry ${index + 1} is not a valid ${type.name}: ${(err as Error).message}`,
      {
        hint: 'not a CRIU image, or written by an incompatible CRIU version',
      },
    );
  }
}

/** Regular files of a files.img buffer (entries of other fd types are skipped). */
export function parseFilesImg(buf: Buffer, file = 'files.img'): CheckpointFile[] {
  const out: CheckpointFile[] = [];
  splitEntries(buf, FILES_MAGIC, file).forEach((e, i) => {
    const fe = decode(FileEntry, e, file, i) as { type: number; reg?: RawRegFile };
    if (fe.type === FD_TYPE_REG && fe.reg) out.push(toFile(fe.reg));
  });
  return out;
}

/** Regular files of an older reg-files.img buffer. */
export function parseRegFilesImg(buf: Buffer, file = 'reg-files.img'): CheckpointFile[] {
  return splitEntries(buf, REG_FILES_MAGIC, file).map((e, i) =>
    toFile(decode(RegFileEntry, e, file, i) as unknown as RawRegFile),
  );
}

/** Pids of a pstree.img buffer, in image order (the root first). */
export function parsePstreeImg(buf: Buffer, file = 'pstree.img'): number[] {
  return splitEntries(buf, PSTREE_MAGIC, file).map(
    (e, i) => (decode(PstreeEntry, e, file, i) as { pid: number }).pid,
  );
}

async function readPids(dir: string): Promise<number[]> {
  const file = join(dir, 'pstree.img');
  try {
    return parsePstreeImg(await readFile(file), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if (err instanceof CriuLockError) throw err;
    throw new CriuLockError('input', `cannot read ${file}: ${(err as Error).message}`, {
      hint: 'pass the directory `criu dump -D DIR` wrote',
    });
  }
}

/** Reads a checkpoint directory: files.img if present, else reg-files.img. */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  for (const [image, parse] of [
    ['files.img', parseFilesImg],
    ['reg-files.img', parseRegFilesImg],
  ] as const) {
    const file = join(dir, image);
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (code === 'ENOTDIR') break;
      throw new CriuLockError('input', `cannot read ${file}: ${(err as Error).message}`, {
        hint: 'check the permissions',
      });
    }
    return { dir, image, files: parse(buf, file), pids: await readPids(dir) };
  }
  throw new CriuLockError('input', `${dir}: no files.img or reg-files.img`, {
    hint: 'pass the directory `criu dump -D DIR` wrote (it holds files.img, pstree.img, ...)',
  });
}

/** S_IFMT bits of st_mode. */
export function isRegularMode(stMode: number): boolean {
  return (stMode & 0o170000) === 0o100000;
}
