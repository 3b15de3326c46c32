/** `npm run bench` flags, parsed with node:util parseArgs. */
import type { FigureName } from './fleet-bench.js';
import { parseArgs as parseArgv } from 'node:util';

export interface Args {
  nodes: number;
  runs: number;
  scale: boolean;
  scaleNodes: number;
  /** Runs per figure at the scale steps above 100 nodes (the small steps use --runs). */
  scaleRuns: number;
  /** --forks for criu-lock and parallel ssh clients for the floor. */
  forks: number;
  /** Measure the forks curve (FORKS_CURVE) at forksCurveNodes. */
  forksCurve: boolean;
  forksCurveNodes: number;
  /** Figures to measure at every step and forks value (`--figures plan,check`); undefined: all. */
  figures?: FigureName[] | undefined;
  microOnly: boolean;
  /**
   * Bring the fleet up without package drift, so the converging apply before no-op apply and
   * check only writes pins: those two figures at 1,000 nodes without an hour of apt first.
   */
  converged: boolean;
  /** Skip the probe-through-OpenSSH diagnostic (minutes at 1,000 nodes). */
  noProbeViaSsh: boolean;
  plannerHosts: number;
  json?: string;
}

export const USAGE =
  'usage: npm run bench -- [--nodes N] [--runs R] [--scale] [--scale-nodes M] [--scale-runs R] [--forks N] [--forks-curve] [--forks-curve-nodes N] [--figures plan,apply,noop-apply,check] [--converged] [--no-probe-via-ssh] [--micro-only] [--planner-hosts H] [--json FILE]';

/** Fleet sizes of the scaling table; `--scale-nodes M` keeps those up to M and ends at M. */
export const SCALE_STEPS: readonly number[] = [20, 100, 300, 1000];
/** Parallelism values of the forks curve. */
export const FORKS_CURVE: readonly number[] = [10, 20, 50, 100];
/** The sandbox's limit (tools/sandbox/state.ts MAX_NODES). */
const MAX_FLEET = 5000;

const FIGURES: readonly FigureName[] = ['plan', 'apply', 'noop-apply', 'check'];

/** `--figures plan,check` → those figures; any other name is a usage error. */
function figureList(v: string | undefined, fail: (msg: string) => never): FigureName[] | undefined {
  if (v === undefined) return undefined;
  const names = v.split(',').filter((x) => x !== '');
  for (const n of names)
    if (!FIGURES.includes(n as FigureName))
      fail(`--figures: unknown figure ${JSON.stringify(n)} (${FIGURES.join(', ')})`);
  if (names.length === 0) fail('--figures needs at least one figure');
  return names as FigureName[];
}

/** A bad command line: main prints it with the usage and exits 1. */
export class ArgsError extends Error {}

export function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(1);
}

/** Fleet sizes to measure: `--nodes` alone, or with scale the steps up to M (M itself last). */
export function fleetSteps(a: Pick<Args, 'nodes' | 'scale' | 'scaleNodes'>): number[] {
  if (!a.scale) return [a.nodes];
  const steps = SCALE_STEPS.filter((s) => s < a.scaleNodes && s !== a.nodes);
  return [...new Set([a.nodes, ...steps, a.scaleNodes])].sort((x, y) => x - y);
}

/** Runs per figure at a fleet size: --runs up to 100 nodes, --scale-runs above. */
export function runsAt(a: Pick<Args, 'runs' | 'scaleRuns'>, nodes: number): number {
  return nodes > 100 ? a.scaleRuns : a.runs;
}

export function parseArgs(argv: readonly string[]): Args {
  const fail = (msg: string): never => {
    throw new ArgsError(msg);
  };
  const options = {
    nodes: { type: 'string' },
    runs: { type: 'string' },
    scale: { type: 'boolean', default: false },
    'scale-nodes': { type: 'string' },
    'scale-runs': { type: 'string' },
    forks: { type: 'string' },
    'forks-curve': { type: 'boolean', default: false },
    'forks-curve-nodes': { type: 'string' },
    figures: { type: 'string' },
    'micro-only': { type: 'boolean', default: false },
    converged: { type: 'boolean', default: false },
    'no-probe-via-ssh': { type: 'boolean', default: false },
    'planner-hosts': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  } as const;
  const parse = (): ReturnType<
    typeof parseArgv<{ args: string[]; strict: true; allowPositionals: false; options: typeof options }>
  > => {
    try {
      return parseArgv({ args: [...argv], strict: true, allowPositionals: false, options });
    } catch (err) {
      return fail((err as Error).message.split('\n')[0] ?? 'invalid arguments');
    }
  };
  const { values } = parse();
  if (values.help) fail('help');
  const int = (v: string | undefined, flag: string, min: number, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < min || n > max)
      fail(`${flag} needs an integer ${min}..${max}, got ${v}`);
    return n;
  };
  const nodes = int(values.nodes, '--nodes', 2, MAX_FLEET, 20);
  const scaleNodes = int(values['scale-nodes'], '--scale-nodes', 2, MAX_FLEET, 100);
  const figures = figureList(values.figures, fail);
  // plan and apply measure convergence work, which a fleet without drift does not have.
  if (values.converged && !(figures ?? FIGURES).every((f) => f === 'noop-apply' || f === 'check'))
    fail('--converged measures only noop-apply and check: add --figures noop-apply,check');
  return {
    nodes,
    runs: int(values.runs, '--runs', 1, 99, 5),
    // --scale-nodes implies --scale.
    scale: values.scale || values['scale-nodes'] !== undefined,
    scaleNodes,
    scaleRuns: int(values['scale-runs'], '--scale-runs', 1, 99, 1),
    forks: int(values.forks, '--forks', 1, 1000, 20),
    forksCurve: values['forks-curve'] || values['forks-curve-nodes'] !== undefined,
    forksCurveNodes: int(values['forks-curve-nodes'], '--forks-curve-nodes', 2, MAX_FLEET, 300),
    figures,
    microOnly: values['micro-only'],
    converged: values.converged,
    noProbeViaSsh: values['no-probe-via-ssh'],
    plannerHosts: int(values['planner-hosts'], '--planner-hosts', 1, 1_000_000, 10_000),
    ...(values.json !== undefined ? { json: values.json } : {}),
  };
}
