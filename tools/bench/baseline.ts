/**
 * The OpenSSH floor: the same remote work done with the system `ssh` client, one process per host,
 * at most `forks` at once (criu-lock's --forks), with strict host key checking like criu-lock's
 * default. What each baseline runs is documented in docs/benchmarks.md.
 */
import { installArgv } from '../../src/apply/apt.js';
import type { PackageAction, PlanFile } from '../../src/plan/plan-file.js';
import { PIN_FILE } from '../../src/plan/pins.js';
import { mapLimit } from '../sandbox/exec.js';
import { renderCommand } from '../../src/shell/quote.js';
import { ELF_HEAD_BYTES as HEAD_BYTES } from '../../src/elf/build-id.js';
import { spawnTimed, takeRusage, timedArgv } from './measure.js';

export interface SshTarget {
  name: string;
  port: number;
}

export interface SshSetup {
  key: string;
  knownHosts: string;
  forks: number;
}

export function sshArgv(s: SshSetup, t: SshTarget, remote: string): string[] {
  return [
    'ssh',
    '-i',
    s.key,
    '-o',
    `UserKnownHostsFile=${s.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
    '-p',
    String(t.port),
    'root@127.0.0.1',
    remote,
  ];
}

export interface HostJob {
  target: SshTarget;
  remote: string;
  input?: string;
}

export interface SshFleetRun {
  /** Wall seconds for the whole fleet. */
  wallS: number;
  stdoutBytes: number[];
  /** stdout + stderr bytes the ssh clients received, all hosts. */
  bytesReceived: number;
  /** CPU seconds (user+sys) of all ssh clients together, when GNU time is there. */
  cpuS?: number;
  /** Peak RSS of the largest single ssh client, KiB (up to `forks` run at once). */
  maxRssKiB?: number;
}

/** Runs every job (one ssh process each, `forks` at a time). Throws if any host fails. */
export async function runSshFleet(s: SshSetup, jobs: readonly HostJob[]): Promise<SshFleetRun> {
  const start = process.hrtime.bigint();
  const results = await mapLimit(jobs, s.forks, (j) =>
    spawnTimed(timedArgv(sshArgv(s, j.target, j.remote)), {
      ...(j.input === undefined ? {} : { input: j.input }),
      timeoutMs: 600_000,
    }).then(takeRusage),
  );
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const bad = results.findIndex((r) => r.exitCode !== 0);
  if (bad >= 0) {
    const r = results[bad]!;
    throw new Error(
      `baseline failed on ${jobs[bad]!.target.name} (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
  const cpu = results.map((r) => r.cpuS).filter((x): x is number => x !== undefined);
  const rss = results.map((r) => r.maxRssKiB).filter((x): x is number => x !== undefined);
  return {
    wallS: wall,
    stdoutBytes: results.map((r) => Buffer.byteLength(r.stdout)),
    bytesReceived: results.reduce((n, r) => n + Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr), 0),
    ...(cpu.length === results.length && cpu.length > 0 ? { cpuS: cpu.reduce((a, b) => a + b, 0) } : {}),
    ...(rss.length > 0 ? { maxRssKiB: Math.max(...rss) } : {}),
  };
}

/**
 * Diagnostic, not a floor: criu-lock's own facts probe (the exact script) sent through OpenSSH.
 * Next to the floor and criu-lock it splits criu-lock's time into "what the probe costs on the
 * targets" and "what the controller adds" (node-ssh, parsing, ELF reading, planning).
 */
export function probeJobs(targets: readonly SshTarget[], script: string): HostJob[] {
  return targets.map((target) => ({ target, remote: 'sh -s', input: script }));
}

/**
 * The read floor for plan / check / no-op apply: the dpkg database (dpkg-query -W), the pin file,
 * and the first HEAD_BYTES (1 KiB) of every file the lock pins (criu-lock reads the same heads
 * for build-IDs; since probe format 6 it walks them on the node and sends the build-IDs).
 * criu-lock additionally asks `apt-cache policy` about every locked package (plan, apply); that is
 * part of the price the ratio shows, not of the floor.
 */
export function readFloorJobs(targets: readonly SshTarget[], lockedPaths: readonly string[]): HostJob[] {
  const parts = [
    "dpkg-query -W -f '${Package}\\t${Version}\\n'",
    `cat ${renderCommand([PIN_FILE])} 2>/dev/null || true`,
  ];
  if (lockedPaths.length > 0)
    parts.push(`head -q -c ${HEAD_BYTES} ${renderCommand(lockedPaths)} >/dev/null 2>&1 || true`);
  const remote = parts.join('; ');
  return targets.map((target) => ({ target, remote }));
}

/**
 * The write floor for apply: per host, exactly what criu-lock's plan says — the pin file written
 * (when the plan has write-pins) and one `apt-get install` with the same argv criu-lock builds.
 * Hosts criu-lock would leave alone (blocked other than by unavailable versions) are left alone.
 */
export function applyFloorJobs(targets: readonly SshTarget[], plan: PlanFile, pins: string): HostJob[] {
  const jobs: HostJob[] = [];
  for (const t of targets) {
    const h = plan.hosts.find((x) => x.name === t.name);
    if (!h || h.status === 'unreachable' || h.status === 'failed')
      throw new Error(`no usable plan for ${t.name}`);
    if (!h.blocked.every((b) => b.reason === 'version-unavailable')) continue;
    const pkgs = h.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
    const writePins = h.actions.some((a) => a.type === 'write-pins');
    const steps: string[] = [];
    if (writePins) steps.push(`cat > ${renderCommand([PIN_FILE])}`);
    if (pkgs.length > 0) {
      steps.push(
        `LC_ALL=C DEBIAN_FRONTEND=noninteractive ${renderCommand(installArgv(pkgs, { lockTimeout: 120, simulate: false }))} >/dev/null`,
      );
    }
    if (steps.length === 0) continue;
    jobs.push({ target: t, remote: steps.join(' && '), ...(writePins ? { input: pins } : {}) });
  }
  return jobs;
}
