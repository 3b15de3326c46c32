/**
 * Property tests (issue 9, "Proof") for what hosts send: the probe output parser, the ELF
 * build-ID reader, known_hosts matching. At least 10,000 runs each, fixed seed. The only
 * exception allowed is the project's own CriuLockError, and every run is bounded in time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUILD_ID_MAP_SIZE,
  buildIdFromBuffer,
  chunkedByteSource,
  readBuildId,
} from '../../src/elf/build-id.js';
import { CriuLockError } from '../../src/errors.js';
import { parseProbeOutput } from '../../src/facts/parse.js';
import { PROBE_VERSION } from '../../src/facts/probe-script.js';
import { compileGlob } from '../../src/pattern/glob.js';
import { lookupHostKey, parseKnownHosts } from '../../src/transport/known-hosts.js';

const RUNS = 10_000;
const SEED = 20_261_129;
const settings = { numRuns: RUNS, seed: SEED };
const SLOW = 240_000;

function allowed<T>(f: () => T): T | CriuLockError {
  try {
    return f();
  } catch (e) {
    if (e instanceof CriuLockError) return e;
    throw e;
  }
}

const hx = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

// ---------------------------------------------------------------------------------------------
// Probe output
// ---------------------------------------------------------------------------------------------

// Any name a file can have (no NUL, no "/" inside a component), including tabs, newlines, "@@".
const nameArb = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }),
      fc.constantFrom('\t', '\n', '@@end', ' (deleted)', '\\012', 'M\t1'),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => `/${parts.join('').replace(/[\0/]/g, '_')}`);
const fileFieldsArb = fc.oneof(
  fc.constant(['missing', '', '', '', '', '']),
  fc
    .tuple(fc.nat(1 << 30), fc.constantFrom('0644', '0755'), fc.nat(1 << 30))
    .map(([size, mode, ino]) => ['file', String(size), mode, String(ino), `2049:${ino}:${ino}`, '']),
  fc
    .tuple(
      // The build-ID walk's answer: none, or a build-ID of 1 to 512 bytes.
      fc.oneof(fc.constant(null), fc.uint8Array({ minLength: 1, maxLength: 512 })),
      fc.nat(1 << 20),
      fc.nat(1 << 30),
    )
    .map(([id, size, ino]) => [
      'elf',
      String(size),
      '0755',
      String(ino),
      `2049:${size}:${size}`,
      id === null ? '-' : `=${Buffer.from(id).toString('hex')}`,
    ]),
);
const recordArb = fc.oneof(
  fc
    .tuple(nameArb, fileFieldsArb)
    .map(([p, f]) => ({ path: p, line: ['R', hx(p), ...f].join('\t'), kind: 'R' as const })),
  fc
    .tuple(nameArb, fc.integer({ min: 1, max: 4_194_304 }), fc.boolean(), fileFieldsArb)
    .map(([p, pid, deleted, f]) => ({
      path: p,
      line: [
        'M',
        String(pid),
        '7f00-7f10',
        deleted ? '1' : '0',
        hx(p),
        '-',
        f[0] === 'missing' ? '-' : 'm',
        ...f,
      ].join('\t'),
      kind: 'M' as const,
    })),
);
const probe = (lines: string[]): string =>
  [`@@probe ${PROBE_VERSION}`, '@@arch', 'amd64', '@@files', ...lines, '@@end', ''].join('\n');

/** What a hostile host might print instead: a valid record with one field mangled. */
const mangledArb = fc
  .tuple(
    recordArb,
    fc.nat(),
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom('', '-', '0', '!', 'zz', '7f454c46', '99999999999999999999'),
    ),
  )
  .map(([r, i, junk]) => {
    const fields = r.line.split('\t');
    fields[i % (fields.length + 1)] = junk;
    return fields.join('\t');
  });

describe('probe output parser', () => {
  it(
    'any file name round-trips exactly through the hex-encoded records',
    () => {
      fc.assert(
        fc.property(fc.array(recordArb, { minLength: 1, maxLength: 5 }), (records) => {
          const { facts } = parseProbeOutput('n', probe(records.map((r) => r.line)));
          const got = [...facts.files.keys(), ...facts.mapped.map((m) => m.path)].sort();
          // Files are keyed by path (the last record of a path wins); mapped files are kept in order.
          const want = [
            ...new Set(records.filter((r) => r.kind === 'R').map((r) => r.path)),
            ...records.filter((r) => r.kind === 'M').map((r) => r.path),
          ].sort();
          expect(got).toEqual(want);
        }),
        settings,
      );
    },
    SLOW,
  );

  it(
    'mangled records and arbitrary lines: a result or a CriuLockError, nothing else',
    () => {
      const line = fc.oneof(
        mangledArb,
        recordArb.map((r) => r.line),
        fc.string({ unit: 'binary', maxLength: 40 }),
      );
      fc.assert(
        fc.property(fc.array(line, { maxLength: 4 }), (lines) => {
          const r = allowed(() => parseProbeOutput('n', probe(lines)));
          if (!(r instanceof CriuLockError))
            for (const m of r.facts.mapped) expect(m.path.startsWith('/')).toBe(true);
        }),
        settings,
      );
    },
    SLOW,
  );
});

// ---------------------------------------------------------------------------------------------
// ELF build-ID reader
// ---------------------------------------------------------------------------------------------

/** A plausible ELF64 head whose fields fast-check then tramples: reaches deep into the walk. */
const elfishArb = fc
  .record({
    cls: fc.constantFrom(1, 2, 3),
    data: fc.constantFrom(1, 2),
    phoff: fc.oneof(fc.constant(64), fc.nat(300)),
    phnum: fc.oneof(fc.nat(8), fc.constant(0xffff), fc.nat(3000)),
    segs: fc.array(
      fc.record({
        type: fc.constantFrom(1, 4, 4, 4),
        off: fc.nat(600),
        filesz: fc.oneof(fc.nat(200), fc.constant(0xffffffff)),
      }),
      { maxLength: 8 },
    ),
    notes: fc.uint8Array({ maxLength: 400 }),
    size: fc.oneof(fc.nat(2048), fc.constant(BUILD_ID_MAP_SIZE * 2)),
  })
  .map(({ cls, data, phoff, phnum, segs, notes, size }) => {
    const b = Buffer.alloc(1024);
    b.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1], 0);
    const le = data === 1;
    const w16 = (v: number, at: number): number =>
      le ? b.writeUInt16LE(v & 0xffff, at) : b.writeUInt16BE(v & 0xffff, at);
    const w32 = (v: number, at: number): number =>
      le ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at);
    if (cls === 2) {
      w32(phoff, 32);
      w16(phnum, 56);
    } else {
      w32(phoff, 28);
      w16(phnum, 44);
    }
    segs.forEach((s, i) => {
      const at = phoff + i * (cls === 2 ? 56 : 32);
      if (at + 56 > b.length) return;
      w32(s.type, at);
      if (cls === 2) {
        w32(s.off, at + 8);
        w32(s.filesz, at + 32);
      } else {
        w32(s.off, at + 4);
        w32(s.filesz, at + 16);
      }
    });
    b.set(notes.subarray(0, Math.max(0, b.length - 600)), 600);
    return { head: b, size: Math.max(size, 5) };
  });

describe('ELF build-ID reader', () => {
  it(
    'arbitrary bytes: a result or the project error, in bounded time, asking only for bytes inside the window',
    () => {
      const arb = fc.oneof(
        fc.uint8Array({ maxLength: 1024 }).map((bytes) => ({ head: Buffer.from(bytes), size: bytes.length })),
        fc.uint8Array({ maxLength: 1024 }).map((bytes) => ({
          head: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]), bytes]),
          size: bytes.length + 6,
        })),
        elfishArb,
      );
      let slowest = 0;
      fc.assert(
        fc.property(arb, ({ head, size }) => {
          const started = performance.now();
          const r = allowed(() => buildIdFromBuffer(head, size));
          slowest = Math.max(slowest, performance.now() - started);
          if (!(r instanceof CriuLockError) && r.kind === 'need-bytes') {
            for (const range of r.ranges) {
              expect(range.offset).toBeGreaterThanOrEqual(0);
              expect(range.length).toBeGreaterThan(0);
              expect(range.offset + range.length).toBeLessThanOrEqual(Math.min(size, BUILD_ID_MAP_SIZE));
            }
          }
          if (!(r instanceof CriuLockError) && r.kind === 'build-id')
            expect(r.buildId).toMatch(/^([0-9a-f]{2}){1,512}$/);
        }),
        settings,
      );
      expect(slowest).toBeLessThan(250);
    },
    SLOW,
  );

  it(
    'fetching what need-bytes asks for (zero bytes) always ends within a few rounds',
    () => {
      fc.assert(
        fc.property(elfishArb, ({ head, size }) => {
          const chunks = [
            { offset: 0, bytes: new Uint8Array(head.subarray(0, Math.min(head.length, size))) },
          ];
          for (let round = 0; round < 4; round++) {
            const r = allowed(() => readBuildId(chunkedByteSource(size, chunks)));
            if (r instanceof CriuLockError || r.kind !== 'need-bytes') return;
            for (const range of r.ranges)
              chunks.push({ offset: range.offset, bytes: new Uint8Array(range.length) });
          }
          throw new Error('still asking for bytes after 4 rounds');
        }),
        settings,
      );
    },
    SLOW,
  );
});

// ---------------------------------------------------------------------------------------------
// known_hosts matching
// ---------------------------------------------------------------------------------------------

/** OpenSSH's match_pattern as a RegExp: the reference (fine on short inputs). */
function reference(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return re.test(name);
}

describe('known_hosts matching', () => {
  const patternArb = fc.string({
    unit: fc.constantFrom('a', 'b', '*', '?', '.', '[', ']', '\\'),
    maxLength: 8,
  });
  const hostArb = fc.string({ unit: fc.constantFrom('a', 'b', '.', '[', ']', '\\'), maxLength: 10 });

  it(
    'the linear matcher agrees with the RegExp reference',
    () => {
      fc.assert(
        fc.property(patternArb, hostArb, (p, h) => {
          expect(compileGlob(p, { classes: false })(h)).toBe(reference(p, h));
        }),
        settings,
      );
    },
    SLOW,
  );

  it(
    'lookupHostKey honours negation over arbitrary pattern lists, and parseKnownHosts never throws',
    () => {
      const key = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
      fc.assert(
        fc.property(
          fc.array(
            fc.tuple(
              fc.boolean(),
              patternArb.filter((p) => p !== '' && !p.includes(',')),
            ),
            { minLength: 1, maxLength: 4 },
          ),
          hostArb,
          fc.string({ maxLength: 30 }),
          ([...pats], host, junk) => {
            const field = pats.map(([neg, p]) => `${neg ? '!' : ''}${p}`).join(',');
            const kh = parseKnownHosts(`${junk}\n${field} ssh-ed25519 ${key}\n`, 'kh');
            const name = host.toLowerCase();
            const negated = pats.some(([neg, p]) => neg && reference(p.toLowerCase(), name));
            const positive = pats.some(([neg, p]) => !neg && reference(p.toLowerCase(), name));
            const entry = kh.entries.filter((e) => e.line === 2);
            if (entry.length === 1 && host !== '') {
              const r = lookupHostKey(entry, host, 22, 'ssh-ed25519', key);
              expect(r.status).toBe(positive && !negated ? 'match' : 'unknown');
            }
          },
        ),
        settings,
      );
    },
    SLOW,
  );
});
