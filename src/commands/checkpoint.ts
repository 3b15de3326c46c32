/**
 * `check --checkpoint DIR` and `generate --checkpoint DIR`: driven by a CRIU checkpoint itself
 * instead of a lockfile. The images say exactly which files CRIU will validate at restore and what
 * it will demand of each (size, mode, build-ID), so the gate needs no lock at all.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readCheckpoint, type Checkpoint } from '../checkpoint/images.js';
import { buildCheckpointLock } from '../checkpoint/lock.js';
import {
  compareCheckpoint,
  neededFiles,
  ownerQueryPaths,
  ownerQueryProblem,
  parseOwners,
  type NeededFile,
} from '../checkpoint/needs.js';
import { CriuLockError } from '../errors.js';
import { gatherFacts } from '../facts/gather.js';
import type { HostFacts } from '../facts/types.js';
import { errorText, isHostFailure } from '../fleet/host-error.js';
import type { CheckReport, HostCheck } from '../fleet/host-result.js';
import { runFleet } from '../fleet/run.js';
import { findGolden } from '../inventory/limit.js';
import { isVirtualFsPath, lockedPathProblem } from '../lock/locked-path.js';
import { renderCheck } from '../report/check-report.js';
import type { Transport } from '../transport/types.js';
import { errLine, type CommandDeps, type CommonOptions } from './context.js';
import { checkOutputFile, writeLockOutput } from './output-path.js';
import { prepareRun } from './prepare.js';

/** Reads the checkpoint and refuses one that demands nothing (not a dump of a process with files). */
export async function loadCheckpoint(
  dir: string,
  warn: (message: string) => void,
): Promise<{ cp: Checkpoint; needed: NeededFile[] }> {
  const cp = await readCheckpoint(dir);
  const file = join(dir, cp.image);
  // The same paths a lockfile may name: each is stat'ed and read on every host, and each owner is
  // asked of `dpkg-query -S`, so a path it cannot take fails here, before any host is contacted.
  const needed = neededFiles(cp).filter(({ path }) => {
    if (isVirtualFsPath(path)) {
      warn(
        `${cp.image} records ${path}: not compared, files under /proc, /sys and /dev are not files a package or criu-lock controls`,
      );
      return false;
    }
    const problem = lockedPathProblem(path);
    if (problem !== undefined) {
      throw new CriuLockError('input', `the path ${JSON.stringify(path)} ${problem}`, {
        hint: 'CRIU records absolute, normalised paths; were these images written by CRIU?',
        location: { file },
      });
    }
    const unaskable = ownerQueryProblem(path);
    if (unaskable === undefined) return true;
    throw new CriuLockError('input', `the path ${JSON.stringify(path)} ${unaskable}`, {
      hint: 'criu-lock cannot check such a name; rename the file on the source host and dump again',
      location: { file },
    });
  });
  if (needed.length === 0) {
    throw new CriuLockError('input', 'no regular files recorded', {
      hint: 'a dump of a running program records at least its executable; is this the right directory?',
      location: { file },
    });
  }
  return { cp, needed };
}

/** A digest naming what the checkpoint demands, so reports can tell two checkpoints apart. */
export function checkpointDigest(needed: readonly NeededFile[]): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(needed)).digest('hex')}`;
}

/**
 * Bytes of paths per `dpkg-query -S`: sshd hands the whole command line to the shell as one
 * argument, Linux refuses one of 128 KiB or more, and quoting can make a path up to 4× longer.
 */
const OWNER_QUERY_BYTES = 16 * 1024;

/** `paths` in runs short enough for one command line each. */
export function ownerQueryBatches(paths: readonly string[]): string[][] {
  const out: string[][] = [];
  let batch: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const n = Buffer.byteLength(p) + 1;
    if (batch.length > 0 && bytes + n > OWNER_QUERY_BYTES) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(p);
    bytes += n;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/** Owning package of each path on this host (`dpkg-query -S`, /usr-merge aliases included). */
export async function queryOwners(t: Transport, paths: readonly string[]): Promise<Map<string, string>> {
  for (const p of paths) {
    const problem = ownerQueryProblem(p);
    if (problem !== undefined)
      throw new CriuLockError(
        'input',
        `refusing path ${JSON.stringify(p)} from the checkpoint: it ${problem}`,
      );
  }
  // dpkg-query -S reads a pattern; "--" keeps a path from being taken for an option. Exit 1 only
  // means some path has no owner.
  let stdout = '';
  for (const batch of ownerQueryBatches(ownerQueryPaths(paths))) {
    const r = await t.exec(['dpkg-query', '-S', '--', ...batch], { env: { LC_ALL: 'C' } });
    if (r.exitCode !== 0 && r.exitCode !== 1) {
      throw new CriuLockError(
        'ssh',
        `${t.host}: dpkg-query -S failed: ${r.stderr.trim().split('\n')[0] ?? ''}`,
      );
    }
    stdout += r.stdout.endsWith('\n') || r.stdout === '' ? r.stdout : `${r.stdout}\n`;
  }
  return parseOwners(stdout, paths);
}

export interface CheckCheckpointOptions extends CommonOptions {
  checkpoint: string;
  format: 'text' | 'markdown' | 'json';
}

export async function checkCheckpointFleet(
  run: Awaited<ReturnType<typeof prepareRun>>,
  dir: string,
  needed: readonly NeededFile[],
  forks: number,
): Promise<CheckReport> {
  const paths = needed.map((n) => n.path);
  const fleet = await runFleet(
    run.hosts,
    async (host): Promise<HostCheck> => {
      const start = run.clock.monotonicMs();
      const r = await run.withHost(
        host,
        async (t, at) => {
          const facts = await gatherFacts(t, { paths });
          at('owners');
          const owners = await queryOwners(t, paths);
          return compareCheckpoint(needed, facts, owners);
        },
        'gather facts',
      );
      run.log(host.name, `checked against the checkpoint in ${run.since(start).toFixed(0)} ms`);
      if (isHostFailure(r)) return r;
      return r.length === 0
        ? { name: host.name, status: 'ok', findings: [] }
        : { name: host.name, status: 'drift', findings: r };
    },
    { forks },
  );
  return {
    kind: 'checkpoint',
    lock: { path: dir, digest: checkpointDigest(needed) },
    hosts: fleet.results.map((r) => r.result),
  };
}

/** check --checkpoint DIR: exit code as `check` (0 every host would restore, 2 drift, 3 host failures). */
export async function runCheckCheckpoint(opts: CheckCheckpointOptions, deps: CommandDeps): Promise<number> {
  const { needed } = await loadCheckpoint(opts.checkpoint, (m) => errLine(deps.io, `warning: ${m}`));
  const run = await prepareRun(opts, deps);
  const report = await checkCheckpointFleet(run, opts.checkpoint, needed, opts.forks);
  deps.io.out(renderCheck(report, opts.format, opts.color));
  if (report.hosts.some(isHostFailure)) return 3;
  return report.hosts.some((h) => h.status === 'drift') ? 2 : 0;
}

export interface GenerateCheckpointOptions extends CommonOptions {
  checkpoint: string;
  golden?: string | undefined;
  output: string;
}

/** Golden facts for a checkpoint: its files as they are there, their owners, the owners' .deb checksums. */
async function goldenFacts(
  t: Transport,
  paths: readonly string[],
): Promise<{ facts: HostFacts; owners: Map<string, string> }> {
  const facts = await gatherFacts(t, { paths });
  const owners = await queryOwners(t, paths);
  const keys = [...new Set(owners.values())]
    .map((name) => [...facts.packages.values()].find((p) => p.key === name || p.name === name))
    .filter((p) => p !== undefined);
  if (keys.length > 0) {
    const sha = await gatherFacts(t, { shaFor: [...new Set(keys.map((p) => `${p.key}=${p.version}`))] });
    for (const [k, v] of sha.debSha256) facts.debSha256.set(k, v);
  }
  return { facts, owners };
}

/** generate --checkpoint DIR: lock exactly what the checkpoint needs, with the golden node's packages. */
export async function runGenerateCheckpoint(
  opts: GenerateCheckpointOptions,
  deps: CommandDeps,
): Promise<number> {
  const { io } = deps;
  const { cp, needed } = await loadCheckpoint(opts.checkpoint, (m) => errLine(io, `warning: ${m}`));
  if (opts.output !== '-') await checkOutputFile(opts.output, '-o');
  const run = await prepareRun(opts, deps, { select: (inv) => [findGolden(inv, opts.golden)] });
  const golden = run.hosts[0]!;
  const result = await run.withHost(
    golden,
    (t) =>
      goldenFacts(
        t,
        needed.map((n) => n.path),
      ),
    'gather facts',
  );
  if (isHostFailure(result)) {
    errLine(io, `error: golden node ${golden.name} ${result.status}: ${errorText(result.error)}`);
    return 3;
  }
  const { lock, warnings } = buildCheckpointLock(needed, cp.pids, result.owners, result.facts, {
    host: golden.name,
    generatedAt: deps.clock
      .now()
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z'),
  });
  return writeLockOutput(io, {
    lock,
    warnings,
    golden: golden.name,
    output: opts.output,
    what: ` for checkpoint ${opts.checkpoint}`,
  });
}
