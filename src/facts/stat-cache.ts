/**
 * Build-IDs the controller read before, so the facts probe sends a file's head only when the file
 * changed since (issue 14: a converged host's plan no longer moves ~1.5 MiB of hex heads).
 *
 * A reading is a path's stat tuple (size:mode:inode:dev:mtime:ctime, seconds) and the build-ID
 * computed from its head. The probe answers a path whose stat is still the tuple sent with a `U`
 * record (its index in the request) instead of its head.
 * Like git's index, a reading is kept only when the file's ctime is older than the node's clock
 * when the probe ran (`clock`): a write in the same second as the read could otherwise leave the
 * tuple unchanged. Any later write, chmod, rename over or reinstall moves ctime (or the inode),
 * which no user can set back; dpkg replaces files by rename, so a reinstall changes the inode too.
 *
 * dpkg's answer is kept the same way (a "dpkg-state reading", issue 14): the probe's arch, foreign
 * and dpkg sections with the stat tuples of the files they depend on (DPKG_STATE: dpkg's status,
 * arch and arch-native files, the dpkg binary). The probe answers "U" while those files are at the
 * tuple and dpkg's journal (updates/) is empty, and runs neither dpkg-query nor dpkg. dpkg
 * rewrites status by writing status-new and renaming it over (a new inode and ctime each time);
 * --set-selections, apt-mark hold and every install write it the same way. The same ctime rule
 * applies: a reading is kept only when every one of those ctimes is older than the node's clock.
 *
 * The cache is an optimisation only: a missing, unreadable or malformed cache file means "read
 * every head", and failing to write it is not an error. It trusts the host exactly as far as the
 * heads themselves: a host that lies about its stat could as well lie about its heads.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { detach } from '../detach.js';
import { cacheFile, ctimeOf, readOwnDoc, settledState, writeAtomically } from './cache-files.js';
import type { CommandResult, Transport } from '../transport/types.js';
import { currentAptState, loadAptReading, saveAptReading, type AptReading } from './apt-readings.js';
import {
  factsFromProbe,
  prepareProbe,
  runProbe,
  type GatheredFacts,
  type GatherOptions,
  type PreparedProbe,
} from './gather.js';
import type { DpkgReading, ParsedProbe, StatReading } from './parse.js';
import { DPKG_STATE, KNOWN, type ProbeRequest } from './probe-script.js';
import type { HostFacts } from './types.js';

/** Readings kept per host at most; a lock of more files is simply read in full past that. */
export const MAX_READINGS = 100_000;
/**
 * Format of the readings file. 2: three parallel arrays (paths, stat tuples, build-IDs) instead of
 * format 1's object keyed by path: JSON.parse builds an object of ~750 keys (a dictionary) and
 * Object.entries an array per entry, about three times the cost of the arrays (issue 14). A file of
 * another format reads as no readings, so a format 1 file is simply replaced on the next change.
 */
const READINGS_FORMAT = 2;
/** Format of the dpkg-state file (unchanged since the dpkg-state reading was added). */
const DPKG_FORMAT = 1;
const BUILD_ID = /^(?:[0-9a-f]{2}){1,512}$/;

/**
 * Where readings live: CRIU_LOCK_CACHE_DIR (`off` or `none` disables the cache), else
 * $XDG_CACHE_HOME/criu-lock/stat, else ~/.cache/criu-lock/stat.
 */
export function statCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const own = env.CRIU_LOCK_CACHE_DIR;
  if (own !== undefined && own !== '') return own === 'off' || own === 'none' ? undefined : join(own, 'stat');
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(base, 'criu-lock', 'stat');
}

/** The host's dpkg-state reading, beside its file readings. */
function dpkgCacheFile(dir: string, host: string): string {
  return cacheFile(dir, host).replace(/\.json$/, '.dpkg.json');
}

const isLines = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((l) => typeof l === 'string' && !l.includes('\n'));

/** The host's dpkg-state reading, or undefined when there is none or the file is not one we wrote. */
export function loadDpkgReading(dir: string, host: string): DpkgReading | undefined {
  const doc = readOwnDoc(dpkgCacheFile(dir, host), host, DPKG_FORMAT);
  if (!doc) return undefined;
  const { state, arch, foreign, dpkg } = doc;
  if (typeof state !== 'string' || !DPKG_STATE.test(state)) return undefined;
  if (!isLines(arch) || !isLines(foreign) || !isLines(dpkg)) return undefined;
  return { state, arch, foreign, dpkg };
}

/** Replaces the host's dpkg-state reading (temporary file, then rename); errors are ignored. */
export function saveDpkgReading(dir: string, host: string, r: DpkgReading): void {
  writeAtomically(dir, dpkgCacheFile(dir, host), () =>
    JSON.stringify({
      format: DPKG_FORMAT,
      host,
      state: r.state,
      arch: r.arch,
      foreign: r.foreign,
      dpkg: r.dpkg,
    }),
  );
}

/**
 * The dpkg-state reading worth keeping from one probe's answer: a fresh read whose files' ctimes
 * are all older than the node's clock when the probe took their tuple (a write in that same
 * second could otherwise keep the tuple). Undefined: keep what is there.
 */
export function reusableDpkgReading(answer: ParsedProbe['dpkg']): DpkgReading | undefined {
  if (answer?.kind !== 'read' || answer.reading === undefined || answer.clock === undefined) return undefined;
  return settledState(answer.reading.state, answer.clock) ? answer.reading : undefined;
}

/**
 * The host's readings, or an empty map when there are none or the file is not one we wrote: any
 * entry with a relative path, a malformed stat tuple or build-ID discards the whole file.
 */
export function loadReadings(dir: string, host: string): Map<string, StatReading> {
  const out = new Map<string, StatReading>();
  const doc = readOwnDoc(cacheFile(dir, host), host, READINGS_FORMAT);
  if (!doc) return out;
  const { paths, stats, buildIds } = doc;
  if (!Array.isArray(paths) || !Array.isArray(stats) || !Array.isArray(buildIds)) return out;
  const n = paths.length;
  if (stats.length !== n || buildIds.length !== n) return out;
  for (let i = 0; i < n; i++) {
    const path: unknown = paths[i];
    const stat: unknown = stats[i];
    const buildId: unknown = buildIds[i];
    if (typeof path !== 'string' || !path.startsWith('/')) return new Map();
    if (typeof stat !== 'string' || !KNOWN.test(stat)) return new Map();
    if (buildId !== null && (typeof buildId !== 'string' || !BUILD_ID.test(buildId))) return new Map();
    out.set(path, { stat, buildId });
  }
  return out;
}

/** Replaces the host's readings (write to a temporary file, then rename); errors are ignored. */
export function saveReadings(dir: string, host: string, readings: ReadonlyMap<string, StatReading>): void {
  writeAtomically(dir, cacheFile(dir, host), () => {
    const n = Math.min(readings.size, MAX_READINGS);
    const paths = new Array<string>(n);
    const stats = new Array<string>(n);
    const buildIds = new Array<string | null>(n);
    let i = 0;
    for (const [path, r] of readings) {
      if (i >= n) break;
      paths[i] = path;
      stats[i] = r.stat;
      buildIds[i++] = r.buildId;
    }
    return JSON.stringify({ format: READINGS_FORMAT, host, paths, stats, buildIds });
  });
}

/**
 * The readings worth keeping from one probe: ELF path records with a build-ID answer whose ctime
 * is older than the node's clock (see the module comment). `clock` undefined keeps none.
 */
export function reusableReadings(
  facts: HostFacts,
  stats: ReadonlyMap<string, string>,
  clock: number | undefined,
): Map<string, StatReading> {
  const out = new Map<string, StatReading>();
  if (clock === undefined) return out;
  for (const [path, fact] of facts.files) {
    if (fact.kind !== 'elf' || fact.buildId === undefined) continue;
    const stat = stats.get(path);
    if (stat === undefined) continue;
    if (ctimeOf(stat) < clock) out.set(path, { stat, buildId: fact.buildId });
  }
  return out;
}

/**
 * gatherFacts with the host's cached readings: heads only for paths whose stat changed, dpkg's
 * answer only when its files changed; then the readings of this run saved for the next.
 * `cacheDir` undefined reads everything.
 */
export async function gatherWithReadings(
  t: Transport,
  req: ProbeRequest,
  opts: GatherOptions & { cacheDir: string | undefined },
): Promise<HostFacts> {
  const probe = prepareWithReadings(t.host, req, opts);
  return probe.finish(t, await runProbe(t, probe));
}

/** A probe ready to run, and what turns its result into the host's facts. */
export interface PendingFacts extends PreparedProbe {
  finish(t: Transport, res: CommandResult): Promise<HostFacts>;
}

/**
 * gatherWithReadings in two halves: the probe script, with what the cache holds for `host`, to
 * run where the caller chooses (apply runs it inside the host lock's own command); then `finish`
 * with its result, which saves this run's readings.
 */
export function prepareWithReadings(
  host: string,
  req: ProbeRequest,
  opts: GatherOptions & { cacheDir: string | undefined },
): PendingFacts {
  const { cacheDir, ...rest } = opts;
  if (cacheDir === undefined) {
    return {
      ...prepareProbe(req, rest),
      // The executor's throw rejects the promise, as an async function's would.
      finish: (t, res) => new Promise((resolve) => resolve(factsFromProbe(t, req, res, rest).facts)),
    };
  }
  const withPaths = req.paths !== undefined && req.paths.length > 0;
  const readings = withPaths ? loadReadings(cacheDir, host) : new Map<string, StatReading>();
  const dpkg = loadDpkgReading(cacheDir, host);
  // apt's answers are kept for the probe that asks apt what may move (plan's, policyUnless).
  const apt = req.policyUnless ? { known: loadAptReading(cacheDir, host) } : undefined;
  const used: GatherOptions = { ...rest, readings, ...(dpkg ? { dpkg } : {}), ...(apt ? { apt } : {}) };
  const prepared = prepareProbe(req, used);
  const finishRead = (t: Transport, res: CommandResult): HostFacts => {
    const got = factsFromProbe(t, req, res, used, prepared.aptSent);
    const fresh = reusableDpkgReading(got.dpkg);
    if (fresh && fresh.state !== dpkg?.state) saveDpkgReading(cacheDir, host, fresh);
    if (apt) keepAptAnswer(cacheDir, host, got, dpkg, fresh, prepared.aptSent);
    if (!withPaths) return got.facts;
    const keep = reusableReadings(got.facts, got.stats, got.clock);
    // Paths this run did not ask about keep their readings (check and plan may ask for different sets).
    for (const [path, r] of readings) if (!got.stats.has(path) && !keep.has(path)) keep.set(path, r);
    if (!sameReadings(readings, keep)) saveReadings(cacheDir, host, keep);
    return got.facts;
  };
  return {
    script: prepared.script,
    timeoutMs: prepared.timeoutMs,
    finish: (t, res) => new Promise((resolve) => resolve(finishRead(t, res))),
  };
}

/**
 * Records the states apt answered at in the facts (HostFacts.aptInputs), when a later run may rely
 * on both, and saves a fresh policy answer as the host's apt reading at them (apt-readings.ts).
 * The tuples are copied: the facts must not keep the probe's output alive (issue 14).
 */
function keepAptAnswer(
  cacheDir: string,
  host: string,
  got: GatheredFacts,
  sentDpkg: DpkgReading | undefined,
  freshDpkg: DpkgReading | undefined,
  aptSent: AptReading | undefined,
): void {
  const dpkgState = got.dpkg?.kind === 'unchanged' ? sentDpkg?.state : freshDpkg?.state;
  const aptState = currentAptState(got.apt, aptSent?.aptState);
  if (dpkgState === undefined || aptState === undefined) return;
  const inputs = { dpkg: detach(dpkgState), apt: detach(aptState) };
  got.facts.aptInputs = inputs;
  if (got.apt?.kind !== 'read') return;
  saveAptReading(cacheDir, host, {
    dpkgState: inputs.dpkg,
    aptState: inputs.apt,
    policyKeys: got.apt.keys,
    policy: [...got.policyLines],
    simulations: [],
  });
}

/** A converged host's readings do not move from run to run: then the file is not rewritten. */
export function sameReadings(
  a: ReadonlyMap<string, StatReading>,
  b: ReadonlyMap<string, StatReading>,
): boolean {
  if (a.size !== b.size) return false;
  for (const [path, r] of a) {
    const o = b.get(path);
    if (o?.stat !== r.stat || o.buildId !== r.buildId) return false;
  }
  return true;
}
