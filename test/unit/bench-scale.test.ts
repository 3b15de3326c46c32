/** The bench's scale flags, fleet sizes and the Markdown scaling report (tools/bench). */
import { describe, expect, it } from 'vitest';
import { ArgsError, fleetSteps, parseArgs, runsAt } from '../../tools/bench/args.js';
import type { FigureName, FigureResult, FleetRun } from '../../tools/bench/fleet-bench.js';
import {
  bestForks,
  forksCurveTable,
  perHostCurve,
  renderScalingReport,
  scalingTable,
  targetsTable,
} from '../../tools/bench/report.js';

describe('scale flags', () => {
  it('--scale-nodes implies --scale; runs, forks and the forks curve', () => {
    expect(parseArgs(['--scale-nodes', '1000', '--scale-runs', '2', '--forks', '50'])).toMatchObject({
      scale: true,
      scaleNodes: 1000,
      scaleRuns: 2,
      forks: 50,
      forksCurve: false,
    });
    expect(parseArgs(['--forks-curve'])).toMatchObject({ forksCurve: true, forksCurveNodes: 300 });
    expect(parseArgs(['--forks-curve-nodes', '40'])).toMatchObject({ forksCurve: true, forksCurveNodes: 40 });
  });

  it.each([
    [['--scale-nodes', '5001']],
    [['--scale-runs', '0']],
    [['--forks', '0']],
    [['--forks-curve-nodes', '1']],
    [['--converged']],
    [['--converged', '--figures', 'plan,check']],
  ])('rejects %j', (argv) => {
    expect(() => parseArgs(argv)).toThrow(ArgsError);
  });

  it.each([
    [{ nodes: 20, scale: false, scaleNodes: 1000 }, [20]],
    [{ nodes: 20, scale: true, scaleNodes: 1000 }, [20, 100, 300, 1000]],
    [{ nodes: 20, scale: true, scaleNodes: 100 }, [20, 100]],
    [{ nodes: 20, scale: true, scaleNodes: 500 }, [20, 100, 300, 500]],
    [{ nodes: 20, scale: true, scaleNodes: 40 }, [20, 40]],
    [{ nodes: 5, scale: true, scaleNodes: 300 }, [5, 20, 100, 300]],
    [{ nodes: 20, scale: true, scaleNodes: 2000 }, [20, 100, 300, 1000, 2000]],
  ])('fleet sizes for %j are %j', (a, steps) => {
    expect(fleetSteps(a)).toEqual(steps);
  });

  it('--converged goes with the converged figures only', () => {
    expect(parseArgs(['--converged', '--figures', 'noop-apply,check'])).toMatchObject({
      converged: true,
      figures: ['noop-apply', 'check'],
    });
    expect(parseArgs([]).converged).toBe(false);
  });

  it('--figures keeps the named figures; an unknown one is a usage error', () => {
    expect(parseArgs([]).figures).toBeUndefined();
    expect(parseArgs(['--figures', 'plan,check']).figures).toEqual(['plan', 'check']);
    expect(() => parseArgs(['--figures', 'plan,deploy'])).toThrow(/unknown figure "deploy"/);
    expect(() => parseArgs(['--figures', ','])).toThrow(/at least one figure/);
  });

  it('--runs up to 100 nodes, --scale-runs above', () => {
    const a = { runs: 5, scaleRuns: 1 };
    expect([20, 100, 300, 1000].map((n) => runsAt(a, n))).toEqual([5, 5, 1, 1]);
  });
});

function fig(
  figure: FigureName,
  nodes: number,
  s: number,
  floor: number,
  cpuS: number,
  rssMiB: number,
): FigureResult {
  return {
    figure,
    nodes,
    runs: 1,
    criuLockS: s,
    floorS: floor,
    ratio: s / floor,
    criuLockRunsS: [s],
    floorRunsS: [floor],
    cpuS,
    maxRssKiB: rssMiB * 1024,
    forks: 20,
    bytesReceivedPerHost: 100 * 1024,
    floorBytesPerHost: 1500 * 1024,
    floorCpuS: cpuS * 2,
    floorMaxRssKiB: 9 * 1024,
    nodeCpuS: cpuS * 10,
    floorNodeCpuS: cpuS * 5,
    phases: {},
  };
}

function run(nodes: number, forks = 20, perHostMs = 10): FleetRun {
  const names: FigureName[] = ['plan', 'apply', 'noop-apply', 'check'];
  return {
    nodes,
    forks,
    runs: 1,
    upS: 1,
    lockPackages: 117,
    lockFiles: 752,
    figures: names.map((n) => fig(n, nodes, nodes * 0.01, nodes * 0.04, (nodes * perHostMs) / 1000, 200)),
  };
}

describe('scaling report', () => {
  it('scaling table: one row per figure and size, criu-lock beside the floor', () => {
    const t = scalingTable([run(100), run(20)]);
    const lines = t.split('\n');
    expect(lines).toHaveLength(2 + 8);
    expect(lines[2]).toMatch(
      /^\| plan +\| 20 +\| 1 +\| 0\.20 +\| 0\.80 +\| 0\.25× +\| 10\.0 \/ 20\.0 +\| 100\.0 \/ 50\.0 +\| 200 \/ 9 +\| 100 \/ 1500 +\|$/,
    );
    expect(lines[3]).toMatch(/^\| plan +\| 100 /);
    // A machine without a writable cgroup hierarchy measures no node CPU: the cell says so.
    const noMeter = run(20);
    for (const f of noMeter.figures) {
      delete f.nodeCpuS;
      delete f.floorNodeCpuS;
    }
    expect(scalingTable([noMeter]).split('\n')[2]).toMatch(/\| 10\.0 \/ 20\.0 +\| – \/ – +\| 200 /);
  });

  it('per-host curve: CPU per host against the 100-node run', () => {
    const t = perHostCurve([run(20), run(100), run(1000, 20, 12)]);
    const plan1000 = t.split('\n').find((l) => /^\| plan +\| 1000 /.test(l));
    expect(plan1000).toMatch(/\| 12\.0 +\| 1\.20× +\|/);
    expect(t.split('\n')[0]).toContain('CPU/host vs @100');
  });

  it('forks curve and the fastest forks', () => {
    const runs = [run(300, 10), run(300, 50), run(300, 20)];
    runs[1]!.figures.forEach((f) => (f.criuLockS = 1));
    expect(bestForks(runs)).toBe(50);
    const rows = forksCurveTable(runs)
      .split('\n')
      .filter((l) => l.startsWith('| plan '));
    expect(rows.map((l) => l.split('|')[2]!.trim())).toEqual(['10', '20', '50']);
  });

  it('targets say met only at 1,000 nodes', () => {
    expect(targetsTable([run(100)])).toContain('(at 1000)');
    const t = targetsTable([run(1000, 20, 20)]);
    expect(t).toMatch(/plan: ratio to floor +\| 0\.25× +\| ≤ 0\.5× +\| yes/);
    expect(t).toMatch(/controller CPU, worst figure +\| 20\.0 ms\/host +\| ≤ 15 ms\/host +\| NO/);
    expect(t).toMatch(/plan: wall +\| 10\.00 s +\| < 30 s +\| yes/);
    expect(t).not.toContain('first run');
  });

  it('with several plan runs, the first (no readings) and the later ones are judged apart', () => {
    const r = run(1000, 20, 10);
    const plan = r.figures.find((f) => f.figure === 'plan')!;
    Object.assign(plan, {
      runs: 3,
      criuLockRunsS: [60, 25, 27],
      floorRunsS: [70, 70, 60],
      cpuRunsS: [24, 9, 11],
    });
    const t = targetsTable([r]);
    expect(t).toMatch(/plan, first run \(no readings\): ratio +\| 0\.86× +\| ≤ 0\.5× +\| NO/);
    expect(t).toMatch(/plan, first run \(no readings\): wall +\| 60\.00 s +\| < 30 s +\| NO/);
    expect(t).toMatch(/plan, later runs \(readings warm\): ratio +\| 0\.40× +\| ≤ 0\.5× +\| yes/);
    expect(t).toMatch(/plan, later runs \(readings warm\): wall +\| 26\.00 s +\| < 30 s +\| yes/);
    expect(t).toMatch(
      /plan, first run \(no readings\): controller CPU +\| 24\.0 ms\/host +\| ≤ 15 ms\/host +\| NO/,
    );
    expect(t).toMatch(
      /plan, later runs \(readings warm\): controller CPU +\| 10\.0 ms\/host +\| ≤ 15 ms\/host +\| yes/,
    );
  });

  it('renders the whole report with load averages', () => {
    const md = renderScalingReport({
      benchVersion: 2,
      fleet: [run(20), run(100)],
      forksCurve: [run(40, 10), run(40, 20)],
      load: { '@20 start': '1.00 2.00 3.00' },
    });
    expect(md).toContain('Load average: @20 start 1.00 2.00 3.00');
    expect(md).toContain('### Scaling');
    expect(md).toContain('### Per-host cost');
    expect(md).toContain('### Forks curve (40 nodes)');
    expect(md).toContain('Fastest over the four figures: --forks 10.');
  });
});
