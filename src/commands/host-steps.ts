/** Host work shared by several commands (plan and apply both plan a host); no command imports another. */
import { runAptUpdate } from '../apply/apt.js';
import { compareFile, lockedPaths } from '../check/compare.js';
import { CriuLockError } from '../errors.js';
import { gatherFacts, runProbe } from '../facts/gather.js';
import { isHealthy, policyOf } from '../facts/queries.js';
import { prepareWithReadings, statCacheDir, type PendingFacts } from '../facts/stat-cache.js';
import type { HostFacts } from '../facts/types.js';
import { indexLock, isSharedEntry, verdictsFor } from '../lock/lock-index.js';
import type { Lockfile } from '../lock/lockfile.js';
import { PIN_FILE } from '../plan/pins.js';
import type { Transport } from '../transport/types.js';

/**
 * Everything a plan for `lock` needs from a host, in one round trip on a converged or drifted
 * host: heads only of files whose stat moved since the last reading (stat-cache.ts), and
 * `apt-cache policy` only for packages not installed at exactly their locked version (the only
 * ones that can move). A package at its version whose files differ is a reinstall, which needs
 * its policy too: those few are asked in a second, small round trip.
 */
export async function gatherForPlan(t: Transport, lock: Lockfile): Promise<HostFacts> {
  const probe = prepareForPlan(t.host, lock);
  return probe.finish(t, await runProbe(t, probe));
}

/** gatherForPlan in two halves: the probe to run (apply runs it inside the host lock's command), then `finish`. */
export function prepareForPlan(host: string, lock: Lockfile): PendingFacts {
  const keys = Object.keys(lock.packages).sort();
  const probe = prepareWithReadings(
    host,
    {
      paths: lockedPaths(lock),
      policyUnless: keys.map((k) => [k, lock.packages[k]!.version] as const),
      pinFile: PIN_FILE,
    },
    { cacheDir: statCacheDir(), locked: indexLock(lock) },
  );
  return {
    script: probe.script,
    timeoutMs: probe.timeoutMs,
    async finish(t, res) {
      const facts = await probe.finish(t, res);
      const more = reinstallsWithoutPolicy(lock, facts);
      if (more.length > 0) {
        const extra = await gatherFacts(t, { policyFor: more });
        for (const [k, policy] of extra.policies) facts.policies.set(k, policy);
      }
      return facts;
    },
  };
}

/**
 * Locked packages installed and configured at exactly their locked version (so the probe asked
 * apt nothing about them) whose files differ from the lock: the planner reinstalls those.
 */
export function reinstallsWithoutPolicy(lock: Lockfile, facts: HostFacts): string[] {
  const out: string[] = [];
  // The lock's index (built once per lock), not Object.entries of every package's files per host.
  const index = indexLock(lock);
  // The parser's verdicts (decision 23), when made against this index for these very Maps: a path
  // judged at the lock is not compared again when its entry is the one the verdict was made on.
  const atLock = verdictsFor(facts, index)?.fileAtLock;
  for (const { key, entry, files } of index.packages) {
    const got = facts.packages.get(key);
    if (!got || got.version !== entry.version || !isHealthy(got)) continue;
    const differs = files.some(([path, want]) => {
      const shared = atLock && index.byPath.get(path);
      if (shared && atLock[shared.slot] === 1 && isSharedEntry(shared, want)) return false;
      return compareFile(key, path, want, facts.files.get(path)) !== undefined;
    });
    // apt was asked about every package not at its locked version; this one only if it was not.
    if (differs && !policyOf(facts, key)) out.push(key);
  }
  return out.sort();
}

export async function refreshApt(t: Transport): Promise<void> {
  const r = await runAptUpdate(t, { lockTimeout: 60, timeoutMs: 600_000 });
  if (r.exitCode !== 0) {
    const last = r.stderr.trim().split('\n').slice(-1)[0] ?? `exit code ${r.exitCode}`;
    throw new CriuLockError('ssh', `apt-get update failed on ${t.host}: ${last}`);
  }
}
