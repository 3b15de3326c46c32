/**
 * Pure-core micro-benchmarks, one per process so each gets its own peak-RSS figure:
 *   node --expose-gc dist-tools/tools/bench/micro-child.js planner [HOSTS] [PACKAGES]
 *   node --expose-gc dist-tools/tools/bench/micro-child.js versions
 *   node --expose-gc dist-tools/tools/bench/micro-child.js lockfile [PACKAGES]
 * Prints one JSON object on stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLock, parseLock, serializeLock, finalizeLock } from '../../src/lock/lockfile.js';
import type { HostPlan } from '../../src/plan/plan-file.js';
import { planHost } from '../../src/plan/planner.js';
import { renderPins } from '../../src/plan/pins.js';
import { median } from './measure.js';
import { benchVersionComparisons } from './versions.js';
import { fleetTemplate, syntheticFacts, syntheticLock } from './synthetic.js';

const MiB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

function now(): number {
  return performance.now();
}

export interface PlannerResult {
  hosts: number;
  packages: number;
  files: number;
  /** Seconds inside planHost only, summed over hosts. */
  planS: number;
  /** Seconds building the synthetic facts (not part of the figure). */
  factsS: number;
  /**
   * CPU seconds (user+sys of this process) inside planHost, summed over hosts: on a machine shared
   * with other work, wall time measures the neighbours too.
   */
  planCpuS: number;
  /** planHost calls plus facts construction, wall seconds. */
  totalS: number;
  /** Peak RSS of this process (kernel maxrss), MiB: runtime + lock + facts of one host + all plans. */
  peakRssMiB: number;
  /** Highest RSS seen by sampling every 100 hosts, MiB. */
  sampledPeakRssMiB: number;
  /** RSS after building the lock, before the first host, MiB. */
  baseRssMiB: number;
  /** V8 heap used by the 10,000 host plans kept at the end, MiB (after gc). */
  plansHeapMiB: number;
  actions: number;
  changedHosts: number;
}

function planner(hosts: number, packages: number): PlannerResult {
  const lock = syntheticLock({ packages, filesPer: (i) => i % 3 });
  const pins = renderPins(lock);
  const t = fleetTemplate(lock, pins);
  const files = t.packages.reduce((n, p) => n + p.files.length, 0);
  // Warm the JIT on a few hosts so the figure is steady-state, like a long plan run.
  for (let h = 0; h < 20; h++) planHost(lock, syntheticFacts(t, 100_000 + h), pins);
  gc?.();
  const baseRss = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  let sampled = baseRss;
  let planNs = 0n;
  let factsNs = 0n;
  let planCpuUs = 0;
  const plans: HostPlan[] = [];
  const t0 = now();
  for (let h = 0; h < hosts; h++) {
    const f0 = process.hrtime.bigint();
    const facts = syntheticFacts(t, h);
    const c0 = process.cpuUsage();
    const p0 = process.hrtime.bigint();
    plans.push(planHost(lock, facts, pins));
    const p1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    planCpuUs += c1.user + c1.system;
    factsNs += p0 - f0;
    planNs += p1 - p0;
    if (h % 100 === 0) sampled = Math.max(sampled, process.memoryUsage().rss);
  }
  const totalS = (now() - t0) / 1000;
  sampled = Math.max(sampled, process.memoryUsage().rss);
  gc?.();
  const plansHeap = process.memoryUsage().heapUsed - heapBefore;
  return {
    hosts,
    packages,
    files,
    planS: Number(planNs) / 1e9,
    planCpuS: planCpuUs / 1e6,
    factsS: Number(factsNs) / 1e9,
    totalS,
    peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB,
    sampledPeakRssMiB: sampled / MiB,
    baseRssMiB: baseRss / MiB,
    plansHeapMiB: plansHeap / MiB,
    actions: plans.reduce((n, p) => n + p.actions.length, 0),
    changedHosts: plans.filter((p) => p.status === 'changes').length,
  };
}

export interface LockfileResult {
  packages: number;
  files: number;
  bytes: number;
  digestMs: number;
  serializeMs: number;
  parseMs: number;
  loadMs: number;
  peakRssMiB: number;
}

async function lockfile(packages: number): Promise<LockfileResult> {
  // ~3 files a package: 1..5 cycling.
  const { digest: _digest, ...content } = syntheticLock({ packages, filesPer: (i) => 1 + (i % 5) });
  void _digest;
  const files = Object.values(content.packages).reduce((n, p) => n + Object.keys(p.files ?? {}).length, 0);
  const dir = mkdtempSync(join(tmpdir(), 'criu-lock-bench-lock-'));
  const file = join(dir, 'criu-lock.yaml');
  const digest: number[] = [];
  const ser: number[] = [];
  const par: number[] = [];
  const load: number[] = [];
  let text = '';
  try {
    // Run 0 warms the JIT and is dropped.
    for (let r = 0; r < 6; r++) {
      let t = now();
      const lock = finalizeLock(content);
      const d = now() - t;
      t = now();
      text = serializeLock(lock);
      const s = now() - t;
      t = now();
      const back = parseLock(text, file);
      const p = now() - t;
      if (back.digest !== lock.digest) throw new Error('lockfile round trip changed the digest');
      writeFileSync(file, text);
      t = now();
      await loadLock(file);
      const l = now() - t;
      if (r === 0) continue;
      digest.push(d);
      ser.push(s);
      par.push(p);
      load.push(l);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    packages,
    files,
    bytes: Buffer.byteLength(text),
    digestMs: median(digest),
    serializeMs: median(ser),
    parseMs: median(par),
    loadMs: median(load),
    peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB,
  };
}

async function childMain(argv: readonly string[]): Promise<unknown> {
  const [what, a, b] = argv;
  switch (what) {
    case 'planner':
      return planner(Number(a ?? 10_000), Number(b ?? 2_000));
    case 'versions':
      return { ...benchVersionComparisons(), peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB };
    case 'lockfile':
      return lockfile(Number(a ?? 5_000));
    case undefined:
    default:
      throw new Error(`unknown micro-benchmark ${String(what)}`);
  }
}

process.stdout.write(`${JSON.stringify(await childMain(process.argv.slice(2)))}\n`);
