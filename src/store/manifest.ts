import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { isValidVersion } from '../debian/version.js';
import { CriuLockError } from '../errors.js';
import { parseYamlSource, yamlToJs } from '../input/yaml-source.js';
import { yamlString } from '../lock/yaml-scalar.js';

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
export async function loadStore(dir: string): Promise<{ dir: string; manifest: Manifest } | undefined> {
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(dir)) return undefined;
  if (!existsSync(file)) {
    throw new CriuLockError('input', `package store ${dir} has no ${MANIFEST_FILE}`, {
      hint: 'create it with `criu-lock vendor`, or remove the directory',
      location: { file },
    });
  }
  return { dir, manifest: parseManifest(await readFile(file, 'utf8'), file) };
}

export function emptyManifest(): Manifest {
  return { storeVersion: STORE_VERSION, packages: {} };
}

/**
 * The store as the planner sees it: `--store DIR` (which must exist), or the default store beside
 * the lockfile when there is one. Undefined when no store is in use.
 */
export async function storeIndexFor(
  lockfile: string,
  store?: string,
): Promise<Map<string, { version: string; sha256: string }> | undefined> {
  const dir = storeDir(lockfile, store);
  const s = await loadStore(dir);
  if (!s) {
    if (store !== undefined)
      throw new CriuLockError('usage', `--store ${store}: no such directory`, {
        hint: 'create the store with criu-lock vendor --store DIR',
      });
    return undefined;
  }
  return new Map(
    Object.entries(s.manifest.packages).map(([k, e]) => [k, { version: e.version, sha256: e.sha256 }]),
  );
}
