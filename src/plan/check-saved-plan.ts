/**
 * `apply PLANFILE` trusts nothing in the file: a plan is a file in a pull request, anyone can edit
 * it. Each host's saved plan must be well-formed against the lock on its own, and equal to the plan
 * recomputed from the lock and the host's current facts. Pure.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Lockfile } from '../lock/lockfile.js';
import type { HostPlan } from './plan-file.js';
import { PIN_FILE } from './pins.js';

/** Problems of a saved host plan against the lock alone (before any host is contacted). */
export function savedPlanProblems(lock: Lockfile, saved: HostPlan): string[] {
  const out: string[] = [];
  for (const a of saved.actions) {
    if (a.type === 'write-pins') {
      if (a.path !== PIN_FILE)
        out.push(`its write-pins path ${a.path} is not ${PIN_FILE}, the only file criu-lock writes`);
      continue;
    }
    const entry = lock.packages[a.package];
    if (!entry) {
      out.push(`${a.type} ${a.package}: the package is not in the lock`);
      continue;
    }
    if (a.to !== entry.version) {
      out.push(`${a.type} ${a.package} to ${a.to}: the lock has ${entry.version}`);
    }
  }
  return out;
}

function describe(p: HostPlan): string {
  const acts = p.actions.map((a) =>
    a.type === 'write-pins'
      ? `write-pins ${a.sha256.slice(0, 12)}`
      : `${a.type} ${a.package} ${a.from ?? '-'}→${a.to}`,
  );
  return `${p.status}: ${acts.length > 0 ? acts.join(', ') : 'no actions'}${p.blocked.length > 0 ? `; blocked ${p.blocked.map((b) => `${b.reason} ${b.package ?? '-'}`).join(', ')}` : ''}`;
}

/**
 * Why the saved plan of a host may not be applied, or undefined when it may. Status, actions
 * (pin sha256 included), blocked entries and apt's extra packages must equal the fresh plan's.
 * A saved `ok` is checked like any other status.
 */
export function savedPlanRefusal(lock: Lockfile, saved: HostPlan, fresh: HostPlan): string | undefined {
  const problems = savedPlanProblems(lock, saved);
  if (problems.length > 0)
    return `the saved plan does not match the lock: ${problems.slice(0, 3).join('; ')}`;
  const same =
    saved.status === fresh.status &&
    isDeepStrictEqual(saved.actions, fresh.actions) &&
    isDeepStrictEqual(saved.blocked, fresh.blocked) &&
    isDeepStrictEqual(saved.aptExtra ?? [], fresh.aptExtra ?? []);
  if (same) return undefined;
  return `the saved plan differs from a fresh plan for the host (saved ${describe(saved)}; now ${describe(fresh)})`;
}
