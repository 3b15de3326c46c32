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

/** Bytes of a file per command: base64 makes them a third more, well under a command's output cap. */
export const FETCH_CHUNK_BYTES = 32 * 1024 * 1024;

/**
 * The bytes of one file on the host (base64 on the wire, decoded here), with its size checked. A
 * file larger than one chunk is read in chunks of FETCH_CHUNK_BYTES, one command each; a file
 * that changes meanwhile is caught by the caller's sha256.
 */
export async function fetchFile(t: Transport, file: string, chunk = FETCH_CHUNK_BYTES): Promise<Buffer> {
  const first = await sh(t, 'stat -c %s -- "$1" && head -c "$2" -- "$1" | base64 -w0', [file, String(chunk)]);
  const [sizeText, b64] = first.stdout.split('\n');
  if (first.exitCode !== 0 || sizeText === undefined || b64 === undefined || !/^\d{1,15}$/.test(sizeText)) {
    throw new CriuLockError('ssh', `${t.host}: cannot read ${file}: ${lastLine(first)}`);
  }
  const size = Number(sizeText);
  const chunks = [Buffer.from(b64.trim(), 'base64')];
  let got = chunks[0]!.length;
  while (got < size && chunks.at(-1)!.length === chunk) {
    // dd counts in blocks of one chunk; skip whole chunks already read.
    const r = await sh(t, 'dd if="$1" bs="$2" skip="$3" count=1 status=none | base64 -w0', [
      file,
      String(chunk),
      String(chunks.length),
    ]);
    if (r.exitCode !== 0) throw new CriuLockError('ssh', `${t.host}: cannot read ${file}: ${lastLine(r)}`);
    const part = Buffer.from(r.stdout.trim(), 'base64');
    if (part.length === 0) break;
    chunks.push(part);
    got += part.length;
  }
  const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, got);
  if (bytes.length !== size)
    throw new CriuLockError('ssh', `${t.host}: ${file} arrived with ${bytes.length} bytes, expected ${size}`);
  return bytes;
}
