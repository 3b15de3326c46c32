import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { DebArchitecture, DebVersion, packageKeyProblem, packageRefProblem } from '../debian/schemas.js';
import { isValidVersion } from '../debian/version.js';
import { CriuLockError, type SourceLocation } from '../errors.js';
import { parseYamlSource, yamlToJs } from '../input/yaml-source.js';
import { issueError } from '../input/zod-error.js';
import {
  scanCanonicalLock,
  type CanonicalEntries,
  type CanonicalRead,
  type EntryRules,
} from './canonical-reader.js';
import { lockedPathProblem } from './locked-path.js';
import { yamlScalar, yamlString } from './yaml-scalar.js';

export const LOCKFILE_VERSION = 1;

// Shared with the fast path's own checks (ENTRY_RULES), which must agree with the schemas.
const MODE = /^[0-7]{4}$/;
const BUILD_ID = /^[0-9a-f]{2,128}$/;
const SHA256 = /^[0-9a-f]{64}$/;

export const FileEntry = z.strictObject({
  size: z.number().int().nonnegative(),
  mode: z.string().regex(MODE, 'must be four octal digits such as "0755"'),
  buildId: z.string().regex(BUILD_ID, 'must be lowercase hex').optional(),
});
export type FileEntry = z.infer<typeof FileEntry>;

export const PackageEntry = z.strictObject({
  version: DebVersion,
  sha256: z.string().regex(SHA256, 'must be 64 lowercase hex digits').optional(),
  files: z.record(z.string(), FileEntry).optional(),
});
export type PackageEntry = z.infer<typeof PackageEntry>;

export const Scope = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('all') }),
  z.strictObject({
    kind: z.literal('packages'),
    packages: z.array(z.string()).min(1),
    withDeps: z.boolean(),
  }),
  z.strictObject({ kind: z.literal('processes'), pids: z.array(z.number().int().positive()).min(1) }),
  // generate --checkpoint: what a CRIU checkpoint of these processes (its pstree) needs.
  z.strictObject({ kind: z.literal('checkpoint'), pids: z.array(z.number().int().positive()).min(1) }),
]);
export type Scope = z.infer<typeof Scope>;

export const LockPlatform = z.strictObject({
  id: z.string().regex(/^[a-z0-9._-]+$/),
  // os-release's VERSION_ID and VERSION_CODENAME: no spaces or control characters (empty on sid).
  versionId: z.string().regex(/^[A-Za-z0-9._~+-]*$/),
  codename: z.string().regex(/^[A-Za-z0-9._~+-]*$/),
  architecture: DebArchitecture,
});
export type LockPlatform = z.infer<typeof LockPlatform>;

export const Lockfile = z.strictObject({
  lockfileVersion: z.literal(LOCKFILE_VERSION),
  source: z.strictObject({ host: z.string(), generatedAt: z.string() }),
  platform: LockPlatform,
  scope: Scope,
  packages: z.record(z.string(), PackageEntry),
  unmanaged: z.record(z.string(), FileEntry).optional(),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
export type Lockfile = z.infer<typeof Lockfile>;

/** All but the entries: what the fast path still hands to zod. */
const LockHeader = Lockfile.omit({ packages: true, unmanaged: true });

export type LockContent = Omit<Lockfile, 'digest'>;

function sortedKeys<T>(rec: Record<string, T>): string[] {
  return Object.keys(rec).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function canonicalFile(f: FileEntry): Record<string, unknown> {
  return f.buildId === undefined
    ? { mode: f.mode, size: f.size }
    : { buildId: f.buildId, mode: f.mode, size: f.size };
}

/**
 * An empty record for the digest's keys. Without a prototype V8 keeps it as a hash table from the
 * start; a plain `{}` gets a new hidden class for each new key, and every file path is new, which
 * made building the digest's objects slower than hashing them. JSON.stringify orders keys the same.
 */
function emptyRecord(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** Canonical JSON of what the digest covers: platform, scope, packages, unmanaged. No source, no time. */
export function canonicalContent(
  lock: Pick<Lockfile, 'platform' | 'scope' | 'packages' | 'unmanaged'>,
): string {
  const packages = emptyRecord();
  for (const key of sortedKeys(lock.packages)) {
    const p = lock.packages[key]!;
    const files = emptyRecord();
    for (const path of sortedKeys(p.files ?? {})) files[path] = canonicalFile(p.files![path]!);
    packages[key] = { files, sha256: p.sha256 ?? null, version: p.version };
  }
  const unmanaged = emptyRecord();
  for (const path of sortedKeys(lock.unmanaged ?? {}))
    unmanaged[path] = canonicalFile(lock.unmanaged![path]!);
  // The JSON of {packages, platform, scope, unmanaged}, written in parts so that a scanned
  // lockfile's own JSON of its entries can take the place of the two records (canonicalChunks).
  return `{"packages":${JSON.stringify(packages)},${canonicalPlatformScope(lock)},"unmanaged":${JSON.stringify(unmanaged)}}`;
}

/** `"platform":{...},"scope":{...}`, as JSON.stringify writes them inside the canonical object. */
function canonicalPlatformScope(lock: Pick<Lockfile, 'platform' | 'scope'>): string {
  const scope =
    lock.scope.kind === 'all'
      ? { kind: 'all' }
      : lock.scope.kind === 'packages'
        ? { kind: 'packages', packages: [...lock.scope.packages].sort(), withDeps: lock.scope.withDeps }
        : { kind: lock.scope.kind, pids: [...lock.scope.pids].sort((a, b) => a - b) };
  const platform = {
    architecture: lock.platform.architecture,
    codename: lock.platform.codename,
    id: lock.platform.id,
    versionId: lock.platform.versionId,
  };
  return `"platform":${JSON.stringify(platform)},"scope":${JSON.stringify(scope)}`;
}

/**
 * canonicalContent in chunks, with the entries' JSON as the scan of a lockfile wrote it: the
 * same text (a differential property test holds them together) without building the records.
 */
export function canonicalChunks(
  lock: Pick<Lockfile, 'platform' | 'scope'>,
  entries: CanonicalEntries,
): Array<string | Uint8Array> {
  return [
    '{"packages":',
    entries.packages,
    `,${canonicalPlatformScope(lock)},"unmanaged":`,
    entries.unmanaged,
    '}',
  ];
}

export function computeDigest(lock: Pick<Lockfile, 'platform' | 'scope' | 'packages' | 'unmanaged'>): string {
  return `sha256:${createHash('sha256').update(canonicalContent(lock)).digest('hex')}`;
}

function digestOfChunks(chunks: ReadonlyArray<string | Uint8Array>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

export function finalizeLock(content: LockContent): Lockfile {
  return { ...content, digest: computeDigest(content) };
}

function flowFile(f: FileEntry): string {
  const parts = [`size: ${f.size}`, `mode: ${JSON.stringify(f.mode)}`];
  if (f.buildId !== undefined) parts.push(`buildId: ${yamlString(f.buildId)}`);
  return `{${parts.join(', ')}}`;
}

/** Deterministic text: sorted keys, fixed layout, so a lock change is a small diff. */
export function serializeLock(lock: Lockfile): string {
  const out: string[] = [
    `# criu-lock lockfile. Generated from golden node ${JSON.stringify(lock.source.host)}; regenerate, don't edit.`,
    `lockfileVersion: ${lock.lockfileVersion}`,
    `source: {host: ${yamlString(lock.source.host)}, generatedAt: ${JSON.stringify(lock.source.generatedAt)}}`,
    `platform: {id: ${yamlString(lock.platform.id)}, versionId: ${JSON.stringify(lock.platform.versionId)}, codename: ${yamlString(lock.platform.codename)}, architecture: ${yamlString(lock.platform.architecture)}}`,
  ];
  const s = lock.scope;
  switch (s.kind) {
    case 'all':
      out.push('scope: {kind: all}');
      break;
    case 'packages':
      out.push(
        `scope: {kind: packages, packages: [${[...s.packages].sort().map(yamlString).join(', ')}], withDeps: ${s.withDeps}}`,
      );
      break;
    case 'processes':
    case 'checkpoint':
      out.push(`scope: {kind: ${s.kind}, pids: [${[...s.pids].sort((a, b) => a - b).join(', ')}]}`);
      break;
    default: {
      const never: never = s;
      throw new Error(`unknown scope ${JSON.stringify(never)}`);
    }
  }
  const keys = sortedKeys(lock.packages);
  out.push(keys.length === 0 ? 'packages: {}' : 'packages:');
  for (const key of keys) {
    const p = lock.packages[key]!;
    out.push(`  ${yamlString(key)}:`, `    version: ${yamlString(p.version)}`);
    if (p.sha256 !== undefined) out.push(`    sha256: ${yamlScalar(p.sha256)}`);
    const files = sortedKeys(p.files ?? {});
    if (files.length > 0) {
      out.push('    files:');
      for (const path of files) out.push(`      ${yamlString(path)}: ${flowFile(p.files![path]!)}`);
    }
  }
  const unmanaged = sortedKeys(lock.unmanaged ?? {});
  if (lock.unmanaged !== undefined) {
    out.push(unmanaged.length === 0 ? 'unmanaged: {}' : 'unmanaged:');
    for (const path of unmanaged) out.push(`  ${yamlString(path)}: ${flowFile(lock.unmanaged[path]!)}`);
  }
  out.push(`digest: ${yamlString(lock.digest)}`);
  return out.join('\n') + '\n';
}

const REGENERATE = 'regenerate the lockfile with `criu-lock generate`; do not edit it by hand';

function lockError(message: string, location: SourceLocation, hint = REGENERATE): CriuLockError {
  return new CriuLockError('lockfile', message, { hint, location });
}

/**
 * The general path: a YAML document with positions, so every error names file:line:col. Exported
 * so the property tests can hold parseLock's fast path to it.
 */
export function parseLockDocument(text: string, file: string): Lockfile {
  const src = parseYamlSource(text, file, { code: 'lockfile', hint: REGENERATE, yaml: { uniqueKeys: true } });
  const { doc } = src;
  const raw = yamlToJs(() => doc.toJS() as unknown, { file, line: 1, col: 1 }, 'lockfile', REGENERATE);
  if (raw === null || typeof raw !== 'object')
    throw lockError('not a criu-lock lockfile (expected a mapping)', { file, line: 1, col: 1 });
  const version = (raw as Record<string, unknown>).lockfileVersion;
  if (version !== LOCKFILE_VERSION) {
    const quoted = typeof version === 'string' && version.trim() === String(LOCKFILE_VERSION);
    throw lockError(
      version === undefined
        ? 'missing lockfileVersion'
        : quoted
          ? `lockfileVersion is the string ${JSON.stringify(version)}; it must be the number ${LOCKFILE_VERSION}`
          : `unsupported lockfileVersion ${JSON.stringify(version)} (this criu-lock reads version ${LOCKFILE_VERSION})`,
      src.locate(version === undefined ? [] : ['lockfileVersion']),
      quoted
        ? `write lockfileVersion: ${LOCKFILE_VERSION} without quotes, or regenerate the lockfile`
        : 'upgrade criu-lock, or regenerate the lockfile with this version',
    );
  }
  const parsed = Lockfile.safeParse(raw);
  if (!parsed.success)
    throw issueError(parsed.error, {
      code: 'lockfile',
      hint: REGENERATE,
      what: 'lockfile',
      file,
      locate: src.locate,
    });
  const lock = parsed.data;
  const problem = semanticProblem(lock);
  if (problem) throw lockError(problem.message, src.locate(problem.path, problem.key), problem.hint);
  return lock;
}

/** Parse and strictly validate lockfile text. Every error names file:line:col. */
export function parseLock(text: string, file: string): Lockfile {
  // Our own canonical layout is read without a YAML document; anything else, or anything
  // invalid, goes through the full parser, which knows where each value is for the error.
  const scan = scanCanonicalLock(text, ENTRY_RULES);
  const lock = scan === undefined ? undefined : validCanonicalLock(scan.doc);
  if (lock !== undefined) {
    const digest =
      scan!.entries === undefined
        ? computeDigest(lock)
        : digestOfChunks(canonicalChunks(lock, scan!.entries));
    if (digest === lock.digest) return lock;
  }
  return parseLockDocument(text, file);
}

/**
 * The Lockfile schema's entry rules and semanticProblem's key and path rules, which the scan
 * applies to each entry as it reads it (zod takes most of a second over 15,000 file entries). The
 * reader already fixed their shape: known keys, string values, a digit-only size, four octal
 * digits of mode, a hex build-ID. Refusing is always safe: the YAML path then finds and locates
 * the error.
 */
const ENTRY_RULES: EntryRules = {
  packageEntry: (key, p) =>
    packageKeyProblem(key) === undefined &&
    p.version !== undefined &&
    isValidVersion(p.version) &&
    (p.sha256 === undefined || SHA256.test(p.sha256)),
  file: (path, f) =>
    Number.isSafeInteger(f.size) &&
    f.size >= 0 &&
    MODE.test(f.mode) &&
    (f.buildId === undefined || BUILD_ID.test(f.buildId)) &&
    lockedPathProblem(path) === undefined,
};

/**
 * The header's verdict from zod and the scope's package names, for what the scan read with
 * ENTRY_RULES (all but the digest, which parseLock checks), or undefined where the schema or
 * semanticProblem would refuse it.
 */
function validCanonicalLock(read: CanonicalRead): Lockfile | undefined {
  const { packages, unmanaged, ...rest } = read;
  const header = LockHeader.safeParse(rest);
  if (!header.success) return undefined;
  const { lockfileVersion, source, platform, scope, digest } = header.data;
  if (scope.kind === 'packages' && scope.packages.some((name) => packageRefProblem(name) !== undefined))
    return undefined;
  // Keys in the schema's order, as zod would have returned them. The entries passed ENTRY_RULES.
  return {
    lockfileVersion,
    source,
    platform,
    scope,
    packages: packages as Record<string, PackageEntry>,
    ...(unmanaged !== undefined ? { unmanaged } : {}),
    digest,
  };
}

interface Problem {
  message: string;
  path: PropertyKey[];
  key?: string;
  hint?: string;
}

/** What the schema cannot say: Debian policy for keys, absolute paths, the digest. */
function semanticProblem(lock: Lockfile): Problem | undefined {
  for (const key of Object.keys(lock.packages)) {
    // Facts, plans and apt requests are all name:arch, so the lock must be too.
    const why = packageKeyProblem(key);
    if (why)
      return { message: `invalid package key ${JSON.stringify(key)}: ${why}`, path: ['packages'], key };
    for (const path of Object.keys(lock.packages[key]!.files ?? {})) {
      const why = lockedPathProblem(path);
      if (why)
        return {
          message: `invalid file path ${JSON.stringify(path)} in ${key}: ${why}`,
          path: ['packages', key, 'files'],
          key: path,
        };
    }
  }
  for (const path of Object.keys(lock.unmanaged ?? {})) {
    const why = lockedPathProblem(path);
    if (why)
      return {
        message: `invalid unmanaged path ${JSON.stringify(path)}: ${why}`,
        path: ['unmanaged'],
        key: path,
      };
  }
  if (lock.scope.kind === 'packages') {
    const i = lock.scope.packages.findIndex((name) => packageRefProblem(name) !== undefined);
    if (i >= 0)
      return {
        message: `invalid package name ${JSON.stringify(lock.scope.packages[i])} in scope`,
        path: ['scope', 'packages', i],
      };
  }
  const digest = computeDigest(lock);
  if (digest !== lock.digest) {
    return {
      message: `digest mismatch: the content hashes to ${digest}`,
      path: ['digest'],
      hint: 'the lockfile was edited or corrupted; regenerate it with `criu-lock generate`',
    };
  }
  return undefined;
}

export async function loadLock(file: string): Promise<Lockfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CriuLockError(
      'lockfile',
      `cannot read lockfile ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message}`,
      {
        hint:
          code === 'EISDIR'
            ? 'pass the lockfile itself with -l FILE'
            : 'create one with `criu-lock generate -o ' + file + '`, or pass -l FILE',
      },
    );
  }
  return parseLock(text, file);
}

/**
 * The lockfile text of a lock built from a golden node's answer, read back as `plan` and `check`
 * will read it. A host's answer is data: a name, version or path no lockfile may hold (a NUL, a
 * path under /proc, an invalid version) stops generate here, before a file is written, with the
 * loader's own words: the text, or the problem.
 */
export function lockTextOrProblem(lock: Lockfile): { text: string } | { problem: string } {
  const text = serializeLock(lock);
  try {
    parseLock(text, 'lock');
  } catch (e) {
    if (!(e instanceof CriuLockError)) throw e;
    return { problem: e.message };
  }
  return { text };
}
