/**
 * Reading CRIU checkpoints. test/fixtures/checkpoint/ holds files.img and pstree.img of a real dump
 * made by CRIU 4.1.1 in the sandbox: `fleet-tool tick` on the golden node (pid 22212), which maps
 * /usr/bin/fleet-tool, libfleet.so.1, libc.so.6 and ld-linux-x86-64.so.2 and has /dev/null open.
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { criuImage } from '../helpers/criu-image.js';
import {
  buildIdFromWords,
  buildIdToWords,
  FILES_MAGIC,
  parseFilesImg,
  parsePstreeImg,
  readCheckpoint,
  REG_FILES_MAGIC,
  RegFileEntry,
} from '../../src/checkpoint/images.js';
import { buildCheckpointLock } from '../../src/checkpoint/lock.js';
import {
  aliasOf,
  compareCheckpoint,
  neededFiles,
  ownerQueryPaths,
  parseOwners,
} from '../../src/checkpoint/needs.js';
import { loadCheckpoint } from '../../src/commands/checkpoint.js';
import { formatError } from '../../src/errors.js';
import { parseLock, serializeLock } from '../../src/lock/lockfile.js';
import { elf, makeFacts, pkg } from './core-fixtures.js';

const FIXTURE = join(import.meta.dirname, '../fixtures/checkpoint');
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const LD = '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';
const TOOL = '/usr/bin/fleet-tool';

/** The first line users see for what `fn` throws (the file comes from the error's location). */
function errorLine(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return formatError(err).split('\n')[0]!;
  }
  throw new Error('did not throw');
}

async function asyncErrorLine(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => {
      throw new Error('did not throw');
    },
    (err: unknown) => formatError(err).split('\n')[0]!,
  );
}

describe('files.img of a real CRIU 4.1.1 dump', () => {
  const buf = readFileSync(join(FIXTURE, 'files.img'));

  it('starts with the common magic and FILES_MAGIC', () => {
    expect(buf.readUInt32LE(0)).toBe(0x54564319);
    expect(buf.readUInt32LE(4)).toBe(FILES_MAGIC);
  });

  it('yields every regular file the process mapped, with size, st_mode and build-ID as readelf shows it', () => {
    const files = parseFilesImg(buf);
    const byPath = new Map(files.map((f) => [f.path, f]));
    expect([...byPath.keys()].sort()).toEqual(['/', '/dev/null', TOOL, LD, LIBC, LIBFLEET].sort());
    // readelf -n on the golden node's libfleet.so.1 printed this build-ID.
    expect(byPath.get(LIBFLEET)).toMatchObject({
      size: 15152,
      stMode: 0o100644,
      buildId: '393372a1777f78e337d2ad5199a2a15f89e57448',
    });
    expect(byPath.get(LIBC)).toMatchObject({
      size: 1926232,
      stMode: 0o100755,
      buildId: '93ac61ec5a8eb1396f9fbd350e3169a558528a40',
    });
    // A character device: CRIU records its mode, no size and no build-ID.
    expect(byPath.get('/dev/null')).toEqual(expect.objectContaining({ stMode: 0o20666 }));
    expect(byPath.get('/dev/null')?.size).toBeUndefined();
  });

  it('keeps only regular files as what a restore needs, modes as four octal digits', () => {
    const needed = neededFiles({ dir: FIXTURE, image: 'files.img', files: parseFilesImg(buf), pids: [] });
    expect(needed.map((n) => n.path)).toEqual([TOOL, LD, LIBC, LIBFLEET]);
    expect(needed.find((n) => n.path === LIBFLEET)?.entry).toEqual({
      size: 15152,
      mode: '0644',
      buildId: '393372a1777f78e337d2ad5199a2a15f89e57448',
    });
  });

  it('reads the pids of pstree.img', () => {
    expect(parsePstreeImg(readFileSync(join(FIXTURE, 'pstree.img')))).toEqual([22212]);
  });

  it('reads a checkpoint directory', async () => {
    const cp = await readCheckpoint(FIXTURE);
    expect(cp.image).toBe('files.img');
    expect(cp.pids).toEqual([22212]);
    expect(cp.files.length).toBe(8);
  });
});

describe('older images and broken input', () => {
  it('reads reg-files.img (bare reg_file_entry records, CRIU before 3.15)', async () => {
    const entry = RegFileEntry.encode(
      RegFileEntry.fromObject({
        id: 7,
        flags: 0o100000,
        pos: 0,
        fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
        name: Buffer.from(LIBC),
        size: 2029592,
        mode: 0o100755,
        build_id: buildIdToWords('eebe5d5f4b608b8a53ec446b63981bba373ca0ca'),
      }),
    ).finish();
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-'));
    await writeFile(join(dir, 'reg-files.img'), criuImage(REG_FILES_MAGIC, [Buffer.from(entry)]));
    await copyFile(join(FIXTURE, 'pstree.img'), join(dir, 'pstree.img'));
    const cp = await readCheckpoint(dir);
    expect(cp.image).toBe('reg-files.img');
    expect(cp.files).toEqual([
      {
        path: LIBC,
        id: 7,
        size: 2029592,
        stMode: 0o100755,
        buildId: 'eebe5d5f4b608b8a53ec446b63981bba373ca0ca',
      },
    ]);
  });

  it('refuses a wrong magic, naming the file and both magics', () => {
    const bad = criuImage(REG_FILES_MAGIC, []);
    expect(errorLine(() => parseFilesImg(bad, '/x/files.img'))).toBe(
      'error: /x/files.img: bad magic 0x54564319 0x50363636 (expect 0x54564319 0x56303138)',
    );
  });

  it('refuses a truncated entry', () => {
    const buf = readFileSync(join(FIXTURE, 'files.img'));
    expect(() => parseFilesImg(buf.subarray(0, buf.length - 3), 'files.img')).toThrow(
      /claims \d+ bytes, \d+ left/,
    );
  });

  it('refuses garbage where protobuf should be', () => {
    expect(() =>
      parseFilesImg(criuImage(FILES_MAGIC, [Buffer.from([0xff, 0xff, 0xff])]), 'files.img'),
    ).toThrow(/entry 1 is not a valid file_entry/);
  });

  it('refuses paths no lockfile may name, and leaves /proc, /sys and /dev out with a warning', async () => {
    const entry = (name: string): Buffer =>
      Buffer.from(
        RegFileEntry.encode(
          RegFileEntry.fromObject({
            id: 7,
            flags: 0,
            pos: 0,
            fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
            name: Buffer.from(name),
            size: 10,
            mode: 0o100644,
          }),
        ).finish(),
      );
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-'));
    await copyFile(join(FIXTURE, 'pstree.img'), join(dir, 'pstree.img'));
    await writeFile(
      join(dir, 'reg-files.img'),
      criuImage(REG_FILES_MAGIC, [entry('/proc/kcore'), entry(LIBC)]),
    );
    const warnings: string[] = [];
    const { needed } = await loadCheckpoint(dir, (m) => warnings.push(m));
    expect(needed.map((n) => n.path)).toEqual([LIBC]);
    expect(warnings).toEqual([
      'reg-files.img records /proc/kcore: not compared, files under /proc, /sys and /dev are not files a package or criu-lock controls',
    ]);
    await writeFile(join(dir, 'reg-files.img'), criuImage(REG_FILES_MAGIC, [entry('etc/passwd')]));
    expect(await asyncErrorLine(loadCheckpoint(dir, () => undefined))).toBe(
      `error: ${dir}/reg-files.img: the path "etc/passwd" must be an absolute path`,
    );
    await writeFile(join(dir, 'reg-files.img'), criuImage(REG_FILES_MAGIC, [entry('/usr/../etc/passwd')]));
    await expect(loadCheckpoint(dir, () => undefined)).rejects.toThrow(/must be normalised/);
  });

  it('says what a pstree.img that is a directory is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-'));
    await writeFile(join(dir, 'reg-files.img'), criuImage(REG_FILES_MAGIC, []));
    await mkdir(join(dir, 'pstree.img'));
    expect(await asyncErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/pstree.img: is a directory, not a regular file`,
    );
  });

  it('says what a directory without images is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-'));
    await expect(readCheckpoint(dir)).rejects.toThrow(/no files\.img or reg-files\.img/);
  });

  it('build-ID words round-trip (CRIU copies the note into 32-bit words)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 16 }).map((a) => Buffer.from(a).toString('hex')),
        (hex) => {
          const padded = hex.padEnd(Math.ceil(hex.length / 8) * 8, '0');
          expect(buildIdFromWords(buildIdToWords(hex))).toBe(padded);
        },
      ),
    );
  });
});

describe('comparing a host with what the checkpoint needs', () => {
  const needed = neededFiles({
    dir: FIXTURE,
    image: 'files.img',
    files: parseFilesImg(readFileSync(join(FIXTURE, 'files.img'))),
    pids: [22212],
  });
  const want = new Map(needed.map((n) => [n.path, n.entry]));
  const same = (path: string) =>
    elf(path, want.get(path)!.size!, want.get(path)!.mode!, want.get(path)!.buildId ?? null);

  it('finds nothing on a host with the same files', () => {
    expect(compareCheckpoint(needed, makeFacts({ files: [TOOL, LD, LIBC, LIBFLEET].map(same) }))).toEqual([]);
  });

  it("prints CRIU's own lines: bad size, bad mode, bad build-ID, missing", () => {
    const facts = makeFacts({
      files: [
        elf(LIBC, 1922136, '0755', 'aa'),
        { ...same(LIBFLEET), mode: '0755' },
        { ...same(LD), buildId: 'bb' },
      ],
    });
    const owners = new Map([[LIBC, 'libc6:amd64']]);
    const lines = compareCheckpoint(needed, facts, owners).map((f) =>
      f.type === 'file' ? [f.package, f.criu] : [],
    );
    expect(lines).toEqual([
      [null, "Can't open file usr/bin/fleet-tool on restore: No such file or directory"],
      [null, 'File usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 has bad build-ID'],
      ['libc6:amd64', 'File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232)'],
      [null, 'File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad mode 0100755 (expect 0100644)'],
    ]);
  });
});

describe('owners and the lock a checkpoint needs', () => {
  it('maps /usr-merge aliases both ways', () => {
    expect(aliasOf(LIBC)).toBe('/lib/x86_64-linux-gnu/libc.so.6');
    expect(aliasOf('/lib/x86_64-linux-gnu/libc.so.6')).toBe(LIBC);
    expect(aliasOf('/usr/share/zoneinfo/UTC')).toBeUndefined();
    expect(ownerQueryPaths([LIBC, TOOL])).toEqual([
      LIBC,
      '/lib/x86_64-linux-gnu/libc.so.6',
      TOOL,
      '/bin/fleet-tool',
    ]);
  });

  it('parses dpkg-query -S, answering a path through its alias', () => {
    const out = [
      'libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6',
      'diversion by dash from: /bin/sh',
      'fleet-bin: /usr/bin/fleet-tool',
      'libfoo1:amd64, libfoo1:i386: /usr/share/doc/x',
    ].join('\n');
    const owners = parseOwners(out, [LIBC, TOOL, '/usr/share/doc/x', '/usr/lib/locale/locale-archive']);
    expect([...owners]).toEqual([
      [LIBC, 'libc6:amd64'],
      [TOOL, 'fleet-bin'],
      ['/usr/share/doc/x', 'libfoo1:amd64'],
    ]);
  });

  it('locks the owners at the golden versions, the files as the checkpoint recorded them, the rest as unmanaged', () => {
    const needed = [
      { path: LIBC, entry: { size: 1926232, mode: '0755', buildId: 'aa' } },
      { path: TOOL, entry: { size: 16360, mode: '0755', buildId: 'bb' } },
      { path: '/opt/app/libx.so', entry: { size: 10, mode: '0644' } },
    ];
    const facts = makeFacts({
      packages: {
        'libc6:amd64': '2.36-9+deb12u14',
        'fleet-bin:amd64': pkg('fleet-bin:amd64', '2.31-0ubuntu9.14', { multiArch: 'no' }),
      },
      // The golden node's libc differs from the checkpoint: a warning, the checkpoint wins.
      files: [
        elf(LIBC, 1922136, '0755', 'cc'),
        elf(TOOL, 16360, '0755', 'bb'),
        { path: '/opt/app/libx.so', kind: 'file', size: 10, mode: '0644' },
      ],
    });
    const owners = new Map([
      [LIBC, 'libc6:amd64'],
      [TOOL, 'fleet-bin'],
    ]);
    const { lock, warnings } = buildCheckpointLock(needed, [31, 7], owners, facts, {
      host: 'node01',
      generatedAt: '2026-11-29T00:00:00Z',
    });
    expect(lock.scope).toEqual({ kind: 'checkpoint', pids: [7, 31] });
    expect(lock.packages['libc6:amd64']).toEqual({
      version: '2.36-9+deb12u14',
      files: { [LIBC]: needed[0]!.entry },
    });
    expect(lock.packages['fleet-bin:amd64']?.files).toEqual({ [TOOL]: needed[1]!.entry });
    expect(lock.unmanaged).toEqual({ '/opt/app/libx.so': { size: 10, mode: '0644' } });
    expect(warnings).toEqual([
      'golden node node01 differs from the checkpoint: File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232); converging a fleet to it will not make this checkpoint restore',
      '/opt/app/libx.so belongs to no package on node01: locked as unmanaged (apply cannot provide it)',
    ]);
    // The lockfile format carries the new scope: written, read back, same digest.
    const text = serializeLock(lock);
    expect(text).toContain('scope: {kind: checkpoint, pids: [7, 31]}');
    expect(parseLock(text, 'criu-lock.yaml').digest).toBe(lock.digest);
  });

  it('refuses a checkpoint without a process tree', () => {
    expect(() =>
      buildCheckpointLock([], [], new Map(), makeFacts(), { host: 'g', generatedAt: 'x' }),
    ).toThrow(/no pstree\.img/);
  });
});
