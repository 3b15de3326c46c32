/**
 * What a fleet of N nodes needs from this machine, checked before anything starts, each failure
 * one line: ports below the kernel's ephemeral range, memory, and open files. The open-file limit
 * of this process is raised when it is too low (root may raise the hard limit): the sshds it starts
 * inherit it, and so does a controller (criu-lock, the bench's ssh clients) started from it.
 */
import { readFileSync } from 'node:fs';
import { CriuLockError } from '../../src/errors.js';
import { run } from './exec.js';

/** Resident memory one idle node costs (its sshd listener, page cache of its upper dir), measured: see docs/sandbox.md. */
export const NODE_MEMORY_MIB = 6;
/** Kept free for everything else (controller, apt on the nodes during apply). */
export const MEMORY_RESERVE_MIB = 2048;
/**
 * Open files a controller needs for N hosts: apply keeps every host's connection open from its
 * preflight to the end of the run (one socket each), plus Node's own and some slack.
 */
export function nofileNeeded(nodes: number): number {
  return Math.max(4096, 2 * nodes + 1024);
}

export interface MachineLimits {
  /** First port of the kernel's ephemeral range (net.ipv4.ip_local_port_range). */
  ephemeralLow: number;
  /** MemAvailable, MiB. */
  memAvailableMiB: number;
  nofileSoft: number;
  nofileHard: number;
  /** Ports someone already listens on (TCP, IPv4 and IPv6). */
  listening: ReadonlySet<number>;
}

export interface FleetNeeds {
  nodes: number;
  /** Node i listens on portBase + i. */
  portBase: number;
  /** Nodes already up and kept (their ports are ours, their memory already counted). */
  running: ReadonlySet<number>;
}

/** Pure: the first reason this machine cannot host the fleet, or undefined. */
export function fleetLimitError(need: FleetNeeds, m: MachineLimits): string | undefined {
  const first = need.portBase + 1;
  const last = need.portBase + need.nodes;
  if (last >= m.ephemeralLow)
    return `${need.nodes} nodes need ports ${first}-${last}, which reach the kernel's ephemeral range (from ${m.ephemeralLow}); lower CRIU_LOCK_SANDBOX_PORT_BASE or --nodes`;
  const taken: number[] = [];
  for (let port = first; port <= last; port++)
    if (m.listening.has(port) && !need.running.has(port)) taken.push(port);
  if (taken.length > 0)
    return `${taken.length} of ports ${first}-${last} are already in use (${taken.slice(0, 5).join(', ')}${taken.length > 5 ? ', …' : ''}); move CRIU_LOCK_SANDBOX_PORT_BASE or run \`down\``;
  const newNodes = need.nodes - need.running.size;
  const mib = newNodes * NODE_MEMORY_MIB + MEMORY_RESERVE_MIB;
  if (newNodes > 0 && m.memAvailableMiB < mib)
    return `${newNodes} more nodes need about ${mib} MiB of memory (${NODE_MEMORY_MIB} MiB each + ${MEMORY_RESERVE_MIB} MiB reserve); ${m.memAvailableMiB} MiB available`;
  return undefined;
}

export function readMachineLimits(): MachineLimits {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  const mem = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  const { soft, hard } = nofile();
  return {
    ephemeralLow: low ?? 32768,
    memAvailableMiB: mem ? Math.floor(Number(mem[1]) / 1024) : Number.POSITIVE_INFINITY,
    nofileSoft: soft,
    nofileHard: hard,
    listening: listeningPorts(),
  };
}

function nofile(pid: number | 'self' = 'self'): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '')
    .split(/\s+/)
    .slice(3, 5)
    .map((x) => (x === 'unlimited' ? Infinity : Number(x)));
  return { soft: soft ?? 1024, hard: hard ?? 1024 };
}

/** TCP ports in LISTEN state (state 0A) from /proc/net/tcp and tcp6. */
export function listeningPorts(files: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6']): Set<number> {
  const out = new Set<number>();
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue;
      const port = parseInt(cols[1]?.split(':')[1] ?? '', 16);
      if (Number.isInteger(port)) out.add(port);
    }
  }
  return out;
}

/**
 * Raises this process's RLIMIT_NOFILE (soft and, if needed, hard) to `needed` with prlimit(1).
 * Returns a line saying what was done, or undefined when the limit was already enough.
 */
export async function raiseNofile(needed: number): Promise<string | undefined> {
  const { soft, hard } = nofile();
  if (soft >= needed) return undefined;
  const newHard = Math.max(hard, needed);
  const r = await run(['prlimit', `--pid=${process.pid}`, `--nofile=${needed}:${newHard}`]);
  const now = nofile();
  if (r.exitCode !== 0 || now.soft < needed)
    throw new CriuLockError(
      'sandbox',
      `open-file limit ${soft} (hard ${hard}) is below the ${needed} a fleet this size needs, and prlimit could not raise it: ${r.stderr.trim()}`,
      { hint: `raise it before starting: ulimit -n ${needed}` },
    );
  return `raised RLIMIT_NOFILE from ${soft}:${hard} to ${needed}:${newHard} for the sandbox and the sshds it starts`;
}
