import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { CriuLockError } from '../errors.js';
import { errorText, isHostFailure } from '../fleet/host-error.js';
import { findGolden } from '../inventory/limit.js';
import { loadLock, type Lockfile } from '../lock/lockfile.js';
import { loadStore, MANIFEST_FILE, storeDir } from '../store/manifest.js';
import { parseArchive, vendorLock, verifyStore, type VendorResult } from '../store/vendor.js';
import { errLine, type CommandDeps, type CommonOptions } from './context.js';
import { makeOutputDir } from './output-path.js';
import { prepareRun } from './prepare.js';

export interface VendorOptions extends CommonOptions {
  lockfile: string;
  golden?: string | undefined;
  store?: string | undefined;
  archives: string[];
  rebuild: boolean;
  verify: boolean;
}

function summary(results: readonly VendorResult[], dir: string): string {
  const byOrigin = new Map<string, number>();
  let bytes = 0;
  for (const r of results) {
    if (r.status === 'missing') continue;
    const k = r.status === 'kept' ? 'kept' : r.entry.origin;
    byOrigin.set(k, (byOrigin.get(k) ?? 0) + 1);
    bytes += r.entry.size;
  }
  const missing = results.filter((r) => r.status === 'missing').length;
  const parts = [...byOrigin].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${n} ${k}`);
  return `store ${dir}: ${results.length - missing} of ${results.length} package(s) (${parts.join(', ') || 'none'}; ${(bytes / 1048576).toFixed(1)} MiB), ${missing} unprovidable\n`;
}

/** Whether anything, a broken link included, is at `path`. */
function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Vendors the lock into the store through the golden node; exit 3 when a package cannot be provided. */
export async function vendorWith(
  lock: Lockfile,
  opts: Omit<VendorOptions, 'verify'>,
  deps: CommandDeps,
): Promise<number> {
  const { io } = deps;
  const archives = opts.archives.map((a) => parseArchive(a, lock.platform));
  const dir = storeDir(opts.lockfile, opts.store);
  // Only a store that does not exist yet, or has no manifest yet, is vendored afresh. A manifest
  // that does not read is an error: vendoring over it would drop its rebuilt entries and files.
  // lstat, not exists: a manifest that is a link to nothing (or a loop) is there, and unreadable.
  const old = lexists(join(dir, MANIFEST_FILE)) ? loadStore(dir) : undefined;
  await makeOutputDir(dir, '--store');
  const run = await prepareRun(opts, deps, { select: (inv) => [findGolden(inv, opts.golden)] });
  const golden = run.hosts[0]!;
  const started = run.clock.monotonicMs();
  io.err(
    `vendoring ${Object.keys(lock.packages).length} locked package(s) through ${golden.name} into ${dir}\n`,
  );
  const r = await run.withHost(
    golden,
    (t) =>
      vendorLock(t, lock, dir, old?.manifest, {
        archives,
        rebuild: opts.rebuild,
        log: (m) => run.log(golden.name, m),
        warn: (m) => errLine(io, `warning: ${m}`),
      }),
    'vendor',
  );
  if (isHostFailure(r)) {
    // A write into the local store that failed is this machine's problem, not the golden node's.
    if (r.error.code === 'input') {
      errLine(io, `error: ${errorText(r.error)}`);
      return 1;
    }
    errLine(io, `error: golden node ${golden.name} ${r.status}: ${errorText(r.error)}`);
    return 3;
  }
  const missing = r.results.filter((x) => x.status === 'missing');
  for (const m of missing) {
    if (m.status !== 'missing') continue;
    errLine(io, `unprovidable ${m.key}=${m.version}; tried:`);
    for (const t of m.tried) errLine(io, `    ${t}`);
  }
  io.err(summary(r.results, dir).replace(/\n$/, ` in ${(run.since(started) / 1000).toFixed(1)} s\n`));
  if (missing.length > 0)
    io.err(`  hint: add --archive URL (a snapshot or internal mirror) or --rebuild to provide the rest\n`);
  return missing.length > 0 ? 3 : 0;
}

export async function runVendor(opts: VendorOptions, deps: CommandDeps): Promise<number> {
  const { io } = deps;
  const lock = await loadLock(opts.lockfile);
  if (!opts.verify) return vendorWith(lock, opts, deps);
  if (opts.archives.length > 0 || opts.rebuild) {
    throw new CriuLockError(
      'usage',
      '--verify checks the store as it is; it cannot be combined with --archive or --rebuild',
      { hint: 'run criu-lock vendor first, then criu-lock vendor --verify' },
    );
  }
  const dir = storeDir(opts.lockfile, opts.store);
  const store = loadStore(dir);
  if (!store)
    throw new CriuLockError('input', `no package store at ${dir}`, {
      hint: 'create it with criu-lock vendor (or generate --vendor)',
      location: { file: dir },
    });
  const problems = verifyStore(lock, dir, store.manifest);
  for (const p of problems) io.out(`bad  ${p.key}: ${p.problem}\n`);
  const n = Object.keys(store.manifest.packages).length;
  io.err(
    `store ${dir}: ${n} file(s) checked against the manifest and ${opts.lockfile}: ${problems.length === 0 ? 'all good' : `${problems.length} problem(s)`}\n`,
  );
  return problems.length === 0 ? 0 : 1;
}
