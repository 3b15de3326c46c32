/** `npm run bench` flags, parsed with node:util parseArgs. */
import { parseArgs as parseArgv } from 'node:util';

export interface Args {
  nodes: number;
  runs: number;
  scale: boolean;
  scaleNodes: number;
  microOnly: boolean;
  plannerHosts: number;
  json?: string;
}

export const USAGE =
  'usage: npm run bench -- [--nodes N] [--runs R] [--scale] [--scale-nodes M] [--micro-only] [--planner-hosts H] [--json FILE]';

/** A bad command line: main prints it with the usage and exits 1. */
export class ArgsError extends Error {}

export function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(1);
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
    'micro-only': { type: 'boolean', default: false },
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
  return {
    nodes: int(values.nodes, '--nodes', 2, 999, 20),
    runs: int(values.runs, '--runs', 1, 99, 5),
    scale: values.scale,
    scaleNodes: int(values['scale-nodes'], '--scale-nodes', 2, 999, 100),
    microOnly: values['micro-only'],
    plannerHosts: int(values['planner-hosts'], '--planner-hosts', 1, 1_000_000, 10_000),
    ...(values.json !== undefined ? { json: values.json } : {}),
  };
}
