import { execa } from 'execa';
import { CriuLockError } from '../../src/errors.js';

/** Result of one command, shaped like execa's. */
export interface CommandResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/** Runs argv without a shell (execa). Never throws for a non-zero exit; see `runOk`. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new CriuLockError('internal', 'run: empty argv');
  const r = await execa(file, args, {
    cwd: opts.cwd,
    env: { LC_ALL: 'C', ...(opts.env ?? process.env) },
    extendEnv: false,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    timeout: opts.timeoutMs,
    killSignal: 'SIGKILL',
    reject: false,
    stripFinalNewline: false,
  });
  // A command that could not start (ENOENT) has no exit code: 127 like a shell, and why on stderr.
  const started = r.exitCode !== undefined || r.signal !== undefined;
  return {
    command: argv.join(' '),
    exitCode: r.exitCode ?? (r.signal ? 128 : 127),
    stdout: r.stdout,
    stderr: r.stderr + (started ? '' : r.shortMessage),
    durationMs: Math.round(r.durationMs),
    timedOut: r.timedOut,
  };
}

/** Runs argv and throws a sandbox error (with the command's stderr tail) if it fails. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const r = await run(argv, opts);
  if (r.exitCode !== 0) {
    const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ');
    throw new CriuLockError('sandbox', `command failed (exit ${r.exitCode}): ${r.command}: ${tail}`, {
      hint: 'run the command by hand to see the full output',
    });
  }
  return r;
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, () => worker()));
  return results;
}
