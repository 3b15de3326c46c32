/**
 * `criu-lock export ansible -l LOCK -o DIR`: writes the lock as an Ansible project (src/export/
 * ansible.ts) for fleets driven by ansible-playbook or AWX. No host work: no inventory, no SSH.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { compareVersions } from '../debian/version.js';
import { CriuLockError } from '../errors.js';
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
import { makeOutputDir } from './output-path.js';

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

/** The previous export's files, [] for a missing or empty directory; throws for anything else. */
async function previousExport(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  if (!statSync(dir).isDirectory()) throw notOurs(dir, 'is not a directory');
  const entries = await readdir(dir);
  if (entries.length === 0) return [];
  if (!entries.includes(EXPORT_MARKER)) throw notOurs(dir, `is not empty and has no ${EXPORT_MARKER}`);
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

async function removeEmptyParents(root: string, rel: string): Promise<void> {
  for (let d = dirname(rel); d !== '.' && d !== ''; d = dirname(d)) {
    try {
      await rmdir(join(root, d));
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
  await makeOutputDir(out, '-o');
  // The marker names the files of both exports while they are swapped, so a run cut short leaves
  // a directory the next export still recognises and cleans.
  const writeMarker = (list: Iterable<string>): Promise<void> => {
    const marker: Marker = { export: 'ansible', lockDigest: lock.digest, files: [...new Set(list)].sort() };
    return writeFile(join(out, EXPORT_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
  };
  await writeMarker([...previous, ...now]);
  for (const rel of previous.filter((p) => !now.has(p))) {
    await unlink(join(out, rel)).catch(() => undefined);
    await removeEmptyParents(out, rel);
  }
  for (const f of files) {
    const path = join(out, f.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, f.content);
    await chmod(path, f.mode ?? 0o644);
  }
  await writeMarker(now);

  const debBytes = debFiles.reduce((n, f) => n + f.content.length, 0);
  io.err(
    `exported ${opts.lockfile} (${Object.keys(lock.packages).length} package(s)${
      store ? `, ${debs.size} .deb(s) from ${store}: ${(debBytes / 1048576).toFixed(1)} MiB` : ''
    }) to ${out}/\n  run: ansible-playbook -i INVENTORY ${join(out, 'site.yml')}\n`,
  );
  return 0;
}
