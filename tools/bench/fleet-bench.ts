/**
 * Fleet figures: criu-lock against its OpenSSH floor on the sandbox fleet, paired in the same run
 * (criu-lock, baseline, criu-lock, baseline ...), medians of R runs.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockedPaths } from '../../src/check/compare.js';
import { renderProbeScript, type ProbeRequest } from '../../src/facts/probe-script.js';
import { loadLock, type Lockfile } from '../../src/lock/lockfile.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { PIN_FILE, renderPins } from '../../src/plan/pins.js';
import { reset, up } from '../sandbox/fleet.js';
import { paths as sandboxPaths, readState, type SandboxState } from '../sandbox/state.js';
import {
  applyFloorJobs,
  probeJobs,
  readFloorJobs,
  runSshFleet,
  type SshFleetRun,
  type SshSetup,
  type SshTarget,
} from './baseline.js';
import { defined, median, runNodeMeasured, type Measured } from './measure.js';
import { openNodeCpuMeter, type NodeCpuMeter } from './node-cpu.js';

export type FigureName = 'plan' | 'apply' | 'noop-apply' | 'check';

export interface FigureResult {
  figure: FigureName;
  nodes: number;
  runs: number;
  criuLockS: number;
  floorS: number;
  ratio: number;
  criuLockRunsS: number[];
  floorRunsS: number[];
  /** Median CPU seconds (user+sys) of the criu-lock process. */
  cpuS: number;
  /** Median peak RSS of the criu-lock process, KiB. */
  maxRssKiB: number;
  /** Each run's CPU seconds and peak RSS (KiB), in run order (null: not measured). */
  cpuRunsS?: Array<number | null>;
  maxRssRunsKiB?: Array<number | null>;
  /** --forks of both sides. */
  forks: number;
  /** SSH channel bytes criu-lock received per host (median run; CRIU_LOCK_STATS_FILE). */
  bytesReceivedPerHost?: number;
  /** The floor's ssh clients: stdout + stderr bytes per host (median run). */
  floorBytesPerHost: number;
  /** CPU seconds of all the floor's ssh clients together (median run), with GNU time. */
  floorCpuS?: number;
  /** Peak RSS of the largest single ssh client of the floor, KiB (median run). */
  floorMaxRssKiB?: number;
  /**
   * CPU seconds the nodes spent serving the run (node-cpu.ts: their sshds' cgroup), median over
   * runs, criu-lock and floor; absent when the machine has no writable cgroup hierarchy.
   */
  nodeCpuS?: number;
  floorNodeCpuS?: number;
  nodeCpuRunsS?: number[];
  floorNodeCpuRunsS?: number[];
  /** Diagnostic: criu-lock's own facts probe script sent through OpenSSH (same parallelism), median s. */
  probeViaSshS?: number;
  /** Bytes the probe prints per host (what crosses the connection and gets parsed). */
  probeBytesPerHost?: number;
  /** Per-phase host timings from -v, of the median criu-lock run: phase → {median, max} ms over hosts. */
  phases: Record<string, { medianMs: number; maxMs: number; hosts: number }>;
}

export interface FleetRun {
  nodes: number;
  forks: number;
  runs: number;
  upS: number;
  lockPackages: number;
  lockFiles: number;
  figures: FigureResult[];
}

export interface FleetBenchOptions {
  nodes: number;
  runs: number;
  forks: number;
  dir: string;
  bin: string;
  log: (s: string) => void;
  /** Figures to measure (default all four); `--figures plan` keeps a forks curve short. */
  only?: readonly FigureName[] | undefined;
  /** A fleet without package drift (args.ts --converged): only noop-apply and check make sense. */
  converged?: boolean | undefined;
  /** Skip the diagnostic (criu-lock's probe through OpenSSH), which at 1,000 nodes takes minutes. */
  noProbeViaSsh?: boolean | undefined;
}

/** `[node01] facts gathered in 123 ms` / `[node01] apt_install: changed in 4567 ms — ...` */
export function parsePhases(
  stderr: string,
): Record<string, { medianMs: number; maxMs: number; hosts: number }> {
  const by = new Map<string, number[]>();
  for (const line of stderr.split('\n')) {
    const m = /^\[([^\]]+)\] (.+?) in (\d+(?:\.\d+)?) ms/.exec(line);
    if (!m) continue;
    const phase = m[2]!.replace(/: \S+$/, '');
    const list = by.get(phase) ?? [];
    list.push(Number(m[3]));
    by.set(phase, list);
  }
  const out: Record<string, { medianMs: number; maxMs: number; hosts: number }> = {};
  for (const [phase, ms] of by)
    out[phase] = { medianMs: median(ms), maxMs: Math.max(...ms), hosts: ms.length };
  return out;
}

interface HostStatusDoc {
  hosts: Array<{ name: string; status: string; error?: { message: string; hint?: string } }>;
}

function assertNoFailures(what: string, r: Measured, okCodes: readonly number[]): void {
  if (!okCodes.includes(r.exitCode)) {
    throw new Error(
      `criu-lock ${what} exited ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-4).join(' | ')}`,
    );
  }
  let doc: HostStatusDoc;
  try {
    doc = JSON.parse(r.stdout) as HostStatusDoc;
  } catch {
    throw new Error(`criu-lock ${what} printed no JSON: ${r.stdout.slice(0, 200)}`);
  }
  const bad = doc.hosts.filter((h) => h.status === 'failed' || h.status === 'unreachable');
  if (bad.length > 0)
    throw new Error(
      `criu-lock ${what}: ${bad.map((h) => `${h.name} ${h.status}: ${h.error?.message ?? ''}`).join('; ')}`,
    );
}

export async function runFleetBench(o: FleetBenchOptions): Promise<FleetRun> {
  const opened = openNodeCpuMeter();
  if (opened.meter === undefined) o.log(`node CPU not measured: ${opened.reason}`);
  try {
    return await runFigures(o, opened.meter);
  } finally {
    opened.meter?.close();
  }
}

async function runFigures(o: FleetBenchOptions, meter: NodeCpuMeter | undefined): Promise<FleetRun> {
  const work = join(o.dir, 'bench');
  mkdirSync(work, { recursive: true });
  const lockPath = join(work, 'criu-lock.yaml');
  const planPath = join(work, 'plan.json');

  o.log(`bringing up ${o.nodes} nodes in ${o.dir}`);
  const t0 = process.hrtime.bigint();
  const st: SandboxState = await up({
    nodes: o.nodes,
    reset: true,
    dir: o.dir,
    log: o.log,
    converged: o.converged,
  });
  const upS = Number(process.hrtime.bigint() - t0) / 1e9;
  const targets: SshTarget[] = st.nodes.map((n) => ({ name: n.name, port: n.port }));
  const ssh: SshSetup = { key: st.key, knownHosts: st.knownHosts, forks: o.forks };
  const common = [
    '-i',
    st.inventory,
    '--known-hosts',
    st.knownHosts,
    '--forks',
    String(o.forks),
    '--no-color',
  ];
  const cl = (args: readonly string[], input?: string): Promise<Measured> =>
    runNodeMeasured(o.bin, args, input === undefined ? {} : { input });
  const resetAll = async (): Promise<void> => {
    await reset('all', { dir: o.dir, log: () => undefined });
  };
  const sshdPids = (): number[] => (readState(sandboxPaths(o.dir))?.nodes ?? []).map((n) => n.sshdPid);
  /** Runs one side of a pair, with what the nodes spent on it when the meter is there. */
  const onNodes = async <T>(run: () => Promise<T>): Promise<{ value: T; nodeS?: number }> => {
    if (!meter) return { value: await run() };
    meter.attach(sshdPids());
    const n0 = meter.readS();
    const value = await run();
    return { value, nodeS: meter.readS() - n0 };
  };

  const gen = await cl(['generate', ...common, '-o', lockPath]);
  if (gen.exitCode !== 0)
    throw new Error(`criu-lock generate failed (exit ${gen.exitCode}): ${gen.stderr.trim()}`);
  const lock: Lockfile = await loadLock(lockPath);
  const paths = lockedPaths(lock);
  const pins = renderPins(lock);
  o.log(`lock: ${Object.keys(lock.packages).length} packages, ${paths.length} files`);

  const withLock = [...common, '-l', lockPath, '-v'];
  const readFloor = readFloorJobs(targets, paths);
  const figures: FigureResult[] = [];

  const pair = async (
    figure: FigureName,
    criu: () => Promise<Measured>,
    floor: () => Promise<SshFleetRun>,
    before?: () => Promise<void>,
    probe?: ProbeRequest,
  ): Promise<FigureResult> => {
    const a: Measured[] = [];
    const fl: SshFleetRun[] = [];
    const nodeA: number[] = [];
    const nodeF: number[] = [];
    const c: number[] = [];
    let bytes: number[] = [];
    const probeRun = probe && !o.noProbeViaSsh ? probeJobs(targets, renderProbeScript(probe)) : undefined;
    for (let r = 0; r < o.runs; r++) {
      if (before) await before();
      const ours = await onNodes(criu);
      a.push(ours.value);
      if (ours.nodeS !== undefined) nodeA.push(ours.nodeS);
      if (before) await before();
      const base = await onNodes(floor);
      fl.push(base.value);
      if (base.nodeS !== undefined) nodeF.push(base.nodeS);
      if (probeRun) {
        const pr = await runSshFleet(ssh, probeRun);
        c.push(pr.wallS);
        bytes = pr.stdoutBytes;
      }
      o.log(
        `${figure} @${o.nodes}: run ${r + 1}/${o.runs}: criu-lock ${a[r]!.wallS.toFixed(2)} s, floor ${fl[r]!.wallS.toFixed(2)} s${nodeA[r] !== undefined && nodeF[r] !== undefined ? ` (node CPU ${perHostMs(nodeA[r]!)} / ${perHostMs(nodeF[r]!)} ms/host)` : ''}${probeRun ? `, criu-lock's probe via ssh ${c[r]!.toFixed(2)} s` : ''}`,
      );
    }
    const walls = a.map((m) => m.wallS);
    const b = fl.map((x) => x.wallS);
    const mid = [...a].sort((x, y) => x.wallS - y.wallS)[Math.floor(a.length / 2)]!;
    const res: FigureResult = {
      figure,
      nodes: o.nodes,
      runs: o.runs,
      criuLockS: median(walls),
      floorS: median(b),
      ratio: median(walls) / median(b),
      criuLockRunsS: walls,
      floorRunsS: b,
      cpuS: median(defined(a.map((m) => m.cpuS))),
      maxRssKiB: median(defined(a.map((m) => m.maxRssKiB))),
      cpuRunsS: a.map((m) => m.cpuS ?? null),
      maxRssRunsKiB: a.map((m) => m.maxRssKiB ?? null),
      forks: o.forks,
      floorBytesPerHost: median(fl.map((x) => x.bytesReceived)) / o.nodes,
      phases: parsePhases(mid.stderr),
    };
    const recv = defined(a.map((m) => m.bytesReceived));
    if (recv.length > 0) res.bytesReceivedPerHost = median(recv) / o.nodes;
    const fcpu = defined(fl.map((x) => x.cpuS));
    if (fcpu.length > 0) res.floorCpuS = median(fcpu);
    const frss = defined(fl.map((x) => x.maxRssKiB));
    if (frss.length > 0) res.floorMaxRssKiB = median(frss);
    if (c.length > 0) res.probeViaSshS = median(c);
    if (nodeA.length === a.length && nodeF.length === fl.length && nodeA.length > 0) {
      res.nodeCpuS = median(nodeA);
      res.floorNodeCpuS = median(nodeF);
      res.nodeCpuRunsS = nodeA;
      res.floorNodeCpuRunsS = nodeF;
    }
    if (bytes.length > 0) res.probeBytesPerHost = median(bytes);
    figures.push(res);
    return res;
  };

  function perHostMs(s: number): string {
    return ((s * 1000) / o.nodes).toFixed(1);
  }

  const want = (f: FigureName): boolean => o.only === undefined || o.only.includes(f);

  // 1. plan on the freshly drifted fleet vs the read floor.
  if (want('plan'))
    await pair(
      'plan',
      async () => {
        const r = await cl(['plan', ...withLock, '--format', 'json']);
        assertNoFailures('plan', r, [0]);
        return r;
      },
      () => runSshFleet(ssh, readFloor),
      undefined,
      // The request plan sends (src/commands/host-steps.ts), without stat readings: every file read and walked.
      {
        paths,
        policyUnless: Object.keys(lock.packages)
          .sort()
          .map((k) => [k, lock.packages[k]!.version] as const),
        pinFile: PIN_FILE,
      },
    );

  // 2. apply on a freshly drifted fleet (reset before every run, untimed) vs pins + the same apt-get.
  if (want('apply')) await applyPair();
  if (want('noop-apply') || want('check')) await convergedPairs();

  return {
    nodes: o.nodes,
    forks: o.forks,
    runs: o.runs,
    upS,
    lockPackages: Object.keys(lock.packages).length,
    lockFiles: paths.length,
    figures,
  };

  async function applyPair(): Promise<void> {
    await resetAll();
    const planned = await cl(['plan', ...withLock, '-o', planPath, '--format', 'json']);
    assertNoFailures('plan -o', planned, [0]);
    const plan = JSON.parse(readFileSync(planPath, 'utf8')) as PlanFile;
    const applyJobs = applyFloorJobs(targets, plan, pins);
    await pair(
      'apply',
      async () => {
        const r = await cl(['apply', ...withLock, '--yes', '--skip-unavailable', '--format', 'json']);
        assertNoFailures('apply', r, [0, 3]);
        return r;
      },
      () => runSshFleet(ssh, applyJobs),
      resetAll,
    );

    // The baseline must have done the same work: re-plan and expect no package actions on hosts it touched.
    const after = await cl(['plan', ...withLock, '--format', 'json']);
    assertNoFailures('plan (after baseline apply)', after, [0]);
    const left = (JSON.parse(after.stdout) as PlanFile).hosts.filter(
      (h) => applyJobs.some((j) => j.target.name === h.name) && h.actions.length > 0,
    );
    if (left.length > 0)
      throw new Error(`the apply baseline left work undone on ${left.map((h) => h.name).join(', ')}`);
  }

  // 3. no-op apply on the converged fleet, 4. check: both vs the read floor.
  async function convergedPairs(): Promise<void> {
    const converge = await cl(['apply', ...withLock, '--yes', '--skip-unavailable', '--format', 'json']);
    assertNoFailures('apply (converge)', converge, [0, 3]);
    if (want('noop-apply'))
      await pair(
        'noop-apply',
        async () => {
          const r = await cl(['apply', ...withLock, '--yes', '--skip-unavailable', '--format', 'json']);
          assertNoFailures('no-op apply', r, [0, 3]);
          const doc = JSON.parse(r.stdout) as {
            hosts: Array<{ name: string; tasks: Array<{ status: string }> }>;
          };
          const wrote = doc.hosts.filter((h) => h.tasks.some((t) => t.status === 'changed'));
          if (wrote.length > 0)
            throw new Error(
              `no-op apply changed ${wrote.map((h) => h.name).join(', ')}: the fleet was not converged`,
            );
          return r;
        },
        () => runSshFleet(ssh, readFloor),
      );
    if (want('check'))
      await pair(
        'check',
        async () => {
          const r = await cl(['check', ...withLock, '--format', 'json']);
          assertNoFailures('check', r, [0, 2]);
          return r;
        },
        () => runSshFleet(ssh, readFloor),
        undefined,
        { paths },
      );
  }
}
