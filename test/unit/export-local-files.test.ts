/**
 * `export ansible -o DIR` on the controller's own disk: a re-export never writes, chmods or removes
 * anything outside DIR (symbolic links inside it are refused before anything is written), and a
 * failed export (a full disk, a directory where a file goes, a dangling -o link) is one error line,
 * exit 1, with the previous export as it was.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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
import { main } from '../../src/cli/main.js';
import { EXPORT_MARKER } from '../../src/commands/export.js';
import { serializeLock } from '../../src/lock/lockfile.js';
import { serializeManifest, type Manifest } from '../../src/store/manifest.js';
import { recordingIo } from '../helpers/fake-fleet.js';
import { makeLock } from './core-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'criu-lock-export-local-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const lock = makeLock({
  packages: {
    'libc6:amd64': { version: '2.36-9+deb12u4' },
    'tzdata:all': { version: '2024a-0+deb12u1' },
  },
});

let work: string;
let lockPath: string;
beforeEach(() => {
  work = mkdtempSync(join(root, 'w-'));
  lockPath = join(work, 'criu-lock.yaml');
  writeFileSync(lockPath, serializeLock(lock));
});

const run = async (out: string): Promise<{ code: number; err: string }> => {
  const io = recordingIo();
  const code = await main(['export', 'ansible', '-l', lockPath, '-o', out], io);
  return { code, err: io.stderr };
};

/** Every entry under `dir` (links not followed) with its type, mode and content: to compare. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = join(rel, name);
      const st = lstatSync(join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(join(dir, r))}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else
        out[r] = `file ${mode} ${createHash('sha256')
          .update(readFileSync(join(dir, r)))
          .digest('hex')}`;
    }
  };
  walk('');
  return out;
}

/** One error line and its hint; no stack, no "internal error". */
function oneError(err: string): string {
  const lines = err.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^error: /);
  expect(lines.slice(1).every((l) => /^\s*hint: /.test(l))).toBe(true);
  expect(err).not.toMatch(/internal error|report it|\n\s+at /);
  return lines[0]!;
}

describe('export ansible -o DIR: symbolic links inside DIR', () => {
  it('refuses a file that is a link (its target was overwritten and made 0644), and writes nothing', async () => {
    const out = join(work, 'out');
    expect((await run(out)).code).toBe(0);
    const victim = join(work, 'victim');
    writeFileSync(victim, 'secret\n', { mode: 0o600 });
    chmodSync(victim, 0o600);
    rmSync(join(out, 'site.yml'));
    symlinkSync(victim, join(out, 'site.yml'));
    const before = snapshot(out);
    const r = await run(out);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toBe(
      `error: ${join(out, 'site.yml')} is a symbolic link; refusing to write the export through it`,
    );
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
    expect(statSync(victim).mode & 0o777).toBe(0o600);
    expect(snapshot(out)).toEqual(before);
  });

  it('refuses a linked directory (the role tree went elsewhere)', async () => {
    const out = join(work, 'out');
    expect((await run(out)).code).toBe(0);
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere);
    rmSync(join(out, 'roles'), { recursive: true });
    symlinkSync(elsewhere, join(out, 'roles'));
    const before = snapshot(out);
    const r = await run(out);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toContain(`${join(out, 'roles')} is a symbolic link`);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(snapshot(out)).toEqual(before);
  });

  it("never removes a stale file through a link: the marker's entries under a linked directory stay", async () => {
    const out = join(work, 'out');
    expect((await run(out)).code).toBe(0);
    const victimDir = join(work, 'victim-dir');
    mkdirSync(join(victimDir, 'sub'), { recursive: true });
    writeFileSync(join(victimDir, 'sub', 'keep'), 'keep\n');
    symlinkSync(victimDir, join(out, 'evil'));
    const marker = JSON.parse(readFileSync(join(out, EXPORT_MARKER), 'utf8')) as { files: string[] };
    marker.files.push('evil/sub/keep');
    writeFileSync(join(out, EXPORT_MARKER), JSON.stringify(marker));
    const r = await run(out);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toContain(`${join(out, 'evil')} is a symbolic link`);
    expect(readFileSync(join(victimDir, 'sub', 'keep'), 'utf8')).toBe('keep\n');
  });

  it('replaces nothing through a link the old way either: the marker itself may not be one', async () => {
    const out = join(work, 'out');
    expect((await run(out)).code).toBe(0);
    const victim = join(work, 'marker-victim');
    writeFileSync(victim, readFileSync(join(out, EXPORT_MARKER)));
    rmSync(join(out, EXPORT_MARKER));
    symlinkSync(victim, join(out, EXPORT_MARKER));
    const r = await run(out);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toContain(`${join(out, EXPORT_MARKER)} is a symbolic link`);
  });

  it('follows DIR itself when it is a link the user chose', async () => {
    const real = join(work, 'real');
    mkdirSync(real);
    const link = join(work, 'link');
    symlinkSync(real, link);
    expect((await run(link)).code).toBe(0);
    expect((await run(link)).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(existsSync(join(real, 'site.yml'))).toBe(true);
    expect(readdirSync(real).filter((e) => e.includes('.tmp-'))).toEqual([]);
  });
});

describe('export ansible -o DIR: a failed export', () => {
  it('refuses -o a link to nothing with one error, and makes nothing', async () => {
    const link = join(work, 'dangling');
    symlinkSync(join(work, 'nowhere'), link);
    const r = await run(link);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toBe(
      `error: ${link} is a symbolic link to ${join(work, 'nowhere')}, which does not exist`,
    );
    expect(existsSync(join(work, 'nowhere'))).toBe(false);
  });

  it("counts a killed export's staging directory as nothing of the user's, and removes it", async () => {
    const out = join(work, 'out');
    // pid_max is at most 2^22: no process has this pid.
    const left = join(out, `${EXPORT_MARKER}.tmp-999999999-0123456789ab`);
    mkdirSync(join(left, 'roles'), { recursive: true });
    writeFileSync(join(left, 'site.yml'), 'half\n');
    expect((await run(out)).code).toBe(0);
    expect(existsSync(left)).toBe(false);
    expect(readdirSync(out).filter((e) => e.includes('.tmp-'))).toEqual([]);
  });

  it('refuses a directory where a file goes before writing anything', async () => {
    const out = join(work, 'out');
    expect((await run(out)).code).toBe(0);
    rmSync(join(out, 'site.yml'));
    mkdirSync(join(out, 'site.yml'));
    const before = snapshot(out);
    const r = await run(out);
    expect(r.code).toBe(1);
    expect(oneError(r.err)).toBe(
      `error: ${join(out, 'site.yml')} is a directory where the export writes a file`,
    );
    expect(snapshot(out)).toEqual(before);
  });

  // A full disk, for real: the export runs in a child whose file size limit (ulimit -f) makes the
  // write of a large .deb fail (EFBIG), half-way through the project.
  const viteNode = resolve('node_modules/.bin/vite-node');
  it.skipIf(!existsSync(viteNode))(
    'leaves the previous export as it was when a write fails, with one error naming the file',
    () => {
      const out = join(work, 'out');
      const store = join(work, 'criu-lock.debs');
      mkdirSync(store);
      const small = Buffer.from('!<arch>\nsmall fake deb\n');
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      const write = (deb: Buffer): void => {
        writeFileSync(join(store, `${sha(deb)}.deb`), deb);
        const manifest: Manifest = {
          storeVersion: 1,
          packages: {
            'libc6:amd64': {
              version: '2.36-9+deb12u4',
              architecture: 'amd64',
              sha256: sha(deb),
              size: deb.length,
              origin: 'golden-cache',
            },
          },
        };
        writeFileSync(join(store, 'manifest.yaml'), serializeManifest(manifest));
      };
      const child = (o: string): { code: number; err: string } => {
        const script = join(work, 'child.ts');
        writeFileSync(
          script,
          `import { main } from ${JSON.stringify(resolve('src/cli/main.ts'))};
let err = '';
const code = await main(['export', 'ansible', '-l', ${JSON.stringify(lockPath)}, '-o', ${JSON.stringify(o)}], {
  out: () => undefined, err: (s: string) => void (err += s), isTTY: false,
});
process.stdout.write(JSON.stringify({ code, err }));
`,
        );
        // 400 blocks of 512 bytes: every file of the project fits, the 1 MiB .deb does not.
        const r = spawnSync('sh', ['-c', 'trap "" XFSZ; ulimit -f 400; exec "$0" "$@"', viteNode, script], {
          encoding: 'utf8',
        });
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { code: number; err: string };
      };
      write(small);
      expect(child(out)).toMatchObject({ code: 0 });
      writeFileSync(join(out, 'inventory.yaml'), 'all: {}\n');
      const before = snapshot(out);

      write(Buffer.alloc(1 << 20, 7));
      const r = child(out);
      expect(r.code).toBe(1);
      expect(oneError(r.err)).toBe(
        `error: cannot write ${join(out, 'roles/criu_lock/files/debs/libc6_2.36-9+deb12u4_amd64.deb')}: the file is too large for this system`,
      );
      // Nothing of the new export, no staging directory: the old state script, pins and marker.
      expect(snapshot(out)).toEqual(before);

      // A new directory that could not be filled is not left behind either.
      const fresh = join(work, 'fresh');
      expect(child(fresh).code).toBe(1);
      expect(existsSync(fresh)).toBe(false);
    },
  );
});
