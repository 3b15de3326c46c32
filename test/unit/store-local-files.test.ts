/**
 * The package store's local side against hostile or broken files: what is read is a regular
 * file of the manifest's size (a FIFO, a directory or a device is refused, not waited on or read
 * without end), vendor refuses a manifest it cannot read instead of vendoring over it, vendor's
 * options are checked before the golden node is read, and large files cross in chunks.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { readStoreFile, StoreFileError } from '../../src/store/local-file.js';
import { serializeManifest, type Manifest } from '../../src/store/manifest.js';
import { fetchFile } from '../../src/store/remote.js';
import { pruneStore } from '../../src/store/vendor.js';
import { createLocalTransport } from '../../src/transport/local-transport.js';
import { caught } from '../helpers/caught.js';
import { fakeFleet, recordingIo, type FakeFleet } from '../helpers/fake-fleet.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-store-local-'));
});

async function cli(fleet: FakeFleet, argv: string[]): Promise<{ code: number; err: string }> {
  const io = recordingIo();
  const { loadInventory, openTransport, clock } = fleet.deps(io);
  const code = await main([...argv, '-i', 'inventory.yaml'], io, { loadInventory, openTransport, clock });
  return { code, err: io.stderr };
}

const node = { installed: { 'libc6:amd64': '2.36-9' }, available: { 'libc6:amd64': ['2.36-9'] }, files: {} };

describe('readStoreFile', () => {
  it('reads a regular file, through a link, of the size the manifest says', () => {
    writeFileSync(join(dir, 'a'), 'deb bytes');
    symlinkSync(join(dir, 'a'), join(dir, 'link'));
    expect(readStoreFile(join(dir, 'link'), 9).toString()).toBe('deb bytes');
  });

  it('refuses a FIFO, a directory, a device and a wrong size at once, naming the file', () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    mkdirSync(join(dir, 'dir'));
    symlinkSync('/dev/zero', join(dir, 'zero'));
    writeFileSync(join(dir, 'big'), Buffer.alloc(100));
    const why = (name: string, size?: number): string => {
      const e = caught(() => readStoreFile(join(dir, name), size));
      expect(e).toBeInstanceOf(StoreFileError);
      return (e as StoreFileError).message;
    };
    expect(why('fifo')).toBe(
      `package store file ${join(dir, 'fifo')} is not a regular file (a device, FIFO or socket)`,
    );
    expect(why('dir')).toMatch(/dir is not a regular file \(a directory\)$/);
    expect(why('zero')).toMatch(/zero is not a regular file \(a device, FIFO or socket\)$/);
    expect(why('big', 10)).toMatch(/big has 100 bytes, the manifest says 10$/);
    expect(why('missing')).toMatch(/missing is missing$/);
  });
});

describe('pruneStore', () => {
  it('removes unnamed .debs and temporary files of runs that are gone; leaves anything else', () => {
    const keep = 'a'.repeat(64);
    const drop = 'b'.repeat(64);
    const m: Manifest = {
      storeVersion: 1,
      packages: {
        'x:amd64': { version: '1', architecture: 'amd64', sha256: keep, size: 1, origin: 'golden-apt' },
      },
    };
    writeFileSync(join(dir, `${keep}.deb`), 'k');
    writeFileSync(join(dir, `${drop}.deb`), 'd');
    mkdirSync(join(dir, `${'c'.repeat(64)}.deb`));
    // pid 4194304 is above Linux's pid_max limit: no process has it.
    writeFileSync(join(dir, `manifest.yaml.tmp-4194304-0123456789ab`), 'stale');
    writeFileSync(join(dir, `${keep}.deb.tmp-${process.pid}-0123456789ab`), 'a run still writing');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    pruneStore(dir, m);
    expect(existsSync(join(dir, `${keep}.deb`))).toBe(true);
    expect(existsSync(join(dir, `${drop}.deb`))).toBe(false);
    expect(existsSync(join(dir, `${'c'.repeat(64)}.deb`))).toBe(true);
    expect(existsSync(join(dir, 'manifest.yaml.tmp-4194304-0123456789ab'))).toBe(false);
    expect(existsSync(join(dir, `${keep}.deb.tmp-${process.pid}-0123456789ab`))).toBe(true);
    expect(existsSync(join(dir, 'notes.txt'))).toBe(true);
  });
});

describe('fetchFile', () => {
  it('reads a file in chunks through a real shell, a partial last chunk and an exact multiple alike', async () => {
    const t = createLocalTransport('local');
    for (const size of [0, 999, 1000, 3000, 3500]) {
      const bytes = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + size) % 256));
      writeFileSync(join(dir, `f${size}`), bytes);
      expect((await fetchFile(t, join(dir, `f${size}`), 1000)).equals(bytes)).toBe(true);
    }
  });
});

describe('vendor and generate --vendor: local problems before any host work', () => {
  it('refuses a manifest that does not read, and leaves it as it was (no golden node contacted)', async () => {
    const fleet = fakeFleet({ 'node-a': node });
    const lock = join(dir, 'criu-lock.yaml');
    writeFileSync(lock, 'placeholder');
    const g = await cli(fleet, ['generate', '-o', lock]);
    expect(g.code).toBe(0);
    const store = join(dir, 'criu-lock.debs');
    mkdirSync(store);
    const foreign = 'apiVersion: v1\nkind: ConfigMap\n';
    writeFileSync(join(store, 'manifest.yaml'), foreign);
    fleet.opened.length = 0;
    const r = await cli(fleet, ['vendor', '-l', lock]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/manifest\.yaml:1: is not a criu-lock package store manifest/);
    expect(readFileSync(join(store, 'manifest.yaml'), 'utf8')).toBe(foreign);
    expect(fleet.opened).toEqual([]);
    writeFileSync(
      join(store, 'manifest.yaml'),
      `<<<<<<< HEAD\n${serializeManifest({ storeVersion: 1, packages: {} })}`,
    );
    expect((await cli(fleet, ['vendor', '-l', lock])).code).toBe(1);
    // A manifest that is a link to nothing is not "no manifest": vendoring would prune the store.
    rmSync(join(store, 'manifest.yaml'));
    symlinkSync('/nonexistent/manifest.yaml', join(store, 'manifest.yaml'));
    const kept = join(store, `${'d'.repeat(64)}.deb`);
    writeFileSync(kept, 'a stored .deb');
    const dangling = await cli(fleet, ['vendor', '-l', lock]);
    expect(dangling.code).toBe(1);
    expect(dangling.err).toContain('manifest.yaml is a symbolic link to nothing');
    expect(readFileSync(kept, 'utf8')).toBe('a stored .deb');
    expect(lstatSync(join(store, 'manifest.yaml')).isSymbolicLink()).toBe(true);
    const file = join(dir, 'afile');
    writeFileSync(file, 'x');
    const f = await cli(fleet, ['vendor', '-l', lock, '--store', file]);
    expect(f.code).toBe(1);
    expect(f.err).toContain(`cannot make directory ${file}: ${file} is not a directory`);
    symlinkSync(join(dir, 'nowhere'), join(dir, 'dangstore'));
    const d = await cli(fleet, ['vendor', '-l', lock, '--store', join(dir, 'dangstore')]);
    expect(d.code).toBe(1);
    expect(d.err).toContain('is a symbolic link to something that does not exist');
    expect(fleet.opened).toEqual([]);
  });

  it('generate refuses the store options without --vendor, and a bad --archive, before reading the golden node', async () => {
    const fleet = fakeFleet({ 'node-a': node });
    const lock = join(dir, 'criu-lock.yaml');
    for (const extra of [['--archive', 'http://mirror.invalid/debian'], ['--rebuild'], ['--store', dir]]) {
      const r = await cli(fleet, ['generate', '-o', lock, ...extra]);
      expect(r.code).toBe(1);
      expect(r.err).toContain('--archive, --rebuild and --store take effect only with --vendor');
    }
    const bad = await cli(fleet, ['generate', '-o', lock, '--vendor', '--archive', 'ftp://x y"z']);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('is not an http(s):// or file:/ URL');
    expect(fleet.opened).toEqual([]);
    expect(existsSync(lock)).toBe(false);
  });
});
