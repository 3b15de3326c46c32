/**
 * apt's real transaction for a host's plan: `apt-get -s` with the exact argv apply will run, under
 * the preferences apply will have (the host's own preferences.d, with criu-lock's pin file replaced
 * by the one the plan writes). One extra round trip, only for hosts whose plan installs something.
 */
import { APT_ENV, installArgv } from '../apply/apt.js';
import { CriuLockError } from '../errors.js';
import { applyTransaction, parseAptSimulation, type TransactionContext } from '../plan/apt-transaction.js';
import type { HostPlan, PackageAction } from '../plan/plan-file.js';
import { PIN_FILE } from '../plan/pins.js';
import { planHost, type StoreIndex } from '../plan/planner.js';
import type { Transport } from '../transport/types.js';
import type { Lockfile } from '../lock/lockfile.js';
import { keptSimulation, pinsDigest, readingAt, rememberSimulation, type AptInputs } from './apt-readings.js';
import { statCacheDir } from './stat-cache.js';
import type { HostFacts } from './types.js';

/** apt_install's default; the simulation takes no lock, but its argv must be apply's. */
export const SIMULATION_LOCK_TIMEOUT = 120;

/**
 * Runs as `sh -c SCRIPT criu-lock-sim PINFILE apt-get ...` with the pin file apply would write on
 * stdin. The copy of preferences.d lives in a private temp dir that is removed on exit; nothing
 * under /etc changes.
 */
export const SIMULATE_SCRIPT = [
  'set -e',
  'pin=$1',
  'shift',
  'd=$(mktemp -d "${TMPDIR:-/tmp}/criu-lock-sim.XXXXXX")',
  `trap 'rm -rf -- "$d"' EXIT`,
  'for f in /etc/apt/preferences.d/*; do',
  '  [ -f "$f" ] || continue',
  '  [ "$f" = "$pin" ] && continue',
  '  cp -p -- "$f" "$d/"',
  'done',
  'cat > "$d/$(basename -- "$pin")"',
  'set +e',
  '"$@" -o "Dir::Etc::PreferencesParts=$d"',
].join('\n');

/** True when apply would run apt on this host, so the plan must show apt's transaction. */
export function needsSimulation(plan: HostPlan): boolean {
  if (simulatedActions(plan).length === 0) return false;
  // Blocked hosts are not touched, except with --skip-unavailable (unavailable versions only).
  return plan.blocked.every((b) => b.reason === 'version-unavailable');
}

/**
 * What apt can simulate before apply: every package action except those installed from the package
 * store, whose .deb reaches the host only during apply (store_upload). Their dependencies are apt's
 * to check in the real run, which never removes anything (--no-remove).
 */
function simulatedActions(plan: HostPlan): PackageAction[] {
  return plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins' && a.source !== 'store');
}

/** The simulation's argv (for tests and docs): apply's, with `-s` instead of `--no-remove`. */
export function simulationArgv(plan: HostPlan): string[] {
  const actions = simulatedActions(plan);
  return [
    'sh',
    '-c',
    SIMULATE_SCRIPT,
    'criu-lock-sim',
    PIN_FILE,
    ...installArgv(actions, { lockTimeout: SIMULATION_LOCK_TIMEOUT, simulate: true }),
  ];
}

/**
 * Simulates the plan's apt transaction on the host and folds it into the plan. A refused
 * simulation (unmet dependencies, say) or unparsable output throws: the host fails, the fleet goes on.
 *
 * Not async, on purpose: an async function keeps its arguments for as long as it runs, and the
 * facts' strings are slices of the whole probe output (~1.6 MiB on a host of 750 locked ELF
 * files). Only a copy of what folding apt's answer needs crosses the round trip (issue 14).
 */
export function simulatePlan(
  t: Transport,
  plan: HostPlan,
  lock: Lockfile,
  facts: HostFacts,
  pins: string,
): Promise<HostPlan> {
  if (!needsSimulation(plan)) return Promise.resolve(plan);
  return simulate(t, plan, lock, transactionContext(facts), pins, facts.aptInputs);
}

/** The installed packages and native architecture, copied so they hold nothing of the probe output. */
function transactionContext(facts: HostFacts): TransactionContext {
  return { packages: detached(facts.packages), nativeArch: detached(facts.platform.architecture) };
}

async function simulate(
  t: Transport,
  plan: HostPlan,
  lock: Lockfile,
  ctx: TransactionContext,
  pins: string,
  inputs: AptInputs | undefined,
): Promise<HostPlan> {
  const argv = simulationArgv(plan);
  const dir = inputs ? statCacheDir() : undefined;
  // The host's apt reading at the states the probe just found (apt-readings.ts), read once: it may
  // hold apt's answer to this argv and pins already, and a new answer is added to it.
  const held = dir && inputs ? readingAt(dir, t.host, inputs) : undefined;
  const digest = held ? pinsDigest(pins) : '';
  const kept = held ? keptSimulation(held, argv, digest) : undefined;
  if (kept !== undefined) return detached(applyTransaction(plan, parseAptSimulation(kept), lock, ctx));
  const r = await t.exec(argv, {
    stdin: pins,
    env: { ...APT_ENV },
    become: true,
    timeoutMs: 300_000,
  });
  if (r.exitCode !== 0) {
    const lines = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .filter((l) => /^E: /.test(l))
      .slice(0, 3);
    const why = r.timedOut ? 'timed out' : lines.length > 0 ? lines.join(' | ') : `exit code ${r.exitCode}`;
    throw new CriuLockError('ssh', `${t.host}: apt-get -s refused the planned transaction: ${why}`, {
      hint: 'apt cannot install the locked versions together on this host; run the apt-get -s command by hand to see why',
    });
  }
  const folded = detached(applyTransaction(plan, parseAptSimulation(r.stdout), lock, ctx));
  if (dir && held) rememberSimulation(dir, t.host, held, { argv, pins: digest, stdout: r.stdout });
  return folded;
}

/**
 * planHost, then apt's simulated transaction when the plan installs anything. The plan returned
 * holds no string of the host's command output (detached): a fleet's plans stay small however
 * much each host printed. Synchronous up to the round trip (see simulatePlan); a planner error
 * still arrives as a rejection.
 */
export function planWithTransaction(
  t: Transport,
  lock: Lockfile,
  facts: HostFacts,
  pins: string,
  store?: StoreIndex,
): Promise<HostPlan> {
  try {
    return simulatePlan(t, detached(planHost(lock, facts, pins, store)), lock, facts, pins);
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

/**
 * A deep copy with fresh strings. V8 cuts substrings (split, slice, regex captures) of 13 or more
 * characters as views of the string they come from, and template literals join such views, so a
 * package key or a detail built from the facts can keep a host's whole probe output alive.
 */
function detached<T>(value: T): T {
  return structuredClone(value);
}
