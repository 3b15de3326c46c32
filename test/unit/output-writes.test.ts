/**
 * `plan -o FILE` and `generate -o FILE` (writeOutputFile): the file is replaced whole or left as it
 * was. A full disk used to truncate the old plan or lockfile and leave part of the new one.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { writeOutputFile } from '../../src/commands/output-path.js';
import { CriuLockError } from '../../src/errors.js';

const root = mkdtempSync(join(tmpdir(), 'criu-lock-output-writes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(root, 'd-'));
});

const viteNode = resolve('node_modules/.bin/vite-node');

/** writeOutputFile in a child whose file size limit (ulimit -f, 512-byte blocks) is `blocks`. */
function writeLimited(path: string, bytes: number, blocks: number): { code?: string; message?: string } {
  const script = join(root, 'child.ts');
  writeFileSync(
    script,
    `import { writeOutputFile } from ${JSON.stringify(resolve('src/commands/output-path.ts'))};
try {
  await writeOutputFile(process.argv[2]!, 'n'.repeat(Number(process.argv[3])), '-o');
  process.stdout.write('{}');
} catch (e) {
  const { code, message } = e as { code: string; message: string };
  process.stdout.write(JSON.stringify({ code, message }));
}
`,
  );
  const r = spawnSync(
    'sh',
    ['-c', `trap "" XFSZ; ulimit -f ${blocks}; exec "$0" "$@"`, viteNode, script, path, String(bytes)],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { code?: string; message?: string };
}

describe('writeOutputFile (plan -o, generate -o)', () => {
  it.skipIf(!existsSync(viteNode))(
    'leaves the old file whole when the write fails (a full disk), and no temporary file',
    () => {
      const file = join(dir, 'plan.json');
      writeFileSync(file, 'old plan\n');
      chmodSync(file, 0o640);
      const r = writeLimited(file, 200_000, 100);
      expect(r).toEqual({
        code: 'usage',
        message: `cannot write ${file}: the file is too large for this system`,
      });
      expect(readFileSync(file, 'utf8')).toBe('old plan\n');
      expect(statSync(file).mode & 0o777).toBe(0o640);
      expect(readdirSync(dir)).toEqual(['plan.json']);
      // Under the limit the same call replaces it.
      expect(writeLimited(file, 1000, 100)).toEqual({});
      expect(readFileSync(file, 'utf8')).toBe('n'.repeat(1000));
    },
  );

  it("keeps the old file's mode, and a user's symbolic link stays one (its target is replaced)", async () => {
    const real = join(dir, 'real');
    mkdirSync(real);
    const target = join(real, 'lock.yaml');
    writeFileSync(target, 'old\n');
    chmodSync(target, 0o600);
    const link = join(dir, 'lock.yaml');
    symlinkSync('real/lock.yaml', link);
    await writeOutputFile(link, 'new\n', '-o');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('real/lock.yaml');
    expect(readFileSync(target, 'utf8')).toBe('new\n');
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(readdirSync(real)).toEqual(['lock.yaml']);
    // A link to a file not yet there: the file is made where it points.
    const ahead = join(dir, 'ahead.yaml');
    symlinkSync('real/later.yaml', ahead);
    await writeOutputFile(ahead, 'later\n', '-o');
    expect(readFileSync(join(real, 'later.yaml'), 'utf8')).toBe('later\n');
    expect(lstatSync(ahead).isSymbolicLink()).toBe(true);
  });

  it('writes to a device or a FIFO as a redirection would, never renaming over it', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo]);
    let got = '';
    reader.stdout.on('data', (d: Buffer) => (got += d.toString()));
    const ended = new Promise((r) => reader.on('exit', r));
    await writeOutputFile(fifo, 'through the fifo\n', '-o');
    await ended;
    expect(got).toBe('through the fifo\n');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    await writeOutputFile('/dev/null', 'gone\n', '-o');
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readdirSync(dir)).toEqual(['fifo']);
  });

  it('fails with one error naming the path and removes its temporary file', async () => {
    mkdirSync(join(dir, 'taken'));
    const err = await writeOutputFile(join(dir, 'taken'), 'x', '-o').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuLockError);
    expect(err).toMatchObject({
      code: 'usage',
      message: `cannot write ${join(dir, 'taken')}: it is a directory`,
    });
    expect(readdirSync(dir)).toEqual(['taken']);
    const missing = join(dir, 'no', 'such.json');
    await expect(writeOutputFile(missing, 'x', '-o')).rejects.toThrow(
      `cannot write ${missing}: no such directory`,
    );
  });
});
