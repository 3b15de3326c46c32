import fc from 'fast-check';
/**
 * Hostile hosts and inputs (issue 9): caps on the work a crafted ELF file can cause, what of a
 * file can reach a lockfile, and which paths a lockfile may name.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildIdFromBuffer,
  ElfLimitError,
  MAX_NOTE_STEPS,
  MAX_PROGRAM_HEADERS,
} from '../../src/elf/build-id.js';
import { CriuLockError } from '../../src/errors.js';
import { parseProbeOutput } from '../../src/facts/parse.js';
import { PROBE_VERSION, renderProbeScript } from '../../src/facts/probe-script.js';
import { buildLock } from '../../src/lock/build-lock.js';
import { isVirtualFsPath, lockedPathProblem } from '../../src/lock/locked-path.js';
import { parseLock, serializeLock } from '../../src/lock/lockfile.js';
import { makeLock } from './core-fixtures.js';

const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;

const dir = mkdtempSync(join(tmpdir(), 'criu-lock-hostile-elf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real facts probe, run here with `sh -s` on one path: what a node would answer. */
function probeOnThisMachine(path: string): string {
  const r = spawnSync('sh', ['-s'], { input: renderProbeScript({ paths: [path] }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the probe failed: ${r.stderr}`);
  return r.stdout;
}

/** An ELF64 little-endian image: header, `phnum` program headers, then `body` at `bodyAt`. */
function elf64(
  phdrs: Array<{ type: number; offset: number; filesz: number }>,
  size: number,
  body: Array<{ at: number; bytes: Uint8Array }> = [],
): Buffer {
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeBigUInt64LE(64n, 32); // e_phoff
  b.writeUInt16LE(56, 54); // e_phentsize
  b.writeUInt16LE(phdrs.length, 56); // e_phnum
  phdrs.forEach((p, i) => {
    const at = 64 + i * 56;
    b.writeUInt32LE(p.type, at);
    b.writeBigUInt64LE(BigInt(p.offset), at + 8);
    b.writeBigUInt64LE(BigInt(p.filesz), at + 32);
  });
  for (const { at, bytes } of body) b.set(bytes, at);
  return b;
}

/** One note: namesz, descsz, type, name "GNU\0", descriptor. */
function note(type: number, desc: Uint8Array): Buffer {
  const n = Buffer.alloc(12 + 4 + Math.ceil(desc.length / 4) * 4);
  n.writeUInt32LE(4, 0);
  n.writeUInt32LE(desc.length, 4);
  n.writeUInt32LE(type, 8);
  n.write('GNU\0', 12, 'latin1');
  n.set(desc, 16);
  return n;
}

describe('caps on the work one ELF file can cause', () => {
  it(`refuses a file with more than ${MAX_PROGRAM_HEADERS} program headers`, () => {
    const n = MAX_PROGRAM_HEADERS + 1;
    const img = elf64(
      Array.from({ length: n }, () => ({ type: 1, offset: 0, filesz: 0 })),
      64 + n * 56,
    );
    expect(() => buildIdFromBuffer(img)).toThrow(ElfLimitError);
    // One fewer is fine (no PT_NOTE at all: no build-ID).
    const ok = elf64(
      Array.from({ length: n - 1 }, () => ({ type: 1, offset: 0, filesz: 0 })),
      64 + n * 56,
    );
    expect(buildIdFromBuffer(ok)).toEqual({ kind: 'no-build-id', reason: 'no-build-id-note' });
  });

  it(`refuses a note segment of more than ${MAX_NOTE_STEPS} empty notes, at the cap`, () => {
    // 1 MiB of zero bytes is ~87,000 empty 12-byte note headers per PT_NOTE; 500 such segments
    // would be 43 million steps without the cap.
    const size = 1024 * 1024;
    const phdrs = Array.from({ length: 500 }, () => ({ type: PT_NOTE, offset: 64 + 500 * 56, filesz: size }));
    const img = elf64(phdrs, size);
    // The count is over the whole walk and the error comes from header 4097, so the refusal itself
    // shows the walk stopped there (no wall-clock assertion: it failed once on a loaded machine).
    expect(() => buildIdFromBuffer(img)).toThrow(/more than 4096 note headers/);
  });

  it('is refused by the probe on the node, and the parser turns that into a refusal naming host and file', () => {
    const n = MAX_PROGRAM_HEADERS + 1;
    const img = elf64(
      Array.from({ length: n }, () => ({ type: 1, offset: 0, filesz: 0 })),
      64 + n * 56,
    );
    const path = join(dir, 'x.so');
    writeFileSync(path, img);
    const out = probeOnThisMachine(path);
    expect(out).toContain(`\t!phdrs ${n}\n`);
    let err: unknown;
    try {
      parseProbeOutput('node-q', out);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CriuLockError);
    expect((err as CriuLockError).message).toBe(
      `node-q: ${path}: ELF file refused: 1025 program headers (at most 1024 are read)`,
    );
  });
});

describe('only the build-ID note of a file reaches the lockfile', () => {
  it('a secret beside the notes never leaves the node, nor reaches the lock', () => {
    const id = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex');
    const secret = Buffer.from('SECRET-root-password-hunter2');
    const notes = note(NT_GNU_BUILD_ID, id);
    const img = elf64([{ type: PT_NOTE, offset: 200, filesz: notes.length }], 4096, [
      { at: 200, bytes: notes },
      { at: 200 + notes.length + 8, bytes: secret },
    ]);
    const path = join(dir, 'plugin.so');
    writeFileSync(path, img);
    // The probe walks the notes on the node and prints the build-ID alone (format 6).
    const probed = probeOnThisMachine(path);
    for (const form of [secret.toString('latin1'), secret.toString('hex'), secret.toString('base64')])
      expect(probed).not.toContain(form);
    const answer = /^R\t[0-9a-f]+\telf\t4096\t\d{4}\t\d+\t[0-9:]+\t(.*)$/m.exec(probed)?.[1];
    expect(answer).toBe(`=${id.toString('hex')}`);
    const hx = (s: string): string => Buffer.from(s).toString('hex');
    const out = [
      `@@probe ${PROBE_VERSION}`,
      '@@arch',
      'amd64',
      '@@files',
      [
        'M',
        '7',
        '1000-2000',
        '0',
        hx('/opt/app/plugin.so'),
        '-',
        'm',
        'elf',
        '4096',
        '0755',
        '99',
        '1:1:1',
        answer,
      ].join('\t'),
      '@@end',
      '',
    ].join('\n');
    const { facts } = parseProbeOutput('golden', out);
    const { lock } = buildLock(
      facts,
      { kind: 'processes', pids: [7] },
      { host: 'golden', generatedAt: '2026-01-01T00:00:00Z' },
    );
    const text = serializeLock(lock);
    expect(lock.unmanaged).toEqual({
      '/opt/app/plugin.so': { size: 4096, mode: '0755', buildId: id.toString('hex') },
    });
    for (const form of [secret.toString('latin1'), secret.toString('hex'), secret.toString('base64')])
      expect(text).not.toContain(form);
  });
});

describe('paths a lockfile may name', () => {
  it.each([
    ['/usr/lib/x86_64-linux-gnu/libc.so.6', undefined],
    ['/tmp/evil\tname\nwith a newline', undefined],
    ['/usr/lib/locale/locale-archive', undefined],
    ['/devices/x', undefined],
    ['/proc/self/environ', /under \/proc, \/sys or \/dev/],
    ['/proc', /under \/proc/],
    ['/sys/kernel/notes', /under \/proc/],
    ['/dev/shm/x', /under \/proc/],
    ['/usr/../proc/self/mem', /normalised/],
    ['/usr//lib/x.so', /normalised/],
    ['/usr/./lib/x.so', /normalised/],
    ['/usr/lib/', /not a directory/],
    ['usr/lib/x.so', /absolute/],
    ['/a\0b', /NUL/],
  ])('%j → %s', (path, problem) => {
    const why = lockedPathProblem(path);
    if (problem === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(problem);
  });

  // lockedPathProblem accepts most paths through one regex; its verdict must be the rules' own.
  it('accepts exactly the absolute, normalised, NUL-free file paths outside /proc, /sys and /dev', () => {
    const component = fc.oneof(
      fc.constantFrom('', '.', '..', '.x', 'x.', 'proc', 'sys', 'dev', 'procx', 'a\0b', 'lib'),
      fc.string({ unit: 'binary', maxLength: 4 }).filter((c) => !c.includes('/')),
    );
    const arbPath = fc
      .tuple(fc.boolean(), fc.array(component, { minLength: 1, maxLength: 4 }))
      .map(([abs, parts]) => `${abs ? '/' : ''}${parts.join('/')}`);
    fc.assert(
      fc.property(arbPath, (path) => {
        const parts = path.slice(1).split('/');
        const ok =
          path.startsWith('/') &&
          !path.includes('\0') &&
          path !== '/' &&
          !path.endsWith('/') &&
          !parts.some((c) => c === '' || c === '.' || c === '..') &&
          !isVirtualFsPath(path);
        expect(lockedPathProblem(path) === undefined).toBe(ok);
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['/proc/1/environ', 'packages'],
    ['/sys/firmware/efi/efivars/x', 'packages'],
    ['/dev/sda', 'unmanaged'],
    ['/lib/../dev/mem', 'unmanaged'],
  ])('a lockfile naming %s is refused at load with file:line', (path, where) => {
    const entry = { size: 1, mode: '0644' };
    const lock =
      where === 'packages'
        ? makeLock({
            packages: {
              'libc6:amd64': { version: '1.0-1', files: { [path]: entry, '/usr/lib/ok.so': entry } },
            },
          })
        : makeLock({ packages: {}, unmanaged: { '/usr/lib/ok': entry, [path]: entry } });
    const text = serializeLock(lock);
    const line =
      text.split('\n').findIndex((l) => l.includes(JSON.stringify(path).slice(1, -1)) || l.includes(path)) +
      1;
    let err: CriuLockError | undefined;
    try {
      parseLock(text, 'criu-lock.yaml');
    } catch (e) {
      err = e as CriuLockError;
    }
    expect(err).toBeInstanceOf(CriuLockError);
    expect(err?.message).toMatch(
      /^invalid (file|unmanaged) path .*(under \/proc, \/sys or \/dev|normalised)/,
    );
    expect(err?.location).toMatchObject({ file: 'criu-lock.yaml', line });
  });

  it('a name with a tab and a newline round-trips through the lockfile, escaped on one line', () => {
    const path = '/tmp/evil\tname\nM\t1\t/etc/shadow';
    const lock = makeLock({
      packages: {},
      unmanaged: { [path]: { size: 10, mode: '0755', buildId: 'ab'.repeat(20) } },
    });
    const text = serializeLock(lock);
    expect(text).toContain(`  "/tmp/evil\\tname\\nM\\t1\\t/etc/shadow": {size: 10`);
    expect(parseLock(text, 'criu-lock.yaml').unmanaged).toEqual(lock.unmanaged);
  });

  it('generate leaves mapped files under /dev out of the lock, with a warning', () => {
    const hx = (s: string): string => Buffer.from(s).toString('hex');
    const out = [
      `@@probe ${PROBE_VERSION}`,
      '@@os-release',
      'ID=debian',
      'VERSION_ID="12"',
      'VERSION_CODENAME=bookworm',
      '@@arch',
      'amd64',
      '@@files',
      [
        'M',
        '7',
        '1000-2000',
        '0',
        hx('/dev/shm/ring'),
        '-',
        'm',
        'file',
        '4096',
        '0600',
        '5',
        '1:1:1',
        '',
      ].join('\t'),
      [
        'M',
        '7',
        '3000-4000',
        '0',
        hx('/usr/lib/locale/locale-archive'),
        '-',
        'm',
        'file',
        '300',
        '0644',
        '6',
        '1:1:1',
        '',
      ].join('\t'),
      '@@end',
      '',
    ].join('\n');
    const { facts } = parseProbeOutput('golden', out);
    const { lock, warnings } = buildLock(
      facts,
      { kind: 'processes', pids: [7] },
      { host: 'golden', generatedAt: '2026-01-01T00:00:00Z' },
    );
    expect(Object.keys(lock.unmanaged ?? {})).toEqual(['/usr/lib/locale/locale-archive']);
    expect(warnings).toEqual([
      'process 7 maps /dev/shm/ring: not locked, files under /proc, /sys and /dev are not files a package or criu-lock controls',
    ]);
    expect(isVirtualFsPath('/dev/shm/ring')).toBe(true);
    expect(() => parseLock(serializeLock(lock), 'x.yaml')).not.toThrow();
  });
});
