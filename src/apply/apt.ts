import type { PackageAction } from '../plan/plan-file.js';
import { remoteDebPath } from '../store/remote-paths.js';
import type { CommandResult, Transport } from '../transport/types.js';

/** apt and dpkg run non-interactive, with untranslated messages we can summarise. */
export const APT_ENV = { LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } as const;

/** Where criu-lock keeps its own state on a host: host lock, apt job logs, the pin backup. */
export const STATE_DIR = '/var/lib/criu-lock';

/**
 * How criu-lock starts every `apt-get install` (apply's and rollback's): non-interactive,
 * downgrades allowed, no recommends, the configuration files dpkg would keep, and the dpkg lock
 * waited for up to `lockTimeout` seconds.
 */
export function aptInstallPrefix(lockTimeout: number): string[] {
  return [
    'apt-get',
    'install',
    '-y',
    '-q',
    '--allow-downgrades',
    '--no-install-recommends',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    '-o',
    `DPkg::Lock::Timeout=${lockTimeout}`,
  ];
}

/**
 * The one `apt-get install` apply runs, every changed `pkg:arch=version` together. The real run
 * has `--no-remove`; the simulation (`-s`) leaves it out, because with it apt only says "Packages
 * need to be removed but remove is disabled" without naming them, and the plan must name them.
 * With no removal in the simulation the two transactions are the same.
 */
export function installArgv(
  actions: readonly PackageAction[],
  opts: { lockTimeout: number; simulate: boolean },
): string[] {
  const argv = aptInstallPrefix(opts.lockTimeout);
  if (opts.simulate) argv.push('-s');
  else argv.push('--no-remove');
  if (actions.some((a) => a.type === 'reinstall')) argv.push('--reinstall');
  // Validated at load (Debian policy syntax), so these are safe argv words. Store packages go in
  // the same transaction as the .deb store_upload put on the host (an absolute path).
  for (const a of actions)
    argv.push(a.source === 'store' && a.sha256 ? remoteDebPath(a.sha256) : `${a.package}=${a.to}`);
  return argv;
}

/** `apt-get update` as root; used by plan --refresh and the apt_update module. */
export function runAptUpdate(
  t: Transport,
  opts: { lockTimeout: number; timeoutMs: number },
): Promise<CommandResult> {
  return t.exec(['apt-get', 'update', '-q', '-o', `DPkg::Lock::Timeout=${opts.lockTimeout}`], {
    env: { ...APT_ENV },
    become: true,
    timeoutMs: opts.timeoutMs,
  });
}
