/** Result of one remote (or local) command, shaped like execa's result. */
export interface CommandResult {
  command: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  /** Signal name when the command was killed by one. */
  signal?: string | undefined;
}

export interface ExecOptions {
  /** Bytes or text written to the command's standard input, then closed. */
  stdin?: string | Buffer;
  /**
   * Keep standard input open (after `stdin`) until this signal aborts, then close it: a command
   * that ends when its input does (the host lock's holder) is stopped this way without a second
   * command. Without it, input is closed at once.
   */
  holdStdin?: AbortSignal;
  /** Kill the command after this many milliseconds (timedOut becomes true). */
  timeoutMs?: number;
  /** Extra environment, applied with `env` inside the command line (values are quoted). */
  env?: Record<string, string>;
  /** Run as root through `sudo -n` when the transport's user is not root (become). */
  become?: boolean;
  /**
   * Stop reading and reject (OutputLimitError) once stdout + stderr pass this many bytes
   * (default DEFAULT_MAX_OUTPUT_BYTES, see output-limit.ts).
   */
  maxOutputBytes?: number;
}

export interface PutFileOptions {
  /** Octal mode such as 0o644. */
  mode?: number;
  become?: boolean;
}

/**
 * Everything criu-lock does on a host goes through a Transport: run an argv, write a file
 * atomically, close. Implementations: SSH (node-ssh) and local.
 */
export interface Transport {
  readonly host: string;
  /** Run a command given as an argument list; never throws for a non-zero exit. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<CommandResult>;
  /** Write `content` to `path` atomically (temp file in the same directory + rename). */
  putFile(path: string, content: string | Buffer, opts?: PutFileOptions): Promise<CommandResult>;
  close(): Promise<void>;
}
