import { homedir } from 'node:os';
import { join } from 'node:path';
import { CriuLockError } from '../errors.js';
import type { InventoryHost } from '../inventory/types.js';
import { openTransport } from '../transport/open.js';
import type { HostKeyChecking, SshOptions } from '../transport/ssh-options.js';
import type { Transport } from '../transport/types.js';

export interface CommonOptions {
  inventory: string;
  limit?: string | undefined;
  forks: number;
  knownHosts?: string | undefined;
  hostKeyChecking: HostKeyChecking;
  connectTimeout: number;
  verbose: boolean;
  debug: boolean;
  color: boolean;
}

/** Where command output goes; tests pass a recording one. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stdout is a terminal (confirmation prompts, progress). */
  isTTY: boolean;
  /** Ask a yes/no question on the terminal; undefined when there is none. */
  confirm?: (question: string) => Promise<boolean>;
}

export function sshOptions(common: CommonOptions): SshOptions {
  return {
    knownHostsFile: common.knownHosts ?? join(homedir(), '.ssh', 'known_hosts'),
    hostKeyChecking: common.hostKeyChecking,
    connectTimeoutMs: common.connectTimeout * 1000,
    keepaliveIntervalMs: 15_000,
  };
}

/** A host that could not be worked on, as a value. */
export interface HostFailure {
  status: 'unreachable' | 'failed';
  error: string;
}

export function toFailure(err: unknown, stage: 'connect' | 'work'): HostFailure {
  const message = err instanceof CriuLockError ? err.message + (err.hint ? ` (hint: ${err.hint})` : '') : err instanceof Error ? err.message : String(err);
  return { status: stage === 'connect' ? 'unreachable' : 'failed', error: message };
}

/** Connect, run `fn`, always close. Connection problems are `unreachable`, the rest `failed`. */
export async function withHost<R>(host: InventoryHost, ssh: SshOptions, fn: (t: Transport) => Promise<R>): Promise<R | HostFailure> {
  let t: Transport;
  try {
    t = await openTransport(host, ssh);
  } catch (err) {
    return toFailure(err, 'connect');
  }
  try {
    return await fn(t);
  } catch (err) {
    return toFailure(err, 'work');
  } finally {
    await t.close().catch(() => undefined);
  }
}

export function isFailure(x: unknown): x is HostFailure {
  return typeof x === 'object' && x !== null && 'error' in x && ((x as HostFailure).status === 'unreachable' || (x as HostFailure).status === 'failed');
}

export function elapsed(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
