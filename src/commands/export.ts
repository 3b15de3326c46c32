/**
 * `criu-lock export ansible -l LOCK -o DIR`: writes the lock as an Ansible project (src/export/
 * ansible.ts) for fleets driven by ansible-playbook or AWX. No host work: no inventory, no SSH.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { compareVersions } from '../debian/version.js';
import { CriuLockError } from '../errors.js';
import { processAlive } from '../process-alive.js';
import {
  debFileName,
  debProjectPath,
  renderAnsibleProject,
  type ExportFile,
  type VendoredDeb,
} from '../export/ansible.js';
import { parseSerial } from '../fleet/run.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { renderPins } from '../plan/pins.js';
import { readStoreFile } from '../store/local-file.js';
import { checkStoreAgainstLock, debPath, loadStore, storeDir } from '../store/manifest.js';
import { errLine, type CommandDeps } from './context.js';
import { fileErrorReason, makeOutputDir, writeNewFile } from './output-path.js';

export interface ExportCommandOptions {
  target: 'ansible';
  lockfile: string;
  output: string;
  store?: string | undefined;
  serial?: string | undefined;
  maxFailPercentage?: number | undefined;
}

/** Written last into the output directory: what a later export may replace or remove. */
export const EXPORT_MARKER = '.criu-lock-export';

interface Marker {
  export: 'ansible';
  lockDigest: string;
  files: string[];
}

// Paths we wrote ourselves, relative and without `..`: the only ones a re-export deletes.
const SAFE_PATH = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._%+~:-]+(?:\/[A-Za-z0-9._%+~:-]+)*$/;

function notOurs(dir: string, why: string): CriuLockError {
  return new CriuLockError('usage', `${dir} ${why}; refusing to write the export over it`, {
    hint: `give -o a new or empty directory, or remove ${dir} first (a directory criu-lock exported before, with its ${EXPORT_MARKER} file, is updated in place)`,
  });
}

// Our staging directories in DIR: the marker's name, the writer's pid and a random part.
const STAGING = /^\.criu-lock-export\.tmp-(\d{1,10})-[0-9a-f]{12}$/;

/** One usage error naming the local path that failed, never an internal one. */
function writeError(path: string, e: unknown, hint: string): CriuLockError {
  return new CriuLockError('usage', `cannot write ${path}: ${fileErrorReason(e)}`, { hint });
}

/**
 * The previous export's files, [] for a missing or empty directory; throws for anything else. DIR
 * itself may be a symbolic link the user chose, but not one to nothing (it used to end in an
 * internal error after the export had started).
 */
async function previousExport(dir: string): Promise<string[]> {
  const s = await stat(dir).catch((e: unknown) => e as NodeJS.ErrnoException);
  if (s instanceof Error) {
    const link = await readlink(dir).catch(() => undefined);
    if (link !== undefined) {
      throw new CriuLockError('usage', `${dir} is a symbolic link to ${link}, which does not exist`, {
        hint: `make the directory it points to, or give -o another path`,
      });
    }
    return []; // missing, or a path makeOutputDir refuses with its reason
  }
  if (!s.isDirectory()) throw notOurs(dir, 'is not a directory');
  // A staging directory left by an export that was killed is not a file of the user's.
  const entries = (await readdir(dir)).filter((e) => !STAGING.test(e));
  if (entries.length === 0) return [];
  if (!entries.includes(EXPORT_MARKER)) throw notOurs(dir, `is not empty and has no ${EXPORT_MARKER}`);
  await checkInside(dir, EXPORT_MARKER, 'write');
  let m: Partial<Marker>;
  try {
    m = JSON.parse(await readFile(join(dir, EXPORT_MARKER), 'utf8')) as Partial<Marker>;
  } catch {
    throw notOurs(dir, `has an unreadable ${EXPORT_MARKER}`);
  }
  if (
    m.export !== 'ansible' ||
    !Array.isArray(m.files) ||
    !m.files.every((f) => typeof f === 'string' && SAFE_PATH.test(f))
  ) {
    throw notOurs(dir, `has a ${EXPORT_MARKER} this criu-lock did not write`);
  }
  return m.files;
}

/**
 * Refuses `root/rel` when a part of it below `root` is a symbolic link, or is not a directory where
 * one must be: a re-export wrote, chmodded and removed files through such links, outside DIR.
 * `root` itself may be a link (the user chose it). Parts that do not exist yet are made later.
 * A stale file (`remove`) that is now a directory is left alone rather than refused.
 */
async function checkInside(root: string, rel: string, use: 'write' | 'remove'): Promise<void> {
  const parts = rel.split('/');
  let at = root;
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    const s = await lstat(at).catch((e: unknown) => e as NodeJS.ErrnoException);
    if (s instanceof Error) {
      // Missing: made later. ENOTDIR can only come from DIR itself, which makeOutputDir refuses.
      if (s.code === 'ENOENT' || s.code === 'ENOTDIR') return;
      throw writeError(at, s, 'fix the permissions of the export directory, or give -o another one');
    }
    const hint = `criu-lock writes only real files and directories under ${root}: remove ${at}, or give -o another directory`;
    if (s.isSymbolicLink()) {
      throw new CriuLockError('usage', `${at} is a symbolic link; refusing to write the export through it`, {
        hint,
      });
    }
    const last = i === parts.length - 1;
    if (!last && !s.isDirectory()) {
      throw new CriuLockError('usage', `${at} is not a directory; refusing to write the export there`, {
        hint,
      });
    }
    if (last && use === 'write' && s.isDirectory()) {
      throw new CriuLockError('usage', `${at} is a directory where the export writes a file`, { hint });
    }
  }
}

/**
 * The store's .debs at the locked versions, read and sha256-checked against the manifest. The
 * default store beside the lockfile is used when it exists; `--store DIR` must exist.
 */
function vendoredDebs(
  lock: Lockfile,
  opts: ExportCommandOptions,
  warn: (m: string) => void,
): { debs: Map<string, VendoredDeb>; files: ExportFile[]; dir?: string } {
  const dir = storeDir(opts.lockfile, opts.store);
  const store = loadStore(dir);
  if (!store) {
    if (opts.store !== undefined) {
      throw new CriuLockError('usage', `--store ${opts.store}: no such directory`, {
        hint: 'create the store with criu-lock vendor --store DIR',
      });
    }
    return { debs: new Map(), files: [] };
  }
  checkStoreAgainstLock(lock, store);
  const debs = new Map<string, VendoredDeb>();
  const files: ExportFile[] = [];
  for (const key of Object.keys(lock.packages).sort()) {
    const want = lock.packages[key]!.version;
    const e = store.manifest.packages[key];
    if (!e) continue;
    if (compareVersions(e.version, want) !== 0) {
      warn(`the package store holds ${key}=${e.version}, the lock ${want}: not exported`);
      continue;
    }
    const src = debPath(dir, e.sha256);
    const bytes = readStoreFile(src, e.size);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== e.sha256) {
      throw new CriuLockError(
        'input',
        `package store file for ${key}=${want} does not match its manifest (sha256 ${sha.slice(0, 12)}…)`,
        {
          location: { file: src },
          hint: 'criu-lock vendor --verify lists every bad file; run criu-lock vendor again to replace them',
        },
      );
    }
    const file = debFileName(key, want);
    debs.set(key, { file, sha256: e.sha256 });
    files.push({ path: debProjectPath(file), content: bytes, mode: 0o644 });
  }
  return { debs, files, dir };
}

/** Removes the directories of a stale file that it leaves empty, never following a link. */
async function removeEmptyParents(root: string, rel: string): Promise<void> {
  for (let d = dirname(rel); d !== '.' && d !== ''; d = dirname(d)) {
    const path = join(root, d);
    const s = await lstat(path).catch(() => undefined);
    if (!s?.isDirectory()) return;
    try {
      await rmdir(path);
    } catch {
      return; // not empty (or gone): stop
    }
  }
}

/** Exit 0 when the project is written; 1 (thrown) for usage and input errors. */
export async function runExport(opts: ExportCommandOptions, deps: CommandDeps): Promise<number> {
  const { io } = deps;
  if (opts.serial !== undefined) parseSerial(opts.serial, 1); // the same rules as apply --serial
  const mfp = opts.maxFailPercentage;
  if (mfp !== undefined && (!Number.isFinite(mfp) || mfp < 0 || mfp > 100)) {
    throw new CriuLockError('usage', '--max-fail-percentage must be between 0 and 100', {
      hint: 'e.g. --max-fail-percentage 20',
    });
  }
  const lock = await loadLock(opts.lockfile);
  const out = opts.output;
  const existed = (await lstat(out).catch(() => undefined)) !== undefined;
  const previous = await previousExport(out);
  const { debs, files: debFiles, dir: store } = vendoredDebs(lock, opts, (m) => errLine(io, `warning: ${m}`));
  const files = [
    ...renderAnsibleProject(lock, renderPins(lock), {
      serial: opts.serial,
      maxFailPercentage: mfp,
      debs,
    }),
    ...debFiles,
  ];

  // A re-export replaces what the last one wrote and leaves everything else (an inventory).
  const now = new Set(files.map((f) => f.path));
  const stale = previous.filter((p) => !now.has(p));
  // Every path the export writes or removes, checked before anything is written.
  for (const rel of [EXPORT_MARKER, ...now]) await checkInside(out, rel, 'write');
  for (const rel of stale) await checkInside(out, rel, 'remove');
  await makeOutputDir(out, '-o');
  const markerText = (list: Iterable<string>): string => {
    const marker: Marker = { export: 'ansible', lockDigest: lock.digest, files: [...new Set(list)].sort() };
    return `${JSON.stringify(marker, null, 2)}\n`;
  };

  // The whole project is written into a staging directory in DIR (same file system) first: a full
  // disk or a bad path then leaves the previous export as it was, never half of a new one.
  const stage = join(out, `${EXPORT_MARKER}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  let at = stage;
  try {
    await mkdir(stage, { mode: 0o700 });
    for (const f of files) {
      at = join(out, f.path);
      const path = join(stage, f.path);
      await mkdir(dirname(path), { recursive: true });
      await writeNewFile(path, f.content, f.mode ?? 0o644);
    }
    // The marker names the files of both exports while they are swapped, so a run cut short leaves
    // a directory the next export still recognises and cleans.
    at = join(out, EXPORT_MARKER);
    await writeNewFile(join(stage, EXPORT_MARKER), markerText([...previous, ...now]), 0o644);
    await writeNewFile(join(stage, `${EXPORT_MARKER}.new`), markerText(now), 0o644);
  } catch (e) {
    await rm(stage, { recursive: true, force: true }).catch(() => undefined);
    if (!existed) await rmdir(out).catch(() => undefined);
    throw writeError(
      at,
      e,
      `make room or fix the permissions, or give -o another directory; ${out} is as it was`,
    );
  }

  // rename(2) replaces a file (or a link) in one step and never writes through one.
  try {
    await rename(join(stage, EXPORT_MARKER), join(out, EXPORT_MARKER));
    for (const f of files) {
      at = join(out, f.path);
      await mkdir(dirname(at), { recursive: true });
      await rename(join(stage, f.path), at);
    }
    for (const rel of stale) {
      await unlink(join(out, rel)).catch(() => undefined);
      await removeEmptyParents(out, rel);
    }
    at = join(out, EXPORT_MARKER);
    await rename(join(stage, `${EXPORT_MARKER}.new`), at);
  } catch (e) {
    throw writeError(at, e, `export to ${out} again: its ${EXPORT_MARKER} names the files of both exports`);
  } finally {
    await rm(stage, { recursive: true, force: true }).catch(() => undefined);
  }
  // Staging directories of exports that were killed.
  for (const e of await readdir(out).catch(() => [])) {
    const pid = STAGING.exec(e)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    if ((await lstat(join(out, e)).catch(() => undefined))?.isDirectory()) {
      await rm(join(out, e), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  const debBytes = debFiles.reduce((n, f) => n + f.content.length, 0);
  io.err(
    `exported ${opts.lockfile} (${Object.keys(lock.packages).length} package(s)${
      store ? `, ${debs.size} .deb(s) from ${store}: ${(debBytes / 1048576).toFixed(1)} MiB` : ''
    }) to ${out}/\n  run: ansible-playbook -i INVENTORY ${join(out, 'site.yml')}\n`,
  );
  return 0;
}
