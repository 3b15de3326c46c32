import { hash } from 'node:crypto';
import { compareVersions } from '../debian/version.js';
import { detach } from '../detach.js';
import { compareFile, comparePlatform } from '../check/compare.js';
import { fileMode } from '../facts/parse.js';
import type {
  AptPolicy,
  FileFact,
  HostFacts,
  InstalledPackage,
  LockVerdicts,
  PolicyVersion,
} from '../facts/types.js';
import { indexLock, isSharedEntry, verdictsFor, type LockIndex } from '../lock/lock-index.js';
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

const ACTION_TYPES = (Object.keys(ACTION_ORDER) as Array<PackageAction['type']>).sort(
  (a, b) => ACTION_ORDER[a] - ACTION_ORDER[b],
);

interface IndexedPackage {
  key: string;
  want: string;
  /** For an `all` package, its name: apt prints its policy under the native architecture. */
  allName: string | undefined;
}

/**
 * What planning needs from a lock, computed once per lock and shared by every host: planning
 * 10,000 hosts must not redo per-lock work 10,000 times.
 *
 * Facts parsed against this lock carry the parser's verdicts (LockVerdicts, decision 23): one
 * byte per locked package and path saying "at the lock". The planner then scans those bytes and
 * looks up in the host's Maps only what differs.
 *
 * Facts without verdicts (made by hand, or parsed without the lock) arrive as Maps of fresh
 * strings, scattered in memory; looking each locked key up in them costs a cache miss or two per
 * package. The planner walks the host's Maps in order instead (sequential memory) and looks each
 * entry up in these per-lock Maps, which every host shares and which therefore stay in cache.
 * What it finds lands in the scratch arrays, one slot per locked package or path, emptied again
 * before planHost returns.
 *
 * The locked files are flat arrays (package i owns files fileStart[i] .. fileStart[i + 1] - 1), so
 * checking a package's files touches no per-package object.
 */
interface PlanIndex {
  packages: readonly IndexedPackage[];
  /** The packages' keys and every locked path, in the lock's sorted order: slot i holds [i]. */
  keys: readonly string[];
  paths: readonly string[];
  unmanaged: ReadonlyArray<readonly [string, FileEntry]>;
  slotOfKey: ReadonlyMap<string, number>;
  slotOfPath: ReadonlyMap<string, number>;
  fileStart: Int32Array;
  fileSlot: Int32Array;
  fileSize: Float64Array;
  fileMode: readonly string[];
  fileBuildId: ReadonlyArray<string | undefined>;
  /**
   * Per locked file entry: 1 when it equals its path's entry in LockedStrings.byPath (size, mode,
   * build-ID), so the parser's verdict on the path (LockVerdicts.fileAtLock) is a verdict on it.
   */
  fileVerdictApplies: Uint8Array;
  /** Per locked file entry: the package (slot) that owns it. */
  fileOwner: Int32Array;
  /** Scratch, per package: 1 when one of its files is not judged at the lock (emptied after each host). */
  filesToCheck: Uint8Array;
  /** Per native architecture, per package: the key apt prints its policy under, for `all` packages. */
  policyKeys: Map<string, Array<string | undefined>>;
  /**
   * Per package, the last two installed versions other than the locked one that were compared
   * with it, and the outcomes (see versionOrder).
   */
  seenVersions: Array<string | undefined>;
  seenOrder: Int8Array;
  /** indexLock(lock): the parser's verdicts are used only when made against it. */
  locked: LockIndex;
  fingerprint: FingerprintWriter;
  gotPackages: Array<InstalledPackage | undefined>;
  gotFiles: Array<FileFact | undefined>;
}

const planIndexes = new WeakMap<Lockfile, PlanIndex>();

function planIndex(lock: Lockfile): PlanIndex {
  let index = planIndexes.get(lock);
  if (!index) {
    const base = indexLock(lock);
    const slotOfPath = new Map(base.paths.map((path, i) => [path, i]));
    const files = base.packages.flatMap((p) => p.files);
    const fileStart = new Int32Array(base.packages.length + 1);
    base.packages.forEach((p, i) => (fileStart[i + 1] = fileStart[i]! + p.files.length));
    index = {
      // The lock's strings the facts parser shares (LockedStrings): most comparisons are identities.
      packages: base.sharedPackages.map((p) => ({
        key: p.key,
        want: p.version,
        allName: p.key.endsWith(':all') ? p.key.slice(0, -':all'.length) : undefined,
      })),
      policyKeys: new Map(),
      keys: base.packages.map((p) => p.key),
      paths: base.paths,
      unmanaged: base.unmanaged,
      slotOfKey: new Map(base.packages.map((p, i) => [p.key, i])),
      slotOfPath,
      fileStart,
      fileSlot: Int32Array.from(files, ([path]) => slotOfPath.get(path)!),
      fileSize: Float64Array.from(files, ([, f]) => f.size),
      // The same literals the facts parser gives the usual modes: compared by identity.
      fileMode: files.map(([, f]) => fileMode(f.mode)),
      fileBuildId: files.map(([path, f]) => {
        // A path locked under two packages may hold two build-IDs: share only an equal one.
        const shared = base.byPath.get(path)!.buildId;
        return f.buildId === shared ? shared : f.buildId;
      }),
      fileVerdictApplies: Uint8Array.from(files, ([path, f]) =>
        isSharedEntry(base.byPath.get(path)!, f) ? 1 : 0,
      ),
      fileOwner: Int32Array.from(base.packages.flatMap((p, i) => p.files.map(() => i))),
      filesToCheck: new Uint8Array(base.packages.length),
      seenVersions: new Array<string | undefined>(2 * base.packages.length).fill(undefined),
      seenOrder: new Int8Array(2 * base.packages.length),
      locked: base,
      fingerprint: new FingerprintWriter(),
      gotPackages: new Array<InstalledPackage | undefined>(base.packages.length).fill(undefined),
      gotFiles: new Array<FileFact | undefined>(base.paths.length).fill(undefined),
    };
    planIndexes.set(lock, index);
  }
  return index;
}

/**
 * Builds a host's fingerprint text (decision 8) and hashes it. Only the packages whose line is not
 * their bare locked version are written, so a host costs what it differs by, not the lock's size.
 */
class FingerprintWriter {
  private text = '';

  begin(head: string): void {
    this.text = `${head}\n`;
  }

  /** Package i's line is `line`, not its locked version. */
  line(i: number, line: string): void {
    this.text += `${i} ${line}\n`;
  }

  finish(pinSha256: string | null): string {
    const fp = `sha256:${hash('sha256', `${this.text}pins ${pinSha256 ?? 'absent'}\n`)}`;
    this.text = '';
    return fp;
  }
}

/**
 * compareVersions(installed, locked version of package i). A fleet's hosts mostly differ from the
 * lock by the same one or two versions of a package (one security update behind, one ahead), so
 * the last two outcomes per package are kept: comparing the text is cheaper than parsing both
 * versions again. Only valid versions are kept (compareVersions throws on any other).
 */
function versionOrder(index: PlanIndex, i: number, installed: string): -1 | 0 | 1 {
  const { seenVersions, seenOrder } = index;
  const k = 2 * i;
  if (seenVersions[k] === installed) return seenOrder[k] as -1 | 0 | 1;
  if (seenVersions[k + 1] === installed) return seenOrder[k + 1] as -1 | 0 | 1;
  const c = compareVersions(installed, index.packages[i]!.want);
  seenVersions[k + 1] = seenVersions[k];
  seenOrder[k + 1] = seenOrder[k]!;
  seenVersions[k] = detach(installed);
  seenOrder[k] = c;
  return c;
}

/**
 * What the plan was computed from: dpkg state of every locked package, the pin file, the
 * platform. apply recomputes it and refuses a host whose fingerprint moved.
 */
export function fingerprint(lock: Lockfile, facts: HostFacts): string {
  const index = planIndex(lock);
  const v = verdictsFor(facts, index.locked);
  const w = index.fingerprint;
  w.begin(fingerprintHead(lock, facts));
  const pkgs = index.packages;
  for (let i = 0; i < pkgs.length; i++) {
    if (v !== undefined && v.packageAtLock[i] === 1) continue;
    const got = facts.packages.get(pkgs[i]!.key);
    if (got === undefined || got.version !== pkgs[i]!.want || !isUsual(got)) w.line(i, fingerprintLine(got));
  }
  return w.finish(facts.pinSha256);
}

// The fingerprint's text (decision 8): this head line; `i line` for each locked package i (the
// lock's sorted order) whose line is not its bare locked version; `pins SHA` and a final newline.
// A package's line is its version, plus dpkg's want/status/flag when they are not the usual ones,
// or `-` when it is not installed. The digest binds each i to its key and locked version, so the
// lines left out are known; a version never contains a space nor equals "-", and a written line
// starts with digits, so the encoding is unambiguous.
function fingerprintHead(lock: Lockfile, facts: HostFacts): string {
  const { id, versionId, architecture } = facts.platform;
  return `${lock.digest} ${id} ${versionId} ${architecture}`;
}

/** Installed, wanted and without error flag: the fingerprint line is the bare version. */
function isUsual(p: InstalledPackage): boolean {
  return p.want === 'install' && p.status === 'installed' && p.eflag === 'ok';
}

function fingerprintLine(p: InstalledPackage | undefined): string {
  if (!p) return '-';
  if (isUsual(p)) return p.version;
  return `${p.version} ${p.want} ${p.status} ${p.eflag}`;
}

/**
 * Whether any of package i's locked files differs on the host; compareFile's verdict, without its
 * findings. With the parser's verdicts (`v`), a file it judged at the lock is not looked at.
 */
function filesDiffer(index: PlanIndex, i: number, v: LockVerdicts | undefined): boolean {
  const { fileStart, fileSlot, fileSize, fileMode, fileBuildId, gotFiles } = index;
  for (let j = fileStart[i]!, end = fileStart[i + 1]!; j < end; j++) {
    const slot = fileSlot[j]!;
    if (v !== undefined && v.fileAtLock[slot] === 1 && index.fileVerdictApplies[j] === 1) continue;
    const got = v === undefined ? gotFiles[slot] : v.files.get(index.paths[slot]!);
    if (
      got === undefined ||
      (got.kind !== 'elf' && got.kind !== 'file') ||
      got.size !== fileSize[j] ||
      got.mode !== fileMode[j]
    )
      return true;
    const buildId = fileBuildId[j];
    if (buildId !== undefined && got.buildId !== buildId) return true;
  }
  return false;
}

/**
 * policyOf (facts/queries.ts) for locked package i, without splitting its key: the key apt prints
 * an `all` package's policy under is made once per lock and native architecture.
 */
function policyAt(index: PlanIndex, facts: HostFacts, i: number): AptPolicy | undefined {
  const p = index.packages[i]!;
  const direct = facts.policies.get(p.key);
  if (direct !== undefined || p.allName === undefined) return direct;
  const arch = facts.platform.architecture;
  let keys = index.policyKeys.get(arch);
  if (keys === undefined) {
    if (index.policyKeys.size >= 8) index.policyKeys.clear();
    keys = index.packages.map((q) => (q.allName === undefined ? undefined : `${q.allName}:${arch}`));
    index.policyKeys.set(arch, keys);
  }
  return facts.policies.get(keys[i]!);
}

function availableVersions(versions: readonly PolicyVersion[]): string[] {
  const out: string[] = [];
  for (const v of versions) if (v.sources.length > 0) out.push(v.version);
  return out;
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
  const v = verdictsFor(facts, index.locked);
  if (v !== undefined) {
    // The parser already placed every package and path (LockVerdicts): no walk over the Maps.
    if (lock.scope.kind === 'all') {
      for (const key of v.unlocked) {
        const p = facts.packages.get(key);
        if (p !== undefined) notes.push({ type: 'extra-package', package: key, version: p.version });
      }
    }
    try {
      // The host's entries for the packages not at the lock, by slot (the last read counts).
      for (let k = 0; k < v.offLock.length; k++) index.gotPackages[v.offLockSlots[k]!] = v.offLock[k];
      // Packages owning a file the parser did not judge at the lock (flat scans, no objects).
      const { fileSlot, fileVerdictApplies, fileOwner, filesToCheck } = index;
      for (let j = 0; j < fileSlot.length; j++)
        if (v.fileAtLock[fileSlot[j]!] !== 1 || fileVerdictApplies[j] !== 1) filesToCheck[fileOwner[j]!] = 1;
      return planWithSlots(lock, index, facts, desiredPins, actions, blocked, notes, store, v);
    } finally {
      // Emptied for the next host, as below.
      index.filesToCheck.fill(0);
      for (const slot of v.offLockSlots) index.gotPackages[slot] = undefined;
    }
  }

  // The host's packages and files by the lock's slots, and its extra packages, in one walk over
  // each of its Maps (see PlanIndex). Facts list what the lock locks mostly in the lock's own
  // sorted order (the probe reads paths in the order it was sent them; dpkg-query sorts by name),
  // so the entry after the last match is tried first: one string comparison instead of hashing a
  // fresh string. Any other order still lands in the right slot through the Map.
  const { gotPackages, gotFiles } = index;
  const keys = index.keys;
  const paths = index.paths;
  try {
    // forEach rather than for-of: no [key, value] pair per entry, and measurably faster here.
    let next = 0;
    const all = lock.scope.kind === 'all';
    facts.packages.forEach((p, key) => {
      const slot = keys[next] === key ? next : index.slotOfKey.get(key);
      if (slot !== undefined) {
        gotPackages[slot] = p;
        next = slot + 1;
      } else if (all) notes.push({ type: 'extra-package', package: key, version: p.version });
    });
    next = 0;
    facts.files.forEach((f, path) => {
      const slot = paths[next] === path ? next : index.slotOfPath.get(path);
      if (slot !== undefined) {
        gotFiles[slot] = f;
        next = slot + 1;
      }
    });
    return planWithSlots(lock, index, facts, desiredPins, actions, blocked, notes, store, undefined);
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
  v: LockVerdicts | undefined,
): HostPlan {
  const { gotPackages, gotFiles } = index;
  // One pass over the lock: the fingerprint's lines and the packages that must move. Files are
  // compared only for packages at the locked version (a version that moves replaces its files
  // anyway), and a package stops at its first differing file.
  const w = index.fingerprint;
  w.begin(fingerprintHead(lock, facts));
  const moves: Array<{
    i: number;
    p: IndexedPackage;
    got: InstalledPackage | undefined;
    type: PackageAction['type'];
  }> = [];
  const pkgs = index.packages;
  const atLock = v?.packageAtLock;
  const check = index.filesToCheck;
  for (let i = 0; i < pkgs.length; i++) {
    // At the locked version in dpkg's usual state, its files all judged at the lock: its fingerprint
    // line is the locked one and it does not move.
    if (atLock !== undefined && atLock[i] === 1 && check[i] === 0) continue;
    const p = pkgs[i]!;
    // A package at the lock is here only for its files: its entry was not handed over.
    const got = atLock === undefined || atLock[i] === 0 ? gotPackages[i] : facts.packages.get(p.key);
    let type: PackageAction['type'] | undefined;
    if (got === undefined) {
      w.line(i, '-');
      type = 'install';
    } else {
      const same = got.version === p.want;
      if (!same || !isUsual(got)) w.line(i, fingerprintLine(got));
      const c = same ? 0 : versionOrder(index, i, got.version);
      if (c < 0) type = 'upgrade';
      else if (c > 0) type = 'downgrade';
      else if (filesDiffer(index, i, v)) type = 'reinstall';
    }
    if (type) moves.push({ i, p, got, type });
  }

  const fp = w.finish(facts.pinSha256);

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
    const got = v === undefined ? gotFiles[index.slotOfPath.get(path)!] : facts.files.get(path);
    const f = compareFile(null, path, entry, got);
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

  for (const { i, p, got, type } of moves) {
    const { key, want } = p;
    // One policy lookup per moving package: both the sources and the rival pins come from it.
    const policyVersions = policyAt(index, facts, i)?.versions ?? [];
    // The node's own sources first: the store only fills in what they lack, so a node never sees
    // two different files (archive and rebuilt) under one version.
    const offered = policyVersions.some(
      (v) => v.sources.length > 0 && compareVersions(v.version, want) === 0,
    );
    const stored = store?.get(key);
    const fromStore = !offered && stored !== undefined && compareVersions(stored.version, want) === 0;
    if (!fromStore && !offered) {
      const noStore = store === undefined ? '' : '; the package store does not hold it either';
      const available = availableVersions(policyVersions);
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
    const rival = policyVersions.find((v) => {
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

  const all: HostPlan['actions'] = [];
  const desiredSha = pinsSha(desiredPins);
  if (facts.pinSha256 !== desiredSha) all.push({ type: 'write-pins', path: PIN_FILE, sha256: desiredSha });
  // By type, then by package: the actions are already in the lock's sorted key order (code units),
  // so one stable pass per type sorts them.
  for (const type of ACTION_TYPES) for (const a of actions) if (a.type === type) all.push(a);
  const status: HostPlan['status'] = blocked.length > 0 ? 'blocked' : all.length > 0 ? 'changes' : 'ok';
  return { name: facts.host, status, fingerprint: fp, actions: all, blocked, notes };
}

export function failedHostPlan(name: string, status: 'unreachable' | 'failed', error: HostError): HostPlan {
  return { name, status, fingerprint: null, actions: [], blocked: [], notes: [], error };
}
