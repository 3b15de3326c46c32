/**
 * Local transport (`ansible_connection: local`), plus the command shaping both transports share:
 * how `env` and `become` turn an argv into the argv that actually runs, the remote atomic-write
 * script, and recognising sudo's "password required" answer.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { renderCommand } from '../shell/quote.js';
import { OutputLimitError, outputBudget } from './output-limit.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from './types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The argv that really runs: `env K=V ...` so the variables survive sudo's env_reset, optionally
 * under `timeout`, wrapped in `sudo -n --` when becoming root. `-n` makes sudo fail at once instead of waiting for a password
 * nobody will type (see `isSudoPasswordRequired`).
 */
export function buildArgv(
  argv: readonly string[],
  opts: {
    env?: Record<string, string> | undefined;
    sudo: boolean;
    /** Wrap in coreutils `timeout -k KILL SECONDS` (used by the SSH transport). */
    timeout?: { seconds: number; killAfterSeconds: number } | undefined;
  },
): string[] {
  if (argv.length === 0) throw new Error('empty command');
  let out = [...argv];
  const env = Object.entries(opts.env ?? {});
  if (env.length > 0) {
    for (const [k] of env) {
      if (!ENV_NAME.test(k)) throw new Error(`invalid environment variable name: ${JSON.stringify(k)}`);
    }
    out = ['env', ...env.map(([k, v]) => `${k}=${v}`), ...out];
  }
  if (opts.timeout) {
    const { seconds, killAfterSeconds } = opts.timeout;
    if (!(seconds > 0) || !(killAfterSeconds > 0)) throw new Error(`invalid timeout ${seconds}s`);
    out = ['timeout', '-k', `${killAfterSeconds}s`, `${Math.max(seconds, 0.001).toFixed(3)}s`, ...out];
  }
  if (opts.sudo) out = ['sudo', '-n', '--', ...out];
  return out;
}

/**
 * True when a `become` command failed because sudo wanted a password (`sudo -n` exits 1 with
 * "sudo: a password is required"). Transports return this as an ordinary result; the caller turns
 * it into a per-host 'become' failure. Matches sudo's English message (and the older
 * "a terminal is required"), so a translated sudo on the target would not be recognised.
 */
export function isSudoPasswordRequired(result: CommandResult): boolean {
  return (
    result.exitCode === 1 && /^sudo: (a password is required|a terminal is required)/m.test(result.stderr)
  );
}

/**
 * Runs on the target as `sh -c SCRIPT criu-lock-put DEST MODE` with the content on stdin: the
 * content never appears on a command line, and DEST/MODE arrive as positional parameters, so
 * nothing is interpolated into shell text. The temp file lives in DEST's directory so `mv` is a
 * rename(2) and readers see either the old or the new file. MODE "-" keeps an existing file's mode
 * (else 0644, not mktemp's 0600).
 */
export const PUT_FILE_SCRIPT = [
  'set -e',
  'dest=$1',
  'mode=$2',
  'tmp=$(mktemp "$(dirname -- "$dest")/.criu-lock.XXXXXX")',
  `trap 'rm -f -- "$tmp"' EXIT`,
  'cat > "$tmp"',
  'if [ "$mode" != - ]; then chmod -- "$mode" "$tmp"; elif [ -e "$dest" ]; then chmod --reference="$dest" -- "$tmp"; else chmod 0644 -- "$tmp"; fi',
  'sync -- "$tmp" 2>/dev/null || true',
  'mv -f -- "$tmp" "$dest"',
  'trap - EXIT',
].join('\n');

export function putFileArgv(path: string, mode: number | undefined): string[] {
  return ['sh', '-c', PUT_FILE_SCRIPT, 'criu-lock-put', path, mode === undefined ? '-' : formatMode(mode)];
}

export function formatMode(mode: number): string {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new Error(`invalid file mode ${mode}`);
  return mode.toString(8).padStart(4, '0');
}

export interface LocalTransportOptions {
  /** Default for ExecOptions.become / PutFileOptions.become (a per-call value wins). */
  become?: boolean;
}

/** Local commands run without a shell (argv straight to spawn); `become` adds `sudo -n` unless already root. */
export function createLocalTransport(name: string, opts: LocalTransportOptions = {}): Transport {
  const isRoot = process.getuid?.() === 0;
  const sudoFor = (become: boolean | undefined): boolean => (become ?? opts.become ?? false) && !isRoot;

  return {
    host: name,
    exec(argv, execOpts = {}) {
      const full = buildArgv(argv, { env: execOpts.env, sudo: sudoFor(execOpts.become) });
      return runLocal(full, execOpts);
    },
    async putFile(path, content, putOpts: PutFileOptions = {}) {
      if (sudoFor(putOpts.become)) {
        // Needs root: the same script the SSH transport uses, under sudo.
        return runLocal(buildArgv(putFileArgv(path, putOpts.mode), { sudo: true }), { stdin: content });
      }
      return writeAtomically(path, content, putOpts.mode);
    },
    close() {
      return Promise.resolve();
    },
  };
}

function runLocal(argv: readonly string[], opts: ExecOptions): Promise<CommandResult> {
  const command = renderCommand(argv);
  const started = Date.now();
  const budget = outputBudget(opts.maxOutputBytes);
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    // detached: the command gets its own process group, so a timeout kills its children too and
    // the pipes close (otherwise an orphaned grandchild would keep 'close' from ever firing).
    const child = spawn(file ?? '', args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    let overflow = false;
    const take = (into: Buffer[], b: Buffer): void => {
      if (overflow) return;
      if (budget.add(b.length)) {
        into.push(b);
        return;
      }
      overflow = true;
      out.length = 0;
      err.length = 0;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', (b: Buffer) => take(out, b));
    child.stderr.on('data', (b: Buffer) => take(err, b));
    // EPIPE when the command exits without reading its stdin is not a failure of the command.
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      spawnError = e;
    });
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            try {
              if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
            } catch {
              child.kill('SIGKILL');
            }
          }, opts.timeoutMs)
        : undefined;
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (overflow) {
        reject(new OutputLimitError('localhost', budget.limit));
        return;
      }
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}${spawnError.message}\n`;
      resolve({
        command,
        // A command that could not start gets the shell's codes, so callers see the same thing
        // as over SSH: 127 not found, 126 not executable.
        exitCode: spawnError ? ((spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126) : code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        durationMs: Date.now() - started,
        timedOut,
        signal: signal ?? undefined,
      });
    });
    const hold = opts.holdStdin;
    if (hold && !hold.aborted) {
      if (opts.stdin !== undefined) child.stdin.write(opts.stdin);
      hold.addEventListener('abort', () => child.stdin.end(), { once: true });
    } else if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}

async function writeAtomically(
  path: string,
  content: string | Buffer,
  mode: number | undefined,
): Promise<CommandResult> {
  const started = Date.now();
  const command = `write ${path}`;
  const tmp = join(dirname(path), `.${basename(path)}.criu-lock.${randomBytes(6).toString('hex')}`);
  const result = (exitCode: number, stderr: string): CommandResult => ({
    command,
    exitCode,
    stdout: '',
    stderr,
    durationMs: Date.now() - started,
    timedOut: false,
  });
  try {
    let finalMode = mode;
    if (finalMode === undefined) {
      finalMode = await currentMode(path);
    }
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // chmod after writing: open()'s mode is filtered by the umask, an explicit mode must not be.
    await chmod(tmp, finalMode);
    await rename(tmp, path);
    return result(0, '');
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    return result(1, `${e instanceof Error ? e.message : String(e)}\n`);
  }
}

async function currentMode(path: string): Promise<number> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return 0o644;
  }
}
