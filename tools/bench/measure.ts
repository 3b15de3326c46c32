/**
 * Running a command and measuring it: wall time (our own clock), and for criu-lock itself CPU time
 * and peak RSS, from /usr/bin/time when the machine has it, else from a preload hook that writes
 * the node process's own `process.resourceUsage()` when it exits.
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { STATS_FILE_ENV, type TransportStats } from '../../src/transport/stats.js';

export const GNU_TIME = '/usr/bin/time';

export interface Measured {
  exitCode: number;
  stdout: string;
  stderr: string;
  wallS: number;
  /** user + system CPU seconds of the measured process (criu-lock runs only). */
  cpuS?: number;
  /** Peak resident set size in KiB (criu-lock runs only). */
  maxRssKiB?: number;
  /** SSH channel payload bytes criu-lock received (its CRIU_LOCK_STATS_FILE; criu-lock runs only). */
  bytesReceived?: number;
  /** Hosts criu-lock connected to, from the same file. */
  statsHosts?: number;
}

export interface SpawnOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs argv without a shell (execa), times it on the wall clock. Never throws for a non-zero exit. */
export async function spawnTimed(argv: readonly string[], opts: SpawnOptions = {}): Promise<Measured> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('spawnTimed: empty argv');
  const start = process.hrtime.bigint();
  const r = await execa(file, args, {
    env: opts.env ?? process.env,
    extendEnv: false,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    timeout: opts.timeoutMs,
    killSignal: 'SIGKILL',
    reject: false,
    stripFinalNewline: false,
  });
  const started = r.exitCode !== undefined || r.signal !== undefined;
  return {
    exitCode: r.exitCode ?? (r.signal ? 128 : 127),
    stdout: r.stdout,
    stderr: r.stderr + (started ? '' : r.shortMessage),
    wallS: Number(process.hrtime.bigint() - start) / 1e9,
  };
}

export type RusageMethod = 'gnu-time' | 'preload-hook';

/** How criu-lock's CPU and peak RSS are measured on this machine. */
export function rusageMethod(): RusageMethod {
  return existsSync(GNU_TIME) ? 'gnu-time' : 'preload-hook';
}

const HOOK = `import { writeFileSync } from 'node:fs';
process.on('exit', () => {
  const r = process.resourceUsage();
  writeFileSync(process.env.CRIU_LOCK_BENCH_RUSAGE, JSON.stringify({ cpuS: (r.userCPUTime + r.systemCPUTime) / 1e6, maxRssKiB: r.maxRSS }));
});
`;

let scratch: string | undefined;
function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'criu-lock-bench-'));
  return scratch;
}

export function cleanupScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

/**
 * Runs a node script (criu-lock's bin) and measures wall, CPU and peak RSS of that process.
 * /usr/bin/time's %M is the child's peak RSS in KiB; %U/%S its user/system seconds.
 */
export async function runNodeMeasured(
  script: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<Measured> {
  const dir = scratchDir();
  const out = join(dir, `rusage-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const stats = `${out}.stats`;
  opts = { ...opts, env: { ...(opts.env ?? process.env), [STATS_FILE_ENV]: stats } };
  const withStats = (r: Measured): Measured => {
    try {
      const j = JSON.parse(readFileSync(stats, 'utf8')) as TransportStats;
      r.bytesReceived = j.bytesReceived;
      r.statsHosts = j.hosts;
    } catch {
      /* the child died before writing it */
    }
    rmSync(stats, { force: true });
    return r;
  };
  if (rusageMethod() === 'gnu-time') {
    const r = await spawnTimed(
      [GNU_TIME, '-f', '%U %S %M', '-o', out, process.execPath, script, ...args],
      opts,
    );
    try {
      const [u, s, m] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      if (u !== undefined && s !== undefined && m !== undefined) {
        r.cpuS = u + s;
        r.maxRssKiB = m;
      }
    } catch {
      /* the child died before time wrote the file; the caller sees the exit code */
    }
    rmSync(out, { force: true });
    return withStats(r);
  }
  const hook = join(dir, 'rusage-hook.mjs');
  if (!existsSync(hook)) writeFileSync(hook, HOOK);
  const env = { ...(opts.env ?? process.env), CRIU_LOCK_BENCH_RUSAGE: out };
  const r = await spawnTimed([process.execPath, '--import', pathToFileURL(hook).href, script, ...args], {
    ...opts,
    env,
  });
  try {
    const j = JSON.parse(readFileSync(out, 'utf8')) as { cpuS: number; maxRssKiB: number };
    r.cpuS = j.cpuS;
    r.maxRssKiB = j.maxRssKiB;
  } catch {
    /* as above */
  }
  rmSync(out, { force: true });
  return withStats(r);
}

/** Marks GNU time's line on the stderr of a floor's ssh client (see timedArgv). */
const RUSAGE_MARK = 'CRIU_LOCK_BENCH_RUSAGE';

/** argv run under GNU time (when present), its CPU and RSS appended to stderr as one marked line. */
export function timedArgv(argv: readonly string[]): string[] {
  return rusageMethod() === 'gnu-time' ? [GNU_TIME, '-f', `${RUSAGE_MARK} %U %S %M`, ...argv] : [...argv];
}

/** Takes timedArgv's line off stderr: the process's CPU seconds and peak RSS (KiB), if present. */
export function takeRusage(r: Measured): Measured {
  const lines = r.stderr.split('\n');
  const i = lines.findLastIndex((l) => l.startsWith(`${RUSAGE_MARK} `));
  if (i < 0) return r;
  const [u, s, m] = lines[i]!.split(' ').slice(1).map(Number);
  lines.splice(i, 1);
  r.stderr = lines.join('\n');
  if (u !== undefined && s !== undefined && m !== undefined) {
    r.cpuS = u + s;
    r.maxRssKiB = m;
  }
  return r;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function defined<T>(xs: ReadonlyArray<T | undefined>): T[] {
  return xs.filter((x): x is T => x !== undefined);
}
