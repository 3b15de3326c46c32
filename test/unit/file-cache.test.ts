/**
 * The per-run cache of files every connection reads (known_hosts, identity files): parsed once
 * while the file is unchanged, parsed again after any write, and errors never kept.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clearFileCache, readParsed } from '../../src/transport/file-cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-file-cache-'));
  clearFileCache();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readParsed', () => {
  it('parses an unchanged file once, and again after every change', async () => {
    const file = join(dir, 'known_hosts');
    writeFileSync(file, 'a\n');
    let parses = 0;
    const parse = (b: Buffer): string => {
      parses++;
      return b.toString();
    };
    const first = await Promise.all([1, 2, 3].map(() => readParsed(file, 'k', parse)));
    expect(first).toEqual(['a\n', 'a\n', 'a\n']);
    expect(parses).toBe(1);
    appendFileSync(file, 'b\n');
    expect(await readParsed(file, 'k', parse)).toBe('a\nb\n');
    expect(parses).toBe(2);
    // Same size, new content: the stamp (mtime/ctime) still moves.
    writeFileSync(file, 'c\nd\n');
    expect(await readParsed(file, 'k', parse)).toBe('c\nd\n');
    expect(parses).toBe(3);
    // A file replaced by rename is a new inode.
    writeFileSync(join(dir, 'new'), 'e\n');
    rmSync(file);
    const { renameSync } = await import('node:fs');
    renameSync(join(dir, 'new'), file);
    expect(await readParsed(file, 'k', parse)).toBe('e\n');
    // Another kind of reader of the same file parses for itself.
    expect(await readParsed(file, 'other', (b) => b.length)).toBe(2);
  });

  it('passes errors through and keeps nothing for them', async () => {
    const file = join(dir, 'id');
    await expect(readParsed(file, 'k', (b) => b)).rejects.toMatchObject({ code: 'ENOENT' });
    writeFileSync(file, 'x');
    let fail = true;
    const parse = (b: Buffer): string => {
      if (fail) throw new Error('bad');
      return b.toString();
    };
    await expect(readParsed(file, 'k', parse)).rejects.toThrow('bad');
    fail = false;
    expect(await readParsed(file, 'k', parse)).toBe('x');
  });
});
