/**
 * Builders for small synthetic ELF images, for the build-ID tests. They write only what CRIU's
 * build-ID walk looks at (e_ident, e_phoff, e_phnum, program headers, notes) plus a few plausible
 * fields (e_type, e_phentsize, ...), and they never validate: any field may be given an absurd value,
 * since the point is to feed the walk odd files.
 */

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PT_PHDR = 6;
export const NT_GNU_BUILD_ID = 3;
export const MiB = 1024 * 1024;

export type Endian = 'le' | 'be';
export type ElfClass = 32 | 64;

/** Where CRIU's walk reads its fields, per ELF class (byte offsets and widths). */
export interface ElfFieldLayout {
  ehdrSize: number;
  phdrSize: number;
  phoffAt: number;
  phnumAt: number;
  /** width of e_phoff, p_offset and p_filesz */
  wordSize: 4 | 8;
  /** inside one program header */
  pTypeAt: number;
  pOffsetAt: number;
  pFileszAt: number;
}

export const ELF_FIELDS: Readonly<Record<ElfClass, ElfFieldLayout>> = {
  32: {
    ehdrSize: 52,
    phdrSize: 32,
    phoffAt: 28,
    phnumAt: 44,
    wordSize: 4,
    pTypeAt: 0,
    pOffsetAt: 4,
    pFileszAt: 16,
  },
  64: {
    ehdrSize: 64,
    phdrSize: 56,
    phoffAt: 32,
    phnumAt: 56,
    wordSize: 8,
    pTypeAt: 0,
    pOffsetAt: 8,
    pFileszAt: 32,
  },
};

/** An unsigned integer of `width` bytes at `at`, truncated to that width (so any value fits). */
export function putUint(
  buf: Uint8Array,
  at: number,
  width: 1 | 2 | 4 | 8,
  value: number | bigint,
  endian: Endian,
): void {
  let v = BigInt.asUintN(width * 8, BigInt(value));
  for (let i = 0; i < width; i++) {
    buf[endian === 'le' ? at + i : at + width - 1 - i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

export interface SegmentSpec {
  type: number;
  /** bigint for 64-bit values beyond 2^53 */
  offset: number | bigint;
  filesz: number | bigint;
  /** p_align; 4 unless given */
  align?: number;
}

export interface ElfSpec {
  cls: ElfClass;
  endian?: Endian;
  /** the image's length in bytes */
  size: number;
  /** e_phoff; right after the ELF header unless given */
  phoff?: number | bigint;
  /** e_phnum; segments.length unless given */
  phnum?: number;
  segments: readonly SegmentSpec[];
  /** overrides of e_ident[EI_CLASS] and e_ident[EI_DATA] (the layout still follows cls/endian) */
  eiClass?: number;
  eiData?: number;
  /** raw bytes placed last, over everything else (notes, garbage) */
  data?: ReadonlyArray<{ at: number; bytes: Uint8Array }>;
}

/**
 * An ELF image of exactly `spec.size` bytes: whatever lies past the end (part of the ELF header, of
 * the program header table, of the data) is cut off, so a small `size` gives a truncated file.
 */
export function elfImage(spec: ElfSpec): Uint8Array {
  const endian = spec.endian ?? 'le';
  const f = ELF_FIELDS[spec.cls];
  const phoff = spec.phoff ?? f.ehdrSize;
  // Everything is laid out in a buffer large enough for all of it, then cut to `size`.
  const tableStart = Number(phoff) < spec.size ? Number(phoff) : spec.size;
  const tableEnd = tableStart + spec.segments.length * f.phdrSize;
  const dataEnd = Math.max(0, ...(spec.data ?? []).map((d) => d.at + d.bytes.length));
  const buf = new Uint8Array(Math.max(spec.size, f.ehdrSize, tableEnd, dataEnd));
  buf.set([
    0x7f,
    0x45,
    0x4c,
    0x46,
    spec.eiClass ?? (spec.cls === 64 ? 2 : 1),
    spec.eiData ?? (endian === 'le' ? 1 : 2),
    1,
  ]);
  putUint(buf, 16, 2, 3, endian); // e_type ET_DYN
  putUint(buf, 18, 2, spec.cls === 64 ? 62 : 3, endian); // e_machine x86-64 / i386
  putUint(buf, 20, 4, 1, endian); // e_version
  putUint(buf, f.phoffAt, f.wordSize, phoff, endian);
  putUint(buf, f.phnumAt - 4, 2, f.ehdrSize, endian); // e_ehsize
  putUint(buf, f.phnumAt - 2, 2, f.phdrSize, endian); // e_phentsize
  putUint(buf, f.phnumAt, 2, spec.phnum ?? spec.segments.length, endian);
  spec.segments.forEach((s, i) => {
    const at = Number(phoff) + i * f.phdrSize;
    if (at >= spec.size) return;
    putUint(buf, at + f.pTypeAt, 4, s.type, endian);
    putUint(buf, at + f.pOffsetAt, f.wordSize, s.offset, endian);
    putUint(buf, at + f.pFileszAt, f.wordSize, s.filesz, endian);
    // p_memsz follows p_filesz in both classes; p_flags and p_align differ.
    putUint(buf, at + f.pFileszAt + f.wordSize, f.wordSize, s.filesz, endian);
    if (spec.cls === 64) {
      putUint(buf, at + 4, 4, 4, endian); // p_flags PF_R
      putUint(buf, at + 48, 8, s.align ?? 4, endian);
    } else {
      putUint(buf, at + 24, 4, 4, endian);
      putUint(buf, at + 28, 4, s.align ?? 4, endian);
    }
  });
  for (const d of spec.data ?? []) buf.set(d.bytes, d.at);
  return buf.length === spec.size ? buf : buf.slice(0, spec.size);
}

export interface NoteSpec {
  /** owner name without its NUL; '' gives n_namesz 0 and no name bytes */
  name: string;
  type: number;
  desc: ArrayLike<number>;
  endian?: Endian;
  /** header values written in place of the real lengths (the body is still laid out from name/desc) */
  namesz?: number;
  descsz?: number;
  /**
   * The note's alignment: the descriptor and the next note start at multiples of it, counted from
   * the note's start (as the kernel and readelf read an 8-aligned PT_NOTE). 4 unless given; CRIU
   * always assumes 4.
   */
  align?: 4 | 8;
}

/** One note: 12-byte header, NUL-terminated name, descriptor, padded as `align` says. */
export function noteBytes(n: NoteSpec): Uint8Array {
  const endian = n.endian ?? 'le';
  const name = n.name === '' ? new Uint8Array(0) : new TextEncoder().encode(`${n.name}\0`);
  const align = n.align ?? 4;
  const pad = (x: number): number => Math.ceil(x / align) * align;
  const descAt = pad(12 + name.length);
  const out = new Uint8Array(pad(descAt + n.desc.length));
  putUint(out, 0, 4, n.namesz ?? name.length, endian);
  putUint(out, 4, 4, n.descsz ?? n.desc.length, endian);
  putUint(out, 8, 4, n.type, endian);
  out.set(name, 12);
  out.set(Array.from(n.desc), descAt);
  return out;
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A 20-byte build-ID (what `ld --build-id=sha1` writes) and its lowercase hex. */
export const ID20: readonly number[] = Array.from({ length: 20 }, (_, i) => 0xa0 + i);
export const ID20_HEX = ID20.map((b) => b.toString(16).padStart(2, '0')).join('');

/** The usual NT_GNU_BUILD_ID note. */
export function gnuBuildIdNote(endian: Endian = 'le', desc: ArrayLike<number> = ID20): Uint8Array {
  return noteBytes({ name: 'GNU', type: NT_GNU_BUILD_ID, desc, endian });
}

/** An NT_GNU_ABI_TAG note (type 1), as glibc-linked files carry before the build-ID. */
export function abiTagNote(endian: Endian = 'le'): Uint8Array {
  return noteBytes({ name: 'GNU', type: 1, desc: [0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], endian });
}

/** Where simpleElf puts its notes: right after the ELF header and two program headers. */
export function simpleNotesAt(cls: ElfClass): number {
  const f = ELF_FIELDS[cls];
  return f.ehdrSize + 2 * f.phdrSize;
}

/** A PT_LOAD over the whole image and one PT_NOTE holding `notes` right after the program headers. */
export function simpleElf(cls: ElfClass, endian: Endian, notes: Uint8Array, size = 4096): Uint8Array {
  const at = simpleNotesAt(cls);
  return elfImage({
    cls,
    endian,
    size,
    segments: [
      { type: PT_LOAD, offset: 0, filesz: size },
      { type: PT_NOTE, offset: at, filesz: notes.length },
    ],
    data: [{ at, bytes: notes }],
  });
}
