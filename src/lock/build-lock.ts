import { CriuLockError } from '../errors.js';
import { isHealthy } from '../facts/queries.js';
import type { FileFact, HostFacts, InstalledPackage } from '../facts/types.js';
import { isVirtualFsPath } from './locked-path.js';
import { finalizeLock, type FileEntry, type Lockfile, type PackageEntry, type Scope } from './lockfile.js';

/**
 * What `generate` locks from the golden node's facts: the lockfile's own scope type, except a
 * checkpoint, whose lock is built from CRIU's images (`buildCheckpointLock`).
 */
export type GenerateScope = Exclude<Scope, { kind: 'checkpoint' }>;

export interface BuildLockResult {
  lock: Lockfile;
  warnings: string[];
}

function fileEntry(f: FileFact): FileEntry | undefined {
  if (f.size === undefined || f.mode === undefined) return undefined;
  const e: FileEntry = { size: f.size, mode: f.mode };
  if (typeof f.buildId === 'string') e.buildId = f.buildId;
  return e;
}

/** Resolves a requested name (`name` or `name:arch`) to the installed key, preferring the native arch. */
export function resolveInstalled(
  facts: HostFacts,
  name: string,
  preferArch?: string,
): InstalledPackage | undefined {
  const [base, arch] = name.split(':');
  if (arch && arch !== 'any' && arch !== 'native') return facts.packages.get(`${base}:${arch}`);
  const candidates = [...facts.packages.values()].filter((p) => p.name === base);
  const rank = (p: InstalledPackage): number =>
    p.arch === preferArch ? 0 : p.arch === facts.platform.architecture ? 1 : p.arch === 'all' ? 2 : 3;
  return candidates.sort((a, b) => rank(a) - rank(b))[0];
}

/** One alternative of a Depends field: `name[:arch] [(op version)] [<profile>]`. */
function relationName(alt: string): string {
  return alt.trim().split(/[\s(<[]/)[0] ?? '';
}

/**
 * The installed dependency closure (Depends + Pre-Depends). For alternatives the first one
 * satisfied by an installed package wins; virtual names go through installed Provides.
 */
export function dependencyClosure(facts: HostFacts, roots: readonly InstalledPackage[]): InstalledPackage[] {
  const providers = new Map<string, InstalledPackage[]>();
  for (const p of facts.packages.values()) {
    for (const prov of p.provides.split(',')) {
      const n = relationName(prov);
      if (!n) continue;
      const list = providers.get(n) ?? [];
      list.push(p);
      providers.set(n, list);
    }
  }
  const seen = new Map<string, InstalledPackage>();
  const queue = [...roots];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (seen.has(p.key)) continue;
    seen.set(p.key, p);
    const rel = [p.preDepends, p.depends].filter((s) => s.trim() !== '').join(', ');
    for (const clause of rel.split(',')) {
      if (clause.trim() === '') continue;
      for (const alt of clause.split('|')) {
        const name = relationName(alt);
        const direct = resolveInstalled(facts, name, p.arch);
        const found = direct ?? providers.get(name.split(':')[0] ?? '')?.[0];
        if (found) {
          if (!seen.has(found.key)) queue.push(found);
          break;
        }
      }
    }
  }
  return [...seen.values()];
}

/** What a scope locks on the golden node: packages with the files to record, unmanaged files, warnings. */
export interface ScopeSelection {
  packages: Array<{ pkg: InstalledPackage; files: readonly FileFact[] }>;
  unmanaged?: Record<string, FileEntry>;
  /** The scope as recorded in the lock (sorted). */
  scope: Scope;
  warnings: string[];
}

/**
 * The one switch over scopes: which installed packages (and files) a scope locks. Pure. `generate`
 * calls it on the package list alone to know which packages to read files of and checksum, and
 * buildLock on the full facts.
 */
export function selectForScope(facts: HostFacts, scope: GenerateScope, host: string): ScopeSelection {
  const warnings: string[] = [];
  switch (scope.kind) {
    case 'all': {
      const broken = facts.problems.filter((p) => p.type === 'broken-dpkg-state');
      if (broken.length > 0) {
        throw new CriuLockError(
          'input',
          `golden node ${host} has packages in a broken dpkg state: ${broken.map((b) => b.package).join(', ')}`,
          {
            hint: 'repair the golden node first (dpkg --configure -a; apt-get -f install), then generate again',
          },
        );
      }
      const packages = [...facts.packages.values()].map((pkg) => ({
        pkg,
        files: facts.packageFiles.get(pkg.key) ?? [],
      }));
      return { packages, scope: { kind: 'all' }, warnings };
    }
    case 'packages': {
      const roots = scope.packages.map((name) => {
        const p = resolveInstalled(facts, name);
        if (!p) {
          throw new CriuLockError('usage', `package ${name} is not installed on golden node ${host}`, {
            hint: 'check the name with `dpkg -l` on the golden node',
          });
        }
        return p;
      });
      const chosen = scope.withDeps ? dependencyClosure(facts, roots) : roots;
      return {
        packages: chosen.map((pkg) => ({ pkg, files: facts.packageFiles.get(pkg.key) ?? [] })),
        scope: { kind: 'packages', packages: [...scope.packages].sort(), withDeps: scope.withDeps },
        warnings,
      };
    }
    case 'processes': {
      const missing = facts.problems.filter((p) => p.type === 'process-missing');
      if (missing.length > 0) {
        throw new CriuLockError('usage', `golden node ${host}: ${missing.map((m) => m.detail).join('; ')}`, {
          hint: 'pass the PID of a running process on the golden node',
        });
      }
      const byOwner = new Map<string, FileFact[]>();
      const unmanaged: Record<string, FileEntry> = {};
      for (const m of facts.mapped) {
        if (isVirtualFsPath(m.path)) {
          // A lockfile refuses these paths at load (locked-path.ts); say why the file is left out.
          warnings.push(
            `process ${m.pid} maps ${m.path}: not locked, files under /proc, /sys and /dev are not files a package or criu-lock controls`,
          );
          continue;
        }
        if (m.deleted) {
          warnings.push(
            `process ${m.pid} maps ${m.path}, which was deleted or replaced since it started; CRIU would need it as a ghost file — restart the process before migrating`,
          );
        }
        if (m.owner) {
          const list = byOwner.get(m.owner) ?? [];
          list.push(m);
          byOwner.set(m.owner, list);
        } else {
          const e = fileEntry(m);
          if (e) unmanaged[m.path] = e;
        }
      }
      const packages: ScopeSelection['packages'] = [];
      for (const [key, files] of byOwner) {
        const pkg = facts.packages.get(key);
        if (pkg) packages.push({ pkg, files });
      }
      return {
        packages,
        unmanaged,
        scope: { kind: 'processes', pids: [...scope.pids].sort((a, b) => a - b) },
        warnings,
      };
    }
    default: {
      const never: never = scope;
      throw new Error(`unknown scope ${JSON.stringify(never)}`);
    }
  }
}

/** Pure: golden facts + scope → lockfile. No SSH, no clock (generatedAt is passed in). */
export function buildLock(
  facts: HostFacts,
  scope: GenerateScope,
  source: { host: string; generatedAt: string },
): BuildLockResult {
  const selection = selectForScope(facts, scope, source.host);
  const packages: Record<string, PackageEntry> = {};
  for (const { pkg: p, files } of selection.packages) {
    if (!isHealthy(p)) {
      throw new CriuLockError(
        'input',
        `golden node ${source.host}: ${p.key} is ${p.status} (${p.eflag}); refusing to lock a half-installed package`,
        {
          hint: 'repair the golden node first (dpkg --configure -a; apt-get -f install), then generate again',
        },
      );
    }
    const entry: PackageEntry = packages[p.key] ?? { version: p.version };
    const sha =
      facts.debSha256.get(`${p.key}=${p.version}`) ??
      facts.debSha256.get(`${p.name}:${facts.platform.architecture}=${p.version}`);
    if (sha) entry.sha256 = sha;
    for (const f of files) {
      const e = fileEntry(f);
      if (!e) continue;
      entry.files ??= {};
      entry.files[f.path] = e;
    }
    packages[p.key] = entry;
  }
  const { id, versionId, codename, architecture } = facts.platform;
  const lock = finalizeLock({
    lockfileVersion: 1,
    source,
    platform: { id, versionId, codename, architecture },
    scope: selection.scope,
    packages,
    ...(selection.unmanaged !== undefined ? { unmanaged: selection.unmanaged } : {}),
  });
  return { lock, warnings: selection.warnings };
}
