import { hash } from 'node:crypto';
import { compareVersions } from '../debian/version.js';
import { compareFile, comparePlatform } from '../check/compare.js';
import { policyOf } from '../facts/queries.js';
import type { FileFact, HostFacts, InstalledPackage } from '../facts/types.js';
import { indexLock } from '../lock/lock-index.js';
import type { FileEntry, Lockfile } from '../lock/lockfile.js';
import type { HostError } from '../fleet/host-error.js';
import type { Blocked, HostPlan, Note, PackageAction } from './plan-file.js';
import { PIN_FILE, PIN_PRIORITY, parsePins, sha256Hex } from './pins.js';

const ACTION_ORDER: Record<PackageAction['type'], number> = {
  install: 0,
  upgrade: 1,
  downgrade: 2,
  reinstall: 3,
};

interface IndexedPackage {
  key: string;
  want: string;
  /** The package's locked files: paths, their slots in PlanIndex.slotOfPath, their entries. */
  paths: readonly string[];
  slots: readonly number[];
  entries: readonly FileEntry[];
}

/**
 * What planning needs from a lock, computed once per lock and shared by every host: planning
 * 10,000 hosts must not redo per-lock work 10,000 times.
 *
 * A host's facts arrive as Maps of fresh strings, scattered in memory; looking each locked key up
 * in them costs a cache miss or two per package. The planner walks the host's Maps in order
 * instead (sequential memory) and looks each entry up in these per-lock Maps, which every host
 * shares and which therefore stay in cache. What it finds lands in the scratch arrays, one slot
 * per locked package or path, emptied again before planHost returns.
 */
interface PlanIndex {
  packages: readonly IndexedPackage[];
  /** The packages' keys and every locked path, in the lock's sorted order: slot i holds [i]. */
  keys: readonly string[];
  paths: readonly string[];
  unmanaged: ReadonlyArray<readonly [string, FileEntry]>;
  slotOfKey: ReadonlyMap<string, number>;
  slotOfPath: ReadonlyMap<string, number>;
  gotPackages: Array<InstalledPackage | undefined>;
  gotFiles: Array<FileFact | undefined>;
}

const planIndexes = new WeakMap<Lockfile, PlanIndex>();

function planIndex(lock: Lockfile): PlanIndex {
  let index = planIndexes.get(lock);
  if (!index) {
    const base = indexLock(lock);
    const slotOfPath = new Map(base.paths.map((path, i) => [path, i]));
    index = {
      packages: base.packages.map((p) => ({
        key: p.key,
        want: p.entry.version,
        paths: p.files.map(([path]) => path),
        slots: p.files.map(([path]) => slotOfPath.get(path)!),
        entries: p.files.map(([, entry]) => entry),
      })),
      keys: base.packages.map((p) => p.key),
      paths: base.paths,
      unmanaged: base.unmanaged,
      slotOfKey: new Map(base.packages.map((p, i) => [p.key, i])),
      slotOfPath,
      gotPackages: new Array<InstalledPackage | undefined>(base.packages.length).fill(undefined),
      gotFiles: new Array<FileFact | undefined>(base.paths.length).fill(undefined),
    };
    planIndexes.set(lock, index);
  }
  return index;
}

/**
 * What the plan was computed from: dpkg state of every locked package, the pin file, the
 * platform. apply recomputes it and refuses a host whose fingerprint moved.
 */
export function fingerprint(lock: Lockfile, facts: HostFacts): string {
  const index = planIndex(lock);
  const lines = fingerprintHead(lock, facts);
  for (const p of index.packages) lines.push(fingerprintLine(facts.packages.get(p.key)));
  return fingerprintOf(lines, facts);
}

// One line per locked package in the lock's sorted order (the digest binds the order to the
// keys): its version, plus dpkg's want/status/flag when they are not the usual ones. A version
// never contains a space nor equals "-", so the encoding is unambiguous.
function fingerprintHead(lock: Lockfile, facts: HostFacts): string[] {
  const { id, versionId, architecture } = facts.platform;
  return [`${lock.digest} ${id} ${versionId} ${architecture}`];
}

function fingerprintLine(p: InstalledPackage | undefined): string {
  if (!p) return '-';
  if (p.want === 'install' && p.status === 'installed' && p.eflag === 'ok') return p.version;
  return `${p.version} ${p.want} ${p.status} ${p.eflag}`;
}

function fingerprintOf(lines: string[], facts: HostFacts): string {
  lines.push(`pins ${facts.pinSha256 ?? 'absent'}`, '');
  // One one-shot hash of the joined text: per-line updates cost more than the hashing at 2,000
  // packages, and a Hash object per host costs more than hashing 30 KiB.
  return `sha256:${hash('sha256', lines.join('\n'))}`;
}

function filesDiffer(p: IndexedPackage, gotFiles: ReadonlyArray<FileFact | undefined>): boolean {
  const { paths, slots, entries } = p;
  for (let i = 0; i < paths.length; i++) {
    if (compareFile(p.key, paths[i]!, entries[i]!, gotFiles[slots[i]!])) return true;
  }
  return false;
}

function availableVersions(facts: HostFacts, key: string): string[] {
  return (policyOf(facts, key)?.versions ?? []).filter((v) => v.sources.length > 0).map((v) => v.version);
}

// Every host of a run gets the same rendered pins: hash them once, not once per host.
let lastPins: { text: string; sha: string } | undefined;
function pinsSha(text: string): string {
  if (lastPins?.text !== text) lastPins = { text, sha: sha256Hex(text) };
  return lastPins.sha;
}

/** What the package store holds, by package key: the version and the sha256 of its .deb. */
export type StoreIndex = ReadonlyMap<string, { version: string; sha256: string }>;

/**
 * Pure: (lock, facts of one host) → that host's plan. `desiredPins` is the rendered pin file,
 * passed in so the planner stays free of templates and I/O. `store` (when a package store exists)
 * supplies versions the host's apt sources lack; such actions carry `source: 'store'`.
 */
export function planHost(
  lock: Lockfile,
  facts: HostFacts,
  desiredPins: string,
  store?: StoreIndex,
): HostPlan {
  const index = planIndex(lock);
  const actions: PackageAction[] = [];
  const blocked: Blocked[] = [];
  const notes: Note[] = [];

  // The host's packages and files by the lock's slots, and its extra packages, in one walk over
  // each of its Maps (see PlanIndex). Facts list what the lock locks mostly in the lock's own
  // sorted order (the probe reads paths in the order it was sent them; dpkg-query sorts by name),
  // so the entry after the last match is tried first: one string comparison instead of hashing a
  // fresh string. Any other order still lands in the right slot through the Map.
  const { gotPackages, gotFiles } = index;
  const keys = index.keys;
  const paths = index.paths;
  try {
    let next = 0;
    for (const [key, p] of facts.packages) {
      const slot = keys[next] === key ? next : index.slotOfKey.get(key);
      if (slot !== undefined) {
        gotPackages[slot] = p;
        next = slot + 1;
      } else if (lock.scope.kind === 'all')
        notes.push({ type: 'extra-package', package: key, version: p.version });
    }
    next = 0;
    for (const [path, f] of facts.files) {
      const slot = paths[next] === path ? next : index.slotOfPath.get(path);
      if (slot !== undefined) {
        gotFiles[slot] = f;
        next = slot + 1;
      }
    }
    return planWithSlots(lock, index, facts, desiredPins, actions, blocked, notes, store);
  } finally {
    // planHost is synchronous, so one pair of arrays serves every host; emptied so no host's facts
    // outlive its plan.
    gotPackages.fill(undefined);
    gotFiles.fill(undefined);
  }
}

function planWithSlots(
  lock: Lockfile,
  index: PlanIndex,
  facts: HostFacts,
  desiredPins: string,
  actions: PackageAction[],
  blocked: Blocked[],
  notes: Note[],
  store: StoreIndex | undefined,
): HostPlan {
  const { gotPackages, gotFiles } = index;
  // One pass over the lock: the fingerprint's lines and the packages that must move. Files are
  // compared only for packages at the locked version (a version that moves replaces its files
  // anyway), and a package stops at its first differing file.
  const lines = fingerprintHead(lock, facts);
  const moves: Array<{ p: IndexedPackage; got: InstalledPackage | undefined; type: PackageAction['type'] }> =
    [];
  const pkgs = index.packages;
  for (let i = 0; i < pkgs.length; i++) {
    const p = pkgs[i]!;
    const got = gotPackages[i];
    lines.push(fingerprintLine(got));
    let type: PackageAction['type'] | undefined;
    if (!got) type = 'install';
    else {
      const c = got.version === p.want ? 0 : compareVersions(got.version, p.want);
      if (c < 0) type = 'upgrade';
      else if (c > 0) type = 'downgrade';
      else if (filesDiffer(p, gotFiles)) type = 'reinstall';
    }
    if (type) moves.push({ p, got, type });
  }
  const fp = fingerprintOf(lines, facts);

  for (const m of comparePlatform(lock, facts)) {
    if (m.field === 'codename') continue; // id + versionId already decide; codename only restates them
    blocked.push({
      package: null,
      version: null,
      reason: 'platform-mismatch',
      detail: `${m.field} is ${JSON.stringify(m.actual)}, the lock needs ${JSON.stringify(m.expected)}`,
    });
  }
  if (blocked.length > 0)
    return { name: facts.host, status: 'blocked', fingerprint: fp, actions: [], blocked, notes: [] };

  for (const p of facts.problems) {
    if (p.type === 'broken-dpkg-state') {
      blocked.push({
        package: p.package ?? null,
        version: null,
        reason: 'broken-dpkg-state',
        detail: p.detail,
      });
    }
  }

  // A file no package owns cannot be converged by apt: the host is blocked until someone fixes it.
  for (const [path, entry] of index.unmanaged) {
    const f = compareFile(null, path, entry, gotFiles[index.slotOfPath.get(path)!]);
    if (f?.type === 'file') {
      blocked.push({
        package: null,
        version: null,
        reason: 'file-mismatch',
        detail: `unmanaged file ${f.path}: ${f.criu}`,
      });
    }
  }

  // Our own pins are read back only when a rival pin is suspected.
  let ourPins: Map<string, { version: string; priority: number }> | undefined;
  const ourPin = (key: string): { version: string } | undefined => {
    ourPins ??= facts.pinFile === null ? new Map() : parsePins(facts.pinFile);
    return ourPins.get(key) ?? ourPins.get(key.replace(/:all$/, ''));
  };

  for (const { p, got, type } of moves) {
    const { key, want } = p;
    const available = availableVersions(facts, key);
    // The node's own sources first: the store only fills in what they lack, so a node never sees
    // two different files (archive and rebuilt) under one version.
    const stored = store?.get(key);
    const fromStore =
      !available.some((v) => compareVersions(v, want) === 0) &&
      stored !== undefined &&
      compareVersions(stored.version, want) === 0;
    if (!fromStore && !available.some((v) => compareVersions(v, want) === 0)) {
      const noStore = store === undefined ? '' : '; the package store does not hold it either';
      blocked.push({
        package: key,
        version: want,
        reason: 'version-unavailable',
        detail:
          available.length > 0
            ? `the node's apt sources offer ${available.join(', ')}, not ${want}${noStore}`
            : `no apt source of the node offers ${key.split(':')[0]}${noStore}; run plan --refresh if the sources changed`,
      });
      continue;
    }
    if (got?.want === 'hold') {
      blocked.push({
        package: key,
        version: want,
        reason: 'held',
        detail: `${key} is on hold (apt-mark unhold ${key.split(':')[0]} to let it move)`,
      });
      continue;
    }
    const rival = (policyOf(facts, key)?.versions ?? []).find((v) => {
      if (v.priority < PIN_PRIORITY || compareVersions(v.version, want) === 0) return false;
      const mine = ourPin(key);
      return !(mine && compareVersions(mine.version, v.version) === 0);
    });
    if (rival) {
      blocked.push({
        package: key,
        version: want,
        reason: 'conflicting-pin',
        detail: `another apt preference pins ${rival.version} at priority ${rival.priority} (≥ ${PIN_PRIORITY}); remove it from /etc/apt/preferences(.d)`,
      });
      continue;
    }
    actions.push(
      fromStore
        ? { type, package: key, from: got?.version ?? null, to: want, source: 'store', sha256: stored.sha256 }
        : { type, package: key, from: got?.version ?? null, to: want },
    );
  }

  if (notes.length > 1) {
    notes.sort((a, b) => (a.package < b.package ? -1 : a.package > b.package ? 1 : 0));
  }

  actions.sort((a, b) => ACTION_ORDER[a.type] - ACTION_ORDER[b.type] || (a.package < b.package ? -1 : 1));
  const all: HostPlan['actions'] = [];
  const desiredSha = pinsSha(desiredPins);
  if (facts.pinSha256 !== desiredSha) all.push({ type: 'write-pins', path: PIN_FILE, sha256: desiredSha });
  all.push(...actions);
  const status: HostPlan['status'] = blocked.length > 0 ? 'blocked' : all.length > 0 ? 'changes' : 'ok';
  return { name: facts.host, status, fingerprint: fp, actions: all, blocked, notes };
}

export function failedHostPlan(name: string, status: 'unreachable' | 'failed', error: HostError): HostPlan {
  return { name, status, fingerprint: null, actions: [], blocked: [], notes: [], error };
}
