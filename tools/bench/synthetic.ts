/**
 * Deterministic synthetic data for the pure-core micro-benchmarks: a lockfile of N packages and
 * the facts of one fleet host, drifted the way real fleets drift (a few packages behind or ahead,
 * a few missing, a few extra, half the hosts already carrying our pin file).
 */
import {
  fileAtLock,
  fileMode,
  lockedPath,
  parseDpkgLines,
  shareBuildId,
  type LockedStrings,
} from '../../src/facts/parse.js';
import type { AptPolicy, FileFact, HostFacts } from '../../src/facts/types.js';
import { indexLock } from '../../src/lock/lock-index.js';
import { finalizeLock, type FileEntry, type Lockfile, type PackageEntry } from '../../src/lock/lockfile.js';
import { sha256Hex } from '../../src/plan/pins.js';

const PLATFORM = { id: 'debian', versionId: '12', codename: 'bookworm', architecture: 'amd64' };

function hex(seed: number, len: number): string {
  let out = '';
  let x = (seed * 2654435761) >>> 0;
  while (out.length < len) {
    x = (Math.imul(x ^ (x >>> 13), 0x5bd1e995) + 0x6b43a9b5) >>> 0;
    out += x.toString(16).padStart(8, '0');
  }
  return out.slice(0, len);
}

/** A plausible Debian version for package i; `bump` > 0 gives a newer one, < 0 an older one. */
export function versionOf(i: number, bump = 0): string {
  const epoch = i % 23 === 0 ? `${1 + (i % 2)}:` : '';
  const upstream = [
    `${1 + (i % 5)}.${i % 17}.${i % 7}`,
    `${i % 3}.${i % 40}`,
    `${2 + (i % 4)}.${i % 9}~rc${1 + (i % 3)}`,
    `${i % 6}.${i % 11}+dfsg`,
  ][i % 4]!;
  const rev = [
    `-${2 + (i % 4)}`,
    `-${1 + (i % 3)}+deb12u${2 + (i % 5)}`,
    `-0ubuntu${2 + (i % 9)}.${3 + (i % 4)}`,
  ][i % 3]!;
  // Security updates move the last number of the revision.
  const last = /(\d+)$/.exec(rev)!;
  const n = Number(last[1]) + bump;
  return `${epoch}${upstream}${rev.slice(0, rev.length - last[1]!.length)}${n}`;
}

export function packageKey(i: number): string {
  return `pkg${String(i).padStart(5, '0')}-lib${i % 7}:${i % 10 === 9 ? 'all' : 'amd64'}`;
}

export interface SyntheticLockOptions {
  packages: number;
  /** Files of package i: filesPer(i). */
  filesPer: (i: number) => number;
}

export function syntheticLock(o: SyntheticLockOptions): Lockfile {
  const packages: Record<string, PackageEntry> = {};
  for (let i = 0; i < o.packages; i++) {
    const files: Record<string, FileEntry> = {};
    for (let f = 0; f < o.filesPer(i); f++) {
      files[`/usr/lib/x86_64-linux-gnu/libpkg${i}-${f}.so.${1 + (f % 3)}`] = {
        size: 10_000 + ((i * 7919 + f * 104729) % 3_000_000),
        mode: '0644',
        buildId: hex(i * 31 + f, 40),
      };
    }
    const entry: PackageEntry = { version: versionOf(i), sha256: hex(i + 1_000_000, 64) };
    if (Object.keys(files).length > 0) entry.files = files;
    packages[packageKey(i)] = entry;
  }
  return finalizeLock({
    lockfileVersion: 1,
    source: { host: 'golden', generatedAt: '2026-01-01T00:00:00Z' },
    platform: PLATFORM,
    scope: { kind: 'all' },
    packages,
  });
}

/**
 * Same text, a different string object: facts come from parsing, never share the lock's strings.
 * A flat copy, as the parser makes them (`detach` in facts/parse.ts; build-IDs come from
 * `Buffer#toString('hex')`): a V8 sliced string would make every comparison slower than it is
 * in the real CLI.
 */
function fresh(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

interface PackageTemplate {
  key: string;
  name: string;
  arch: string;
  policyKey: string;
  want: string;
  /** Versions one behind / one ahead. */
  behind: string;
  ahead: string;
  files: Array<{ path: string; size: number; mode: string; buildId: string; otherBuildId: string }>;
}

/** Per-lock data every host shares, computed once so the benchmark spends its time planning. */
export interface FleetTemplate {
  lock: Lockfile;
  keys: string[];
  packages: PackageTemplate[];
  /** Every locked file by path, as the probe answers them (in the order sent, the lock's). */
  files: Array<{ i: number; file: PackageTemplate['files'][number] }>;
  pins: string;
  pinSha: string;
  /** What the plan command hands the facts parser (GatherOptions.locked). */
  locked: LockedStrings;
}

export function fleetTemplate(lock: Lockfile, pins: string): FleetTemplate {
  const keys = Object.keys(lock.packages).sort();
  const packages = keys.map((key, i): PackageTemplate => {
    const want = lock.packages[key]!;
    const [name, arch] = key.split(':') as [string, string];
    return {
      key,
      name,
      arch,
      policyKey: arch === 'all' ? `${name}:amd64` : key,
      want: want.version,
      behind: versionOf(i, -1),
      ahead: versionOf(i, 1),
      files: Object.entries(want.files ?? {}).map(([path, f]) => ({
        path,
        size: f.size,
        mode: f.mode,
        buildId: f.buildId ?? '',
        otherBuildId: hex(i * 31 + 7, 40),
      })),
    };
  });
  const files = packages
    .flatMap((p, i) => p.files.map((file) => ({ i, file })))
    .sort((a, b) => (a.file.path < b.file.path ? -1 : 1));
  return { lock, keys, packages, files, pins, pinSha: sha256Hex(pins), locked: indexLock(lock) };
}

/**
 * Facts of host `h`. About 2 % of packages are behind or ahead (with other build-IDs), 0.5 %
 * missing, 5 extra packages; even hosts already carry the pin file. The packages are dpkg-query
 * lines cut from one text and read by the plan command's parser (parseDpkgLines with the lock);
 * paths, modes and build-IDs are taken as that parser takes a file record's; every other string
 * (versions apt offers, the pin file) is a fresh copy, as parsing makes them. apt's policy is
 * there only for the packages not at the lock: the plan's probe asks apt about no other
 * (policyUnless), so a host's policy Map holds about 50 entries, not 2,000.
 */
export function syntheticFacts(t: FleetTemplate, h: number): HostFacts {
  const dpkg: string[] = [];
  const files = new Map<string, FileFact>();
  const policies = new Map<string, AptPolicy>();
  const pk = t.packages;
  // Per package: 0 as locked, -1 behind, 1 ahead, 2 missing.
  const state = new Int8Array(pk.length);
  for (let i = 0; i < pk.length; i++) {
    const p = pk[i]!;
    const r = (i * 40503 + h * 9973) % 1000;
    const missing = r < 5;
    const drift = r >= 5 && r < 25 ? (r % 2 === 0 ? -1 : 1) : 0;
    state[i] = missing ? 2 : drift;
    const version = fresh(drift === 0 ? p.want : drift < 0 ? p.behind : p.ahead);
    if (!missing)
      dpkg.push(`${p.name}\t${p.arch}\t${version}\tinstall\tinstalled\tok\tsame\t\tlibc6 (>= 2.34)\t`);
    // apt is asked only about the packages not at the lock (the probe's policyUnless filter).
    if (drift === 0 && !missing) continue;
    const candidate = fresh(p.want);
    const versions = [
      {
        version: candidate,
        priority: h % 2 === 0 ? 1001 : 500,
        sources: ['file:/srv/repo ./ Packages'],
        installed: false,
      },
    ];
    if (drift !== 0) versions.push({ version, priority: 100, sources: [], installed: true });
    policies.set(fresh(p.policyKey), {
      key: fresh(p.policyKey),
      installed: missing ? undefined : version,
      candidate,
      versions,
    });
  }
  // The files' path, mode and build-ID, as the parser takes a file record's with the lock's strings.
  const atLock = new Uint8Array(t.locked.sharedPaths.length);
  let next = 0;
  for (const { i, file: f } of t.files) {
    const read = fresh(f.path);
    const lockedAs = lockedPath(t.locked, read, next);
    if (lockedAs) next = lockedAs.slot + 1;
    const path = lockedAs?.path ?? read;
    let fact: FileFact = { path, kind: 'missing' };
    if (state[i] !== 2) {
      const buildId = fresh(state[i] === 0 ? f.buildId : f.otherBuildId);
      fact = { path, kind: 'elf', size: f.size, mode: fileMode(fresh(f.mode)), buildId };
      shareBuildId(fact, lockedAs);
    }
    if (lockedAs) atLock[lockedAs.slot] = fileAtLock(fact, lockedAs);
    files.set(path, fact);
  }
  for (let e = 0; e < 5; e++)
    dpkg.push(`extra${h % 50}-${e}\tamd64\t${versionOf(h + e)}\tinstall\tinstalled\tok\tno\t\t\t`);
  // One text cut into lines, as the probe's output is (splitSections).
  const { packages, verdicts } = parseDpkgLines(
    dpkg.join('\n').split('\n'),
    PLATFORM.architecture,
    [],
    t.locked,
  );
  const hasPins = h % 2 === 0;
  return {
    host: `host${String(h).padStart(5, '0')}`,
    platform: { ...PLATFORM, foreignArchitectures: [] },
    packages,
    packageFiles: new Map(),
    files,
    mapped: [],
    policies,
    debSha256: new Map(),
    pinFile: hasPins ? fresh(t.pins) : null,
    pinSha256: hasPins ? fresh(t.pinSha) : null,
    problems: [],
    // As parseProbeOutput attaches them (LockVerdicts).
    lockVerdicts: { locked: t.locked, packages, files, fileAtLock: atLock, ...verdicts! },
  };
}
