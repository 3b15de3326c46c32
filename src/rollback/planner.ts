import { aptInstallPrefix } from '../apply/apt.js';
import { txDir, type TxManifest, type TxPackage } from './manifest.js';
import { CriuLockError } from '../errors.js';
import { parseAptSimulation } from '../plan/apt-transaction.js';

/**
 * The pure half of rollback: which transaction, is the host still as that transaction left it,
 * and what exactly one apt transaction must do to put the captured state back. No I/O here.
 */

/** What the host looks like now, for the packages and pin file a transaction touched. */
export interface CurrentState {
  /** Installed version by package key; null (or missing) when not installed. */
  versions: ReadonlyMap<string, string | null>;
  /** Package keys apt marks auto-installed. */
  auto: ReadonlySet<string>;
  /** sha256 of the pin file now, null when absent. */
  pinSha256: string | null;
  /**
   * Packages dpkg holds half-way (unpacked, half-installed, half-configured): key → dpkg's status
   * abbreviation and version. Neither installed nor absent, so nothing is decided on them.
   */
  unfinished?: ReadonlyMap<string, string>;
}

/** The refusal for a host whose transaction packages dpkg holds half-way, or undefined. */
export function unfinishedProblem(packages: readonly string[], now: CurrentState): string | undefined {
  const half = packages.filter((k) => now.unfinished?.has(k)).map((k) => `${k} (${now.unfinished!.get(k)!})`);
  if (half.length === 0) return undefined;
  return `dpkg holds ${half.join(', ')} half-way (not installed and not absent)`;
}

export type StateChange =
  | { type: 'package'; package: string; expected: string | null; actual: string | null }
  | { type: 'pins'; path: string; expected: string | null; actual: string | null };

export interface HistoryEntry {
  tx: TxManifest;
  /** The rollback transaction that undid this one, if any. */
  rolledBackBy: string | null;
}

/** Newest first, each with the rollback that undid it (one that completed: a cut-off one did not). */
export function historyEntries(manifests: readonly TxManifest[]): HistoryEntry[] {
  const undoneBy = new Map<string, string>();
  for (const m of manifests) if (m.rollbackOf && m.status === 'applied') undoneBy.set(m.rollbackOf, m.id);
  return [...manifests]
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .map((tx) => ({ tx, rolledBackBy: undoneBy.get(tx.id) ?? null }));
}

export type TargetChoice =
  { ok: true; tx: TxManifest; rolledBackBy: string | null } | { ok: false; error: string; hint: string };

/** `--to ID`, or the most recent transaction (a rollback is one too: rolling it back re-applies). */
export function selectTarget(manifests: readonly TxManifest[], to?: string): TargetChoice {
  const entries = historyEntries(manifests);
  if (entries.length === 0)
    return {
      ok: false,
      error: 'no transaction recorded on this host',
      hint: 'only an apply without --no-capture records one; see criu-lock history',
    };
  if (to === undefined) return { ok: true, tx: entries[0]!.tx, rolledBackBy: entries[0]!.rolledBackBy };
  const hit = entries.find((e) => e.tx.id === to);
  if (!hit)
    return {
      ok: false,
      error: `no transaction ${to} on this host`,
      // The newest few: a host may list thousands, and the full list is what `history` is for.
      hint: `recorded: ${entries
        .slice(0, 10)
        .map((e) => e.tx.id)
        .join(', ')}${entries.length > 10 ? `, ... (${entries.length} in all; see criu-lock history)` : ''}`,
    };
  return { ok: true, tx: hit.tx, rolledBackBy: hit.rolledBackBy };
}

const versionOf = (s: CurrentState, key: string): string | null => s.versions.get(key) ?? null;

/** Every package and the pin file as the transaction captured them (before it changed anything). */
export function asCaptured(tx: TxManifest, now: CurrentState): boolean {
  return now.pinSha256 === tx.pins.before && tx.packages.every((p) => versionOf(now, p.package) === p.before);
}

/**
 * What `--last` does with the transaction it picked, when that one never completed: `pass` over it
 * to the one before when nothing of it reached the host (a rollback refused at its simulation),
 * `refuse` when its change landed anyway (its apt job finished after the connection was lost: a
 * retried rollback must not undo it unasked), else `take` it (planRollback decides).
 */
export function lastNotCompleted(tx: TxManifest, now: CurrentState): 'take' | 'pass' | 'refuse' {
  if (tx.status !== 'captured') return 'take';
  if (stateChanges(tx, now).length === 0) return 'refuse';
  return asCaptured(tx, now) ? 'pass' : 'take';
}

/** The transaction recorded just before `id`, with the rollback that undid it, if any. */
export function olderTransaction(
  manifests: readonly TxManifest[],
  id: string,
): { tx: TxManifest; rolledBackBy: string | null } | undefined {
  const entries = historyEntries(manifests);
  const at = entries.findIndex((e) => e.tx.id === id);
  const e = at >= 0 ? entries[at + 1] : undefined;
  return e && { tx: e.tx, rolledBackBy: e.rolledBackBy };
}

/** Where the host differs from the state the transaction left (another apply, a manual upgrade). */
export function stateChanges(tx: TxManifest, now: CurrentState): StateChange[] {
  const out: StateChange[] = [];
  for (const p of tx.packages) {
    const actual = versionOf(now, p.package);
    if (actual !== p.after) out.push({ type: 'package', package: p.package, expected: p.after, actual });
  }
  if (now.pinSha256 !== tx.pins.after)
    out.push({ type: 'pins', path: tx.pins.path, expected: tx.pins.after, actual: now.pinSha256 });
  return out;
}

export interface RollbackInstall {
  package: string;
  version: string;
  /** Absolute path of the captured .deb on the host. */
  debPath: string;
  sha256: string;
}

export interface RollbackPlan {
  tx: TxManifest;
  /** Captured .debs to install, in one apt transaction. */
  install: RollbackInstall[];
  /** Packages the transaction newly installed, removed in the same apt transaction. */
  remove: string[];
  /** Marks to set back after apt (apt marks what it installs as manual). */
  marks: { auto: string[]; manual: string[] };
  /** Put the captured pin file back, delete it (absent before), or leave it. */
  pins: 'restore' | 'remove' | 'keep';
  /** Differences from the transaction's end state (non-empty only with --force). */
  changes: StateChange[];
  /** Every package and the pin file are already as captured. */
  nothingToDo: boolean;
}

export type RollbackDecision =
  | { type: 'plan'; plan: RollbackPlan }
  | { type: 'refused'; reason: string; changes: StateChange[]; remedy?: string };

/** Decides what rolling `tx` back means on a host in state `now`. */
export function planRollback(
  tx: TxManifest,
  now: CurrentState,
  opts: { force: boolean; rolledBackBy?: string | null },
): RollbackDecision {
  const half = unfinishedProblem(
    tx.packages.map((p) => p.package),
    now,
  );
  // Not even with --force: taking them for absent would remove installed files.
  if (half)
    return {
      type: 'refused',
      reason: half,
      changes: [],
      remedy:
        'finish the interrupted dpkg run on the host first (dpkg --configure -a, or apt-get -f install); --force does not override this',
    };
  const changes = stateChanges(tx, now);
  // Already exactly as captured: nothing to undo, whatever happened in between.
  if (changes.length > 0 && !opts.force && !asCaptured(tx, now)) {
    const why = opts.rolledBackBy
      ? `transaction ${tx.id} was already rolled back by ${opts.rolledBackBy}, and the host changed since`
      : tx.status === 'captured'
        ? `transaction ${tx.id} never completed (its ${tx.kind} failed or was cut off), and the host is not as it would have left it`
        : `the host changed since transaction ${tx.id}`;
    return { type: 'refused', reason: why, changes };
  }
  const install: RollbackInstall[] = [];
  const remove: string[] = [];
  const auto: string[] = [];
  const manual: string[] = [];
  for (const p of tx.packages) {
    const actual = versionOf(now, p.package);
    if (p.before === null) {
      if (actual !== null) remove.push(p.package);
      continue;
    }
    if (actual !== p.before) install.push(installOf(tx, p));
    // apt marks what it installs manual; put the recorded mark back when it differs.
    const isAuto = now.auto.has(p.package);
    if (p.auto === true && (actual !== p.before || !isAuto)) auto.push(p.package);
    if (p.auto === false && isAuto) manual.push(p.package);
  }
  const pins: RollbackPlan['pins'] =
    now.pinSha256 === tx.pins.before ? 'keep' : tx.pins.before === null ? 'remove' : 'restore';
  return {
    type: 'plan',
    plan: {
      tx,
      install,
      remove,
      marks: { auto, manual },
      pins,
      changes,
      nothingToDo:
        install.length === 0 &&
        remove.length === 0 &&
        pins === 'keep' &&
        auto.length === 0 &&
        manual.length === 0,
    },
  };
}

function installOf(tx: TxManifest, p: TxPackage): RollbackInstall {
  if (!p.deb)
    throw new CriuLockError(
      'host-output',
      `transaction ${tx.id}: ${p.package} ${p.before ?? ''} has no captured .deb to go back to`,
    );
  return {
    package: p.package,
    version: p.before!,
    debPath: `${txDir(tx.id)}/debs/${p.deb.file}`,
    sha256: p.deb.sha256,
  };
}

/** The one apt transaction: captured .debs by path, newly installed packages with apt's `pkg-` suffix. */
export function rollbackAptArgv(
  plan: RollbackPlan,
  opts: { simulate: boolean; lockTimeout: number },
): string[] {
  const argv = aptInstallPrefix(opts.lockTimeout);
  if (opts.simulate) argv.push('-s');
  for (const i of plan.install) argv.push(i.debPath);
  for (const r of plan.remove) argv.push(`${r}-`);
  return argv;
}

/** `apt-get -s` output: what would be installed (Inst) and removed (Remv). */
export function parseSimulation(stdout: string): {
  installs: Array<{ package: string; version: string }>;
  removes: string[];
} {
  // apply's strict parser: a purge, or a line shaped like an operation but not exactly one, throws.
  const ops = parseAptSimulation(stdout);
  const installs: Array<{ package: string; version: string }> = [];
  const removes: string[] = [];
  for (const o of ops) {
    if (o.op === 'inst') installs.push({ package: o.name, version: o.to });
    else if (o.op === 'remv') removes.push(o.arch === undefined ? o.name : `${o.name}:${o.arch}`);
  }
  return { installs, removes };
}

/** Removals apt would do beyond the recorded ones (apt prints native-arch packages without :arch). */
export function unexpectedRemovals(
  removes: readonly string[],
  allowed: readonly string[],
  nativeArch: string,
): string[] {
  const ok = new Set<string>();
  for (const key of allowed) {
    ok.add(key);
    const [name, arch] = key.split(':');
    if (arch === nativeArch || arch === 'all') ok.add(name!);
  }
  return removes.filter((r) => !ok.has(r));
}

/** Transactions to delete so that the newest `keep` remain. */
export function toPrune(ids: readonly string[], keep: number): string[] {
  const sorted = [...ids].sort();
  return sorted.slice(0, Math.max(0, sorted.length - keep));
}

/** The transaction a rollback records: what it replaces, so it can be rolled back in turn. */
export function rollbackTxPackages(
  plan: RollbackPlan,
  now: CurrentState,
): Array<{ package: string; before: string | null; after: string | null }> {
  return [
    ...plan.install.map((i) => ({ package: i.package, before: versionOf(now, i.package), after: i.version })),
    ...plan.remove.map((r) => ({ package: r, before: versionOf(now, r), after: null })),
  ].sort((a, b) => (a.package < b.package ? -1 : 1));
}

export function describeChange(c: StateChange): string {
  const v = (s: string | null): string => s ?? '(absent)';
  switch (c.type) {
    case 'package':
      return `${c.package}: ${v(c.expected)} after the transaction, now ${v(c.actual)}`;
    case 'pins':
      return `${c.path}: ${c.expected ? `sha256 ${c.expected.slice(0, 12)}` : '(absent)'} after the transaction, now ${c.actual ? `sha256 ${c.actual.slice(0, 12)}` : '(absent)'}`;
    default: {
      const never: never = c;
      return never;
    }
  }
}
