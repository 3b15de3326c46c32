import { CriuLockError } from '../errors.js';
import type { CommandResult, Transport } from '../transport/types.js';
import { APT_ENV } from '../apply/apt.js';

/**
 * Small host-side steps of the package store, each one fixed POSIX sh script whose inputs arrive
 * as positional parameters (`sh -c SCRIPT sh ARG...`), so nothing from a lock reaches the shell
 * as text. Everything needs only Essential tools: sh, coreutils, tar, dpkg, apt, perl-base.
 */
export async function sh(
  t: Transport,
  script: string,
  args: readonly string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const run = (): Promise<CommandResult> =>
    t.exec(['sh', '-c', script, 'sh', ...args], {
      become: true,
      env: { ...APT_ENV },
      timeoutMs: opts.timeoutMs ?? 600_000,
      ...(opts.stdin === undefined ? {} : { stdin: opts.stdin }),
    });
  const r = await run();
  // Rarely (about 1 in 1,000 channels on the sandbox) a channel closes before its exit status
  // arrives. Every script here is idempotent, so one retry is safe.
  return r.exitCode === null && !r.timedOut && r.signal === undefined ? run() : r;
}

export function lastLine(r: CommandResult): string {
  const lines = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (r.timedOut ? 'timed out' : lines.at(-1)) ?? `exit code ${r.exitCode}`;
}

/** A private directory on the host, removed by `removeTemp`. */
export async function makeTemp(t: Transport, prefix: string): Promise<string> {
  const r = await sh(t, 'umask 022 && mktemp -d "/var/tmp/$1.XXXXXXXX"', [prefix]);
  const dir = r.stdout.trim();
  if (r.exitCode !== 0 || !/^\/var\/tmp\/[A-Za-z0-9._-]+$/.test(dir)) {
    throw new CriuLockError(
      'ssh',
      `${t.host}: cannot create a temporary directory (exit code ${r.exitCode}${r.timedOut ? ', timed out' : ''}): ${lastLine(r)}`,
    );
  }
  return dir;
}

export async function removeTemp(t: Transport, dir: string): Promise<void> {
  if (!/^\/var\/tmp\/[A-Za-z0-9._-]+$/.test(dir)) return;
  await sh(t, 'rm -rf -- "$1"', [dir]).catch(() => undefined);
}

/** sha256 of files on the host (missing files are left out). */
export async function hostSha256(t: Transport, files: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (files.length === 0) return out;
  const r = await sh(t, 'for f do [ -f "$f" ] && sha256sum -- "$f"; done; exit 0', files);
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m?.[1] && m[2]) out.set(m[2], m[1]);
  }
  return out;
}

/** The bytes of one file on the host (base64 on the wire, decoded here), with its size checked. */
export async function fetchFile(t: Transport, file: string): Promise<Buffer> {
  const r = await sh(t, 'stat -c %s -- "$1" && base64 -w0 -- "$1"', [file]);
  const [size, b64] = r.stdout.split('\n');
  if (r.exitCode !== 0 || size === undefined || b64 === undefined) {
    throw new CriuLockError('ssh', `${t.host}: cannot read ${file}: ${lastLine(r)}`);
  }
  const bytes = Buffer.from(b64.trim(), 'base64');
  if (bytes.length !== Number(size))
    throw new CriuLockError('ssh', `${t.host}: ${file} arrived with ${bytes.length} bytes, expected ${size}`);
  return bytes;
}
