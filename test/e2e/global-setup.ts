/**
 * vitest globalSetup: brings the sandbox fleet (5 nodes) up once per test run and tears it down at
 * the end. CRIU_LOCK_SANDBOX=skip skips it; CRIU_LOCK_SANDBOX_KEEP=1 leaves the fleet running.
 * A machine that cannot host it (not root, no overlayfs, no debootstrap) skips the e2e tests,
 * except in CI (CI=true), where that is a failure.
 */
import type { TestProject } from 'vitest/node';
import { ensureBase, ensureHostTools } from '../../tools/sandbox/base.js';
import { down, preflight, up } from '../../tools/sandbox/fleet.js';
import { paths } from '../../tools/sandbox/state.js';
import type { SandboxProvided } from './sandbox.js';

const NODES = 5;

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const log = (s: string): void => {
    process.stderr.write(`[sandbox] ${s}\n`);
  };
  const provide = (v: SandboxProvided): void => project.provide('sandbox', v);
  const dir = paths().dir;
  if (process.env.CRIU_LOCK_SANDBOX === 'skip') {
    provide({ skip: 'CRIU_LOCK_SANDBOX=skip' });
    return undefined;
  }
  const cannot = (phase: string, err: unknown): undefined => {
    const why = `sandbox unavailable (${phase}): ${err instanceof Error ? err.message : String(err)}`;
    if (process.env.CI === 'true') throw new Error(`${why} — required in CI`, { cause: err });
    log(`${why}; e2e tests are skipped`);
    provide({ skip: why });
    return undefined;
  };
  try {
    await preflight(paths(dir));
  } catch (err) {
    return cannot('preflight', err);
  }
  try {
    await ensureHostTools(log);
    await ensureBase(log);
  } catch (err) {
    return cannot('base build', err);
  }
  const started = Date.now();
  const state = await up({ nodes: NODES, reset: true, dir, log });
  log(
    `fleet of ${state.nodes.length} nodes ready in ${((Date.now() - started) / 1000).toFixed(1)}s (${dir})`,
  );
  provide({ dir, state });

  return async () => {
    if (process.env.CRIU_LOCK_SANDBOX_KEEP === '1') {
      log(`CRIU_LOCK_SANDBOX_KEEP=1: leaving the fleet up in ${dir}`);
      return;
    }
    const r = await down({ dir, log });
    if (r.leftMounts.length || r.leftPids.length) {
      throw new Error(`sandbox down left mounts [${r.leftMounts.join(' ')}] pids [${r.leftPids.join(' ')}]`);
    }
  };
}
