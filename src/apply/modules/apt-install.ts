import { z } from 'zod';
import type { PackageAction } from '../../plan/plan-file.js';
import { PIN_FILE } from '../../plan/pins.js';
import { removeStoreUploads } from '../../store/upload.js';
import { APT_ENV, installArgv } from '../apt.js';
import { describeJob, JOB_DIED, jobResult, runJob } from '../apt-job.js';
import { defineModule } from './types.js';
import { summariseOutput } from './output.js';

export { installArgv };

/** How long the controller follows one transaction before giving up on it (it goes on). */
const FOLLOW_TIMEOUT_MS = 1_800_000;

/**
 * Every changed package in ONE apt transaction, so lockstep pairs (libc6/libc-bin) move together.
 * It runs detached on the host (src/apply/apt-job.ts) and never removes a package (--no-remove).
 */
export const aptInstall = defineModule({
  name: 'apt_install',
  idleWithoutActions: true,
  args: z.strictObject({ lockTimeout: z.number().int().positive().max(3600).default(120) }).optional(),
  async run(ctx, args) {
    const all = ctx.plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
    // Check mode uploads nothing, so apt-get -s leaves the store's .debs out (store_upload lists them).
    const actions = ctx.checkMode ? all.filter((a) => a.source !== 'store') : all;
    if (actions.length === 0 && all.length > 0)
      return { status: 'skipped', message: 'check mode: only package-store installs, not simulated' };
    if (actions.length === 0) return { status: 'ok', message: 'all packages at the locked versions' };
    const lockTimeout = args?.lockTimeout ?? 120;
    const what = actions.map((a) => `${a.type} ${a.package} ${a.from ?? '(none)'} → ${a.to}`).join(', ');
    if (ctx.checkMode) {
      const argv = installArgv(actions, { lockTimeout, simulate: true });
      ctx.verbose(argv.join(' '));
      const r = await ctx.transport.exec(argv, { env: { ...APT_ENV }, become: true, timeoutMs: 300_000 });
      if (r.exitCode !== 0)
        return { status: 'failed', message: `apt-get install failed: ${summariseOutput(r)}` };
      return { status: 'changed', message: `would ${what} (apt-get -s accepted it)` };
    }
    const argv = installArgv(actions, { lockTimeout, simulate: false });
    const restorePins = ctx.changedBy.has('apt_pins');
    ctx.verbose(argv.join(' '));
    const { dir, outcome } = await runJob(ctx.transport, argv, {
      pinFile: PIN_FILE,
      restorePins,
      timeoutMs: FOLLOW_TIMEOUT_MS,
    });
    ctx.verbose(`apt transaction ran detached on the host; log ${dir}/log`);
    // The uploaded store .debs go once apt is done with them; a transaction still running keeps them.
    if (outcome.kind !== 'connection-lost') await removeStoreUploads(ctx.transport, actions);
    if (outcome.kind === 'connection-lost') {
      return {
        status: 'failed',
        message: `connection lost during apt; the transaction continues on the host (log ${dir}/log); the next apply waits for it and reports how it ended`,
      };
    }
    const rec = outcome.record;
    if (rec.exitCode === 0) return { status: 'changed', message: what };
    const log = jobResult(argv, rec);
    const lockHeld = /Could not get lock|Waiting for cache lock/.test(rec.log);
    // A job that recorded no status (`died`): how apt ended is not known, nor what the pins are.
    const died = rec.exitCode === null;
    const why = died
      ? JOB_DIED
      : lockHeld
        ? `the dpkg lock is held by another process (unattended-upgrades?) for longer than DPkg::Lock::Timeout=${lockTimeout} s: ${summariseOutput(log, 1)}`
        : `apt-get install failed: ${summariseOutput(log)}`;
    // The pins: put back by the job when apt_pins replaced them in this run, else never touched.
    const pins = !restorePins
      ? '; this apply did not change the pin file'
      : rec.pins !== 'unchanged'
        ? ''
        : died
          ? `; whether the previous pin file was restored is not known (see ${PIN_FILE})`
          : `; the previous pin file could NOT be restored (see ${PIN_FILE})`;
    return { status: 'failed', message: `${why}; ${describeJob(rec)}${pins}; log ${dir}/log` };
  },
});
