/** Host work shared by several commands (plan and apply both plan a host); no command imports another. */
import { runAptUpdate } from '../apply/apt.js';
import { lockedPaths } from '../check/compare.js';
import { CriuLockError } from '../errors.js';
import { gatherFacts } from '../facts/gather.js';
import type { HostFacts } from '../facts/types.js';
import type { Lockfile } from '../lock/lockfile.js';
import { PIN_FILE } from '../plan/pins.js';
import type { Transport } from '../transport/types.js';

/** Everything a plan for `lock` needs from a host, in one round trip. */
export async function gatherForPlan(t: Transport, lock: Lockfile): Promise<HostFacts> {
  return gatherFacts(t, {
    paths: lockedPaths(lock),
    policyFor: Object.keys(lock.packages).sort(),
    pinFile: PIN_FILE,
  });
}

export async function refreshApt(t: Transport): Promise<void> {
  const r = await runAptUpdate(t, { lockTimeout: 60, timeoutMs: 600_000 });
  if (r.exitCode !== 0) {
    const last = r.stderr.trim().split('\n').slice(-1)[0] ?? `exit code ${r.exitCode}`;
    throw new CriuLockError('ssh', `apt-get update failed on ${t.host}: ${last}`);
  }
}
