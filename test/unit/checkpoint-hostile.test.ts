/**
 * Checkpoint images that are odd, hostile or corrupt. The reader accepts exactly what CRIU checks
 * at restore (criu/files-reg.c: mode always, size unless the file was open O_WRONLY|O_APPEND,
 * build-ID when recorded) and refuses the rest with one input error naming the image, before any
 * host is contacted.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { criuImage } from '../helpers/criu-image.js';
import {
  FileEntry,
  FILES_MAGIC,
  MAX_IMAGE_BYTES,
  MAX_IMAGE_ENTRIES,
  parseFilesImg,
  PSTREE_MAGIC,
  PstreeEntry,
  readCheckpoint,
  type Checkpoint,
} from '../../src/checkpoint/images.js';
import { buildCheckpointLock } from '../../src/checkpoint/lock.js';
import { compareCheckpoint, MAX_NEEDED_FILES, neededFiles } from '../../src/checkpoint/needs.js';
import { main } from '../../src/cli/main.js';
import { loadCheckpoint, ownerQueryBatches, queryOwners } from '../../src/commands/checkpoint.js';
import { CriuLockError, formatError } from '../../src/errors.js';
import type { CommandResult, Transport } from '../../src/transport/types.js';
import { fakeFleet, recordingIo, type FakeFile, type FakeFleet } from '../helpers/fake-fleet.js';
import { elf, makeFacts } from './core-fixtures.js';

const FIXTURE = join(import.meta.dirname, '../fixtures/checkpoint');
const TOOL = '/usr/bin/fleet-tool';
const LOG = '/var/log/fleet-tool.log';
const O_WRONLY_APPEND = 0o2001;

interface Reg {
  name: string | Buffer;
  size?: number | string;
  mode?: number;
  buildId?: number[];
  flags?: number;
}

/** A file_entry of type REG as CRIU writes it; `size` and `mode` absent when not given. */
function reg(id: number, r: Reg): Uint8Array {
  return FileEntry.encode(
    FileEntry.fromObject({
      type: 1,
      id,
      reg: {
        id,
        flags: r.flags ?? 0,
        pos: 0,
        fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
        name: typeof r.name === 'string' ? Buffer.from(r.name) : r.name,
        ...(r.size !== undefined ? { size: r.size } : {}),
        ...(r.mode !== undefined ? { mode: r.mode } : {}),
        ...(r.buildId !== undefined ? { build_id: r.buildId } : {}),
      },
    }),
  ).finish();
}

const tool = (id = 1): Uint8Array => reg(id, { name: TOOL, size: 16360, mode: 0o100755 });

/** A checkpoint directory: files.img of these entries and the fixture's pstree.img. */
async function checkpointDir(entries: Uint8Array[], opts: { pstree?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-hostile-'));
  await writeFile(join(dir, 'files.img'), criuImage(FILES_MAGIC, entries));
  if (opts.pstree !== false) await copyFile(join(FIXTURE, 'pstree.img'), join(dir, 'pstree.img'));
  return dir;
}

/** The first line users see for what the promise rejects with; it must be an input error. */
async function inputErrorLine(p: Promise<unknown>): Promise<string> {
  const err: unknown = await p.then(
    () => new Error('did not throw'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CriuLockError);
  expect((err as CriuLockError).code).toBe('input');
  return formatError(err).split('\n')[0]!;
}

function hintOf(err: unknown): string | undefined {
  return (err as CriuLockError).hint;
}

async function cli(fleet: FakeFleet, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo();
  const { loadInventory, openTransport, clock } = fleet.deps(io);
  const code = await main([...argv, '-i', 'inventory.yaml'], io, { loadInventory, openTransport, clock });
  return { code, out: io.stdout, err: io.stderr };
}

const hostWith = (files: Record<string, FakeFile>) => ({ installed: {}, files, owners: {} });

describe('a regular file CRIU recorded no size of (open O_WRONLY|O_APPEND, a log)', () => {
  const entries = [tool(), reg(2, { name: LOG, mode: 0o100640, flags: O_WRONLY_APPEND })];
  const toolFile = { size: 16360, mode: '0755' };

  it('is still needed: CRIU opens it and compares its mode', async () => {
    const { needed } = await loadCheckpoint(await checkpointDir(entries), () => undefined);
    expect(needed).toEqual([
      { path: TOOL, entry: { size: 16360, mode: '0755' } },
      { path: LOG, entry: { mode: '0640' } },
    ]);
  });

  it('check fails a host without it or with another mode, and passes one where only its size differs', async () => {
    const dir = await checkpointDir(entries);
    const fleet = fakeFleet({
      'node-a': hostWith({ [TOOL]: toolFile, [LOG]: { size: 99999, mode: '0640' } }),
      'node-b': hostWith({ [TOOL]: toolFile }),
      'node-c': hostWith({ [TOOL]: toolFile, [LOG]: { size: 10, mode: '0644' } }),
    });
    const { code, out } = await cli(fleet, ['check', '--checkpoint', dir]);
    expect(code).toBe(2);
    expect(out).toMatch(/ok +node-a/);
    expect(out).toContain("Can't open file var/log/fleet-tool.log on restore: No such file or directory");
    expect(out).toContain('File var/log/fleet-tool.log has bad mode 0100644 (expect 0100640)');
  });

  it('generate leaves it out of the lock (an entry needs a size) and says so', () => {
    const needed = [
      { path: TOOL, entry: { size: 16360, mode: '0755' } },
      { path: LOG, entry: { mode: '0640' } },
    ];
    const facts = makeFacts({
      files: [
        { path: TOOL, kind: 'file', size: 16360, mode: '0755' },
        { path: LOG, kind: 'file', size: 5, mode: '0640' },
      ],
    });
    const { lock, warnings } = buildCheckpointLock(needed, [1], new Map(), facts, {
      host: 'g',
      generatedAt: '2026-11-29T00:00:00Z',
    });
    expect(lock.unmanaged).toEqual({ [TOOL]: { size: 16360, mode: '0755' } });
    expect(warnings).toContain(
      `${LOG}: the checkpoint records no size (a file open for appending, such as a log): not locked; check --checkpoint compares the rest`,
    );
  });
});

describe('names', () => {
  it('refuses a name that is not UTF-8 instead of folding it into U+FFFD', async () => {
    const dir = await checkpointDir([
      reg(1, { name: Buffer.from([0x2f, 0x61, 0xff]), size: 1, mode: 0o100644 }),
      reg(2, { name: Buffer.from([0x2f, 0x61, 0xfe]), size: 2, mode: 0o100644 }),
    ]);
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/files.img: entry 1 names a file "/a\\xff" that is not UTF-8`,
    );
  });

  it.each([
    ['a newline', '/opt/app/evil\nlibc6:amd64: /usr/bin/x'],
    ['a carriage return', '/opt/app/a\rb'],
  ])('refuses a path with %s at load, the rule queryOwners applies, before any host', async (_, name) => {
    const dir = await checkpointDir([tool(), reg(2, { name, size: 1, mode: 0o100644 })]);
    const fleet = fakeFleet({ 'node-a': hostWith({}) });
    const { code, err } = await cli(fleet, ['check', '--checkpoint', dir]);
    expect(code).toBe(1);
    expect(err.split('\n')[0]).toBe(
      `error: ${dir}/files.img: the path ${JSON.stringify(name)} holds a newline, carriage return or NUL, which \`dpkg-query -S\` cannot answer for`,
    );
    expect(fleet.opened).toEqual([]);
  });
});

describe('two records of one path', () => {
  const cp = (...files: Checkpoint['files']): Checkpoint => ({
    dir: '/c',
    image: 'files.img',
    files,
    pids: [1],
  });

  it('identical ones are one demand; a size one record lacks is demanded by the other', () => {
    expect(
      neededFiles(
        cp(
          { path: LOG, id: 1, stMode: 0o100640 },
          { path: LOG, id: 2, stMode: 0o100640, size: 7 },
          { path: LOG, id: 3, stMode: 0o100640, size: 7 },
        ),
      ),
    ).toEqual([{ path: LOG, entry: { size: 7, mode: '0640' } }]);
  });

  it.each([
    ['sizes', { size: 8 }, 'mode 0100640, size 7; mode 0100640, size 8'],
    ['modes', { stMode: 0o100600 }, 'mode 0100640, size 7; mode 0100600, size 7'],
    ['build-IDs', { buildId: 'bb' }, 'mode 0100640, size 7, build-ID aa; mode 0100640, size 7, build-ID bb'],
  ])('refuses two that differ in %s: no file matches both, so CRIU fails everywhere', (_, other, what) => {
    const first = {
      path: LOG,
      id: 1,
      stMode: 0o100640,
      size: 7,
      ...(what.includes('build-ID') ? { buildId: 'aa' } : {}),
    };
    let err: unknown;
    try {
      neededFiles(cp(first, { ...first, id: 2, ...other }));
    } catch (e) {
      err = e;
    }
    expect(formatError(err).split('\n')[0]).toBe(
      `error: /c/files.img: ${LOG} is recorded twice, differently (${what}): no file matches both, so CRIU would fail to restore it on any host`,
    );
  });
});

describe('image files that are not regular files, or too large', () => {
  it('refuses a FIFO instead of waiting on it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-hostile-'));
    execFileSync('mkfifo', [join(dir, 'files.img')]);
    const err = await readCheckpoint(dir).catch((e: unknown) => e);
    expect(formatError(err).split('\n')[0]).toBe(`error: ${dir}/files.img: is a FIFO, not a regular file`);
    expect(hintOf(err)).not.toMatch(/permission/);
  });

  it('refuses a link to /dev/zero instead of reading it without end', async () => {
    const dir = await checkpointDir([tool()], { pstree: false });
    await symlink('/dev/zero', join(dir, 'pstree.img'));
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/pstree.img: is a device, not a regular file`,
    );
  });

  it('refuses an image over the cap before reading it', async () => {
    const dir = await checkpointDir([tool()]);
    await truncate(join(dir, 'files.img'), MAX_IMAGE_BYTES + 1);
    const err = await readCheckpoint(dir).catch((e: unknown) => e);
    expect(formatError(err).split('\n')[0]).toBe(
      `error: ${dir}/files.img: is ${MAX_IMAGE_BYTES + 1} bytes, more than the 256 MiB criu-lock reads of one image`,
    );
    expect(hintOf(err)).toMatch(/right directory/);
  });

  it('gives a symbolic link loop its own hint, not "check the permissions"', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'criu-lock-ckpt-hostile-'));
    await symlink('loop.img', join(dir, 'files.img'));
    await symlink('files.img', join(dir, 'loop.img'));
    const err = await readCheckpoint(dir).catch((e: unknown) => e);
    expect(formatError(err).split('\n')[0]).toBe(
      `error: ${dir}/files.img: cannot read: too many levels of symbolic links`,
    );
    expect(hintOf(err)).not.toMatch(/permission/);
  });
});

describe('caps on what one checkpoint may hold', () => {
  it(`refuses more than ${MAX_IMAGE_ENTRIES} entries, naming the image`, () => {
    // file_entry {type: 2 (not REG), id: 1}: the smallest valid entry.
    const one = Buffer.from([4, 0, 0, 0, 0x08, 0x02, 0x10, 0x01]);
    const buf = Buffer.concat([
      criuImage(FILES_MAGIC, []),
      Buffer.alloc(one.length * (MAX_IMAGE_ENTRIES + 1)),
    ]);
    for (let i = 0; i <= MAX_IMAGE_ENTRIES; i++) one.copy(buf, 8 + i * one.length);
    let err: unknown;
    try {
      parseFilesImg(buf, '/c/files.img');
    } catch (e) {
      err = e;
    }
    expect(formatError(err).split('\n')[0]).toBe(
      `error: /c/files.img: more than ${MAX_IMAGE_ENTRIES} entries`,
    );
  });

  it(`refuses more than ${MAX_NEEDED_FILES} regular files`, () => {
    const files = Array.from({ length: MAX_NEEDED_FILES + 1 }, (_, i) => ({
      path: `/f/${i}`,
      id: i,
      stMode: 0o100644,
      size: 1,
    }));
    expect(() => neededFiles({ dir: '/c', image: 'files.img', files, pids: [1] })).toThrow(
      `more than ${MAX_NEEDED_FILES} regular files recorded`,
    );
  });
});

describe('values no CRIU writes', () => {
  it.each([
    ['a size above 2^53', { size: '9007199254740993' }, 'records size 9007199254740993, more than 2^53 - 1'],
    [
      'a size of 2^64 - 1',
      { size: '18446744073709551615' },
      'records size 18446744073709551615, more than 2^53 - 1',
    ],
    [
      'a build-ID of 68 bytes',
      { buildId: new Array<number>(17).fill(1) },
      'records a build-ID of 68 bytes (at most 64)',
    ],
    ['mode bits outside S_IFMT|07777', { mode: 0o1100644 }, 'records mode 01100644, not an st_mode'],
  ])('refuses %s, naming the image', async (_, extra, what) => {
    const dir = await checkpointDir([tool(), reg(2, { name: '/opt/x', size: 1, mode: 0o100644, ...extra })]);
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/files.img: entry 2 (/opt/x) ${what}`,
    );
  });

  it('refuses a name longer than any path (PATH_MAX), before decoding it', async () => {
    const dir = await checkpointDir([
      tool(),
      reg(2, { name: `/${'a'.repeat(5000)}`, size: 1, mode: 0o100644 }),
    ]);
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/files.img: entry 2 names a file of 5001 bytes, longer than any path (4095 bytes)`,
    );
  });

  it('refuses a process tree naming pid 0', async () => {
    const dir = await checkpointDir([tool()], { pstree: false });
    const entry = PstreeEntry.encode(PstreeEntry.fromObject({ pid: 0, ppid: 0, pgid: 0, sid: 0 })).finish();
    await writeFile(join(dir, 'pstree.img'), criuImage(PSTREE_MAGIC, [entry]));
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(`error: ${dir}/pstree.img: entry 1 records pid 0`);
  });

  it('accepts a 64-byte build-ID and the largest exact size', async () => {
    const dir = await checkpointDir([
      reg(1, {
        name: TOOL,
        size: Number.MAX_SAFE_INTEGER,
        mode: 0o100755,
        buildId: new Array<number>(16).fill(1),
      }),
    ]);
    const cp = await readCheckpoint(dir);
    expect(cp.files[0]?.size).toBe(Number.MAX_SAFE_INTEGER);
    expect(cp.files[0]?.buildId).toHaveLength(128);
  });

  it('refuses a regular file_entry without its reg_file_entry (CRIU would find nothing to open)', async () => {
    const bare = FileEntry.encode(FileEntry.fromObject({ type: 1, id: 5 })).finish();
    const dir = await checkpointDir([tool(), bare]);
    expect(await inputErrorLine(readCheckpoint(dir))).toBe(
      `error: ${dir}/files.img: entry 2 is a regular file without its reg_file_entry`,
    );
  });

  it('refuses a checkpoint without pstree.img, or with an empty one (CRIU restores no process)', async () => {
    const none = await checkpointDir([tool()], { pstree: false });
    expect(await inputErrorLine(readCheckpoint(none))).toBe(
      `error: ${none}/pstree.img: no such file: the checkpoint has no process tree`,
    );
    const empty = await checkpointDir([tool()], { pstree: false });
    await writeFile(join(empty, 'pstree.img'), criuImage(PSTREE_MAGIC, []));
    expect(await inputErrorLine(readCheckpoint(empty))).toBe(
      `error: ${empty}/pstree.img: records no process`,
    );
  });
});

describe("build-IDs whose length is not a multiple of 4 (CRIU compares only the note's bytes)", () => {
  // A 6-byte note 01..06, stored as two words with two bytes of padding.
  const needed = [{ path: '/opt/odd.so', entry: { size: 100, mode: '0755', buildId: '0102030405060000' } }];

  it.each([
    ['the same 6-byte note', '010203040506', 0],
    ['another 6-byte note', '010203040507', 1],
    ['a 4-byte note (one word, not two)', '01020304', 1],
    ['a 12-byte note', '010203040506000000000000', 1],
  ])('%s', (_, host, findings) => {
    const facts = makeFacts({ files: [elf('/opt/odd.so', 100, '0755', host)] });
    expect(compareCheckpoint(needed, facts)).toHaveLength(findings);
  });
});

describe('dpkg-query -S in command lines a host accepts', () => {
  it('splits many paths into runs of at most 16 KiB, keeping every path', () => {
    const paths = Array.from({ length: 3000 }, (_, i) => `/usr/lib/x86_64-linux-gnu/lib-number-${i}.so.1`);
    const batches = ownerQueryBatches(paths);
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches)
      expect(b.reduce((n, p) => n + Buffer.byteLength(p) + 1, 0)).toBeLessThanOrEqual(16384);
    expect(batches.flat()).toEqual(paths);
  });

  it('asks each run and merges the answers', async () => {
    const paths = Array.from({ length: 1000 }, (_, i) => `/opt/app/lib-number-${i}.so`);
    const calls: string[][] = [];
    const t: Transport = {
      host: 'h',
      exec: (argv) => {
        calls.push([...argv]);
        const asked = argv.slice(argv.indexOf('--') + 1);
        const stdout = asked.map((p) => `app: ${p}`).join('\n');
        return Promise.resolve({
          command: '',
          exitCode: 0,
          stdout,
          stderr: '',
          durationMs: 1,
          timedOut: false,
        } satisfies CommandResult);
      },
      putFile: () => Promise.reject(new Error('unused')),
      close: () => Promise.resolve(),
    };
    const owners = await queryOwners(t, paths);
    expect(calls.length).toBeGreaterThan(1);
    expect(owners.size).toBe(1000);
  });
});
