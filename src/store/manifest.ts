import { createHash } from 'node:crypto';
import { lstatSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { isValidVersion } from '../debian/version.js';
import { CriuLockError } from '../errors.js';
import { parseYamlSource, yamlToJs } from '../input/yaml-source.js';
import type { Lockfile } from '../lock/lockfile.js';
import { yamlString } from '../lock/yaml-scalar.js';
import { readStoreFile, StoreFileError } from './local-file.js';

export const STORE_VERSION = 1;
export const MANIFEST_FILE = 'manifest.yaml';
/** The store's directory name beside the lockfile. */
export const DEFAULT_STORE_NAME = 'criu-lock.debs';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

/**
 * Where a stored .deb came from. `golden-cache` / `golden-apt` / `archive` hold the archive's
 * own bytes (sha256 equal to the lock's when the lock has one); `rebuilt` was assembled from the
 * golden node's installed files, so its sha256 differs from the archive's.
 */
export const Origin = z.union([
  z.literal('golden-cache'),
  z.literal('golden-apt'),
  z.string().regex(/^archive [a-z][a-z0-9+.-]*:\/\/\S+$/, 'must be "archive URL"'),
  z.literal('rebuilt'),
]);
export type Origin = z.infer<typeof Origin>;

export const StoreEntry = z.strictObject({
  version: z.string().refine(isValidVersion, { message: 'is not a valid Debian version' }),
  architecture: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  sha256: Sha256,
  size: z.number().int().positive(),
  origin: Origin,
});
export type StoreEntry = z.infer<typeof StoreEntry>;

export const Manifest = z.strictObject({
  storeVersion: z.literal(STORE_VERSION),
  packages: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9+.-]+:[a-z0-9][a-z0-9-]*$/, 'must be name:arch'),
    StoreEntry,
  ),
});
export type Manifest = z.infer<typeof Manifest>;

/** The store directory: `--store DIR`, or `criu-lock.debs/` beside the lockfile. */
export function storeDir(lockfile: string, store?: string): string {
  return store ?? join(dirname(lockfile), DEFAULT_STORE_NAME);
}

/** A .deb's file name in the store: content-addressed. */
export function debPath(dir: string, sha256: string): string {
  return join(dir, `${sha256}.deb`);
}

export function sha256Of(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Deterministic text: sorted keys, fixed layout, no timestamps, so a store change diffs well. */
export function serializeManifest(m: Manifest): string {
  const lines = [
    '# criu-lock package store: the .deb files beside this manifest are named by their sha256.',
    '# Written by `criu-lock vendor`; re-run it instead of editing.',
    `storeVersion: ${STORE_VERSION}`,
  ];
  const keys = Object.keys(m.packages).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  lines.push(keys.length === 0 ? 'packages: {}' : 'packages:');
  for (const key of keys) {
    const e = m.packages[key]!;
    lines.push(
      `  ${yamlString(key)}:`,
      `    version: ${JSON.stringify(e.version)}`,
      `    architecture: ${yamlString(e.architecture)}`,
      `    sha256: ${e.sha256}`,
      `    size: ${e.size}`,
      `    origin: ${JSON.stringify(e.origin)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Strict load with file:line errors. */
export function parseManifest(text: string, file: string): Manifest {
  const hint = 're-create the store with `criu-lock vendor`';
  const src = parseYamlSource(text, file, { code: 'input', hint });
  const { doc } = src;
  const raw = yamlToJs(() => doc.toJS() as unknown, { file, line: 1 }, 'input', hint);
  const version = (raw as { storeVersion?: unknown } | null)?.storeVersion;
  if (version === undefined || raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CriuLockError('input', 'is not a criu-lock package store manifest (it has no storeVersion)', {
      location: { file, line: 1 },
      hint: `a store directory holds the ${MANIFEST_FILE} \`criu-lock vendor\` writes; give --store a store directory`,
    });
  }
  if (version !== STORE_VERSION) {
    throw new CriuLockError(
      'input',
      `unsupported storeVersion ${JSON.stringify(version)} (this criu-lock reads version ${STORE_VERSION})`,
      {
        location: { file, line: 1 },
        hint: 're-create the store with this criu-lock: `criu-lock vendor`',
      },
    );
  }
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // The nearest node with a position, as every located schema error (file:line, no column here).
    const { line } = src.locate(issue.path);
    throw new CriuLockError('input', `${issue.path.map(String).join('.') || 'manifest'}: ${issue.message}`, {
      location: line === undefined ? { file } : { file, line },
      hint: 'the manifest is written by `criu-lock vendor`; do not edit it',
    });
  }
  return parsed.data;
}

/** The store's manifest, or undefined when the store does not exist (plan/apply then ignore it). */
export function loadStore(dir: string): { dir: string; manifest: Manifest } | undefined {
  const file = join(dir, MANIFEST_FILE);
  const st = statOrUndefined(dir);
  if (!st) return undefined;
  if (!st.isDirectory()) {
    throw new CriuLockError('input', `package store ${dir} is not a directory`, {
      hint: 'give --store the directory `criu-lock vendor` made (criu-lock.debs/ beside the lockfile by default)',
      location: { file: dir },
    });
  }
  if (!statOrUndefined(file)) {
    let dangling = false;
    try {
      dangling = lstatSync(file).isSymbolicLink();
    } catch {
      // not there at all
    }
    if (dangling)
      throw new CriuLockError('input', `package store manifest ${file} is a symbolic link to nothing`, {
        location: { file },
        hint: "point it at the store's manifest, or restore the manifest from version control",
      });
    throw new CriuLockError('input', `package store ${dir} has no ${MANIFEST_FILE}`, {
      hint: 'create it with `criu-lock vendor`, or remove the directory',
      location: { file },
    });
  }
  let text: string;
  try {
    text = readStoreFile(file).toString('utf8');
  } catch (e) {
    if (!(e instanceof StoreFileError)) throw e;
    throw new CriuLockError('input', `package store manifest ${file} ${e.why}`, {
      location: { file },
      hint: 're-create the store with `criu-lock vendor`',
    });
  }
  return { dir, manifest: parseManifest(text, file) };
}

function statOrUndefined(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CriuLockError(
      'input',
      `cannot read the package store at ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      {
        location: { file: path },
        hint: 'give --store a readable directory',
      },
    );
  }
}

/**
 * A store entry for a locked version whose sha256 is not the lock's, when the lock knows the
 * archive's and the entry claims the archive's bytes (every origin but `rebuilt`). Such an entry
 * would install other bytes than the lock's under the lock's version; callers refuse the store.
 */
export function entryProblem(lock: Lockfile, key: string, e: StoreEntry): string | undefined {
  const want = lock.packages[key];
  if (!want || want.version !== e.version || !claimsOtherBytes(e, want.sha256)) return undefined;
  return `${key}=${e.version}: its sha256 ${e.sha256.slice(0, 12)}… is not the lock's ${want.sha256!.slice(0, 12)}… (origin ${e.origin})`;
}

/** An entry (at the locked version) that claims the archive's bytes, but not the lock's sha256. */
export function claimsOtherBytes(e: StoreEntry, locked: string | undefined): boolean {
  return e.origin !== 'rebuilt' && locked !== undefined && e.sha256 !== locked;
}

/** Throws the first entry problem of a store against the lock, located at the manifest's file. */
export function checkStoreAgainstLock(lock: Lockfile, s: { dir: string; manifest: Manifest }): void {
  for (const key of Object.keys(s.manifest.packages).sort()) {
    const problem = entryProblem(lock, key, s.manifest.packages[key]!);
    if (problem)
      throw new CriuLockError('input', `package store ${s.dir}: ${problem}`, {
        location: { file: join(s.dir, MANIFEST_FILE) },
        hint: "criu-lock vendor --verify lists every problem; criu-lock vendor replaces the entry with the lock's .deb",
      });
  }
}

export function emptyManifest(): Manifest {
  return { storeVersion: STORE_VERSION, packages: {} };
}

/**
 * The store as the planner sees it: `--store DIR` (which must exist), or the default store beside
 * the lockfile when there is one. Undefined when no store is in use.
 */
export function storeIndexFor(
  lock: Lockfile,
  lockfile: string,
  store?: string,
): Map<string, { version: string; sha256: string }> | undefined {
  const dir = storeDir(lockfile, store);
  const s = loadStore(dir);
  if (!s) {
    if (store !== undefined)
      throw new CriuLockError('usage', `--store ${store}: no such directory`, {
        hint: 'create the store with criu-lock vendor --store DIR',
      });
    return undefined;
  }
  checkStoreAgainstLock(lock, s);
  return new Map(
    Object.entries(s.manifest.packages).map(([k, e]) => [k, { version: e.version, sha256: e.sha256 }]),
  );
}
