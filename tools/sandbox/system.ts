import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { run } from './exec.js';

/** Mount points of this mount namespace, in mount order (mountinfo field 5, octal escapes decoded). */
export function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const mp = f[4];
    if (mp) out.push(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

function under(path: string, prefix: string): boolean {
  const p = prefix.replace(/\/+$/, '');
  return path === p || path.startsWith(`${p}/`);
}

export function mountsUnder(prefix: string): string[] {
  return mountPoints().filter((m) => under(m, prefix));
}

export function isMounted(path: string): boolean {
  return mountPoints().includes(path.replace(/\/+$/, ''));
}

/**
 * Unmounts everything at or below `prefix`, newest first; a mount that stays busy is detached
 * lazily as a last resort. Returns the mount points still present afterwards (normally none).
 */
export async function unmountUnder(prefix: string): Promise<string[]> {
  for (let round = 0; round < 4; round++) {
    const mounts = mountsUnder(prefix);
    if (mounts.length === 0) return [];
    for (const m of mounts.reverse()) {
      const r = await run(['umount', m]);
      if (r.exitCode !== 0 && round >= 1) await run(['umount', '-l', m]);
    }
  }
  return mountsUnder(prefix);
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is not running anything.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

export function procRoot(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/root`);
  } catch {
    return undefined;
  }
}

/** Every process whose root directory (chroot) is at or below `prefix`. */
export function procsRootedUnder(prefix: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const root = procRoot(Number(e));
    if (root !== undefined && under(root.replace(/ \(deleted\)$/, ''), prefix)) out.push(Number(e));
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL after `graceMs`; resolves with the pids still alive (normally none). */
export async function killPids(pids: readonly number[], graceMs = 1500): Promise<number[]> {
  const live = pids.filter(pidAlive);
  for (const p of live) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some(pidAlive)) await sleep(25);
  for (const p of live.filter(pidAlive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const hard = Date.now() + 2000;
  while (Date.now() < hard && live.some(pidAlive)) await sleep(25);
  return live.filter(pidAlive);
}

/** Kills every process chrooted at or below `prefix` (sshd, its sessions, anything a test started). */
export async function killRootedUnder(prefix: string, extra: readonly number[] = []): Promise<number[]> {
  let left: number[] = [];
  // Repeat: a dying sshd may have forked a session between the scan and the kill.
  for (let i = 0; i < 3; i++) {
    const pids = [...new Set([...extra, ...procsRootedUnder(prefix)])];
    if (pids.length === 0) return [];
    left = await killPids(pids);
  }
  return left.length ? left : procsRootedUnder(prefix);
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export { sleep };
