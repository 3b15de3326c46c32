/**
 * Process-wide counters of what crossed SSH session channels: payload bytes received (stdout and
 * stderr) and sent (command line and stdin), and how many hosts were connected. Channel payload,
 * not wire bytes: SSH framing, encryption and key exchange are not counted. The bench reads them
 * through CRIU_LOCK_STATS_FILE (see writeStatsFileFromEnv) to report bytes received per host.
 */
import { writeFileSync } from 'node:fs';

export interface TransportStats {
  bytesReceived: number;
  bytesSent: number;
  /** Distinct hosts an SSH connection was made to. */
  hosts: number;
}

/** When set, the CLI writes the counters there as JSON when it finishes. */
export const STATS_FILE_ENV = 'CRIU_LOCK_STATS_FILE';

let received = 0;
let sent = 0;
const hosts = new Set<string>();

export function countReceived(bytes: number): void {
  received += bytes;
}

export function countSent(bytes: number): void {
  sent += bytes;
}

export function countHost(host: string): void {
  hosts.add(host);
}

export function transportStats(): TransportStats {
  return { bytesReceived: received, bytesSent: sent, hosts: hosts.size };
}

/** For tests: back to zero. */
export function resetTransportStats(): void {
  received = 0;
  sent = 0;
  hosts.clear();
}

/** Writes the counters to $CRIU_LOCK_STATS_FILE if it is set; returns the path written, if any. */
export function writeStatsFileFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = env[STATS_FILE_ENV];
  if (!path) return undefined;
  writeFileSync(path, `${JSON.stringify(transportStats())}\n`);
  return path;
}
