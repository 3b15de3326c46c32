import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriuLockError } from '../errors.js';
import { processAlive } from '../process-alive.js';
import { indexLock } from '../lock/lock-index.js';
import type { Lockfile, PackageEntry } from '../lock/lockfile.js';
import type { Transport } from '../transport/types.js';
import {
  claimsOtherBytes,
  debPath,
  MANIFEST_FILE,
  serializeManifest,
  sha256Of,
  type Manifest,
  type Origin,
  type StoreEntry,
} from './manifest.js';
import { readStoreFile, StoreFileError } from './local-file.js';
import { rebuildPackage, RebuildError } from './rebuild.js';
import { fetchFile, hostSha256, lastLine, makeTemp, removeTemp, sh } from './remote.js';
import { verifyDebContent } from './verify-deb.js';

export const APT_CACHE = '/var/cache/apt/archives';

/** One `--archive`: a base URL, optionally followed by a suite and components ("URL SUITE COMP..."). */
export interface ArchiveSpec {
  url: string;
  suites: string[];
  components: string[];
}

// No brackets, quotes or spaces: the URL becomes one word of a `deb [trusted=yes] URL ...` line.
const URL_RE = /^(?:https?|file):\/\/?[A-Za-z0-9._~:/?#@!$&*+,;=%-]*$/;
const WORD_RE = /^[A-Za-z0-9._/~+-]+$/;

/**
 * An `--archive` value's URL, suite and components, checked as words (no platform needed, so the
 * CLI checks it before any host work); throws a usage error.
 */
export function checkArchive(value: string): { url: string; suite?: string; components: string[] } {
  const [url, suite, ...components] = value.trim().split(/\s+/);
  if (!url || !URL_RE.test(url)) {
    throw new CriuLockError(
      'usage',
      `--archive ${JSON.stringify(value)} is not an http(s):// or file:/ URL`,
      {
        hint: 'give the base URL of an apt repository, e.g. --archive http://snapshot.example/archive/debian/20240101T000000Z/ (optionally followed by a suite and components)',
      },
    );
  }
  for (const w of [suite, ...components]) {
    if (w !== undefined && !WORD_RE.test(w))
      throw new CriuLockError('usage', `--archive: invalid suite or component ${JSON.stringify(w)}`, {
        hint: 'e.g. --archive "URL bookworm main"',
      });
  }
  return suite === undefined ? { url, components } : { url, suite, components };
}

/** Parses `--archive` values; the default suites and components follow the lock's platform. */
export function parseArchive(value: string, platform: Lockfile['platform']): ArchiveSpec {
  const { url, suite, components } = checkArchive(value);
  if (suite !== undefined)
    return {
      url,
      suites: [suite],
      components: suite.endsWith('/') ? [] : components.length > 0 ? components : ['main'],
    };
  const ubuntu = platform.id === 'ubuntu';
  return {
    url,
    suites: [
      platform.codename,
      `${platform.codename}-updates`,
      ...(ubuntu ? [`${platform.codename}-security`] : []),
    ],
    components: ubuntu ? ['main', 'restricted', 'universe', 'multiverse'] : ['main'],
  };
}

export function archiveOrigin(a: ArchiveSpec): Origin {
  return `archive ${a.url}`;
}

/** apt's own file name for a downloaded package: the epoch's colon becomes %3a. */
export function aptDebName(key: string, version: string): string {
  const [name, arch] = key.split(':') as [string, string];
  return `${name}_${version.replace(':', '%3a')}_${arch}.deb`;
}

export type VendorResult =
  | { key: string; version: string; status: 'stored' | 'kept'; entry: StoreEntry }
  | { key: string; version: string; status: 'missing'; tried: string[] };

export interface VendorOptions {
  archives: readonly ArchiveSpec[];
  rebuild: boolean;
  log?: (message: string) => void;
  warn?: (message: string) => void;
}

interface Pending {
  key: string;
  entry: PackageEntry;
  tried: string[];
}

/** Files on the host that may hold a package: accepted only when they verify against the lock. */
async function acceptFromHost(
  t: Transport,
  p: Pending,
  file: string,
  hostSha: string | undefined,
  scratch: string,
): Promise<{ bytes: Buffer; why?: never } | { why: string }> {
  if (hostSha === undefined) return { why: 'not there' };
  if (p.entry.sha256 !== undefined) {
    if (hostSha !== p.entry.sha256)
      return { why: `sha256 ${hostSha.slice(0, 12)}… is not the lock's ${p.entry.sha256.slice(0, 12)}…` };
  } else {
    const problem = await verifyDebContent(t, file, p.key, p.entry, scratch);
    if (problem) return { why: problem };
  }
  let bytes: Buffer;
  try {
    bytes = await fetchFile(t, file);
  } catch (err) {
    // This package's source failed; the next source, and the other packages, are still tried.
    if (err instanceof CriuLockError) return { why: err.message };
    throw err;
  }
  if (sha256Of(bytes) !== hostSha) return { why: 'changed while it was read' };
  return { bytes };
}

const APT_PRIVATE = `set -eu
d=$1; shift
mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/parts" "$d/dl"
: > "$d/sources.list"
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do printf 'deb [trusted=yes] %s\\n' "$1" >> "$d/sources.list"; shift; done
`;

function privateAptOptions(d: string): string[] {
  return [
    '-o',
    `Dir::Etc::SourceList=${d}/sources.list`,
    '-o',
    `Dir::Etc::SourceParts=${d}/parts`,
    '-o',
    `Dir::Etc::PreferencesParts=${d}/parts`,
    '-o',
    `Dir::State::Lists=${d}/lists`,
    '-o',
    `Dir::Cache=${d}/cache`,
    '-o',
    'Dir::Cache::pkgcache=',
    '-o',
    'Dir::Cache::srcpkgcache=',
    '-o',
    'APT::Sandbox::User=root',
  ];
}

/** `apt-get download` of exact versions into `dir`, with the node's apt or a private one. */
async function aptDownload(
  t: Transport,
  dir: string,
  requests: readonly string[],
  aptOptions: readonly string[],
): Promise<{ ok: boolean; error: string }> {
  const r = await sh(t, 'cd "$1" && shift && exec apt-get download -q "$@"', [
    dir,
    ...aptOptions,
    '-o',
    'APT::Sandbox::User=root',
    '--',
    ...requests,
  ]);
  return { ok: r.exitCode === 0, error: lastLine(r) };
}

/** Downloads what it can (all at once, then one by one when one request fails) and returns the accepted bytes. */
async function fromApt(
  t: Transport,
  pending: Pending[],
  scratch: string,
  dl: string,
  aptOptions: readonly string[],
  label: string,
): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  if (pending.length === 0) return got;
  const reqs = pending.map((p) => `${p.key}=${p.entry.version}`);
  const all = await aptDownload(t, dl, reqs, aptOptions);
  const errors = new Map<string, string>();
  if (!all.ok) {
    for (const p of pending) {
      const one = await aptDownload(t, dl, [`${p.key}=${p.entry.version}`], aptOptions);
      if (!one.ok) errors.set(p.key, one.error);
    }
  }
  const files = pending.map((p) => `${dl}/${aptDebName(p.key, p.entry.version)}`);
  const shas = await hostSha256(t, files);
  for (const [i, p] of pending.entries()) {
    const file = files[i]!;
    const res = await acceptFromHost(t, p, file, shas.get(file), scratch);
    if ('bytes' in res && res.bytes) got.set(p.key, res.bytes);
    else p.tried.push(`${label}: ${errors.get(p.key) ?? res.why}`);
  }
  return got;
}

/** A local write into the store failed: the run's problem, not the golden node's (exit 1). */
export class StoreWriteError extends CriuLockError {
  constructor(file: string, err: unknown) {
    const e = err as NodeJS.ErrnoException;
    super('input', `cannot write package store file ${file}: ${e.code ?? e.message}`, {
      location: { file },
      hint: 'make room or fix the permissions of the store directory, then run criu-lock vendor again (what was stored is kept)',
    });
  }
}

// Our temporary files: a name the store uses, the writer's pid and a random part.
const TEMP_FILE = /^(?:[0-9a-f]{64}\.deb|manifest\.yaml)\.tmp-(\d{1,10})-[0-9a-f]{12}$/;

/**
 * Replaces `file` with `data`: a new temporary file beside it (exclusive create, so no existing
 * file or symbolic link there is written through), then renamed over it. Nothing is left behind
 * when either step fails.
 */
function writeAtomic(file: string, data: Buffer | string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    writeFileSync(tmp, data, { flag: 'wx', mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was made
    }
    throw new StoreWriteError(file, err);
  }
}

/** Whether the store holds `sha256` as a regular file of that content. */
function holds(dir: string, sha256: string, size: number): boolean {
  try {
    return sha256Of(readStoreFile(debPath(dir, sha256), size)) === sha256;
  } catch (err) {
    if (err instanceof StoreFileError) return false;
    throw err;
  }
}

/**
 * Removes the store files no entry names any more, and temporary files of runs that are gone.
 * Only regular files and links are removed; anything else named like a store file is left.
 */
export function pruneStore(dir: string, manifest: Manifest): void {
  const keep = new Set(Object.values(manifest.packages).map((e) => `${e.sha256}.deb`));
  for (const f of readdirSync(dir)) {
    const temp = TEMP_FILE.exec(f);
    const stale = temp ? !processAlive(Number(temp[1])) : /^[0-9a-f]{64}\.deb$/.test(f) && !keep.has(f);
    if (!stale) continue;
    const path = join(dir, f);
    try {
      const st = lstatSync(path);
      if (st.isFile() || st.isSymbolicLink()) rmSync(path, { force: true });
    } catch {
      // gone already, or not ours to remove: the store still reads correctly
    }
  }
}

/**
 * Fills the store with every locked package of the golden node's lock, each source tried in the
 * contract's order and each file verified before it is stored. Returns the new manifest (also
 * written) and a result per package. Store files no entry names any more are removed.
 */
export async function vendorLock(
  t: Transport,
  lock: Lockfile,
  dir: string,
  old: Manifest | undefined,
  opts: VendorOptions,
): Promise<{ manifest: Manifest; results: VendorResult[] }> {
  const log = opts.log ?? (() => undefined);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new StoreWriteError(dir, err);
  }
  const manifest: Manifest = { storeVersion: 1, packages: {} };
  const results: VendorResult[] = [];
  let pending: Pending[] = [];

  const store = (p: Pending, bytes: Buffer, origin: Origin): void => {
    const sha = sha256Of(bytes);
    if (!holds(dir, sha, bytes.length)) writeAtomic(debPath(dir, sha), bytes);
    const entry: StoreEntry = {
      version: p.entry.version,
      architecture: p.key.split(':')[1]!,
      sha256: sha,
      size: bytes.length,
      origin,
    };
    manifest.packages[p.key] = entry;
    results.push({ key: p.key, version: p.entry.version, status: 'stored', entry });
    log(`${p.key}=${p.entry.version}: stored from ${origin} (${bytes.length} bytes)`);
  };

  for (const { key, entry } of indexLock(lock).packages) {
    const prev = old?.packages[key];
    // A stored file for the same version that still verifies is kept; rebuilt files stay rebuilt,
    // so no node sees two different files under one version.
    if (prev && prev.version === entry.version && holds(dir, prev.sha256, prev.size)) {
      if (prev.origin === 'rebuilt' || entry.sha256 === undefined || entry.sha256 === prev.sha256) {
        manifest.packages[key] = prev;
        results.push({ key, version: entry.version, status: 'kept', entry: prev });
        continue;
      }
    }
    pending.push({ key, entry, tried: [] });
  }

  const scratch = pending.length > 0 ? await makeTemp(t, 'criu-lock-vendor') : undefined;
  try {
    if (scratch) {
      // 1. The golden node's apt cache.
      const cached = pending.map((p) => `${APT_CACHE}/${aptDebName(p.key, p.entry.version)}`);
      const cacheSha = await hostSha256(t, cached);
      const next: Pending[] = [];
      for (const [i, p] of pending.entries()) {
        const res = await acceptFromHost(t, p, cached[i]!, cacheSha.get(cached[i]!), scratch);
        if ('bytes' in res && res.bytes) store(p, res.bytes, 'golden-cache');
        else {
          p.tried.push(`golden apt cache: ${res.why}`);
          next.push(p);
        }
      }
      pending = next;

      // 2. apt-get download with the golden node's own sources.
      await sh(t, 'mkdir -p "$1/dl"', [scratch]);
      const viaApt = await fromApt(
        t,
        pending,
        scratch,
        `${scratch}/dl`,
        [],
        'apt-get download on the golden node',
      );
      for (const [k, bytes] of viaApt)
        store(
          pending.find((p) => p.key === k)!,
          bytes,
          'golden-apt',
        );
      pending = pending.filter((p) => !viaApt.has(p.key));

      // 3. Each --archive through a private apt configuration; the node's sources stay untouched.
      for (const [n, a] of opts.archives.entries()) {
        if (pending.length === 0) break;
        const d = `${scratch}/archive-${n}`;
        const lines = a.suites.map(
          (s) => `${a.url} ${s}${a.components.length ? ` ${a.components.join(' ')}` : ''}`,
        );
        const setup = await sh(t, APT_PRIVATE, [d, ...lines, '--']);
        const aptOptions = privateAptOptions(d);
        const update =
          setup.exitCode === 0
            ? await sh(t, 'exec apt-get update -q "$@"', aptOptions, { timeoutMs: 600_000 })
            : setup;
        if (update.exitCode !== 0) log(`archive ${a.url}: apt-get update: ${lastLine(update)}`);
        const label = `archive ${a.url}`;
        const got = await fromApt(t, pending, scratch, `${d}/dl`, aptOptions, label);
        for (const [k, bytes] of got)
          store(
            pending.find((p) => p.key === k)!,
            bytes,
            archiveOrigin(a),
          );
        pending = pending.filter((p) => !got.has(p.key));
      }

      // 4. Rebuilt from the golden node's installed files.
      const left: Pending[] = [];
      for (const p of pending) {
        if (!opts.rebuild) {
          p.tried.push('rebuild: not asked (--rebuild)');
          left.push(p);
          continue;
        }
        const [name, arch] = p.key.split(':') as [string, string];
        try {
          const deb = await rebuildPackage(
            t,
            { name, arch, version: p.entry.version },
            { expect: p.entry, scratch, ...(opts.warn ? { onWarning: opts.warn } : {}) },
          );
          store(p, deb.bytes, 'rebuilt');
        } catch (err) {
          p.tried.push(
            `rebuild: ${err instanceof RebuildError ? err.message : `failed: ${(err as Error).message}`}`,
          );
          left.push(p);
        }
      }
      for (const p of left)
        results.push({ key: p.key, version: p.entry.version, status: 'missing', tried: p.tried });
    }
  } finally {
    if (scratch) await removeTemp(t, scratch);
    // What was stored and verified so far is kept, even when the golden node went away mid-way.
    writeAtomic(join(dir, MANIFEST_FILE), serializeManifest(manifest));
  }
  pruneStore(dir, manifest);
  results.sort((a, b) => (a.key < b.key ? -1 : 1));
  return { manifest, results };
}

export type VerifyProblem = { key: string; problem: string };

/** `vendor --verify`: every store file against the manifest, and the manifest against the lock. */
export function verifyStore(lock: Lockfile, dir: string, manifest: Manifest): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  for (const { key, entry } of indexLock(lock).packages) {
    const e = manifest.packages[key];
    if (!e) {
      problems.push({ key, problem: 'not in the store' });
      continue;
    }
    if (e.version !== entry.version)
      problems.push({ key, problem: `the store holds ${e.version}, the lock needs ${entry.version}` });
    else if (claimsOtherBytes(e, entry.sha256)) {
      problems.push({ key, problem: `sha256 ${e.sha256} is not the lock's ${entry.sha256!}` });
    }
  }
  for (const [key, e] of Object.entries(manifest.packages)) {
    const file = debPath(dir, e.sha256);
    let bytes: Buffer | undefined;
    try {
      bytes = readStoreFile(file, e.size);
    } catch (err) {
      if (!(err instanceof StoreFileError)) throw err;
      problems.push({ key, problem: `${file} ${err.why}` });
    }
    if (bytes && sha256Of(bytes) !== e.sha256)
      problems.push({ key, problem: `${file} does not hash to its name (tampered or corrupt)` });
    if (!lock.packages[key])
      problems.push({ key, problem: 'in the store but not in the lock (re-run criu-lock vendor)' });
  }
  return problems.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
