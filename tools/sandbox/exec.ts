import { spawn } from 'node:child_process';
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

/** Runs argv without a shell. Never throws for a non-zero exit; see `runOk`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new CriuLockError('internal', 'run: empty argv');
  const command = argv.join(' ');
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: { LC_ALL: 'C', ...(opts.env ?? process.env) },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const finish = (exitCode: number, extraErr = ''): void => {
      if (timer) clearTimeout(timer);
      resolve({
        command,
        exitCode,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + extraErr,
        durationMs: Date.now() - started,
        timedOut,
      });
    };
    child.on('error', (e) => finish(127, e.message));
    child.on('close', (code, signal) => finish(code ?? (signal ? 128 : 1)));
  });
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
