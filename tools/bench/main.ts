/**
 * `npm run bench`: criu-lock against the OpenSSH floor on a sandbox fleet, the controller's cost,
 * pure-core micro-benchmarks and (with --scale) how the fleet figures grow. See docs/benchmarks.md.
 *
 *   npm run bench -- [--nodes N] [--runs R] [--scale] [--scale-nodes M] [--scale-runs R] [--forks N]
 *                    [--forks-curve [--forks-curve-nodes N]] [--micro-only] [--planner-hosts H] [--json FILE]
 */
// Type-only: the child module runs its benchmark on import.
import type { LockfileResult, PlannerResult } from './micro-child.js';
import { rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { down } from '../sandbox/fleet.js';
import { PRODUCT_BIN } from '../paths.js';
import { runFleetBench, type FigureName, type FleetRun } from './fleet-bench.js';
import { ArgsError, FORKS_CURVE, fleetSteps, parseArgs, runsAt, usage, type Args } from './args.js';
import { renderScalingReport, table } from './report.js';
import { GNU_TIME, cleanupScratch, rusageMethod, spawnTimed } from './measure.js';

/** Its own state dir and ports: the test suite's (22201+) and developers' fleets may be up beside it. */
/** CRIU_LOCK_BENCH_DIR / CRIU_LOCK_BENCH_PORT_BASE move them, for machines that run several. */
export const BENCH_DIR = process.env.CRIU_LOCK_BENCH_DIR ?? '/var/lib/criu-lock-bench';
export const BENCH_PORT_BASE = Number(process.env.CRIU_LOCK_BENCH_PORT_BASE ?? 24200);
/** Bumped when the JSON changes shape: 2 adds forks, bytes per host, the floor's CPU/RSS, forksCurve. */
const BENCH_VERSION = 2;

const here = dirname(fileURLToPath(import.meta.url));
const BIN = PRODUCT_BIN;
const CHILD = join(here, 'micro-child.js');

/** The machine's load average now (1, 5, 15 min): other work shares the cores. */
function loadNow(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

function log(s: string): void {
  process.stderr.write(`bench: ${s}\n`);
}

interface VersionsMicro {
  comparisonsPerSecond: number;
  pairs: number;
}
interface Micro {
  planner: PlannerResult;
  versions: VersionsMicro;
  lockfile: LockfileResult;
}

async function micro<T>(args: readonly string[]): Promise<T> {
  const r = await spawnTimed([process.execPath, '--expose-gc', CHILD, ...args]);
  if (r.exitCode !== 0) throw new Error(`micro-benchmark ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

async function runMicro(plannerHosts: number): Promise<Micro> {
  log('micro: Debian version comparisons');
  const versions = await micro<VersionsMicro>(['versions']);
  log('micro: lockfile of 5,000 packages');
  const lockfile = await micro<LockfileResult>(['lockfile', '5000']);
  log(`micro: planner, ${plannerHosts} hosts × 2,000 packages`);
  const planner = await micro<PlannerResult>(['planner', String(plannerHosts), '2000']);
  return { versions, lockfile, planner };
}

// ---------------------------------------------------------------- output

const TARGETS: Record<FigureName, { ratio: number; label: string } | undefined> = {
  plan: { ratio: 1.5, label: '≤ 1.5× floor' },
  apply: { ratio: 1.3, label: '≤ 1.3× floor' },
  'noop-apply': { ratio: 1.5, label: '≤ 1.5× floor' },
  check: undefined,
};

const FIGURE_LABEL: Record<FigureName, string> = {
  plan: 'plan (drifted fleet)',
  apply: 'apply (drifted → converged)',
  'noop-apply': 'no-op apply (converged)',
  check: 'check (converged)',
};

const FLOOR_LABEL: Record<FigureName, string> = {
  plan: 'ssh dpkg-query + reads',
  apply: 'ssh pins + apt-get install',
  'noop-apply': 'ssh dpkg-query + reads',
  check: 'ssh dpkg-query + reads',
};

const s2 = (x: number): string => x.toFixed(2);

function fleetTable(run: FleetRun): string {
  return table(
    ['figure', 'criu-lock (median s)', 'OpenSSH floor (median s)', 'floor does', 'ratio', 'target', 'met?'],
    run.figures.map((f) => {
      const t = TARGETS[f.figure];
      return [
        FIGURE_LABEL[f.figure],
        s2(f.criuLockS),
        s2(f.floorS),
        FLOOR_LABEL[f.figure],
        `${s2(f.ratio)}×`,
        t?.label ?? '(reported)',
        t ? (f.ratio <= t.ratio ? 'yes' : 'NO') : '–',
      ];
    }),
  );
}

function costTable(run: FleetRun): string {
  return table(
    [
      'figure',
      'CPU s (user+sys)',
      'CPU ms / host',
      'peak RSS MiB',
      'RSS MiB / host',
      'KiB received / host',
      'floor: ssh clients CPU ms / host',
      'floor KiB / host',
      'node CPU ms / host (criu-lock / floor)',
    ],
    run.figures.map((f) => [
      FIGURE_LABEL[f.figure],
      s2(f.cpuS),
      ((f.cpuS * 1000) / run.nodes).toFixed(1),
      (f.maxRssKiB / 1024).toFixed(1),
      (f.maxRssKiB / 1024 / run.nodes).toFixed(2),
      f.bytesReceivedPerHost === undefined ? '–' : (f.bytesReceivedPerHost / 1024).toFixed(0),
      f.floorCpuS === undefined ? '–' : ((f.floorCpuS * 1000) / run.nodes).toFixed(1),
      (f.floorBytesPerHost / 1024).toFixed(0),
      f.nodeCpuS === undefined || f.floorNodeCpuS === undefined
        ? '–'
        : `${((f.nodeCpuS * 1000) / run.nodes).toFixed(1)} / ${((f.floorNodeCpuS * 1000) / run.nodes).toFixed(1)}`,
    ]),
  );
}

function phaseLines(run: FleetRun): string {
  const out: string[] = [];
  for (const f of run.figures) {
    if (f.probeViaSshS !== undefined) {
      out.push(
        `  ${FIGURE_LABEL[f.figure]}: criu-lock's own probe script through OpenSSH takes ${s2(f.probeViaSshS)} s (${(f.probeViaSshS / f.floorS).toFixed(2)}× floor; ${((f.probeBytesPerHost ?? 0) / 1024).toFixed(0)} KiB of output per host)`,
      );
    }
    const ph = Object.entries(f.phases);
    if (ph.length === 0) {
      out.push(`  ${FIGURE_LABEL[f.figure]}: no per-host phases in -v output`);
      continue;
    }
    out.push(
      `  ${FIGURE_LABEL[f.figure]}: ${ph.map(([k, v]) => `${k} median ${v.medianMs.toFixed(0)} ms / slowest ${v.maxMs.toFixed(0)} ms (${v.hosts} hosts)`).join('; ')}`,
    );
  }
  return out.join('\n');
}

function microTable(m: Micro): string {
  const p = m.planner;
  const v = m.versions;
  const l = m.lockfile;
  const plannerMem = p.peakRssMiB;
  return table(
    ['micro-benchmark', 'result', 'target', 'met?'],
    [
      [
        `planner ${p.hosts} hosts × ${p.packages} pkgs (${p.files} files), planHost time`,
        `${s2(p.planS)} s (${((p.planS * 1000) / p.hosts).toFixed(2)} ms/host)`,
        // Issue 14: 10,000 hosts × 2,000 packages in under 1 s on one core.
        p.hosts === 10_000 ? '< 1 s' : '< 1 s at 10,000',
        p.hosts === 10_000
          ? p.planS < 1
            ? 'yes'
            : 'NO'
          : `~${s2((p.planS * 10_000) / p.hosts)} s at 10,000`,
      ],
      [
        'planner peak RSS (kernel maxrss / sampled)',
        `${plannerMem.toFixed(0)} / ${p.sampledPeakRssMiB.toFixed(0)} MiB (runtime + lock ${p.baseRssMiB.toFixed(0)} MiB; plans kept ${p.plansHeapMiB.toFixed(0)} MiB)`,
        '< 1 GiB',
        plannerMem < 1024 ? 'yes' : 'NO',
      ],
      [
        'planner incl. building synthetic facts',
        `${s2(p.totalS)} s (facts ${s2(p.factsS)} s)`,
        '(reported)',
        '–',
      ],
      [
        'Debian version comparisons',
        `${(v.comparisonsPerSecond / 1e6).toFixed(2)} M/s`,
        '≥ 2 M/s',
        v.comparisonsPerSecond >= 2e6 ? 'yes' : 'NO',
      ],
      [
        `lockfile ${l.packages} pkgs / ${l.files} files (${(l.bytes / 1024 / 1024).toFixed(1)} MiB): serialise`,
        `${l.serializeMs.toFixed(0)} ms (+ digest ${l.digestMs.toFixed(0)} ms)`,
        '(reported)',
        '–',
      ],
      [
        'lockfile load (read + parse + validate + digest)',
        `${l.loadMs.toFixed(0)} ms (parseLock ${l.parseMs.toFixed(0)} ms); peak RSS ${l.peakRssMiB.toFixed(0)} MiB`,
        '(reported)',
        '–',
      ],
    ],
  );
}

async function machine(): Promise<Record<string, string>> {
  const uname = await spawnTimed(['uname', '-srm']);
  return {
    date: new Date().toISOString(),
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB (free ${(freemem() / 2 ** 30).toFixed(1)} GiB)`,
    kernel: uname.stdout.trim(),
    node: process.version,
    rusage:
      rusageMethod() === 'gnu-time'
        ? `${GNU_TIME} -f '%U %S %M'`
        : 'process.resourceUsage() hook (install Debian package `time` for /usr/bin/time)',
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (err instanceof ArgsError) usage(err.message);
    throw err;
  }
  // Set before anything from tools/sandbox reads them (nodePort reads the env on every call).
  process.env.CRIU_LOCK_SANDBOX_DIR = BENCH_DIR;
  process.env.CRIU_LOCK_SANDBOX_PORT_BASE = String(BENCH_PORT_BASE);
  // criu-lock's stat readings (src/facts/stat-cache.ts) as it ships, but the bench's own and
  // empty at the start: the first run of each figure reads every file, later ones what moved.
  process.env.CRIU_LOCK_CACHE_DIR = join(BENCH_DIR, 'cache');
  rmSync(process.env.CRIU_LOCK_CACHE_DIR, { recursive: true, force: true });
  const started = Date.now();
  const info = await machine();
  if (rusageMethod() !== 'gnu-time')
    log(
      `${GNU_TIME} not found: measuring CPU/RSS with a process.resourceUsage() hook instead (apt-get install time for GNU time)`,
    );

  const fleet: FleetRun[] = [];
  const forksCurve: FleetRun[] = [];
  const loads: Record<string, string> = {};
  let fleetError: unknown;
  let scaleNote = '';
  if (!args.microOnly) {
    if (typeof process.getuid === 'function' && process.getuid() !== 0)
      usage('the fleet benchmark needs root (the sandbox does); use --micro-only otherwise');
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log(`${sig}: tearing the bench fleet down`);
      void down({ dir: BENCH_DIR, log }).finally(() => process.exit(130));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const opts = {
        forks: args.forks,
        dir: BENCH_DIR,
        bin: BIN,
        log,
        only: args.figures,
        converged: args.converged,
        noProbeViaSsh: args.noProbeViaSsh,
      };
      const steps = fleetSteps(args);
      for (const n of steps) {
        try {
          loads[`@${n} start`] = loadNow();
          fleet.push(await runFleetBench({ ...opts, nodes: n, runs: runsAt(args, n) }));
          loads[`@${n} end`] = loadNow();
        } catch (err) {
          // A size this machine cannot host ends the scaling; the smaller sizes stand.
          if (n === steps[0]) throw err;
          scaleNote = `stopped at ${fleet.at(-1)?.nodes} nodes: ${n} failed (${err instanceof Error ? err.message : String(err)})`;
          log(scaleNote);
          await down({ dir: BENCH_DIR, log });
          break;
        }
      }
      if (args.scale && !scaleNote) scaleNote = `${steps.join(', ')} nodes as asked`;
      if (args.forksCurve) {
        for (const forks of FORKS_CURVE) {
          loads[`forks ${forks} start`] = loadNow();
          forksCurve.push(
            await runFleetBench({
              ...opts,
              forks,
              nodes: args.forksCurveNodes,
              runs: runsAt(args, args.forksCurveNodes),
            }),
          );
        }
      }
    } catch (err) {
      fleetError = err;
    } finally {
      const d = await down({ dir: BENCH_DIR, log });
      if (d.leftMounts.length || d.leftPids.length)
        log('warning: the bench fleet was not torn down completely; see above');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (fleetError) {
      cleanupScratch();
      process.stderr.write(
        `bench: fleet benchmark failed: ${fleetError instanceof Error ? (fleetError.stack ?? fleetError.message) : JSON.stringify(fleetError)}\n`,
      );
      return 1;
    }
  }

  const m = await runMicro(args.plannerHosts);
  cleanupScratch();

  const out: string[] = [
    '',
    `criu-lock benchmark — ${info.date}`,
    `machine: ${info.cpus}; ${info.memory}; ${info.kernel}; node ${info.node}`,
    `CPU/RSS: ${info.rusage}; --forks ${args.forks} on both sides; runs ${args.runs} (${args.scaleRuns} above 100 nodes; medians)`,
  ];
  for (const run of fleet) {
    out.push(
      '',
      `## Fleet of ${run.nodes} nodes (lock: ${run.lockPackages} packages, ${run.lockFiles} files; fleet up in ${s2(run.upS)} s)`,
      '',
      fleetTable(run),
      '',
      'Controller cost (criu-lock process, median run):',
      '',
      costTable(run),
      '',
      'Per-host phases (-v, median criu-lock run):',
      phaseLines(run),
    );
  }
  if (fleet.length > 1 || forksCurve.length > 0)
    out.push(
      '',
      `## Scaling (${scaleNote || 'one size'})`,
      '',
      renderScalingReport({ benchVersion: BENCH_VERSION, fleet, forksCurve, load: loads }),
    );
  out.push(
    '',
    '## Pure core',
    '',
    microTable(m),
    '',
    `total bench time ${((Date.now() - started) / 1000).toFixed(0)} s`,
    '',
  );
  process.stdout.write(out.join('\n'));

  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify(
        {
          benchVersion: BENCH_VERSION,
          machine: info,
          args,
          fleet,
          forksCurve,
          load: loads,
          scale: scaleNote || undefined,
          micro: m,
        },
        null,
        2,
      )}\n`,
    );
    log(`wrote ${args.json}`);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
