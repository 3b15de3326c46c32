/**
 * SSH transport on node-ssh/ssh2 with OpenSSH's host key policy. One connection per host; each
 * exec is its own session channel, so execs may run concurrently on it.
 */
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { NodeSSH, type Config } from 'node-ssh';
import ssh2 from 'ssh2';
import type { AuthHandlerMiddleware, Client, ClientChannel } from 'ssh2';
import { CriuLockError } from '../errors.js';
import { renderCommand } from '../shell/quote.js';
import type { ConnectionSettings } from '../inventory/types.js';
import {
  certAuthorityFor,
  formatKnownHostsLine,
  keyTypeLabel,
  keyTypeOfBlob,
  knownHostsName,
  knownKeyTypes,
  lookupHostKey,
  parseKnownHosts,
  readKnownHostsFiles,
  sha256Fingerprint,
  type KnownHostEntry,
} from './known-hosts.js';
import { buildArgv, putFileArgv } from './local-transport.js';
import { OutputLimitError, outputBudget } from './output-limit.js';
import type { SshOptions } from './ssh-options.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from './types.js';

export interface ConnectSshExtras {
  /** Inventory name, used as Transport.host and in messages (default: the address). */
  name?: string;
  /** Non-fatal remarks: key added with accept-new, unusable known_hosts lines, skipped identities. */
  onNote?: (message: string) => void;
}

/**
 * sshd's MaxSessions defaults to 10 channels per connection; more concurrent execs would fail to
 * open, so they queue instead.
 */
const MAX_CHANNELS = 8;
const DEFAULT_KEEPALIVE_MS = 15_000;
/** Seconds between `timeout`'s TERM and its KILL on the target. */
const REMOTE_KILL_AFTER_S = 2;
/** How long past the deadline we wait for the channel before giving up on the host. */
const CLOSE_GRACE_MS = 2_000;

// Prefer the key types known_hosts has for a host, as OpenSSH does, so a host with several keys
// presents the one we can verify.
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;
type HostKeyAlgorithm = (typeof HOST_KEY_ALGORITHMS)[number];

function hostKeyAlgorithmsFor(knownTypes: readonly string[]): HostKeyAlgorithm[] {
  const preferred: HostKeyAlgorithm[] = [];
  for (const t of knownTypes) {
    const algs: readonly HostKeyAlgorithm[] =
      t === 'ssh-rsa'
        ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
        : HOST_KEY_ALGORITHMS.filter((a) => a === t);
    for (const a of algs) if (!preferred.includes(a)) preferred.push(a);
  }
  return [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

/**
 * Open a verified SSH connection. Throws CriuLockError: 'host-key' when the host's key is refused
 * (nothing is run on it), 'ssh' when the host cannot be reached or authentication fails.
 *
 * `become`: every exec/putFile runs under `sudo -n` when `conn.become` is set and the user is not
 * root; a per-call `become` overrides that default (`become: false` opts out).
 */
export async function connectSsh(
  conn: ConnectionSettings,
  opts: SshOptions,
  extras: ConnectSshExtras = {},
): Promise<Transport> {
  const name = extras.name ?? conn.address;
  const where = `${conn.user}@${conn.address}:${conn.port}`;
  const note = extras.onNote ?? opts.onNote ?? (() => undefined);

  const known = opts.hostKeyChecking === 'off' ? [] : await loadKnownHosts(opts, note);
  const auth = await authAttempts(conn, opts, note);

  let refusal: CriuLockError | undefined;
  let newKey: { type: string; blob: string } | undefined;
  const hostVerifier = (key: Buffer): boolean => {
    const decision = verifyHostKey(key, conn, opts, known, name);
    if (decision.kind === 'refuse') {
      refusal = decision.error;
      return false;
    }
    if (decision.kind === 'accept-new') newKey = { type: decision.type, blob: decision.blob };
    return true;
  };

  let attempt = 0;
  const authHandler: AuthHandlerMiddleware = (_methodsLeft, _partial, next) => {
    const a = auth.attempts[attempt++];
    // ssh2 ends authentication on `false`; its type definitions omit that value.
    if (a === undefined) return next(false as never);
    if (a.type === 'agent') return next({ type: 'agent', username: conn.user, agent: a.socket });
    return next({ type: 'publickey', username: conn.user, key: a.key });
  };

  const config: Config = {
    host: conn.address,
    port: conn.port,
    username: conn.user,
    readyTimeout: opts.connectTimeoutMs,
    keepaliveInterval: opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
    keepaliveCountMax: 3,
    authHandler,
    hostVerifier,
    algorithms: { serverHostKey: hostKeyAlgorithmsFor(knownKeyTypes(known, conn.address, conn.port)) },
  };

  const ssh = new NodeSSH();
  try {
    await ssh.connect(config);
  } catch (e) {
    ssh.dispose();
    if (refusal) throw refusal;
    throw connectError(e, where, auth.tried);
  }
  const client = ssh.connection;
  if (client === null) throw new CriuLockError('ssh', `${where}: connection closed right after login`);

  if (newKey) {
    // Only now: ssh2 checks the server's signature after the verifier ran, so a key is recorded
    // once the host proved it holds it (OpenSSH records before user auth; we record after).
    const line = formatKnownHostsLine(conn.address, conn.port, newKey.type, newKey.blob);
    try {
      const added = await appendKnownHost(opts.knownHostsFile, line, conn.address, conn.port, newKey);
      if (added) {
        note(
          `Permanently added '${knownHostsName(conn.address, conn.port)}' (${keyTypeLabel(newKey.type)}) to the list of known hosts (${opts.knownHostsFile}).`,
        );
      }
    } catch (e) {
      note(`Failed to add the host to the list of known hosts (${opts.knownHostsFile}): ${errMessage(e)}`);
    }
  }

  return new SshTransport(name, where, ssh, client, conn);
}

type HostKeyDecision =
  | { kind: 'accept' }
  | { kind: 'accept-new'; type: string; blob: string }
  | { kind: 'refuse'; error: CriuLockError };

function verifyHostKey(
  key: Buffer,
  conn: ConnectionSettings,
  opts: SshOptions,
  known: readonly KnownHostEntry[],
  name: string,
): HostKeyDecision {
  // ssh2 hands the verifier the raw public key blob (wire format), since we set no hostHash.
  if (opts.hostKeyChecking === 'off') return { kind: 'accept' };
  const type = keyTypeOfBlob(key);
  const hostPort = `${conn.address}:${conn.port}`;
  if (type === null) {
    return {
      kind: 'refuse',
      error: new CriuLockError('host-key', `${name} (${hostPort}) presented an unreadable host key`),
    };
  }
  const blob = key.toString('base64');
  const fp = sha256Fingerprint(key);
  const label = keyTypeLabel(type);
  const file = opts.knownHostsFile;
  const khName = knownHostsName(conn.address, conn.port);
  const lookup = lookupHostKey(known, conn.address, conn.port, type, blob);
  const caNote = certAuthorityFor(known, conn.address, conn.port).length
    ? ` (known_hosts has a @cert-authority line for this host; criu-lock does not support host certificates)`
    : '';
  switch (lookup.status) {
    case 'match':
      return { kind: 'accept' };
    case 'revoked':
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): the ${label} host key ${fp} is marked as revoked in ${lookup.file}:${lookup.line}; refusing to connect`,
          {
            hint: 'a revoked key must not be trusted: find out why it was revoked and give the host a new key',
          },
        ),
      };
    case 'mismatch': {
      const what =
        lookup.knownType === type
          ? `The ${label} key fingerprint is ${fp}; Offending ${label} key in ${lookup.file}:${lookup.line}`
          : `The host sent a ${label} key (${fp}) but only a ${keyTypeLabel(lookup.knownType)} key is known, in ${lookup.file}:${lookup.line}`;
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! ${what}`,
          {
            hint:
              'someone could be eavesdropping on you right now (man-in-the-middle attack), or the host key has just been changed. ' +
              `If the change is expected, remove the old key with: ssh-keygen -f ${lookup.file} -R '${khName}'${caNote}`,
          },
        ),
      };
    }
    case 'unknown':
      if (opts.hostKeyChecking === 'accept-new') return { kind: 'accept-new', type, blob };
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): host key is not known (${label} key fingerprint ${fp}) and host key checking is strict`,
          {
            hint: `check the fingerprint, then add it with ssh-keyscan -p ${conn.port} ${conn.address} >> ${file}, or use --host-key-checking accept-new${caNote}`,
          },
        ),
      };
    default: {
      const never: never = lookup;
      throw new Error(`unhandled host key lookup ${JSON.stringify(never)}`);
    }
  }
}

async function loadKnownHosts(opts: SshOptions, note: (m: string) => void): Promise<KnownHostEntry[]> {
  const parsed = await readKnownHostsFiles(opts.knownHostsFile, opts.globalKnownHostsFiles);
  for (const n of parsed.notes) note(n);
  return parsed.entries;
}

// Appends from concurrent connections in this process are chained per file, and each re-reads the
// file first, so two connections learning the same host add one line. A single O_APPEND write per
// line keeps other processes' appends from interleaving with ours.
const appendQueues = new Map<string, Promise<unknown>>();

function appendKnownHost(
  file: string,
  line: string,
  host: string,
  port: number,
  key: { type: string; blob: string },
): Promise<boolean> {
  const previous = appendQueues.get(file) ?? Promise.resolve();
  const next = previous
    .catch(() => undefined)
    .then(async () => {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw e;
      }
      const current = parseKnownHosts(text, file).entries;
      if (lookupHostKey(current, host, port, key.type, key.blob).status !== 'unknown') return false;
      const sep = text === '' || text.endsWith('\n') ? '' : '\n';
      await appendFile(file, `${sep}${line}\n`, { mode: 0o600, flag: 'a' });
      return true;
    });
  appendQueues.set(file, next);
  return next;
}

type AuthAttempt = { type: 'agent'; socket: string } | { type: 'publickey'; key: Buffer; file: string };

async function authAttempts(
  conn: ConnectionSettings,
  opts: SshOptions,
  note: (m: string) => void,
): Promise<{ attempts: AuthAttempt[]; tried: string[] }> {
  const attempts: AuthAttempt[] = [];
  const tried: string[] = [];
  const agent = opts.agentSocket ?? process.env.SSH_AUTH_SOCK;
  const hasAgent = agent !== undefined && agent !== '' && (await exists(agent));

  const addKey = (file: string, key: Buffer): void => {
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      // Typically a passphrase-protected key: we never prompt, the agent is the way to use it.
      note(`identity ${file} skipped: ${parsed.message}`);
      tried.push(`${file} (unusable: ${parsed.message})`);
      return;
    }
    attempts.push({ type: 'publickey', key, file });
    tried.push(file);
  };

  if (conn.privateKeyFile !== undefined) {
    // An explicit key goes first (like `ssh -i`), then the agent; default identities are not used.
    let key: Buffer;
    try {
      key = await readFile(conn.privateKeyFile);
    } catch (e) {
      throw new CriuLockError(
        'ssh',
        `cannot read private key ${conn.privateKeyFile} for ${conn.user}@${conn.address}:${conn.port}: ${errMessage(e)}`,
        {
          hint: 'check ansible_ssh_private_key_file in the inventory',
        },
      );
    }
    addKey(conn.privateKeyFile, key);
    if (hasAgent) {
      attempts.push({ type: 'agent', socket: agent });
      tried.push('ssh-agent');
    }
  } else {
    if (hasAgent) {
      attempts.push({ type: 'agent', socket: agent });
      tried.push('ssh-agent');
    }
    for (const base of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
      const file = join(homedir(), '.ssh', base);
      const key = await readFile(file).catch(() => undefined);
      if (key !== undefined) addKey(file, key);
    }
  }
  return { attempts, tried };
}

function connectError(e: unknown, where: string, tried: readonly string[]): CriuLockError {
  const err = e as { code?: unknown; level?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : undefined;
  const level = typeof err.level === 'string' ? err.level : undefined;
  const msg = errMessage(e);
  const opts = { cause: e };
  if (code === 'ECONNREFUSED') {
    return new CriuLockError('ssh', `cannot connect to ${where}: connection refused`, {
      ...opts,
      hint: 'is sshd running on the host and listening on that port? check ansible_host/ansible_port',
    });
  }
  if (level === 'client-timeout' || code === 'ETIMEDOUT') {
    return new CriuLockError('ssh', `cannot connect to ${where}: timed out`, {
      ...opts,
      hint: 'check that the address is right and reachable (firewall?), or raise --connect-timeout',
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new CriuLockError('ssh', `cannot connect to ${where}: host name does not resolve`, {
      ...opts,
      hint: 'check ansible_host in the inventory',
    });
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new CriuLockError('ssh', `cannot connect to ${where}: no route to host`, {
      ...opts,
      hint: 'check the address and the network path to the host',
    });
  }
  if (level === 'client-authentication') {
    const t = tried.length ? tried.join(', ') : 'nothing (no identity file, no ssh-agent)';
    return new CriuLockError('ssh', `cannot log in to ${where}: authentication failed (tried ${t})`, {
      ...opts,
      hint: "add your public key to the user's ~/.ssh/authorized_keys on the host, load the key into ssh-agent, or set ansible_ssh_private_key_file",
    });
  }
  if (code === 'ECONNRESET' || /closed|no response/i.test(msg)) {
    return new CriuLockError('ssh', `cannot connect to ${where}: connection closed by the host (${msg})`, {
      ...opts,
      hint: 'the host may not run an SSH server on that port, or refuses this client (check its sshd log)',
    });
  }
  return new CriuLockError('ssh', `cannot connect to ${where}: ${msg}`, {
    ...opts,
    hint: 're-run with --debug for details',
  });
}

class SshTransport implements Transport {
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
  ) {
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
    return this.run(renderCommand(full), opts.stdin, opts.timeoutMs, opts.maxOutputBytes);
  }

  putFile(path: string, content: string | Buffer, opts: PutFileOptions = {}): Promise<CommandResult> {
    const full = buildArgv(putFileArgv(path, opts.mode), { sudo: this.sudo(opts.become) });
    return this.run(renderCommand(full), content, undefined);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.ssh.dispose();
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
   * Rejects only when there is no usable connection (closed, lost, channel refused): that is a
   * host failure, not a command outcome. Every command outcome, including non-zero exits and
   * timeouts, resolves.
   */
  private async run(
    command: string,
    stdin: string | Buffer | undefined,
    timeoutMs: number | undefined,
    maxOutputBytes?: number,
  ): Promise<CommandResult> {
    if (this.closed) throw new CriuLockError('ssh', `${this.where}: exec after close`);
    await this.slot();
    try {
      if (this.lostReason !== undefined) {
        throw new CriuLockError('ssh', `${this.where}: connection lost (${this.lostReason})`, {
          hint: 'the host may have rebooted or the network dropped; re-run for this host',
        });
      }
      const channel = await this.openChannel(command);
      return await collect(channel, command, stdin, timeoutMs, outputBudget(maxOutputBytes), this.where);
    } finally {
      this.release();
    }
  }

  private openChannel(command: string): Promise<ClientChannel> {
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
        } else resolve(channel);
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
    channel.on('close', finish);
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

    // Always send EOF, so a command that reads stdin never waits for input that will not come.
    if (stdin !== undefined) channel.end(stdin);
    else channel.end();
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
