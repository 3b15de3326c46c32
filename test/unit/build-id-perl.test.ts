/**
 * Differential test: the facts probe computes the build-ID on the node, in the perl sub `build_id`
 * of src/facts/probe-script.ts. That walk must give, for every file, what the TypeScript reference
 * walk (`readBuildId`, src/elf/build-id.ts, CRIU's quirks C1-C14 and the two caps) gives. The probe
 * is run here for real (`sh -s`, the same script a node gets) over files written to a temporary
 * directory, and each file's answer is compared with the reference's:
 *   - hand-built files, each aimed at one quirk or cap (and checked to hit it),
 *   - a fast-check corpus: valid images with fields overwritten by boundary values,
 *   - the real ELF files of this machine,
 *   - and, to show the comparison has teeth, deliberately broken copies of the perl walk.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUILD_ID_MAP_SIZE,
  type BuildIdResult,
  type ByteSource,
  ElfLimitError,
  MAX_NOTE_STEPS,
  MAX_PROGRAM_HEADERS,
  readBuildId,
} from '../../src/elf/build-id.js';
import { readBuildIdFromFile } from '../../src/elf/local-file.js';
import { renderProbeScript } from '../../src/facts/probe-script.js';
import {
  ELF_FIELDS,
  type ElfClass,
  type Endian,
  type SegmentSpec,
  ID20,
  ID20_HEX,
  MiB,
  NT_GNU_BUILD_ID,
  PT_LOAD,
  PT_NOTE,
  PT_PHDR,
  abiTagNote,
  concatBytes,
  elfImage,
  gnuBuildIdNote,
  noteBytes,
  putUint,
  simpleElf,
  simpleNotesAt,
} from '../helpers/elf-images.js';

// ---------------------------------------------------------------------------------------------
// Files as content, the reference answer, and the probe's answer
// ---------------------------------------------------------------------------------------------

interface Piece {
  at: number;
  bytes: Uint8Array;
}

/** A file of `size` bytes: zeros, overwritten by the pieces in order (a sparse file on disk). */
interface FileContent {
  size: number;
  pieces: readonly Piece[];
}

function dense(bytes: Uint8Array): FileContent {
  return { size: bytes.length, pieces: [{ at: 0, bytes }] };
}

function sparse(size: number, ...pieces: Piece[]): FileContent {
  return { size, pieces };
}

/** The content as a ByteSource holding every byte of the file: the reference never needs more. */
function contentSource(c: FileContent): ByteSource {
  return {
    size: c.size,
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > c.size) return undefined;
      const out = new Uint8Array(length);
      for (const p of c.pieces) {
        const from = Math.max(offset, p.at);
        const to = Math.min(offset + length, p.at + p.bytes.length);
        if (from < to) out.set(p.bytes.subarray(from - p.at, to - p.at), from - offset);
      }
      return out;
    },
  };
}

function writeContent(path: string, c: FileContent): void {
  const fd = openSync(path, 'w');
  try {
    for (const p of c.pieces) writeSync(fd, p.bytes, 0, p.bytes.length, p.at);
    ftruncateSync(fd, c.size);
  } finally {
    closeSync(fd);
  }
}

/**
 * An answer as one string: the record's kind, then (for `elf`) the walk's answer: `elf =HEX`,
 * `elf -`, `elf !phdrs N`, `elf !notes`, `file`.
 */
function show(kind: string, answer: string): string {
  return answer === '' ? kind : `${kind} ${answer}`;
}

const NONE = 'elf -';
const FILE = 'file';
const hasId = (hex: string): string => `elf =${hex}`;
const hexOf = (bytes: ArrayLike<number>): string => Buffer.from(Array.from(bytes)).toString('hex');

/** What the probe must print for a file the reference answered (or refused) this way. */
function resultAnswer(r: BuildIdResult): string {
  switch (r.kind) {
    case 'build-id':
      return show('elf', `=${r.buildId}`);
    case 'no-build-id':
      return NONE;
    case 'not-elf':
      return FILE;
    case 'need-bytes':
      throw new Error(`the reference asked for bytes: ${JSON.stringify(r.ranges)}`);
  }
}

function limitAnswer(e: unknown): string {
  if (e instanceof ElfLimitError) {
    const phdrs = /(\d+) program headers/.exec(e.message);
    if (phdrs) return show('elf', `!phdrs ${phdrs[1]}`);
    if (e.message.includes('note headers')) return show('elf', '!notes');
  }
  throw e;
}

function referenceAnswer(c: FileContent): string {
  try {
    return resultAnswer(readBuildId(contentSource(c)));
  } catch (e) {
    return limitAnswer(e);
  }
}

async function referenceAnswerFromFile(path: string): Promise<string> {
  try {
    return resultAnswer(await readBuildIdFromFile(path));
  } catch (e) {
    return limitAnswer(e);
  }
}

type ScriptEdit = (script: string) => string;

/** Runs the facts probe once over `paths` (locally, as `sh -s`) and returns each path's answer. */
function probeAnswers(paths: readonly string[], edit: ScriptEdit = (s) => s): Map<string, string> {
  const run = spawnSync('sh', ['-s'], {
    input: edit(renderProbeScript({ paths })),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (run.status !== 0) throw new Error(`probe exited ${String(run.status)}: ${run.stderr}`);
  const lines = run.stdout.split('\n');
  const from = lines.indexOf('@@files');
  if (from < 0 || !lines.includes('@@end')) throw new Error(`incomplete probe output: ${run.stderr}`);
  const answers = new Map<string, string>();
  for (const line of lines.slice(from + 1)) {
    if (!line.startsWith('R\t')) continue;
    const f = line.split('\t');
    if (f.length !== 8) throw new Error(`malformed record ${JSON.stringify(line)}`);
    answers.set(Buffer.from(f[1] ?? '', 'hex').toString('utf8'), show(f[2] ?? '', f[7] ?? ''));
  }
  for (const p of paths) if (!answers.has(p)) throw new Error(`no record for ${p}`);
  return answers;
}

interface Mismatch {
  name: string;
  perl: string;
  reference: string;
}

function mismatches(
  files: ReadonlyArray<{ name: string; path: string; reference: string }>,
  answers: ReadonlyMap<string, string>,
): Mismatch[] {
  return files
    .map((f) => ({ name: f.name, perl: answers.get(f.path) ?? '(none)', reference: f.reference }))
    .filter((m) => m.perl !== m.reference);
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'criu-lock-build-id-perl-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Hand-built files, one or more per quirk
// ---------------------------------------------------------------------------------------------

interface HandCase {
  name: string;
  content: FileContent;
  /** what the reference answers, checked first: the case really exercises what its name says */
  expect: string;
}

const U64_MAX = 2n ** 64n - 1n;
const P53 = 2n ** 53n;

/** `count` zero-size notes of type `type` (not 3): 12 bytes each, a walk step each. */
function emptyNotes(count: number, type: number, endian: Endian = 'le'): Uint8Array {
  return concatBytes(...Array.from({ length: count }, () => noteBytes({ name: '', type, desc: [], endian })));
}

/** A header with these raw fields and no body. */
function rawHeader(namesz: number, descsz: number, type: number, endian: Endian = 'le'): Uint8Array {
  const h = new Uint8Array(12);
  putUint(h, 0, 4, namesz, endian);
  putUint(h, 4, 4, descsz, endian);
  putUint(h, 8, 4, type, endian);
  return h;
}

/**
 * A sparse file of `size` bytes: the ELF header, the program header table at `phoff` (e_phnum
 * `phnum`, segments.length unless given) and the given pieces (notes), zeros everywhere else.
 */
function tableAt(
  cls: ElfClass,
  endian: Endian,
  phoff: number,
  segments: readonly SegmentSpec[],
  notes: ReadonlyArray<{ at: number; bytes: Uint8Array }>,
  size: number,
  phnum?: number,
): FileContent {
  const head = elfImage({
    cls,
    endian,
    size: ELF_FIELDS[cls].ehdrSize,
    phoff,
    phnum: phnum ?? segments.length,
    segments: [],
  });
  const table = elfImage({
    cls,
    endian,
    size: phoff + segments.length * ELF_FIELDS[cls].phdrSize,
    phoff,
    segments,
  }).subarray(phoff);
  return sparse(size, { at: 0, bytes: head }, { at: phoff, bytes: table }, ...notes);
}

function handBuiltCases(): HandCase[] {
  const cases: HandCase[] = [];
  const add = (name: string, content: FileContent, expected: string): void => {
    cases.push({ name, content, expect: expected });
  };
  const classes: Array<[ElfClass, Endian]> = [
    [64, 'le'],
    [64, 'be'],
    [32, 'le'],
    [32, 'be'],
  ];

  for (const [cls, endian] of classes) {
    const tag = `ELF${cls} ${endian}`;
    add(
      `${tag}: abi-tag then build-ID in one PT_NOTE`,
      dense(simpleElf(cls, endian, concatBytes(abiTagNote(endian), gnuBuildIdNote(endian)))),
      hasId(ID20_HEX),
    );
    // Several PT_NOTE segments, the first without a build-ID (one 8-aligned, as toolchains write).
    const n1 = concatBytes(
      noteBytes({ name: 'GNU', type: 5, desc: new Array<number>(16).fill(7), endian }),
      abiTagNote(endian),
    );
    const n2 = gnuBuildIdNote(endian, [1, 2, 3, 4, 5, 6, 7, 8]);
    add(
      `${tag}: build-ID in the second of two PT_NOTEs`,
      dense(
        elfImage({
          cls,
          endian,
          size: 8192,
          segments: [
            { type: PT_LOAD, offset: 0, filesz: 8192 },
            { type: PT_NOTE, offset: 1024, filesz: n1.length, align: 8 },
            { type: PT_PHDR, offset: 64, filesz: 4 * 56 },
            { type: PT_NOTE, offset: 2048, filesz: n2.length },
          ],
          data: [
            { at: 1024, bytes: n1 },
            { at: 2048, bytes: n2 },
          ],
        }),
      ),
      hasId('0102030405060708'),
    );
    // Notes far beyond the probe's 1 KiB head: the perl must read them from the file.
    const far = 600 * 1024;
    add(
      `${tag}: notes at 600 KiB`,
      tableAt(
        cls,
        endian,
        ELF_FIELDS[cls].ehdrSize,
        [
          { type: PT_LOAD, offset: 0, filesz: 4096 },
          { type: PT_NOTE, offset: far, filesz: 68 },
        ],
        [{ at: far, bytes: concatBytes(abiTagNote(endian), gnuBuildIdNote(endian)) }],
        far + 4096,
      ),
      hasId(ID20_HEX),
    );
    add(
      `${tag}: program headers at 300 KiB, notes at 700 KiB`,
      tableAt(
        cls,
        endian,
        300 * 1024,
        [
          { type: PT_LOAD, offset: 0, filesz: 4096 },
          { type: PT_NOTE, offset: 700 * 1024, filesz: 36 },
        ],
        [{ at: 700 * 1024, bytes: gnuBuildIdNote(endian) }],
        800 * 1024,
      ),
      hasId(ID20_HEX),
    );
  }

  // C1: five bytes and the magic, or a plain file.
  const magic64 = [0x7f, 0x45, 0x4c, 0x46, 2, 1];
  for (let n = 0; n <= 6; n++)
    add(
      `${n}-byte file starting with the magic`,
      dense(Uint8Array.from(magic64.slice(0, n))),
      n >= 5 ? NONE : FILE,
    );
  add('5-byte ELF32 magic', dense(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 1])), NONE);
  add(
    'almost the magic',
    dense(simpleElf(64, 'le', gnuBuildIdNote()).map((b, i) => (i === 3 ? 0x47 : b))),
    FILE,
  );
  add('text file', dense(new TextEncoder().encode('#!/bin/sh\necho hello\n')), FILE);

  // C2: only EI_CLASS matters.
  for (const eiClass of [0, 3, 0xff])
    add(`EI_CLASS ${eiClass}`, dense(elfImageWithNotes(64, 'le', { eiClass })), NONE);
  add('ELF64 layout announced as ELFCLASS32', dense(elfImageWithNotes(64, 'le', { eiClass: 1 })), NONE);
  add(
    'EI_DATA 0 on a little-endian image decodes as little',
    dense(elfImageWithNotes(64, 'le', { eiData: 0 })),
    hasId(ID20_HEX),
  );
  add(
    'EI_DATA 3 on a big-endian image decodes as little',
    dense(elfImageWithNotes(64, 'be', { eiData: 3 })),
    NONE,
  );
  add('EI_DATA 2 on a little-endian image', dense(elfImageWithNotes(32, 'le', { eiData: 2 })), NONE);
  {
    const img = elfImageWithNotes(64, 'le', {});
    putUint(img, 54, 2, 0, 'le'); // e_phentsize 0: ignored, the stride is sizeof(Elf64_Phdr)
    putUint(img, 16, 4, 0xffffffff, 'le'); // e_type, e_machine garbage
    add('e_phentsize 0 and garbage e_type/e_machine are ignored', dense(img), hasId(ID20_HEX));
  }

  // C3: smaller than the ELF header.
  add('ELF64 of 63 bytes', dense(elfImageWithNotes(64, 'le', {}).subarray(0, 63)), NONE);
  add('ELF32 of 51 bytes', dense(elfImageWithNotes(32, 'le', {}).subarray(0, 51)), NONE);
  add('ELF32 of exactly its header', dense(elfImageWithNotes(32, 'le', {}).subarray(0, 52)), NONE);

  // C4
  add('e_phnum 0', dense(elfImageWithNotes(64, 'le', { phnum: 0 })), NONE);
  {
    const img = elfImageWithNotes(64, 'le', {});
    putUint(img, 32, 8, 0, 'le');
    add('ELF64 e_phoff 0', dense(img), NONE);
    // Read from offset 0, this ELF32 header would hold a PT_NOTE as its second program header: its
    // p_type, p_offset and p_filesz are e_shoff, e_flags and e_shentsize/e_shnum (all ignored).
    const img32 = elfImageWithNotes(32, 'le', {});
    putUint(img32, 28, 4, 0, 'le');
    putUint(img32, 32, 4, PT_NOTE, 'le');
    putUint(img32, 36, 4, 1024, 'le');
    putUint(img32, 48, 4, 0, 'le');
    add('ELF32 e_phoff 0 over a header that reads as a PT_NOTE', dense(img32), NONE);
  }
  add(
    'e_phnum 0xffff (PN_XNUM) is a plain count',
    dense(elfImageWithNotes(64, 'le', { phnum: 0xffff })),
    hasId(ID20_HEX),
  );
  add('ELF32 e_phoff 0xffffffff', dense(elfImageWithNotes(32, 'le', { phoff: 0xffffffff })), NONE);
  add('ELF64 e_phoff 2^64-1', dense(elfImageWithNotes(64, 'le', { phoff: U64_MAX })), NONE);
  add('ELF64 e_phoff 2^53+64', dense(elfImageWithNotes(64, 'be', { phoff: P53 + 64n })), NONE);
  add('ELF64 e_phoff 2^32+64', dense(elfImageWithNotes(64, 'le', { phoff: 2n ** 32n + 64n })), NONE);

  // C5: truncated tables and tables at the window's edge.
  {
    const notes = concatBytes(abiTagNote(), gnuBuildIdNote());
    const segs = (noteFirst: boolean) => [
      {
        type: noteFirst ? PT_NOTE : PT_LOAD,
        offset: noteFirst ? 64 : 0,
        filesz: noteFirst ? notes.length : 4096,
      },
      {
        type: noteFirst ? PT_LOAD : PT_NOTE,
        offset: noteFirst ? 0 : 64,
        filesz: noteFirst ? 4096 : notes.length,
      },
      { type: PT_LOAD, offset: 0, filesz: 4096 },
    ];
    const truncated = (noteFirst: boolean): FileContent =>
      dense(
        elfImage({
          cls: 64,
          size: 512 + 56 + 56 + 30,
          phoff: 512,
          segments: segs(noteFirst),
          data: [{ at: 64, bytes: notes }],
        }),
      );
    add('table cut inside its third header, PT_NOTE first', truncated(true), hasId(ID20_HEX));
    add('table cut inside its third header, PT_NOTE second', truncated(false), hasId(ID20_HEX));
    const cutSecond = elfImage({
      cls: 64,
      size: 512 + 56 + 30,
      phoff: 512,
      segments: segs(false),
      data: [{ at: 64, bytes: notes }],
    });
    add('table cut inside the PT_NOTE header', dense(cutSecond), NONE);
    const windowEdge = (phoff: number, noteFirst: boolean): FileContent =>
      tableAt(64, 'le', phoff, segs(noteFirst).slice(0, 2), [{ at: 64, bytes: notes }], MiB + 4096);
    add('table ending exactly at 1 MiB', windowEdge(MiB - 112, false), hasId(ID20_HEX));
    add('table crossing 1 MiB, PT_NOTE in the visible header', windowEdge(MiB - 100, true), hasId(ID20_HEX));
    add('table crossing 1 MiB, PT_NOTE in the crossing header', windowEdge(MiB - 100, false), NONE);
    add('table just past 1 MiB', windowEdge(MiB + 64, true), NONE);
    add(
      'table at 1 MiB - 56 in a file of exactly 1 MiB',
      tableAt(64, 'le', MiB - 56, segs(true).slice(0, 1), [{ at: 64, bytes: notes }], MiB),
      hasId(ID20_HEX),
    );
  }

  // C6: PT_NOTE at offset 0 is skipped. e_ident[8..11] (ignored by everything) spell a type-3 note
  // header there, so a walk that did read it would stop on its huge descsz.
  {
    const img = elfImageWithNotes(64, 'le', {
      first: { type: PT_NOTE, offset: 0, filesz: 4096 },
    });
    putUint(img, 8, 4, NT_GNU_BUILD_ID, 'le');
    add('PT_NOTE at offset 0 is skipped, the next one is read', dense(img), hasId(ID20_HEX));
    const only = elfImage({ cls: 32, size: 4096, segments: [{ type: PT_NOTE, offset: 0, filesz: 4096 }] });
    putUint(only, 8, 4, NT_GNU_BUILD_ID, 'le');
    add('only a PT_NOTE at offset 0', dense(only), NONE);
  }

  // C7: the header at the segment's end is still read; one past it is not.
  {
    const abi = abiTagNote();
    const at = simpleNotesAt(64);
    const withFilesz = (filesz: number): FileContent =>
      dense(
        elfImage({
          cls: 64,
          size: 4096,
          segments: [
            { type: PT_LOAD, offset: 0, filesz: 4096 },
            { type: PT_NOTE, offset: at, filesz },
          ],
          data: [{ at, bytes: concatBytes(abi, gnuBuildIdNote()) }],
        }),
      );
    add('build-ID header starting exactly at the segment end', withFilesz(abi.length), hasId(ID20_HEX));
    add('build-ID header 4 bytes past the segment end', withFilesz(abi.length - 4), NONE);
    const empty = (filesz: number): FileContent =>
      dense(
        elfImage({
          cls: 32,
          size: 4096,
          segments: [{ type: PT_NOTE, offset: 200, filesz }],
          data: [{ at: 200, bytes: gnuBuildIdNote() }],
        }),
      );
    add('empty PT_NOTE still has its first header read', empty(0), hasId(ID20_HEX));
  }

  // C8: 4-byte padding whatever p_align says.
  {
    const props = noteBytes({ name: 'GNU', type: 5, desc: new Array<number>(16).fill(1), align: 8 });
    add(
      '8-aligned segment whose notes pad alike at 4 and 8',
      dense(simpleElfAligned(concatBytes(props, gnuBuildIdNote()))),
      hasId(ID20_HEX),
    );
    const odd = concatBytes(
      noteBytes({ name: 'GNU', type: 1, desc: [0, 0, 0, 0], align: 8 }),
      noteBytes({ name: 'GNU', type: 3, desc: ID20, align: 8 }),
    );
    add(
      '8-aligned segment with a 4-byte descriptor (readelf finds the ID, CRIU does not)',
      dense(simpleElfAligned(odd)),
      NONE,
    );
  }

  // C9: 32-bit padding of huge sizes.
  {
    const next = gnuBuildIdNote();
    add(
      'n_namesz 0xffffffff pads to 0',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(0xffffffff, 0, 1), next))),
      hasId(ID20_HEX),
    );
    add(
      'n_namesz 0xfffffffd pads to 0',
      dense(simpleElf(32, 'be', concatBytes(rawHeader(0xfffffffd, 0, 1, 'be'), gnuBuildIdNote('be')))),
      hasId(ID20_HEX),
    );
    add(
      'n_namesz 0xfffffffc does not wrap',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(0xfffffffc, 0, 1), next))),
      NONE,
    );
    add(
      'n_namesz 0xfffffffe pads to 0',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(0xfffffffe, 0, 1), next))),
      hasId(ID20_HEX),
    );
    add(
      'n_descsz 0xfffffffe pads to 0',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(4, 0xfffffffe, 1), new Uint8Array(4), next))),
      hasId(ID20_HEX),
    );
    add(
      'n_descsz 0xfffffffc does not wrap',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(4, 0xfffffffc, 1), new Uint8Array(4), next))),
      NONE,
    );
    add(
      'type-3 note with n_namesz 0xfffffffd: descriptor right after its header',
      dense(simpleElf(64, 'le', concatBytes(rawHeader(0xfffffffd, 4, 3), Uint8Array.from([9, 8, 7, 6])))),
      hasId('09080706'),
    );
  }

  // C10: no owner check.
  add(
    'non-GNU type-3 note first',
    dense(
      simpleElf(
        64,
        'le',
        concatBytes(
          noteBytes({ name: 'stapsdt', type: 3, desc: [0xde, 0xad, 0xbe, 0xef] }),
          gnuBuildIdNote(),
        ),
      ),
    ),
    hasId('deadbeef'),
  );
  add(
    'nameless type-3 note',
    dense(simpleElf(32, 'le', noteBytes({ name: '', type: 3, desc: [0xab, 0xcd, 0xef] }))),
    hasId('abcdef'),
  );

  // C11: descriptor sizes, and the first type-3 note is final.
  const desc512 = Array.from({ length: 512 }, (_, i) => (i * 7) & 0xff);
  add(
    '512-byte descriptor',
    dense(simpleElf(64, 'le', gnuBuildIdNote('le', desc512), 8192)),
    hasId(hexOf(desc512)),
  );
  add('513-byte descriptor', dense(simpleElf(64, 'le', gnuBuildIdNote('le', [...desc512, 1]), 8192)), NONE);
  add('0-byte descriptor', dense(simpleElf(32, 'be', gnuBuildIdNote('be', []))), NONE);
  add('1-byte descriptor', dense(simpleElf(64, 'be', gnuBuildIdNote('be', [0x5a]))), hasId('5a'));
  add(
    'descsz 513 before a good build-ID note',
    dense(
      simpleElf(
        64,
        'le',
        concatBytes(noteBytes({ name: 'GNU', type: 3, desc: [1, 2, 3, 4], descsz: 513 }), gnuBuildIdNote()),
      ),
    ),
    NONE,
  );
  add(
    'descsz 0 before a good build-ID note',
    dense(
      simpleElf(
        32,
        'le',
        concatBytes(noteBytes({ name: 'GNU', type: 3, desc: [], descsz: 0 }), gnuBuildIdNote()),
      ),
    ),
    NONE,
  );
  {
    const bad = noteBytes({ name: 'GNU', type: 3, desc: [1, 2, 3, 4], descsz: 0x1000 });
    const good = gnuBuildIdNote();
    add(
      'bad type-3 note in the first PT_NOTE, good one in the second',
      dense(
        elfImage({
          cls: 64,
          size: 4096,
          segments: [
            { type: PT_NOTE, offset: 1024, filesz: bad.length },
            { type: PT_NOTE, offset: 2048, filesz: good.length },
          ],
          data: [
            { at: 1024, bytes: bad },
            { at: 2048, bytes: good },
          ],
        }),
      ),
      NONE,
    );
  }

  // C3, C12: the descriptor must end inside the window (and the file), not inside the segment.
  {
    const n = gnuBuildIdNote(); // 36 bytes: header, "GNU\0", 20-byte descriptor
    const at = (offset: number, size: number, filesz = n.length): FileContent =>
      sparse(
        size,
        { at: 0, bytes: elfImage({ cls: 64, size: 4096, segments: [{ type: PT_NOTE, offset, filesz }] }) },
        { at: offset, bytes: n },
      );
    add('descriptor ending exactly at 1 MiB, file continues', at(MiB - 36, MiB + 4096), hasId(ID20_HEX));
    add('descriptor ending 4 bytes past 1 MiB, file continues', at(MiB - 32, MiB + 4096), NONE);
    add('descriptor crossing 1 MiB, file of 3 MiB', at(MiB - 30, 3 * MiB), NONE);
    add('note wholly beyond 1 MiB', at(MiB + 64, 2 * MiB), NONE);
    add('descriptor ending at the end of a file of exactly 1 MiB', at(MiB - 36, MiB), hasId(ID20_HEX));
    add(
      'descriptor crossing the end of a small file',
      dense(simpleElf(64, 'le', gnuBuildIdNote(), simpleNotesAt(64) + 30)),
      NONE,
    );
    add(
      'descriptor ending at the end of a small file',
      dense(simpleElf(64, 'le', gnuBuildIdNote(), simpleNotesAt(64) + 36)),
      hasId(ID20_HEX),
    );
    add('descriptor past its segment but inside the window', at(5000, 8192, 12), hasId(ID20_HEX));
    add(
      'type-3 header as the last 12 bytes of the window',
      sparse(
        MiB + 100,
        {
          at: 0,
          bytes: elfImage({
            cls: 64,
            size: 4096,
            segments: [{ type: PT_NOTE, offset: MiB - 12, filesz: 100 }],
          }),
        },
        { at: MiB - 12, bytes: rawHeader(0, 4, 3) },
      ),
      NONE,
    );
  }

  // C14 and 64-bit values beyond 2^53.
  {
    const mk = (first: { offset: bigint | number; filesz: bigint | number }): FileContent =>
      dense(elfImageWithNotes(64, 'le', { first: { type: PT_NOTE, ...first } }));
    add('p_offset 2^64-1 is skipped', mk({ offset: U64_MAX, filesz: 36 }), hasId(ID20_HEX));
    add('p_offset 2^53+1 is skipped', mk({ offset: P53 + 1n, filesz: 36 }), hasId(ID20_HEX));
    add('p_offset 2^32+200', mk({ offset: 2n ** 32n + 200n, filesz: 36 }), hasId(ID20_HEX));
    const notesAt = simpleNotesAt(64) + 56;
    const walk = (filesz: bigint): FileContent =>
      dense(
        elfImage({
          cls: 64,
          size: 4096,
          segments: [{ type: PT_NOTE, offset: notesAt, filesz }],
          data: [{ at: notesAt, bytes: concatBytes(abiTagNote(), gnuBuildIdNote()) }],
        }),
      );
    add('p_filesz 2^64-1: the walk ends at the window', walk(U64_MAX), hasId(ID20_HEX));
    add('p_filesz 2^53+1', walk(P53 + 1n), hasId(ID20_HEX));
    add(
      'p_offset + p_filesz wraps past 2^64 (no wrap-around assumed)',
      walk(U64_MAX - 100n),
      hasId(ID20_HEX),
    );
    add(
      'p_filesz 2^64-1 over zeros only',
      dense(elfImage({ cls: 64, size: 8192, segments: [{ type: PT_NOTE, offset: 4096, filesz: U64_MAX }] })),
      NONE,
    );
  }

  // Cap: program headers.
  {
    const notes = gnuBuildIdNote();
    const many = (cls: ElfClass, count: number, size?: number, phnum?: number): FileContent => {
      const segs = Array.from({ length: count }, (_, i) =>
        i === count - 1
          ? { type: PT_NOTE, offset: 200, filesz: notes.length }
          : { type: PT_LOAD, offset: 0, filesz: 4096 },
      );
      return tableAt(
        cls,
        'le',
        4096,
        segs,
        [{ at: 200, bytes: notes }],
        size ?? 4096 + count * ELF_FIELDS[cls].phdrSize,
        phnum,
      );
    };
    add(`ELF64: ${MAX_PROGRAM_HEADERS} program headers`, many(64, MAX_PROGRAM_HEADERS), hasId(ID20_HEX));
    add(`ELF32: ${MAX_PROGRAM_HEADERS} program headers`, many(32, MAX_PROGRAM_HEADERS), hasId(ID20_HEX));
    add(
      `ELF64: ${MAX_PROGRAM_HEADERS + 1} program headers`,
      many(64, MAX_PROGRAM_HEADERS + 1),
      `elf !phdrs ${MAX_PROGRAM_HEADERS + 1}`,
    );
    add(
      `ELF32: ${MAX_PROGRAM_HEADERS + 1} program headers`,
      many(32, MAX_PROGRAM_HEADERS + 1),
      `elf !phdrs ${MAX_PROGRAM_HEADERS + 1}`,
    );
    add(
      'e_phnum 0xffff, the file holding exactly 1024 headers (and a partial one)',
      many(64, MAX_PROGRAM_HEADERS, 4096 + MAX_PROGRAM_HEADERS * 56 + 55, 0xffff),
      hasId(ID20_HEX),
    );
    add(
      'e_phnum 0xffff in a 64 KiB file',
      many(64, 2, 4096 + 61440, 0xffff),
      `elf !phdrs ${Math.floor(61440 / 56)}`,
    );
    add(
      'e_phnum 0xffff in a 2 MiB ELF32 file',
      many(32, 2, 2 * MiB, 0xffff),
      `elf !phdrs ${(MiB - 4096) / 32}`,
    );
  }

  // Cap: note headers walked, over all segments.
  {
    const step = 12;
    const over = (count: number, tail?: Uint8Array): FileContent =>
      sparse(
        4096 + (count + 1) * step + 4096,
        {
          at: 0,
          bytes: elfImage({
            cls: 64,
            size: 4096,
            segments: [{ type: PT_NOTE, offset: 4096, filesz: (count - 1) * step }],
          }),
        },
        ...(tail ? [{ at: 4096 + (count - 1) * step, bytes: tail }] : []),
      );
    add(`exactly ${MAX_NOTE_STEPS} note headers over zeros`, over(MAX_NOTE_STEPS), NONE);
    add(`${MAX_NOTE_STEPS + 1} note headers over zeros`, over(MAX_NOTE_STEPS + 1), 'elf !notes');
    add(`build-ID as note header ${MAX_NOTE_STEPS}`, over(MAX_NOTE_STEPS, gnuBuildIdNote()), hasId(ID20_HEX));
    add(
      `build-ID as note header ${MAX_NOTE_STEPS + 1}`,
      over(MAX_NOTE_STEPS + 1, gnuBuildIdNote()),
      'elf !notes',
    );
    const split = (first: number, second: number): FileContent => {
      const a = emptyNotes(first, 7, 'be');
      const b = emptyNotes(second, 1, 'be');
      return dense(
        elfImage({
          cls: 32,
          endian: 'be',
          size: 200 + a.length + 64 + b.length + 64,
          segments: [
            { type: PT_NOTE, offset: 200, filesz: a.length - step },
            { type: PT_LOAD, offset: 0, filesz: 4096 },
            { type: PT_NOTE, offset: 200 + a.length + 64, filesz: b.length - step },
          ],
          data: [
            { at: 200, bytes: a },
            { at: 200 + a.length + 64, bytes: b },
          ],
        }),
      );
    };
    add('note headers of two segments add up to the cap', split(2048, 2048), NONE);
    add('note headers of two segments add up past the cap', split(2048, 2049), 'elf !notes');
    add(
      'zero notes up to the end of a small file',
      dense(elfImage({ cls: 64, size: 30000, segments: [{ type: PT_NOTE, offset: 4096, filesz: 1 << 20 }] })),
      NONE,
    );
    // 4,000 headers fit before the window end; the 200 after it (still in the file) are not walked.
    const nearEnd = MiB - 12 * 4000;
    add(
      'zero notes up to the 1 MiB window end, the file continuing',
      sparse(MiB + 12 * 200, {
        at: 0,
        bytes: elfImage({
          cls: 64,
          size: 4096,
          segments: [{ type: PT_NOTE, offset: nearEnd, filesz: 1 << 20 }],
        }),
      }),
      NONE,
    );
    add(
      'zero notes up to the end of a 60 KiB file',
      dense(elfImage({ cls: 64, size: 60000, segments: [{ type: PT_NOTE, offset: 4096, filesz: 1 << 20 }] })),
      'elf !notes',
    );
  }
  return cases;
}

/** A 64- or 32-bit image: a PT_LOAD (or `first`) then a PT_NOTE with the build-ID, plus overrides. */
function elfImageWithNotes(
  cls: ElfClass,
  endian: Endian,
  o: {
    eiClass?: number;
    eiData?: number;
    phoff?: number | bigint;
    phnum?: number;
    first?: { type: number; offset: number | bigint; filesz: number | bigint };
  },
): Uint8Array {
  const at = 1024;
  const notes = gnuBuildIdNote(endian);
  return elfImage({
    cls,
    endian,
    size: 4096,
    eiClass: o.eiClass,
    eiData: o.eiData,
    phoff: o.phoff,
    phnum: o.phnum,
    segments: [
      o.first ?? { type: PT_LOAD, offset: 0, filesz: 4096 },
      { type: PT_NOTE, offset: at, filesz: notes.length },
    ],
    data: [{ at, bytes: notes }],
  });
}

/** simpleElf, with an 8-aligned PT_NOTE. */
function simpleElfAligned(notes: Uint8Array): Uint8Array {
  const at = 256;
  return elfImage({
    cls: 64,
    size: 4096,
    segments: [
      { type: PT_LOAD, offset: 0, filesz: 4096 },
      { type: PT_NOTE, offset: at, filesz: notes.length, align: 8 },
    ],
    data: [{ at, bytes: notes }],
  });
}

interface WrittenCase {
  name: string;
  path: string;
  reference: string;
}

function writeCases(cases: ReadonlyArray<{ name: string; content: FileContent }>): WrittenCase[] {
  const dir = tempDir();
  return cases.map((c, i) => {
    const path = join(dir, `case-${i}`);
    writeContent(path, c.content);
    return { name: c.name, path, reference: referenceAnswer(c.content) };
  });
}

describe('perl build_id walk vs the TypeScript reference: hand-built files', () => {
  it('uses the window the cases are built around', () => {
    expect(BUILD_ID_MAP_SIZE).toBe(MiB);
  });

  const cases = handBuiltCases();
  let written: WrittenCase[] = [];
  let answers = new Map<string, string>();
  beforeAll(() => {
    written = writeCases(cases);
    answers = probeAnswers(written.map((w) => w.path));
  });

  it('has distinct case names', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c, i) => [c.name, i] as const))('%s', async (_name, i) => {
    const c = cases[i]!;
    const w = written[i]!;
    // The case does what it says: the reference gives the intended answer, reading the file too.
    expect(referenceAnswer(c.content)).toBe(c.expect);
    expect(await referenceAnswerFromFile(w.path)).toBe(c.expect);
    expect(answers.get(w.path)).toBe(c.expect);
  });

  // The same files through deliberately broken copies of the perl walk: each break must show up as
  // a disagreement on at least one file, or the cases above would not notice it.
  const MUTANTS: ReadonlyArray<[string, string, string]> = [
    ['descriptor cap 511', '$dsz > 512', '$dsz > 511'],
    ['descriptor size 0 accepted', "return '-' if $dsz == 0 || $dsz > 512;", "return '-' if $dsz > 512;"],
    ['PT_NOTE at offset 0 read (C6)', 'next if $po == 0;', ''],
    ['header at the segment end not read (C7)', 'while ($at <= $last)', 'while ($at < $last)'],
    [
      'padding in 64-bit arithmetic (C9)',
      '$_[0] >= 0xfffffffd ? 0 : ($_[0] + 3) & 0xfffffffc',
      '($_[0] + 3) & ~3',
    ],
    ['0xfffffffc wrapped (C9)', '$_[0] >= 0xfffffffd ? 0', '$_[0] >= 0xfffffffc ? 0'],
    [
      'owner checked (C10)',
      'if ($type == 3) {',
      "if ($type == 3 && substr($rd->($at + 12, 4) // '', 0, 3) eq 'GNU') {",
    ],
    [
      'later notes tried after a bad one (C11)',
      "return '-' if $dsz == 0 || $dsz > 512;",
      'if ($dsz == 0 || $dsz > 512) { $at += 12 + $align4->($nsz) + $align4->($dsz); next; }',
    ],
    [
      'window of 1 MiB + 4',
      `(${MiB}, ${MAX_PROGRAM_HEADERS}, ${MAX_NOTE_STEPS})`,
      `(${MiB + 4}, ${MAX_PROGRAM_HEADERS}, ${MAX_NOTE_STEPS})`,
    ],
    ['program header cap off by one', 'if $vis > $MAXPH;', 'if $vis > $MAXPH + 1;'],
    ['note cap off by one', '++$steps > $MAXNOTES', '++$steps >= $MAXNOTES'],
    ['steps counted per segment', 'while ($at <= $last) {', 'my $steps = 0; while ($at <= $last) {'],
    ['EI_DATA ignored (C13)', "ord(substr($e, 5, 1)) == 2 ? ('n', 'N')", "0 ? ('n', 'N')"],
    ['high half of 64-bit words dropped', '$a * 4294967296 + $b : $b * 4294967296 + $a', '$b : $a'],
    [
      'partial program header read (C5)',
      'int(($win - $phoff) / $phs)',
      'int(($win - $phoff + $phs - 1) / $phs)',
    ],
    ['4-byte files read as ELF (C1)', '$size >= 5 && $n >= 4', '$size >= 4 && $n >= 4'],
    ['EI_CLASS 3 read as ELF64 (C2)', 'elsif ($class == 2)', 'elsif ($class >= 2)'],
    ['8-byte padding (C8)', '($_[0] + 3) & 0xfffffffc', '($_[0] + 7) & 0xfffffff8'],
    [
      'note headers read up to the file end (C3, C7)',
      '$last = $win - 12 if $win - 12 < $last;',
      '$last = $size - 12 if $size - 12 < $last;',
    ],
    [
      'descriptor bounded by the file, not the window (C12)',
      "return '-' if $d + $dsz > $win;",
      "return '-' if $d + $dsz > $size;",
    ],
    ['e_phoff 0 accepted (C4)', "return '-' if $phnum == 0 || $phoff == 0;", "return '-' if $phnum == 0;"],
  ];

  it.each(MUTANTS)('a broken walk is caught: %s', (_label, from, to) => {
    const script = renderProbeScript({ paths: ['/'] });
    // The edit must apply to exactly one place: if the perl was rewritten, update this list.
    expect(script.split(from).length - 1).toBe(1);
    const broken = probeAnswers(
      written.map((w) => w.path),
      (s) => s.replace(from, to),
    );
    expect(mismatches(written, broken).length).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: valid images with fields overwritten by boundary values
// ---------------------------------------------------------------------------------------------

/** A field CRIU's walk reads, where it lies in a base image. */
interface Field {
  name: string;
  at: number;
  width: 1 | 2 | 4 | 8;
  endian: Endian;
}

interface Base {
  name: string;
  content: FileContent;
  fields: Field[];
  /** offsets and sizes that generated values cluster around (before a random delta) */
  anchors: bigint[];
}

function makeBase(
  name: string,
  cls: ElfClass,
  endian: Endian,
  content: FileContent,
  layout: { phoff: number; phdrs: number; notes: readonly number[]; anchors?: readonly number[] },
): Base {
  const f = ELF_FIELDS[cls];
  const fields: Field[] = [
    { name: 'EI_CLASS', at: 4, width: 1, endian },
    { name: 'EI_DATA', at: 5, width: 1, endian },
    { name: 'e_phoff', at: f.phoffAt, width: f.wordSize, endian },
    { name: 'e_phnum', at: f.phnumAt, width: 2, endian },
  ];
  // The first headers and the last two (where a long table keeps its PT_NOTE).
  const phdrs = new Set<number>();
  for (let i = 0; i < Math.min(layout.phdrs, 6); i++) phdrs.add(i);
  for (let i = Math.max(0, layout.phdrs - 2); i < layout.phdrs; i++) phdrs.add(i);
  for (const i of phdrs) {
    const at = layout.phoff + i * f.phdrSize;
    fields.push(
      { name: `p_type[${i}]`, at: at + f.pTypeAt, width: 4, endian },
      { name: `p_offset[${i}]`, at: at + f.pOffsetAt, width: f.wordSize, endian },
      { name: `p_filesz[${i}]`, at: at + f.pFileszAt, width: f.wordSize, endian },
    );
  }
  for (const at of layout.notes) {
    fields.push(
      { name: `n_namesz@${at}`, at, width: 4, endian },
      { name: `n_descsz@${at}`, at: at + 4, width: 4, endian },
      { name: `n_type@${at}`, at: at + 8, width: 4, endian },
    );
  }
  const anchors = [0, content.size, MiB, layout.phoff, ...layout.notes, ...(layout.anchors ?? [])].map(
    BigInt,
  );
  anchors.push(2n ** 32n, P53, 2n ** 64n);
  return { name, content, fields, anchors };
}

function propertyBases(): Base[] {
  const bases: Base[] = [];
  for (const [cls, endian] of [
    [64, 'le'],
    [64, 'be'],
    [32, 'le'],
    [32, 'be'],
  ] as const) {
    const f = ELF_FIELDS[cls];
    const at = simpleNotesAt(cls);
    const abi = abiTagNote(endian);
    const notes = concatBytes(abi, gnuBuildIdNote(endian));
    bases.push(
      makeBase(`simple ELF${cls} ${endian}`, cls, endian, dense(simpleElf(cls, endian, notes)), {
        phoff: f.ehdrSize,
        phdrs: 2,
        notes: [at, at + abi.length],
        anchors: [at + notes.length],
      }),
    );
    // Two PT_NOTEs: a stapsdt-like type-3 note behind non-GNU ones in the first, the GNU one later.
    const n1 = concatBytes(
      noteBytes({ name: 'Go', type: 4, desc: [1, 2, 3, 4, 5], endian }),
      noteBytes({ name: 'stapsdt', type: 3, desc: [0xde, 0xad, 0xbe, 0xef], endian }),
    );
    const n2 = concatBytes(
      noteBytes({ name: 'GNU', type: 5, desc: new Array<number>(16).fill(0xcc), endian, align: 8 }),
      gnuBuildIdNote(endian, [1, 2, 3, 4, 5, 6, 7, 8]),
    );
    const phoff = 512;
    bases.push(
      makeBase(
        `two PT_NOTEs ELF${cls} ${endian}`,
        cls,
        endian,
        dense(
          elfImage({
            cls,
            endian,
            size: 8192,
            phoff,
            segments: [
              { type: PT_PHDR, offset: phoff, filesz: 4 * f.phdrSize },
              { type: PT_LOAD, offset: 0, filesz: 8192 },
              { type: PT_LOAD, offset: 0, filesz: 8192 },
              { type: PT_NOTE, offset: 1024, filesz: n1.length },
              { type: PT_NOTE, offset: 2048, filesz: n2.length, align: 8 },
            ],
            data: [
              { at: 1024, bytes: n1 },
              { at: 2048, bytes: n2 },
            ],
          }),
        ),
        {
          phoff,
          phdrs: 5,
          notes: [1024, 1024 + 20, 2048, 2048 + 32],
          anchors: [1024 + n1.length, 2048 + n2.length],
        },
      ),
    );
  }
  // The table at 300 KiB and the notes at 600 KiB: beyond the probe's head.
  {
    const notes = concatBytes(abiTagNote(), gnuBuildIdNote());
    const far = 600 * 1024;
    const phoff = 300 * 1024;
    const segments = [
      { type: PT_LOAD, offset: 0, filesz: 4096 },
      { type: PT_NOTE, offset: far, filesz: notes.length },
      { type: PT_NOTE, offset: far + 4096, filesz: 36 },
    ];
    bases.push(
      makeBase(
        'far table and notes ELF64 le',
        64,
        'le',
        tableAt(
          64,
          'le',
          phoff,
          segments,
          [
            { at: far, bytes: notes },
            { at: far + 4096, bytes: gnuBuildIdNote('le', [7, 7, 7]) },
          ],
          700 * 1024,
        ),
        { phoff, phdrs: 3, notes: [far, far + 32, far + 4096], anchors: [far + notes.length] },
      ),
    );
  }
  // The build-ID note ending exactly at 1 MiB, in a file that continues.
  {
    const n = gnuBuildIdNote('be');
    bases.push(
      makeBase(
        'note at the window end ELF64 be',
        64,
        'be',
        sparse(
          MiB + 8192,
          {
            at: 0,
            bytes: elfImage({
              cls: 64,
              endian: 'be',
              size: 4096,
              segments: [{ type: PT_NOTE, offset: MiB - 36, filesz: 36 }],
            }),
          },
          { at: MiB - 36, bytes: n },
        ),
        { phoff: 64, phdrs: 1, notes: [MiB - 36] },
      ),
    );
  }
  // Near the program header cap: 1,020 headers, the PT_NOTE last.
  for (const [cls, endian, count] of [
    [64, 'le', 1020],
    [32, 'be', 1024],
  ] as const) {
    const n = gnuBuildIdNote(endian);
    const segments = Array.from({ length: count }, (_, i) =>
      i === count - 1
        ? { type: PT_NOTE, offset: 200, filesz: n.length }
        : { type: PT_LOAD, offset: 0, filesz: 4096 },
    );
    const size = 4096 + count * ELF_FIELDS[cls].phdrSize + 100;
    bases.push(
      makeBase(
        `${count} program headers ELF${cls} ${endian}`,
        cls,
        endian,
        tableAt(cls, endian, 4096, segments, [{ at: 200, bytes: n }], size),
        {
          phoff: 4096,
          phdrs: count,
          notes: [200],
        },
      ),
    );
  }
  // Near the note cap: 4,090 zero-size notes (zeros), then the build-ID at the segment's end.
  {
    const start = 4096;
    const bidAt = start + 4090 * 12;
    bases.push(
      makeBase(
        'many notes ELF64 le',
        64,
        'le',
        sparse(
          bidAt + 4096,
          {
            at: 0,
            bytes: elfImage({
              cls: 64,
              size: 4096,
              segments: [{ type: PT_NOTE, offset: start, filesz: bidAt - start }],
            }),
          },
          { at: bidAt, bytes: gnuBuildIdNote() },
        ),
        { phoff: 64, phdrs: 1, notes: [start, bidAt - 12, bidAt] },
      ),
    );
  }
  // Wrapping sizes in front of the build-ID note, and a PT_NOTE at offset 0.
  {
    const notes = concatBytes(
      rawHeader(0xfffffffd, 4, 1),
      new Uint8Array(4),
      rawHeader(0, 0xffffffff, 2),
      gnuBuildIdNote(),
    );
    const img = elfImage({
      cls: 32,
      size: 4096,
      segments: [
        { type: PT_NOTE, offset: 0, filesz: 64 },
        { type: PT_NOTE, offset: 300, filesz: notes.length },
      ],
      data: [{ at: 300, bytes: notes }],
    });
    putUint(img, 8, 4, NT_GNU_BUILD_ID, 'le');
    bases.push(
      makeBase('wrapping sizes ELF32 le', 32, 'le', dense(img), {
        phoff: 52,
        phdrs: 2,
        notes: [0, 300, 316, 328],
      }),
    );
  }
  bases.push(
    makeBase('6-byte ELF64', 64, 'le', dense(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 2, 1])), {
      phoff: 64,
      phdrs: 1,
      notes: [],
    }),
  );
  return bases;
}

/** A generated value: a boundary constant, or an anchor of the base plus a delta. */
type ValueSpec = { from: 'const'; value: bigint } | { from: 'anchor'; anchor: number; delta: number };

type Mutation =
  { kind: 'field'; field: number; value: ValueSpec } | { kind: 'bytes'; at: ValueSpec; bytes: Uint8Array };

interface GeneratedCase {
  base: number;
  mutations: Mutation[];
  size: ValueSpec | null;
}

const BOUNDARIES: bigint[] = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  7n,
  8n,
  11n,
  12n,
  13n,
  0x200n,
  0x201n,
  0x7fffn,
  0xfffen,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0xfffffffcn,
  0xfffffffdn,
  0xfffffffen,
  0xffffffffn,
  2n ** 32n,
  2n ** 32n + 1n,
  P53 - 1n,
  P53,
  P53 + 1n,
  2n ** 63n,
  U64_MAX - 12n,
  U64_MAX - 1n,
  U64_MAX,
];

function caseArbitrary(bases: readonly Base[]): fc.Arbitrary<GeneratedCase> {
  const delta = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -16, max: 16 }) },
    { weight: 2, arbitrary: fc.constantFrom(-56, -36, -32, -24, -12, 12, 24, 32, 36, 52, 56, 64) },
    { weight: 1, arbitrary: fc.integer({ min: -70_000, max: 70_000 }) },
  );
  const value: fc.Arbitrary<ValueSpec> = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(...BOUNDARIES).map((v) => ({ from: 'const' as const, value: v })),
    },
    { weight: 5, arbitrary: fc.record({ from: fc.constant('anchor' as const), anchor: fc.nat(), delta }) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 0, max: 70_000 })
        .map((v) => ({ from: 'const' as const, value: BigInt(v) })),
    },
    {
      weight: 1,
      arbitrary: fc.bigInt({ min: 0n, max: U64_MAX }).map((v) => ({ from: 'const' as const, value: v })),
    },
  );
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('field' as const), field: fc.nat(), value }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('bytes' as const),
        at: value,
        bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
    },
  );
  return fc.record({
    base: fc.nat({ max: bases.length - 1 }),
    mutations: fc.array(mutation, { maxLength: 5 }),
    size: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: value }),
  });
}

/** Largest file a generated case may have (sparse on disk). */
const MAX_GENERATED_SIZE = 3 * MiB;

/** The case's file, and a description that is enough to rebuild it by hand. */
function buildCase(bases: readonly Base[], c: GeneratedCase): { content: FileContent; description: string } {
  const base = bases[c.base]!;
  const resolve = (v: ValueSpec): bigint =>
    v.from === 'const' ? v.value : base.anchors[v.anchor % base.anchors.length]! + BigInt(v.delta);
  const pieces = [...base.content.pieces];
  const steps: string[] = [];
  for (const m of c.mutations) {
    if (m.kind === 'field') {
      const f = base.fields[m.field % base.fields.length]!;
      const v = BigInt.asUintN(f.width * 8, resolve(m.value));
      const bytes = new Uint8Array(f.width);
      putUint(bytes, 0, f.width, v, f.endian);
      pieces.push({ at: f.at, bytes });
      steps.push(`${f.name}=0x${v.toString(16)}`);
    } else {
      const at = resolve(m.at);
      if (at < 0n || at >= BigInt(MAX_GENERATED_SIZE)) continue;
      pieces.push({ at: Number(at), bytes: m.bytes });
      steps.push(`bytes ${hexOf(m.bytes)} at ${at}`);
    }
  }
  let size = base.content.size;
  if (c.size) {
    const s = resolve(c.size);
    const limit = BigInt(MAX_GENERATED_SIZE);
    size = Number(((s % limit) + limit) % limit);
  }
  return {
    content: { size, pieces },
    description: `${base.name}; ${steps.join(', ') || 'unchanged'}; size ${size}`,
  };
}

describe('perl build_id walk vs the TypeScript reference: generated files', () => {
  const RUNS = 6000;

  it(`agrees on ${RUNS} images with fields overwritten by boundary values (one probe run)`, () => {
    const bases = propertyBases();
    const generated = fc.sample(caseArbitrary(bases), { seed: 424242, numRuns: RUNS });
    const dir = tempDir();
    const files = generated.map((g, i) => {
      const { content, description } = buildCase(bases, g);
      const path = join(dir, `gen-${i}`);
      writeContent(path, content);
      return { name: `#${i} ${description}`, path, reference: referenceAnswer(content), size: content.size };
    });
    const answers = probeAnswers(files.map((f) => f.path));
    const wrong = mismatches(files, answers);
    expect(wrong.slice(0, 20), `${wrong.length} of ${files.length} disagree`).toEqual([]);

    // The corpus reaches every kind of answer, large files included.
    const tally = new Map<string, number>();
    for (const f of files) {
      const key = f.reference.startsWith('elf =') ? 'build-id' : f.reference.replace(/ \d+$/, '');
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    expect(tally.get('build-id') ?? 0).toBeGreaterThan(RUNS / 10);
    expect(tally.get(NONE) ?? 0).toBeGreaterThan(RUNS / 10);
    expect(tally.get(FILE) ?? 0).toBeGreaterThan(0);
    expect(tally.get('elf !phdrs') ?? 0).toBeGreaterThan(0);
    expect(tally.get('elf !notes') ?? 0).toBeGreaterThan(0);
    expect(files.filter((f) => f.size > MiB).length).toBeGreaterThan(RUNS / 20);
  });
});

// ---------------------------------------------------------------------------------------------
// Real files
// ---------------------------------------------------------------------------------------------

describe('perl build_id walk vs the TypeScript reference: this machine’s files', () => {
  const DIRS = ['/usr/bin', '/usr/lib/x86_64-linux-gnu'];

  it('agrees on every regular file under /usr/bin and /usr/lib/x86_64-linux-gnu', async () => {
    const paths = DIRS.filter((d) => existsSync(d)).flatMap((d) =>
      readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(d, e.name)),
    );
    const answers = probeAnswers(paths);
    const files: WrittenCase[] = [];
    for (const path of paths)
      files.push({ name: path, path, reference: await referenceAnswerFromFile(path) });
    expect(mismatches(files, answers)).toEqual([]);
    expect(files.filter((f) => f.reference.startsWith('elf =')).length).toBeGreaterThanOrEqual(200);
  });
});

// ---------------------------------------------------------------------------------------------
// A file that changes while the walk reads it
// ---------------------------------------------------------------------------------------------

/**
 * The probe's `build_id` alone, on an open file and a size of the caller's choosing: how the walk
 * behaves when the file is shorter than fstat said (it shrank between the stat and the reads),
 * which cannot be arranged through the whole probe without a race.
 */
function walkWithSize(path: string, size: number): string {
  const script = renderProbeScript({ paths: ['/'] });
  const limits = /^my \(\$WIN, \$MAXPH, \$MAXNOTES\) = \(.*\);$/m.exec(script)?.[0];
  const walk = /^sub build_id \{$[\s\S]*?^\}$/m.exec(script)?.[0];
  if (!limits || !walk) throw new Error('the probe has no build_id walk to run alone');
  const harness = [
    'use strict;',
    limits,
    walk,
    "open(my $fh, '<:raw', $ARGV[0]) or die;",
    "my $head = '';",
    'sysread($fh, $head, 1024);',
    'print build_id($fh, $ARGV[1], $head), "\\n";',
  ].join('\n');
  const run = spawnSync('perl', ['-e', harness, path, String(size)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`perl exited ${String(run.status)}: ${run.stderr}`);
  return run.stdout.trim();
}

describe('perl build_id walk on a file that shrank under it', () => {
  const dir = tempDir();
  // Notes at 600 KiB: the walk must read past its 1 KiB head to find them.
  const notes = gnuBuildIdNote();
  const at = 600 * 1024;
  const full = elfImage({
    cls: 64,
    size: at + 4096,
    segments: [
      { type: PT_LOAD, offset: 0, filesz: at + 4096 },
      { type: PT_NOTE, offset: at, filesz: notes.length },
    ],
    data: [{ at, bytes: notes }],
  });
  const whole = join(dir, 'whole.so');
  const cut = join(dir, 'cut.so');
  const magic = join(dir, 'magic-only');
  writeContent(whole, dense(full));
  writeContent(cut, dense(full.subarray(0, 300 * 1024)));
  writeContent(magic, dense(full.subarray(0, 4)));

  it('reads the notes past its head when the file is as long as its stat said', () => {
    expect(walkWithSize(whole, full.length)).toBe(`=${ID20_HEX}`);
  });

  it('answers "!changed" when a read past the head comes up short, never a guess', () => {
    expect(walkWithSize(cut, full.length)).toBe('!changed');
  });

  it('answers "!changed" when not even the 5 bytes CRIU reads first are there', () => {
    expect(walkWithSize(magic, full.length)).toBe('!changed');
  });
});
