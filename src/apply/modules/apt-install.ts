import { z } from 'zod';
import type { PackageAction } from '../../plan/plan-file.js';
import { remoteDebPath, removeStoreUploads } from '../../store/upload.js';
import { APT_ENV } from '../apt.js';
import { defineModule } from './types.js';
import { summariseOutput } from './output.js';

export function installArgv(actions: readonly PackageAction[], opts: { lockTimeout: number; simulate: boolean }): string[] {
  const argv = [
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
    `DPkg::Lock::Timeout=${opts.lockTimeout}`,
  ];
  if (opts.simulate) argv.push('-s');
  if (actions.some((a) => a.type === 'reinstall')) argv.push('--reinstall');
  // Validated at load (Debian policy syntax), so these are safe argv words. Store packages go in
  // the same transaction as the .deb store_upload put on the host (an absolute path).
  for (const a of actions) argv.push(a.source === 'store' && a.sha256 ? remoteDebPath(a.sha256) : `${a.package}=${a.to}`);
  return argv;
}

/** Every changed package in ONE apt transaction, so lockstep pairs (libc6/libc-bin) move together. */
export const aptInstall = defineModule({
  name: 'apt_install',
  args: z.strictObject({ lockTimeout: z.number().int().positive().max(3600).default(120) }).optional(),
  async run(ctx, args) {
    const all = ctx.plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
    // Check mode uploads nothing, so apt-get -s leaves the store's .debs out (store_upload lists them).
    const actions = ctx.checkMode ? all.filter((a) => a.source !== 'store') : all;
    if (actions.length === 0 && all.length > 0) return { status: 'skipped', message: 'check mode: only package-store installs, not simulated' };
    if (actions.length === 0) return { status: 'ok', message: 'all packages at the locked versions' };
    const argv = installArgv(actions, { lockTimeout: args?.lockTimeout ?? 120, simulate: ctx.checkMode });
    ctx.verbose(argv.join(' '));
    const r = await ctx.transport.exec(argv, {
      env: { ...APT_ENV },
      become: true,
      timeoutMs: 1_800_000,
    });
    if (!ctx.checkMode) await removeStoreUploads(ctx.transport, actions);
    if (r.exitCode !== 0) return { status: 'failed', message: `apt-get install failed: ${summariseOutput(r)}` };
    const what = actions.map((a) => `${a.type} ${a.package} ${a.from ?? '(none)'} → ${a.to}`).join(', ');
    return { status: 'changed', message: ctx.checkMode ? `would ${what} (apt-get -s accepted it)` : what };
  },
});
