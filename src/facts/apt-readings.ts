/**
 * apt's answers the controller read before, so a plan of an unchanged, drifted host asks apt
 * nothing (issue 14: `apt-cache policy` and `apt-get -s` were most of such a host's node CPU).
 *
 * An "apt reading" is what apt answered at one state of its inputs: dpkg's files (DPKG_STATE, as
 * the dpkg-state reading holds them) and apt's own (APT_STATE: the config, preferences and sources
 * files and directories and the package lists, at the paths apt-config resolves, and
 * /etc/machine-id). It holds `apt-cache policy`'s lines for the keys it was asked about, and the
 * stdout of the `apt-get -s` runs that succeeded at that state, each with its argv and the SHA256
 * of the pin file it was given. apt reads nothing else that changes its answer: the same inputs,
 * argv and pins give the same answer.
 *
 * The probe answers `U` in its apt-state section, and does not run apt-cache policy, when dpkg's
 * files are unchanged and apt's are still at the tuple sent; the controller sends one only with
 * exactly the keys the reading answers. A simulation is taken from the reading when the probe
 * found both states at the reading's and the argv and pins are the same. As for the other
 * readings, a state is kept only when every ctime in it is older than the node's clock when it
 * was taken, and a host that lies about its stat could as well lie about apt's answers.
 * A missing or malformed file means "ask apt"; failing to write one is not an error.
 */
import { createHash } from 'node:crypto';
import { cacheFile, readOwnDoc, settledState, writeAtomically } from './cache-files.js';
import type { AptAnswer } from './parse.js';
import { APT_STATE, DPKG_STATE } from './probe-script.js';

/** What apt answered at one state of its inputs (see the module comment). */
export interface AptReading {
  dpkgState: string;
  aptState: string;
  /** The keys apt-cache policy was asked about, in the order asked, and its output's lines. */
  policyKeys: string[];
  policy: string[];
  simulations: SimulationReading[];
}

/** One `apt-get -s` that succeeded: its argv, the SHA256 (hex) of the pins on its stdin, its stdout. */
export interface SimulationReading {
  argv: string[];
  pins: string;
  stdout: string;
}

/** The states apt answered a probe at, when a later run may reuse its answers (HostFacts.aptInputs). */
export interface AptInputs {
  dpkg: string;
  apt: string;
}

const FORMAT = 1;
/** Simulations kept per reading: a plan and its apply run the same one; other argvs are rare. */
export const MAX_SIMULATIONS = 4;
const MAX_STDOUT = 1024 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;

function aptFile(dir: string, host: string): string {
  return cacheFile(dir, host).replace(/\.json$/, '.apt.json');
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((l) => typeof l === 'string');

function simulationOf(v: unknown): SimulationReading | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { argv, pins, stdout } = v as Record<string, unknown>;
  if (!isStrings(argv) || argv.length === 0) return undefined;
  if (typeof pins !== 'string' || !SHA256.test(pins)) return undefined;
  if (typeof stdout !== 'string' || stdout.length > MAX_STDOUT) return undefined;
  return { argv, pins, stdout };
}

/** The host's apt reading, or undefined when there is none or the file is not one we wrote. */
export function loadAptReading(dir: string, host: string): AptReading | undefined {
  const doc = readOwnDoc(aptFile(dir, host), host, FORMAT);
  if (!doc) return undefined;
  const { dpkgState, aptState, policyKeys, policy, simulations } = doc;
  if (typeof dpkgState !== 'string' || !DPKG_STATE.test(dpkgState)) return undefined;
  if (typeof aptState !== 'string' || !APT_STATE.test(aptState)) return undefined;
  if (!isStrings(policyKeys) || policyKeys.length === 0 || !isStrings(policy)) return undefined;
  if (policy.some((l) => l.includes('\n')) || !Array.isArray(simulations)) return undefined;
  const sims: SimulationReading[] = [];
  for (const s of simulations.slice(0, MAX_SIMULATIONS)) {
    const sim = simulationOf(s);
    if (!sim) return undefined;
    sims.push(sim);
  }
  return { dpkgState, aptState, policyKeys, policy, simulations: sims };
}

/** Replaces the host's apt reading; errors are ignored. */
export function saveAptReading(dir: string, host: string, r: AptReading): void {
  writeAtomically(dir, aptFile(dir, host), () =>
    JSON.stringify({
      format: FORMAT,
      host,
      dpkgState: r.dpkgState,
      aptState: r.aptState,
      policyKeys: r.policyKeys,
      policy: r.policy,
      simulations: r.simulations.slice(-MAX_SIMULATIONS),
    }),
  );
}

/**
 * The apt state the probe found, when a later run may rely on it: the one sent (answer `U`), or
 * a fresh tuple whose ctimes are older than the node's clock. Undefined otherwise.
 */
export function currentAptState(answer: AptAnswer | undefined, sent: string | undefined): string | undefined {
  if (answer?.kind === 'unchanged') return sent;
  if (answer?.kind === 'read' && settledState(answer.state, answer.clock)) return answer.state;
  return undefined;
}

/** The SHA256 (hex) of a pin file's text, as a simulation reading records it. */
export function pinsDigest(pins: string): string {
  return createHash('sha256').update(pins).digest('hex');
}

/** Two word lists (argv, package keys) equal in order. */
export function sameWords(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

/** The host's apt reading when it is at `inputs` (the states the probe just found), else undefined. */
export function readingAt(dir: string, host: string, inputs: AptInputs): AptReading | undefined {
  const r = loadAptReading(dir, host);
  return r && r.dpkgState === inputs.dpkg && r.aptState === inputs.apt ? r : undefined;
}

/** The stdout of a successful `apt-get -s` with this argv and pins kept in `r`, if any. */
export function keptSimulation(r: AptReading, argv: readonly string[], pins: string): string | undefined {
  return r.simulations.find((s) => s.pins === pins && sameWords(s.argv, argv))?.stdout;
}

/** Saves `r` with a successful simulation added (in place of one with the same argv and pins). */
export function rememberSimulation(dir: string, host: string, r: AptReading, sim: SimulationReading): void {
  if (sim.stdout.length > MAX_STDOUT) return;
  const others = r.simulations.filter((s) => !(s.pins === sim.pins && sameWords(s.argv, sim.argv)));
  saveAptReading(dir, host, { ...r, simulations: [...others, sim] });
}
