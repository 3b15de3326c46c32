/**
 * vitest globalSetup: brings the sandbox fleet (5 nodes) up once per test run and tears it down at
 * the end. CRIU_LOCK_SANDBOX=skip skips it; CRIU_LOCK_SANDBOX_KEEP=1 leaves the fleet running.
 * A machine that cannot host it (not root, no overlayfs, no debootstrap) skips the e2e tests,
 * except in CI (CI=true), where that is a failure.
 */
import type { TestProject } from 'vitest/node';
import { ensureBase, ensureHostTools } from '../../tools/sandbox/base.js';
import {
  criuErrors,
  ensureCriu,
  isNoise,
  runCriu,
  spawnInNode,
  waitPidFree,
} from '../../tools/sandbox/criu.js';
import { ensureRealLibc } from '../../tools/sandbox/real-libc.js';
import { down, preflight, up } from '../../tools/sandbox/fleet.js';
import { BASE_DIR, paths } from '../../tools/sandbox/state.js';
import type { CriuProvided, SandboxProvided } from './sandbox.js';

/** CRIU for test/e2e/criu.test.ts: fetched and proven to run (`criu check` in the base), or why not. */
async function prepareCriu(log: (s: string) => void): Promise<CriuProvided> {
  const no = (why: string, err?: unknown): CriuProvided => {
    const detail = err === undefined ? '' : `: ${err instanceof Error ? err.message : JSON.stringify(err)}`;
    const reason = `real CRIU unavailable (${why})${detail}`;
    if (process.env.CI === 'true') throw new Error(`${reason} — required in CI`, { cause: err });
    log(`${reason}; the real-CRIU tests are skipped`);
    return { skip: reason };
  };
  try {
    await ensureRealLibc(log);
    await ensureCriu(log);
  } catch (err) {
    return no('fetch', err);
  }
  // The base is a node's root too: if CRIU cannot check there, it cannot dump or restore in a node.
  const r = await runCriu(BASE_DIR, ['check']);
  if (r.exitCode !== 0 || !/Looks good/.test(r.stdout + r.stderr)) {
    return no(
      `criu check failed on this kernel: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? ''}`,
    );
  }
  // `criu check` passes on machines where a dump still hangs (a hardware breakpoint that never
  // fires, for one): dump a throwaway process in the base's namespace once, so such a machine says why.
  const dumped = await probeDump();
  if (dumped !== undefined) return no(`criu dump failed on this machine: ${dumped}`);
  return { ok: true };
}

/** Dumps a `sleep` started in the base's namespace; images go to that namespace's tmpfs /run. Why not, or undefined. */
async function probeDump(): Promise<string | undefined> {
  let pid: number;
  try {
    pid = await spawnInNode(BASE_DIR, ['/usr/bin/sleep', '300']);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  try {
    const r = await runCriu(BASE_DIR, ['dump', '-t', String(pid), '-D', '/run'], {
      enterPid: pid,
      timeoutMs: 30_000,
    });
    if (r.timedOut) return 'no answer in 30 s';
    if (r.exitCode !== 0) return criuErrors(r.stderr).filter((l) => !isNoise(l))[0] ?? `exit ${r.exitCode}`;
    return undefined;
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // CRIU ends the process after a dump
    }
    await waitPidFree(pid);
  }
}

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
  // Real CRIU and the two real libc6 builds, fetched once and cached beside the base, before the
  // fleet comes up: the local repository serves the cached libc6 debs, so it stays the same all run.
  project.provide('criu', await prepareCriu(log));
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
