/**
 * ELF build-ID, computed exactly the way CRIU computes it when it validates a mapped file at
 * restore (and records it at dump): `get_build_id()` / `get_build_id_32()` / `get_build_id_64()`
 * in criu/files-reg.c (CRIU >= 3.15, `--file-validation buildid`, the default). criu-lock must agree
 * with CRIU byte for byte, so this is deliberately *not* a general ELF note parser: it follows
 * CRIU's walk, bounds and quirks, and differs from `readelf -n` where CRIU does.
 *
 * CRIU behaviours reproduced (numbers are referenced in the code):
 *  C1  CRIU reads SELFMAG+1 = 5 bytes first; a file shorter than 5 bytes, or whose first 4 bytes are
 *      not "\x7fELF", is never treated as ELF (result `not-elf`).
 *  C2  Only EI_CLASS is looked at: ELFCLASS32 or ELFCLASS64, anything else gives no build-ID.
 *      EI_DATA, EI_VERSION, e_type, e_machine, e_ehsize and e_phentsize are ignored.
 *  C3  The window: only the first min(st_size, BUILD_ID_MAP_SIZE = 1 MiB) bytes are mmap'ed, and
 *      every byte CRIU reads (ELF header, program headers, note headers, descriptor) must lie inside
 *      it; otherwise the file simply has no build-ID (a file smaller than its ELF header included).
 *  C4  e_phnum == 0 -> none. e_phoff == 0 -> none. PN_XNUM (e_phnum 0xffff) is not special.
 *  C5  Program headers are stepped by sizeof(Elf32_Phdr)=32 / sizeof(Elf64_Phdr)=56, not by
 *      e_phentsize; the walk stops at the first program header that would cross the window end.
 *  C6  A PT_NOTE whose p_offset is 0 is skipped.
 *  C7  Note walk, off by one: a note header is examined while its start is <= p_offset + p_filesz
 *      (and <= window end - 12). So a header starting exactly at the end of the segment (outside
 *      it) is still read, and a PT_NOTE with p_filesz 0 still has one header examined.
 *  C8  Name and descriptor are always padded to 4 bytes, whatever p_align says: 8-aligned note
 *      segments (as the kernel and readelf honour them) are walked with 4-byte padding. Harmless
 *      for toolchain output (GNU property descriptors are multiples of 8), wrong for odd files.
 *  C9  The padding is computed in 32-bit arithmetic (`ALIGN()` on an Elf_Word): n_namesz or
 *      n_descsz >= 0xfffffffd pads to 0.
 *  C10 The owner name is NOT checked: the first note of type 3 (NT_GNU_BUILD_ID) wins whatever
 *      its owner ("GNU" or not).
 *  C11 That first type-3 note is final: if its n_descsz is 0 or > 512, or its descriptor does not
 *      end inside the window, there is no build-ID; CRIU does not look at later notes or segments.
 *  C12 The descriptor has to lie in the window, not inside the segment.
 *  C13 Byte order: CRIU casts the mapping to Elf*_Ehdr/Phdr/Nhdr, i.e. it reads every field in the
 *      HOST byte order and never looks at EI_DATA. For every file a process can actually map and
 *      run, the file's order equals the host's and both readings agree. For a foreign-endian file
 *      CRIU reads byte-swapped garbage (typically: no build-ID). The default here (`byteOrder:
 *      'elf'`) decodes in the file's own order (EI_DATA), which is correct parsing and what
 *      readelf shows; `byteOrder: 'little' | 'big'` reproduces CRIU on a host of that order
 *      bit for bit, foreign-endian files included. EI_DATA other than 1/2 decodes as little.
 *  C14 CRIU does its pointer arithmetic on the mmap address; if p_offset + p_filesz of an ELF64
 *      PT_NOTE overflows the address space the outcome depends on where mmap put the file. We
 *      assume no wrap-around (true for any p_offset + p_filesz < 2^64 - 2^57).
 * Not part of the walk, but worth knowing when comparing: at restore CRIU compares
 * round_up(size, 4) and then memcmp()s `size` bytes against the dump-time ID (zero padded to 4),
 * and a file that has no build-ID at restore passes with the size check alone.
 *
 * The parser works on a ByteSource so that the bytes can come from a remote host: when bytes CRIU
 * would read are missing, the result is `need-bytes` with the exact ranges to fetch; the caller
 * fetches them, adds them to the source and calls again (see `chunkedByteSource`).
 */

import { CriuLockError } from '../errors.js';

/**
 * Caps on the work one file can cause. CRIU has none (it walks whatever the 1 MiB window holds:
 * up to 32,768 program headers, each PT_NOTE up to ~87,000 12-byte note headers), so a crafted
 * file could make the controller walk billions of steps. Toolchain output has < 30 program
 * headers and < 10 notes; a file past a cap is refused (ElfLimitError), never given a guessed ID.
 */
export const MAX_PROGRAM_HEADERS = 1024;
export const MAX_NOTE_STEPS = 4096;

/** A file beyond MAX_PROGRAM_HEADERS or MAX_NOTE_STEPS. */
export class ElfLimitError extends CriuLockError {
  constructor(what: string) {
    super('host-output', `ELF file refused: ${what}`, {
      hint: 'no toolchain writes such a file; it may be crafted to slow criu-lock down',
    });
  }
}

/** CRIU's BUILD_ID_MAP_SIZE: only this much of the file's head is ever looked at. */
export const BUILD_ID_MAP_SIZE = 1024 * 1024;

/**
 * The head read first, by the remote facts probe and by local reads: the one ELF head size. The
 * static linker lays out the first LOAD segment as ELF header, program header table, then the
 * allocated `.note.*` sections; a typical x86-64 DSO or PIE has 64 + 10..14 * 56 bytes of headers
 * (< 900 bytes) followed by ~100 bytes of notes. Measured: 1 KiB holds the headers and notes of
 * every ELF file the sandbox's golden node locks (752 of 752) and 1,079 of 1,079 under /usr/bin,
 * /usr/sbin and /usr/lib/x86_64-linux-gnu of a bookworm machine; 768 bytes missed 347 of 752, and
 * 4 KiB heads made the probe print 6 MiB per host for 752 files. Files whose notes lie further
 * (Go binaries, patchelf-relocated PT_NOTEs) cost one more round trip for exactly the missing
 * ranges (`need-bytes`).
 */
export const ELF_HEAD_BYTES = 1024;

export interface ByteSource {
  /** The file's size (st_size). */
  readonly size: number;
  /** The bytes at [offset, offset+length), or undefined (or a shorter array) when not available. */
  read(offset: number, length: number): Uint8Array | undefined;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export type NoBuildIdReason =
  | 'unknown-elf-class'
  | 'smaller-than-elf-header'
  | 'no-program-headers'
  | 'no-build-id-note'
  | 'bad-descriptor-size'
  | 'descriptor-outside-window';

export type BuildIdResult =
  | { kind: 'build-id'; buildId: string /* lowercase hex */ }
  | { kind: 'no-build-id'; reason?: NoBuildIdReason }
  | { kind: 'not-elf' }
  | { kind: 'need-bytes'; ranges: ByteRange[] };

/** 'elf': decode in the file's byte order (EI_DATA); 'little'/'big': as CRIU on such a host (C13). */
export type ByteOrderMode = 'elf' | 'little' | 'big';

export interface ReadBuildIdOptions {
  byteOrder?: ByteOrderMode;
}

const SELFMAG = 4;
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2MSB = 2;
const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;
const NHDR_SIZE = 12; // Elf32_Nhdr and Elf64_Nhdr are both three 32-bit words
export const MAX_DESC_SIZE = 512;

interface ElfLayout {
  ehdrSize: number;
  phdrSize: number;
  phoffAt: number;
  phnumAt: number;
  /** offsets of p_offset / p_filesz inside a program header, and their width */
  pOffsetAt: number;
  pFileszAt: number;
  wordSize: 4 | 8;
}

const ELF32: ElfLayout = {
  ehdrSize: 52,
  phdrSize: 32,
  phoffAt: 28,
  phnumAt: 44,
  pOffsetAt: 4,
  pFileszAt: 16,
  wordSize: 4,
};
const ELF64: ElfLayout = {
  ehdrSize: 64,
  phdrSize: 56,
  phoffAt: 32,
  phnumAt: 56,
  pOffsetAt: 8,
  pFileszAt: 32,
  wordSize: 8,
};

/** True when CRIU would treat these head bytes as ELF (C1: needs 5 readable bytes and the magic). */
export function isElf(head: Uint8Array): boolean {
  return (
    head.length >= SELFMAG + 1 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46
  );
}

export function readBuildId(src: ByteSource, options: ReadBuildIdOptions = {}): BuildIdResult {
  const size = src.size;
  if (!Number.isSafeInteger(size) || size < 0)
    throw new RangeError(`invalid ByteSource size: ${String(size)}`);
  // C1: read(fd, buf, SELFMAG + 1) must return 5 bytes.
  if (size < SELFMAG + 1) return { kind: 'not-elf' };
  const windowEnd = Math.min(size, BUILD_ID_MAP_SIZE); // C3
  const headRange = { offset: 0, length: Math.min(windowEnd, ELF_HEAD_BYTES) };

  const ident = get(src, 0, SELFMAG + 1);
  if (!ident) return { kind: 'need-bytes', ranges: [headRange] };
  if (!isElf(ident)) return { kind: 'not-elf' };

  const elfClass = ident[EI_CLASS];
  const layout = elfClass === ELFCLASS32 ? ELF32 : elfClass === ELFCLASS64 ? ELF64 : undefined;
  if (!layout) return { kind: 'no-build-id', reason: 'unknown-elf-class' }; // C2

  if (layout.ehdrSize > windowEnd) return { kind: 'no-build-id', reason: 'smaller-than-elf-header' }; // C3
  const ehdr = get(src, 0, layout.ehdrSize);
  if (!ehdr) return { kind: 'need-bytes', ranges: [headRange] };
  const mode = options.byteOrder ?? 'elf';
  const littleEndian = mode === 'elf' ? ehdr[EI_DATA] !== ELFDATA2MSB : mode === 'little'; // C13
  const eh = new Decoder(ehdr, littleEndian);

  const phnum = eh.u16(layout.phnumAt);
  const phoff = eh.word(layout.phoffAt, layout.wordSize);
  if (phnum === 0 || phoff === 0) return { kind: 'no-build-id', reason: 'no-program-headers' }; // C4

  // C5: fixed stride; stop at the first header that would cross the window end.
  let visible = 0;
  while (visible < phnum && phoff + (visible + 1) * layout.phdrSize <= windowEnd) visible++;
  if (visible === 0) return { kind: 'no-build-id', reason: 'no-build-id-note' };
  if (visible > MAX_PROGRAM_HEADERS)
    throw new ElfLimitError(`${visible} program headers (at most ${MAX_PROGRAM_HEADERS} are read)`);
  const table = get(src, phoff, visible * layout.phdrSize);
  if (!table) return { kind: 'need-bytes', ranges: [{ offset: phoff, length: visible * layout.phdrSize }] };
  const ph = new Decoder(table, littleEndian);

  // Walk every PT_NOTE in order. If some bytes are missing we keep going through the later segments
  // (speculatively) so that one round trip fetches everything that may be needed, but we stop as
  // soon as a later segment holds a type-3 note, since the earlier missing ones take precedence.
  const missing: ByteRange[] = [];
  let found: { at: number; header: Decoder } | undefined;
  let steps = 0;
  for (let i = 0; i < visible && !found; i++) {
    const base = i * layout.phdrSize;
    if (ph.u32(base) !== PT_NOTE) continue;
    const pOffset = ph.word(base + layout.pOffsetAt, layout.wordSize);
    const pFilesz = ph.word(base + layout.pFileszAt, layout.wordSize);
    if (pOffset === 0) continue; // C6
    const lastHeaderStart = Math.min(pOffset + pFilesz, windowEnd - NHDR_SIZE); // C7 (and C14)
    let at = pOffset;
    while (at <= lastHeaderStart) {
      if (++steps > MAX_NOTE_STEPS) throw new ElfLimitError(`more than ${MAX_NOTE_STEPS} note headers`);
      const bytes = get(src, at, NHDR_SIZE);
      if (!bytes) {
        missing.push({ offset: at, length: lastHeaderStart + NHDR_SIZE - at });
        break;
      }
      const header = new Decoder(bytes, littleEndian);
      if (header.u32(8) === NT_GNU_BUILD_ID) {
        found = { at, header }; // C10: no owner check
        break;
      }
      at += NHDR_SIZE + align4(header.u32(0)) + align4(header.u32(4)); // C8, C9
    }
  }
  if (missing.length > 0) return { kind: 'need-bytes', ranges: mergeRanges(missing) };
  if (!found) return { kind: 'no-build-id', reason: 'no-build-id-note' };

  // C11, C12
  const descSize = found.header.u32(4);
  if (descSize === 0 || descSize > MAX_DESC_SIZE)
    return { kind: 'no-build-id', reason: 'bad-descriptor-size' };
  const descAt = found.at + NHDR_SIZE + align4(found.header.u32(0));
  if (descAt + descSize > windowEnd) return { kind: 'no-build-id', reason: 'descriptor-outside-window' };
  const desc = get(src, descAt, descSize);
  if (!desc) return { kind: 'need-bytes', ranges: [{ offset: descAt, length: descSize }] };
  return { kind: 'build-id', buildId: toHex(desc) };
}

/**
 * Build-ID from a head buffer. Bytes beyond `buf` are unavailable (→ `need-bytes`) unless the file
 * is no longer than the buffer; `fileSize` defaults to `buf.length`.
 */
export function buildIdFromBuffer(
  buf: Uint8Array,
  fileSize?: number,
  options?: ReadBuildIdOptions,
): BuildIdResult {
  return readBuildId(chunkedByteSource(fileSize ?? buf.length, [{ offset: 0, bytes: buf }]), options);
}

/**
 * A ByteSource over the pieces of a file fetched so far (e.g. the 4096-byte head plus the ranges a
 * `need-bytes` result asked for). A read may span adjacent or overlapping pieces.
 */
export function chunkedByteSource(
  size: number,
  chunks: ReadonlyArray<{ offset: number; bytes: Uint8Array }>,
): ByteSource {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset);
  return {
    size,
    read(offset, length) {
      const end = offset + length;
      if (offset < 0 || end > size) return undefined;
      for (const c of sorted) {
        if (c.offset <= offset && end <= c.offset + c.bytes.length)
          return c.bytes.subarray(offset - c.offset, end - c.offset);
      }
      const out = new Uint8Array(length);
      let at = offset;
      while (at < end) {
        let best: { offset: number; bytes: Uint8Array } | undefined;
        for (const c of sorted) {
          if (
            c.offset <= at &&
            at < c.offset + c.bytes.length &&
            (!best || c.offset + c.bytes.length > best.offset + best.bytes.length)
          )
            best = c;
        }
        if (!best) return undefined;
        const take = Math.min(end, best.offset + best.bytes.length) - at;
        out.set(best.bytes.subarray(at - best.offset, at - best.offset + take), at - offset);
        at += take;
      }
      return out;
    },
  };
}

function get(src: ByteSource, offset: number, length: number): Uint8Array | undefined {
  const bytes = src.read(offset, length);
  if (!bytes || bytes.length < length) return undefined;
  return bytes.length === length ? bytes : bytes.subarray(0, length);
}

/** CRIU's ALIGN(x, 4) on a 32-bit Elf_Word: wraps modulo 2^32 (C9). */
function align4(x: number): number {
  return ((x + 3) & ~3) >>> 0;
}

function mergeRanges(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

class Decoder {
  private readonly view: DataView;
  constructor(
    bytes: Uint8Array,
    private readonly littleEndian: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(at: number): number {
    return this.view.getUint16(at, this.littleEndian);
  }
  u32(at: number): number {
    return this.view.getUint32(at, this.littleEndian);
  }
  /**
   * An Elf32_Off/Elf64_Off (or Xword) as a number. 64-bit values beyond 2^53 can only point
   * outside the 1 MiB window, so they become Infinity, which every bounds check rejects.
   */
  word(at: number, size: 4 | 8): number {
    if (size === 4) return this.u32(at);
    const v = this.view.getBigUint64(at, this.littleEndian);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
  }
}
