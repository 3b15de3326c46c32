/**
 * Builders for the pure core's inputs (lockfiles and host facts), so planner and check tests
 * describe a host in a few lines instead of spelling out every field.
 */
import type {
  AptPolicy,
  FileFact,
  HostFacts,
  HostProblem,
  InstalledPackage,
  Platform,
  PolicyVersion,
} from '../../src/facts/types.js';
import {
  finalizeLock,
  type FileEntry,
  type Lockfile,
  type PackageEntry,
  type Scope,
} from '../../src/lock/lockfile.js';

export const FOCAL: Platform = {
  id: 'ubuntu',
  versionId: '20.04',
  codename: 'focal',
  architecture: 'amd64',
  foreignArchitectures: [],
};

export const REPO = 'file:/srv/repo ./ Packages';

export interface LockSpec {
  packages?: Record<string, PackageEntry>;
  unmanaged?: Record<string, FileEntry>;
  scope?: Scope;
  platform?: Partial<Omit<Platform, 'foreignArchitectures'>>;
  host?: string;
  generatedAt?: string;
}

export function makeLock(spec: LockSpec = {}): Lockfile {
  const platform = {
    id: FOCAL.id,
    versionId: FOCAL.versionId,
    codename: FOCAL.codename,
    architecture: FOCAL.architecture,
  };
  return finalizeLock({
    lockfileVersion: 1,
    source: { host: spec.host ?? 'golden', generatedAt: spec.generatedAt ?? '2026-11-25T17:00:00Z' },
    platform: { ...platform, ...spec.platform },
    scope: spec.scope ?? { kind: 'all' },
    packages: spec.packages ?? {},
    ...(spec.unmanaged ? { unmanaged: spec.unmanaged } : {}),
  });
}

export function pkg(key: string, version: string, over: Partial<InstalledPackage> = {}): InstalledPackage {
  const [name = key, arch = 'amd64'] = key.split(':');
  return {
    key,
    name,
    arch,
    version,
    want: 'install',
    status: 'installed',
    eflag: 'ok',
    multiArch: 'same',
    preDepends: '',
    depends: '',
    provides: '',
    ...over,
  };
}

/** One row of `apt-cache policy`'s version table. Sources default to one repository. */
export function pv(
  version: string,
  priority = 500,
  opts: { sources?: string[]; installed?: boolean } = {},
): PolicyVersion {
  return { version, priority, sources: opts.sources ?? [REPO], installed: opts.installed ?? false };
}

export interface FactsSpec {
  host?: string;
  platform?: Partial<Platform>;
  /** key → version, or a full package (for holds and broken states). */
  packages?: Record<string, string | InstalledPackage>;
  /** key → version table. */
  policies?: Record<string, PolicyVersion[]>;
  files?: FileFact[];
  pinFile?: string | null;
  pinSha256?: string | null;
  problems?: HostProblem[];
}

export function makeFacts(spec: FactsSpec = {}): HostFacts {
  const packages = new Map<string, InstalledPackage>();
  for (const [key, v] of Object.entries(spec.packages ?? {}))
    packages.set(key, typeof v === 'string' ? pkg(key, v) : v);
  const policies = new Map<string, AptPolicy>();
  for (const [key, versions] of Object.entries(spec.policies ?? {})) {
    const installed = packages.get(key)?.version;
    policies.set(key, { key, installed, candidate: versions[0]?.version, versions });
  }
  return {
    host: spec.host ?? 'node-b',
    platform: { ...FOCAL, ...spec.platform },
    packages,
    packageFiles: new Map(),
    files: new Map((spec.files ?? []).map((f) => [f.path, f])),
    mapped: [],
    policies,
    debSha256: new Map(),
    pinFile: spec.pinFile ?? null,
    pinSha256: spec.pinSha256 ?? null,
    problems: spec.problems ?? [],
  };
}

/** A regular ELF file fact as the probe reports it. */
export function elf(path: string, size: number, mode: string, buildId: string | null): FileFact {
  return { path, kind: 'elf', size, mode, buildId };
}

/** The facts of a host whose files match a lock entry exactly. */
export function filesOf(lock: Lockfile): FileFact[] {
  const out: FileFact[] = [];
  const add = (path: string, e: FileEntry): void => {
    out.push(
      e.buildId === undefined
        ? { path, kind: 'file', size: e.size, mode: e.mode }
        : elf(path, e.size, e.mode, e.buildId),
    );
  };
  for (const p of Object.values(lock.packages))
    for (const [path, e] of Object.entries(p.files ?? {})) add(path, e);
  for (const [path, e] of Object.entries(lock.unmanaged ?? {})) add(path, e);
  return out;
}
