import type { CommandResult, Transport } from '../transport/types.js';

/** apt and dpkg run non-interactive, with untranslated messages we can summarise. */
export const APT_ENV = { LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' } as const;

/** `apt-get update` as root; used by plan --refresh and the apt_update module. */
export function runAptUpdate(t: Transport, opts: { lockTimeout: number; timeoutMs: number }): Promise<CommandResult> {
  return t.exec(['apt-get', 'update', '-q', '-o', `DPkg::Lock::Timeout=${opts.lockTimeout}`], {
    env: { ...APT_ENV },
    become: true,
    timeoutMs: opts.timeoutMs,
  });
}
