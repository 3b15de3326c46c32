import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { CriuLockError } from '../errors.js';
import { readRegularFile } from '../input/regular-file.js';

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
            // bytes, not string: a Linux name may be any bytes, and decoding as a string would turn
            // every invalid sequence into U+FFFD, so two different files would become one path.
            name: { rule: 'required', type: 'bytes', id: 6 },
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
  /** Pids of the dumped process tree (pstree.img), root first; never empty. */
  pids: number[];
}

/**
 * Caps on what one checkpoint may make criu-lock hold, far above real dumps (a process maps a few
 * hundred files; files.img of a large process tree is a few MiB with some thousand entries). A
 * hostile or corrupt image fails as input instead of filling the controller's memory.
 */
export const MAX_IMAGE_BYTES = 256 * 1024 * 1024;
export const MAX_IMAGE_ENTRIES = 1_000_000;
/** Linkers write build-IDs of 8 (xxhash) to 20 (SHA-1) bytes; 64 leaves room, more is no note. */
export const MAX_BUILD_ID_BYTES = 64;
/** S_IFMT and the permission bits: all an st_mode holds. */
const ST_MODE_BITS = 0o177777;

/** reg_file_entry as protobufjs decodes it: only fields present in the entry are own properties. */
interface RawRegFile {
  id: number;
  name: Uint8Array;
  /** A Long when protobufjs has long.js (it does: a dependency), so all 64 bits arrive. */
  size?: number | { toNumber(): number; toString(): string };
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

function inputError(file: string, message: string, hint: string, cause?: unknown): CriuLockError {
  return new CriuLockError('input', message, { hint, location: { file }, cause });
}

const NOT_CRIU = 'not a CRIU image, or written by an incompatible CRIU version';

/**
 * Calls `each` with every protobuf entry of an image after checking both magics, one subarray at a
 * time (an array of them would cost a Buffer object per entry). `file` names errors.
 */
export function forEachEntry(
  buf: Buffer,
  expectMagic: number,
  file: string,
  each: (entry: Buffer, index: number) => void,
): void {
  if (buf.length < 8) {
    throw inputError(
      file,
      `not a CRIU image (${buf.length} bytes)`,
      'pass the directory `criu dump -D DIR` wrote',
    );
  }
  const common = buf.readUInt32LE(0);
  const magic = buf.readUInt32LE(4);
  if (common !== IMG_COMMON_MAGIC || magic !== expectMagic) {
    throw inputError(
      file,
      `bad magic 0x${common.toString(16)} 0x${magic.toString(16)} (expect 0x${IMG_COMMON_MAGIC.toString(16)} 0x${expectMagic.toString(16)})`,
      NOT_CRIU,
    );
  }
  let off = 8;
  let index = 0;
  while (off < buf.length) {
    if (index === MAX_IMAGE_ENTRIES) {
      throw inputError(
        file,
        `more than ${MAX_IMAGE_ENTRIES} entries`,
        'real checkpoints hold some thousand; is this image corrupt, or not written by CRIU?',
      );
    }
    if (off + 4 > buf.length) {
      throw inputError(file, `truncated entry header at byte ${off}`, 'the image is cut short; dump again');
    }
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) {
      throw inputError(
        file,
        `entry at byte ${off - 4} claims ${len} bytes, ${buf.length - off} left`,
        'the image is cut short; dump again',
      );
    }
    each(buf.subarray(off, off + len), index++);
    off += len;
  }
}

/** Shows a name that is not UTF-8 with its bytes escaped, so the error line says which one it is. */
function escapedBytes(b: Uint8Array): string {
  let s = '';
  for (const c of b)
    s +=
      c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s;
}

/** Linux's PATH_MAX less its NUL, and its largest pid (PID_MAX_LIMIT). */
const PATH_MAX_BYTES = 4095;
const MAX_PID = 4_194_304;

/**
 * One reg_file_entry, refusing what criu-lock could only get wrong later, on every host: a name
 * that is not UTF-8, a size beyond what a double holds exactly, a build-ID no linker makes, mode
 * bits no st_mode has.
 */
function toFile(r: RawRegFile, file: string, index: number): CheckpointFile {
  const at = `entry ${index + 1}`;
  // CRIU records a path it could open: at most PATH_MAX (4096) bytes with its NUL.
  if (r.name.length > PATH_MAX_BYTES) {
    throw inputError(
      file,
      `${at} names a file of ${r.name.length} bytes, longer than any path (${PATH_MAX_BYTES} bytes)`,
      NOT_CRIU,
    );
  }
  if (!isUtf8(r.name)) {
    throw inputError(
      file,
      `${at} names a file "${escapedBytes(r.name)}" that is not UTF-8`,
      'criu-lock compares files by UTF-8 path; rename the file on the source host and dump again',
    );
  }
  const f: CheckpointFile = { path: Buffer.from(r.name).toString('utf8'), id: r.id };
  if (Object.hasOwn(r, 'size') && r.size !== undefined) {
    const size = typeof r.size === 'number' ? r.size : r.size.toNumber();
    if (!Number.isSafeInteger(size)) {
      throw inputError(
        file,
        `${at} (${f.path}) records size ${String(r.size)}, more than 2^53 - 1`,
        NOT_CRIU,
      );
    }
    f.size = size;
  }
  if (Object.hasOwn(r, 'mode') && r.mode !== undefined) {
    if ((r.mode & ~ST_MODE_BITS) !== 0) {
      throw inputError(
        file,
        `${at} (${f.path}) records mode 0${r.mode.toString(8)}, not an st_mode`,
        NOT_CRIU,
      );
    }
    f.stMode = r.mode;
  }
  if (r.build_id && r.build_id.length > 0) {
    if (r.build_id.length * 4 > MAX_BUILD_ID_BYTES) {
      throw inputError(
        file,
        `${at} (${f.path}) records a build-ID of ${r.build_id.length * 4} bytes (at most ${MAX_BUILD_ID_BYTES})`,
        NOT_CRIU,
      );
    }
    f.buildId = buildIdFromWords(r.build_id);
  }
  return f;
}

function decode<T>(type: protobuf.Type, entry: Buffer, file: string, index: number): T {
  try {
    // The message itself, not toObject: fields absent from the entry are not own properties, and
    // bytes stay bytes.
    return type.decode(entry) as unknown as T;
  } catch (err) {
    throw inputError(
      file,
      `entry ${index + 1} is not a valid ${type.name}: ${(err as Error).message}`,
      NOT_CRIU,
    );
  }
}

/** Regular files of a files.img buffer (entries of other fd types are skipped). */
export function parseFilesImg(buf: Buffer, file = 'files.img'): CheckpointFile[] {
  const out: CheckpointFile[] = [];
  forEachEntry(buf, FILES_MAGIC, file, (e, i) => {
    const fe = decode<{ type: number; reg?: RawRegFile }>(FileEntry, e, file, i);
    if (fe.type !== FD_TYPE_REG) return;
    // CRIU looks the file up by type and finds no regular file to open: the restore fails.
    if (!Object.hasOwn(fe, 'reg') || !fe.reg) {
      throw inputError(file, `entry ${i + 1} is a regular file without its reg_file_entry`, NOT_CRIU);
    }
    out.push(toFile(fe.reg, file, i));
  });
  return out;
}

/** Regular files of an older reg-files.img buffer. */
export function parseRegFilesImg(buf: Buffer, file = 'reg-files.img'): CheckpointFile[] {
  const out: CheckpointFile[] = [];
  forEachEntry(buf, REG_FILES_MAGIC, file, (e, i) =>
    out.push(toFile(decode(RegFileEntry, e, file, i), file, i)),
  );
  return out;
}

/** Pids of a pstree.img buffer, in image order (the root first); a pid is at least 1. */
export function parsePstreeImg(buf: Buffer, file = 'pstree.img'): number[] {
  const out: number[] = [];
  forEachEntry(buf, PSTREE_MAGIC, file, (e, i) => {
    const { pid } = decode<{ pid: number }>(PstreeEntry, e, file, i);
    if (!(pid >= 1 && pid <= MAX_PID)) throw inputError(file, `entry ${i + 1} records pid ${pid}`, NOT_CRIU);
    out.push(pid);
  });
  return out;
}

/** A hint for each way opening or reading an image can fail. */
function readFailure(file: string, err: NodeJS.ErrnoException): CriuLockError {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return inputError(
        file,
        'cannot read: permission denied',
        'check the permissions (criu dump writes its images as root)',
        err,
      );
    case 'ELOOP':
      return inputError(
        file,
        'cannot read: too many levels of symbolic links',
        'point --checkpoint at the directory itself',
        err,
      );
    case undefined:
    default:
      return inputError(
        file,
        `cannot read: ${err.code ?? err.message}`,
        'pass the directory `criu dump -D DIR` wrote, on a disk that reads',
        err,
      );
  }
}

/**
 * An image's bytes, or undefined when it does not exist. Only a regular file of at most
 * MAX_IMAGE_BYTES is read (src/input/regular-file.ts): a FIFO would block, a link to /dev/zero
 * would be read without end.
 */
function readImage(file: string): Buffer | undefined {
  const r = readRegularFile(file, { maxBytes: MAX_IMAGE_BYTES });
  if ('bytes' in r) return r.bytes;
  const p = r.problem;
  switch (p.kind) {
    case 'errno':
      if (p.err.code === 'ENOENT') return undefined;
      throw readFailure(file, p.err);
    case 'not-regular':
      throw inputError(
        file,
        `is ${p.what}, not a regular file`,
        'pass the directory `criu dump -D DIR` wrote; its images are regular files',
      );
    case 'size': // readImage asks for no exact size
    case 'too-large':
      throw inputError(
        file,
        `is ${p.size} bytes, more than the ${MAX_IMAGE_BYTES / 1024 / 1024} MiB criu-lock reads of one image`,
        'real images are a few MiB at most; is this the right directory?',
      );
    case 'changed':
      throw inputError(
        file,
        `changed while it was read (${p.read} of ${p.size} bytes)`,
        'read a finished dump',
      );
    default: {
      const never: never = p;
      return never;
    }
  }
}

/** Pids of pstree.img. CRIU restores a process tree from it: without one, it restores nothing. */
function readPids(dir: string): number[] {
  const file = join(dir, 'pstree.img');
  const buf = readImage(file);
  const hint =
    'pass the whole directory `criu dump -D DIR` wrote; CRIU restores the process tree pstree.img records';
  if (buf === undefined) throw inputError(file, 'no such file: the checkpoint has no process tree', hint);
  const pids = parsePstreeImg(buf, file);
  if (pids.length === 0) throw inputError(file, 'records no process', hint);
  return pids;
}

/** Reads a checkpoint directory: files.img if present, else reg-files.img. */
export function readCheckpoint(dir: string): Promise<Checkpoint> {
  // The executor's throw rejects the promise, as an async function's would.
  return new Promise((resolve) => resolve(readCheckpointNow(dir)));
}

function readCheckpointNow(dir: string): Checkpoint {
  for (const [image, parse] of [
    ['files.img', parseFilesImg],
    ['reg-files.img', parseRegFilesImg],
  ] as const) {
    const file = join(dir, image);
    let buf: Buffer | undefined;
    try {
      buf = readImage(file);
    } catch (err) {
      // DIR itself is a file: say so below rather than "cannot read DIR/files.img".
      if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOTDIR') break;
      throw err;
    }
    if (buf === undefined) continue;
    return { dir, image, files: parse(buf, file), pids: readPids(dir) };
  }
  throw new CriuLockError('input', 'no files.img or reg-files.img here', {
    hint: 'pass the directory `criu dump -D DIR` wrote (it holds files.img, pstree.img, ...)',
    location: { file: dir },
  });
}

/** S_IFMT bits of st_mode. */
export function isRegularMode(stMode: number): boolean {
  return (stMode & 0o170000) === 0o100000;
}
