import { describeEnd, endHint } from '../transport/outcome.js';
import { CriuLockError } from '../errors.js';
import { isSudoPasswordRequired } from '../transport/local-transport.js';
import type { CommandResult, Transport } from '../transport/types.js';
import {
  parseDpkgLines,
  parseProbeOutput,
  type DpkgReading,
  type LockedStrings,
  type ParsedProbe,
  type StatReading,
} from './parse.js';
import { sameWords, type AptReading } from './apt-readings.js';
import { renderProbeScript, type ProbeRequest } from './probe-script.js';
import { isHealthy } from './queries.js';
import type { HostFacts } from './types.js';

export interface GatherOptions {
  /** Kill the probe after this long (default PROBE_TIMEOUT_MS): a host must not hold a fork forever. */
  timeoutMs?: number;
  /**
   * Build-IDs read earlier, by path, with the stat they were read at: the probe re-reads a
   * requested path's head only when its stat changed (src/facts/stat-cache.ts).
   */
  readings?: ReadonlyMap<string, StatReading>;
  /**
   * dpkg's answer read earlier, with the stat of dpkg's files it was read at: the probe runs
   * dpkg-query and dpkg only when those files changed (src/facts/stat-cache.ts).
   */
  dpkg?: DpkgReading;
  /** The lock the facts will be compared with (see LockedStrings). */
  locked?: LockedStrings;
  /**
   * Ask for apt's state (ProbeRequest.aptState). `known`: apt's answer held for a state
   * (apt-readings.ts), offered to the node when dpkg's reading is the one it was read with and the
   * probe asks apt about exactly its keys.
   */
  apt?: { known?: AptReading | undefined };
}

/** Facts, plus what a later run may reuse: each path's stat tuple and the node's clock. */
export interface GatheredFacts {
  facts: HostFacts;
  stats: Map<string, string>;
  clock: number | undefined;
  /** How the probe answered dpkg's state (see ParsedProbe.dpkg). */
  dpkg: ParsedProbe['dpkg'];
  /** How it answered apt's, and the policy lines it printed (see ParsedProbe). */
  apt: ParsedProbe['apt'];
  policyLines: ParsedProbe['policyLines'];
}

/** Default probe timeout. Generous: a full-scope probe of a large host reads a few thousand files. */
export const PROBE_TIMEOUT_MS = 300_000;

/**
 * Facts of one host in one round trip (the probe walks ELF notes on the node, however far they
 * lie). Throws CriuLockError; the fleet runner turns that into a per-host failure.
 */
export async function gatherFacts(
  t: Transport,
  req: ProbeRequest,
  opts: GatherOptions = {},
): Promise<HostFacts> {
  return (await gatherFactsAndStats(t, req, opts)).facts;
}

/** gatherFacts, also returning the stat tuples and clock the probe printed. */
export async function gatherFactsAndStats(
  t: Transport,
  req: ProbeRequest,
  opts: GatherOptions = {},
): Promise<GatheredFacts> {
  const probe = prepareProbe(req, opts);
  return factsFromProbe(t, req, await runProbe(t, probe), opts);
}

/** A probe script ready to run: as `sh -s` with the script on stdin, within `timeoutMs`. */
export interface PreparedProbe {
  script: string;
  timeoutMs: number;
  /** The apt reading whose state was sent (a `U` apt-state answer takes its policy lines). */
  aptSent?: AptReading | undefined;
}

/** The script that answers `req`, sending the stat tuples of the readings held for its paths. */
export function prepareProbe(req: ProbeRequest, opts: GatherOptions = {}): PreparedProbe {
  const { readings } = opts;
  let known: Map<string, string> | undefined;
  if (readings && readings.size > 0 && req.paths) {
    known = new Map();
    for (const p of req.paths) {
      const r = readings.get(p);
      if (r) known.set(p, r.stat);
    }
  }
  let sent: ProbeRequest = known && known.size > 0 ? { ...req, known } : req;
  if (opts.dpkg) sent = { ...sent, dpkgKnown: dpkgKnown(opts.dpkg, req) };
  let aptSent: AptReading | undefined;
  if (opts.apt) {
    const held = opts.apt.known;
    const asked = sent.dpkgKnown?.policy;
    if (held && asked && held.dpkgState === opts.dpkg?.state && sameWords(held.policyKeys, asked))
      aptSent = held;
    sent = { ...sent, aptState: aptSent ? { known: aptSent.aptState } : {} };
  }
  return { script: renderProbeScript(sent), timeoutMs: opts.timeoutMs ?? PROBE_TIMEOUT_MS, aptSent };
}

/** Runs a prepared probe on its own (it may also run at the end of another command). */
export function runProbe(t: Transport, probe: PreparedProbe): Promise<CommandResult> {
  return t.exec(['sh', '-s'], { stdin: probe.script, timeoutMs: probe.timeoutMs });
}

/**
 * Facts from the output of a probe script that has already run, alone (gatherFacts) or at the
 * end of a larger script (the rollback capture, one round trip for its .debs and build-IDs).
 */
export function factsFromProbe(
  t: Transport,
  req: ProbeRequest,
  res: CommandResult,
  opts: GatherOptions = {},
  aptSent?: AptReading,
): GatheredFacts {
  const { readings } = opts;
  if (res.timedOut)
    throw new CriuLockError('ssh', `${t.host}: gathering facts timed out after ${res.durationMs} ms`);
  if (isSudoPasswordRequired(res)) {
    throw new CriuLockError(
      'become',
      `${t.host}: sudo asks for a password (become needs passwordless sudo)`,
      {
        hint: 'allow the user NOPASSWD sudo on this host, or connect as root (ansible_user: root)',
      },
    );
  }
  const { facts, stats, clock, dpkg, apt, policyLines } = parseProbeOutput(
    t.host,
    res.stdout,
    readings,
    req.paths,
    opts.dpkg,
    opts.locked,
    aptSent?.policy,
  );
  const incomplete = facts.problems.find((p) => p.type === 'probe');
  if (incomplete) {
    const why = res.stderr.trim().split('\n').slice(-2).join(' ') || describeEnd(res);
    // A probe the connection lost says nothing about the target's tools.
    throw new CriuLockError('ssh', `${t.host}: the facts probe failed: ${why}`, {
      hint:
        endHint(res) ??
        'the target needs sh, dpkg, apt and perl-base; with a non-root user set ansible_become',
    });
  }
  return { facts, stats, clock, dpkg, apt, policyLines };
}

/**
 * The dpkg state to send. When it is unchanged the node runs no dpkg-query, so it cannot filter
 * `policyUnless` itself: the keys to ask apt about are decided here, by the node's rule, from the
 * very list the facts will then hold (so the decision and the plan see the same versions).
 */
export function dpkgKnown(reading: DpkgReading, req: ProbeRequest): NonNullable<ProbeRequest['dpkgKnown']> {
  if (!req.policyUnless) return { state: reading.state };
  const arch = reading.arch.find((l) => l.trim() !== '')?.trim() ?? '';
  const { packages } = parseDpkgLines(reading.dpkg, arch);
  const policy = new Set<string>();
  for (const [key, version] of req.policyUnless) {
    const p = packages.get(key);
    if (!(p && p.version === version && isHealthy(p))) policy.add(key);
  }
  // Sorted, as the node's filter prints them (apt-cache policy answers in the order asked).
  return { state: reading.state, policy: [...policy].sort() };
}
