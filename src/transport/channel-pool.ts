/**
 * A logged-in SSH connection as a Transport: each exec is its own session channel, at most
 * MAX_CHANNELS at once (the rest queue), with the remote `timeout` wrapper for deadlines.
 */
import type { NodeSSH } from 'node-ssh';
import type { Client, ClientChannel } from 'ssh2';
import { CriuLockError } from '../errors.js';
import type { ConnectionSettings } from '../inventory/types.js';
import { quote, renderCommand } from '../shell/quote.js';
import { buildArgv, putFileArgv } from './local-transport.js';
import { OutputLimitError, outputBudget } from './output-limit.js';
import { countHost, countReceived, countSent } from './stats.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from './types.js';

/**
 * sshd's MaxSessions defaults to 10 channels per connection; more concurrent execs would fail to
 * open, so they queue instead.
 */
const MAX_CHANNELS = 8;
/** Seconds between `timeout`'s TERM and its KILL on the target. */
const REMOTE_KILL_AFTER_S = 2;
/** How long past the deadline we wait for the channel before giving up on the host. */
const CLOSE_GRACE_MS = 2_000;
/**
 * Standard input up to this size may travel in the command line (inlineStdin): below a pipe's
 * capacity, so the writer never waits on a command that does not read.
 */
const INLINE_STDIN_MAX = 60 * 1024;
/**
 * The whole line, input quoted, stays below this: sshd hands it to the login shell as one
 * argument, and Linux refuses an argument of 128 KiB or more (quoting can make input 4× longer).
 */
const INLINE_LINE_MAX = 96 * 1024;

/**
 * `command` fed `stdin` by the remote shell itself (`printf '%s' STDIN | command`), or undefined
 * when stdin cannot travel so: not a string, a NUL byte, over INLINE_STDIN_MAX, or a line over
 * INLINE_LINE_MAX. ssh2 hands over a session's stream only once the server has answered `exec`,
 * so stdin written to it costs a round trip of its own; in the command line it goes with the
 * `exec` request (decision 26). The pipeline's status is the command's.
 */
export function inlineStdin(command: string, stdin: string | Buffer | undefined): string | undefined {
  // The length first: a string longer in UTF-16 units is longer in bytes, so a long script (the
  // facts probe) is neither scanned nor measured here.
  if (typeof stdin !== 'string' || stdin.length > INLINE_STDIN_MAX) return undefined;
  if (stdin.includes('\0') || Buffer.byteLength(stdin) > INLINE_STDIN_MAX) return undefined;
  const line = `printf '%s' ${quote(stdin)} | ${command}`;
  return Buffer.byteLength(line) > INLINE_LINE_MAX ? undefined : line;
}

export class SshTransport implements Transport {
  private closed = false;
  private lostReason: string | undefined;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly host: string,
    private readonly where: string,
    private readonly ssh: NodeSSH,
    private readonly client: Client,
    private readonly conn: ConnectionSettings,
    /** Releases what the connection borrowed (a shared bastion connection). */
    private readonly onClose?: () => void,
  ) {
    countHost(host);
    // node-ssh drops its error listener after connecting; without ours a later socket error
    // (host rebooted, keepalive timeout) would be an uncaught 'error' event and kill the process.
    client.on('error', (e: Error) => {
      this.lostReason ??= e.message;
    });
    client.on('close', () => {
      this.lostReason ??= 'connection closed';
    });
  }

  private sudo(become: boolean | undefined): boolean {
    return (become ?? this.conn.become) && this.conn.user !== 'root';
  }

  /**
   * With `timeoutMs` the command runs under coreutils `timeout` on the target (inside sudo, so it
   * may kill root's processes): it signals the whole process group, which closing the channel
   * would not (sshd leaves a non-tty child running when its channel closes).
   */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    const full = buildArgv(argv, {
      env: opts.env,
      sudo: this.sudo(opts.become),
      timeout:
        opts.timeoutMs === undefined
          ? undefined
          : { seconds: opts.timeoutMs / 1000, killAfterSeconds: REMOTE_KILL_AFTER_S },
    });
    return this.run(renderCommand(full), opts.stdin, opts.timeoutMs, opts.maxOutputBytes, opts.holdStdin);
  }

  putFile(path: string, content: string | Buffer, opts: PutFileOptions = {}): Promise<CommandResult> {
    const full = buildArgv(putFileArgv(path, opts.mode), { sudo: this.sudo(opts.become) });
    return this.run(renderCommand(full), content, undefined);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.ssh.dispose();
      this.onClose?.();
    }
    return Promise.resolve();
  }

  private async slot(): Promise<void> {
    if (this.active < MAX_CHANNELS) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /**
   * Rejects only when there is no usable connection (closed, lost, channel refused) or the command
   * printed more than its output cap (OutputLimitError): those are host failures, not command
   * outcomes. Every command outcome, including non-zero exits and timeouts, resolves.
   */
  private async run(
    command: string,
    stdin: string | Buffer | undefined,
    timeoutMs: number | undefined,
    maxOutputBytes?: number,
    holdStdin?: AbortSignal,
  ): Promise<CommandResult> {
    if (this.closed) throw new CriuLockError('ssh', `${this.where}: exec after close`);
    await this.slot();
    try {
      if (this.lostReason !== undefined) {
        throw new CriuLockError('ssh', `${this.where}: connection lost (${this.lostReason})`, {
          hint: 'the host may have rebooted or the network dropped; re-run for this host',
        });
      }
      // Held input must stay open, so it is never inlined.
      const inline = holdStdin ? undefined : inlineStdin(command, stdin);
      return await this.onChannel(inline ?? command, (channel) =>
        collect(
          channel,
          command,
          inline === undefined ? stdin : undefined,
          timeoutMs,
          outputBudget(maxOutputBytes),
          this.where,
          holdStdin,
          inline,
        ),
      );
    } finally {
      this.release();
    }
  }

  /**
   * Opens a session channel for `command` and hands it to `use` inside ssh2's callback. Not through
   * an awaited promise: ssh2 parses every packet of one socket read before promise continuations
   * run, so when a fast command's exec reply, exit-status, EOF and close arrive together (a
   * controller whose event loop is slowed by load), listeners attached after an `await` miss the
   * `exit` event and the command reads as "exit code null" (issue 14).
   */
  private onChannel(
    command: string,
    use: (channel: ClientChannel) => Promise<CommandResult>,
  ): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err, channel) => {
        if (err) {
          reject(
            new CriuLockError('ssh', `${this.where}: cannot open a session channel: ${err.message}`, {
              cause: err,
              hint: this.lostReason
                ? 'the connection was lost; re-run for this host'
                : "check MaxSessions in the host's sshd_config",
            }),
          );
        } else use(channel).then(resolve, reject);
      });
    });
  }
}

function collect(
  channel: ClientChannel,
  command: string,
  stdin: string | Buffer | undefined,
  timeoutMs: number | undefined,
  budget: ReturnType<typeof outputBudget>,
  where: string,
  holdStdin?: AbortSignal,
  /** The command line actually sent, when stdin went in it (inlineStdin). */
  sent?: string,
): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let exitCode: number | null = null;
    let signal: string | undefined;
    let timedOut = false;
    let done = false;
    let grace: NodeJS.Timeout | undefined;

    const finish = (): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      if (grace) clearTimeout(grace);
      resolve({
        command,
        exitCode,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        durationMs: Date.now() - started,
        timedOut,
        signal,
      });
    };

    // Past the cap: drop what was read, close the channel and fail the host (OutputLimitError).
    const take = (into: Buffer[], b: Buffer): void => {
      countReceived(b.length);
      if (done) return;
      if (budget.add(b.length)) {
        into.push(b);
        return;
      }
      done = true;
      if (timer) clearTimeout(timer);
      if (grace) clearTimeout(grace);
      out.length = 0;
      err.length = 0;
      channel.close();
      reject(new OutputLimitError(where, budget.limit));
    };
    channel.on('data', (b: Buffer) => take(out, b));
    channel.stderr.on('data', (b: Buffer) => take(err, b));
    channel.on('exit', (code: number | null, sig?: string) => {
      if (typeof code === 'number') exitCode = code;
      if (typeof sig === 'string') signal = sig;
    });
    // ssh2 also passes the exit status to 'close' (it keeps it even when nobody listened to 'exit').
    channel.on('close', (code?: unknown, sig?: unknown) => {
      if (exitCode === null && typeof code === 'number') exitCode = code;
      if (signal === undefined && typeof sig === 'string') signal = sig;
      finish();
    });
    channel.on('error', () => undefined);

    // The remote `timeout` wrapper (see exec) kills the command at the deadline and the channel
    // then closes with its exit status. Closing the channel ourselves is the fallback for a host
    // that stopped answering; sshd refuses "signal" requests for root logins (no privilege
    // separation), so a signal would not be enough.
    const timer =
      timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            grace = setTimeout(
              () => {
                channel.close();
                grace = setTimeout(finish, CLOSE_GRACE_MS);
              },
              REMOTE_KILL_AFTER_S * 1000 + CLOSE_GRACE_MS,
            );
          }, timeoutMs)
        : undefined;

    // Send EOF (at once unless held), so a command that reads stdin never waits for input that
    // will not come.
    countSent(Buffer.byteLength(sent ?? command) + (stdin === undefined ? 0 : Buffer.byteLength(stdin)));
    if (holdStdin && !holdStdin.aborted) {
      if (stdin !== undefined) channel.write(stdin);
      holdStdin.addEventListener('abort', () => channel.end(), { once: true });
    } else if (stdin !== undefined) channel.end(stdin);
    else channel.end();
  });
}
