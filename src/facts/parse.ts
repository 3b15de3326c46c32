import { createHash } from 'node:crypto';
import { ElfLimitError, MAX_DESC_SIZE, MAX_NOTE_STEPS, MAX_PROGRAM_HEADERS } from '../elf/build-id.js';
import { isValidVersion } from '../debian/version.js';
import { detach } from '../detach.js';
import { CriuLockError } from '../errors.js';
import { APT_STATE, DPKG_STATE, PROBE_VERSION } from './probe-script.js';
import { isHealthy } from './queries.js';
import type {
  AptPolicy,
  FileFact,
  FileKind,
  HostFacts,
  InstalledPackage,
  LockVerdicts,
  MappedFile,
  Platform,
} from './types.js';

export interface ParsedProbe {
  facts: HostFacts;
  /** Stat tuple (as KNOWN) of every regular file the path records describe, by path. */
  stats: Map<string, string>;
  /** The node's clock (seconds) when the probe started reading files; undefined without files. */
  clock: number | undefined;
  /**
   * How the probe answered dpkg's state: `unchanged` (the reading sent still holds; its lines
   * were used), `read` with the reading a later run may reuse (`clock`: the node's clock before
   * it took the tuple), or `read` without one (dpkg's journal was pending).
   */
  dpkg:
    | { kind: 'unchanged' }
    | { kind: 'read'; reading: DpkgReading | undefined; clock: number | undefined }
    | undefined;
  /**
   * How the probe answered apt's state (asked for with ProbeRequest.aptState; absent when apt had
   * nothing to answer): `unchanged` (apt-cache policy did not run: the policy lines the controller
   * sent were used), `read` (the tuple of apt's inputs, the node's clock before it was taken and
   * the keys apt-cache policy was asked about), or `none` (no tuple: nothing to keep).
   */
  apt: AptAnswer | undefined;
  /** The policy section's lines as printed (an apt reading keeps them); empty without one. */
  policyLines: readonly string[];
}

export type AptAnswer =
  { kind: 'unchanged' } | { kind: 'read'; state: string; clock: number; keys: string[] } | { kind: 'none' };

/**
 * What the controller remembers of dpkg's answer: the stat tuple of dpkg's files (DPKG_STATE)
 * when it was read, and the probe's arch, foreign and dpkg sections as printed then.
 */
export interface DpkgReading {
  state: string;
  arch: string[];
  foreign: string[];
  dpkg: string[];
}

/** What the controller remembers of an ELF file: its stat tuple when read, and its build-ID. */
export interface StatReading {
  stat: string;
  buildId: string | null;
}

const FILE_KINDS = new Set<FileKind>(['elf', 'file', 'missing', 'symlink', 'other', 'unreadable']);

function splitSections(stdout: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@')) {
      current = [];
      sections.set(line.slice(2), current);
      continue;
    }
    current?.push(line);
  }
  return sections;
}

function parseOsRelease(lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    let v = m[2] ?? '';
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    }
    out[m[1]] = v;
  }
  return out;
}

/** dpkg's `.list` files are named `name` or `name:arch` (Multi-Arch: same). */
export function listNameToKey(
  listName: string,
  packages: ReadonlyMap<string, InstalledPackage>,
  byName: ReadonlyMap<string, string>,
): string | undefined {
  if (listName.includes(':')) return packages.has(listName) ? listName : undefined;
  return byName.get(listName);
}

/** Something the probe cannot have printed (`what`): the whole answer is refused, the host fails. */
export class ProbeOutputError extends CriuLockError {
  constructor(host: string, what: string) {
    super('host-output', `${host}: refusing the facts probe's answer: ${what}`, {
      hint: 'the host printed something the criu-lock probe never prints; check the host (or its perl) is not tampered with',
    });
  }
}

const HEX = /^(?:[0-9a-f]{2})*$/;
const DIGITS = /^(?:0|[1-9][0-9]{0,15})$/;
const STAMP = /^(?:0|[1-9][0-9]{0,19}):-?(?:0|[1-9][0-9]{0,15}):-?(?:0|[1-9][0-9]{0,15})$/;
const MODE = /^[0-7]{4}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A hex field back to the exact name; only absolute, NUL-free, valid UTF-8 names are accepted. */
function decodeName(hex: string, what: 'path' | 'package', fail: (why: string) => never): string {
  if (!HEX.test(hex) || hex === '') fail(`has a malformed ${what} field`);
  let s: string;
  try {
    s = utf8.decode(Buffer.from(hex, 'hex'));
  } catch {
    fail(
      `names a ${what} that is not valid UTF-8 (${JSON.stringify(Buffer.from(hex, 'hex').toString('latin1'))})`,
    );
  }
  if (s.includes('\0')) fail(`names a ${what} with a NUL byte`);
  if (what === 'path' && !s.startsWith('/')) fail(`names a relative path ${JSON.stringify(s)}`);
  return s;
}

/** A file's mode; the usual ones as literals, so no fresh string of the facts is touched to compare them. */
export function fileMode(mode: string): string {
  return mode === '0644' ? '0644' : mode === '0755' ? '0755' : mode;
}

/**
 * The walk's answer for an ELF file (probe format 6, decision 24): `=HEX` the build-ID (at most
 * MAX_DESC_SIZE bytes), `-` none, `!phdrs N` or `!notes` past a cap, `!changed` a short read.
 */
const ELF_ANSWER = /^(?:=((?:[0-9a-f]{2})+)|-|!phdrs ([1-9][0-9]{0,5})|!notes|!changed)$/;

/**
 * The six fields every file record ends with: kind, size, mode, inode, stamp, and for an ELF file
 * the build-ID walk's answer (empty for the other kinds). `where` names the file in a refusal.
 */
function fileFields(
  path: string,
  fields: readonly string[],
  fail: (why: string) => never,
  where: string,
): { fact: FileFact; stat: string | undefined } {
  const [kind = '', size = '', mode = '', inode = '', stamp = '', answer = ''] = fields;
  if (fields.length !== 6 || !FILE_KINDS.has(kind as FileKind)) fail('is not a file record');
  const fact: FileFact = { path, kind: kind as FileKind };
  if (kind === 'missing' || kind === 'symlink' || kind === 'other') {
    if (size !== '' || mode !== '' || inode !== '' || stamp !== '' || answer !== '')
      fail(`has data for a ${kind} file`);
    return { fact, stat: undefined };
  }
  if (!DIGITS.test(size) || !MODE.test(mode) || !DIGITS.test(inode) || !STAMP.test(stamp))
    fail('has a malformed size, mode, inode or stamp');
  fact.size = Number(size);
  fact.mode = fileMode(mode);
  if (!Number.isSafeInteger(fact.size)) fail('has a malformed size');
  const stat = `${size}:${mode}:${inode}:${stamp}`;
  if (kind !== 'elf') {
    if (answer !== '') fail(`has a build-ID answer for a ${kind} file`);
    return { fact, stat };
  }
  const m = ELF_ANSWER.exec(answer) ?? fail('has a malformed build-ID answer');
  if (m[1] !== undefined) {
    // CRIU reads at most MAX_DESC_SIZE bytes of descriptor (C11): more is not its answer.
    if (m[1].length > 2 * MAX_DESC_SIZE)
      fail(`has a build-ID of ${m[1].length / 2} bytes (at most ${MAX_DESC_SIZE})`);
    fact.buildId = detach(m[1]);
  } else if (answer === '-') fact.buildId = null;
  else if (answer === '!changed') {
    throw new CriuLockError('host-output', `${where}: changed or vanished while its ELF notes were read`, {
      hint: 'run again once the file is stable',
    });
  } else {
    const phdrs = m[2] === undefined ? undefined : Number(m[2]);
    if (phdrs !== undefined && phdrs <= MAX_PROGRAM_HEADERS)
      fail('refuses a file within the program-header cap');
    const e = new ElfLimitError(
      phdrs === undefined
        ? `more than ${MAX_NOTE_STEPS} note headers`
        : `${phdrs} program headers (at most ${MAX_PROGRAM_HEADERS} are read)`,
    );
    throw new CriuLockError('host-output', `${where}: ${e.message}`, { hint: e.hint });
  }
  return { fact, stat };
}

export function parsePolicies(lines: readonly string[], nativeArch: string): Map<string, AptPolicy> {
  const out = new Map<string, AptPolicy>();
  let cur: AptPolicy | undefined;
  let curVersion: AptPolicy['versions'][number] | undefined;
  for (const line of lines) {
    if (line === '') continue;
    if (!line.startsWith(' ')) {
      const name = line.replace(/:$/, '');
      const key = name.includes(':') ? name : `${name}:${nativeArch}`;
      cur = { key, versions: [] };
      curVersion = undefined;
      out.set(key, cur);
      continue;
    }
    if (!cur) continue;
    const trimmed = line.trim();
    let m = /^Installed: (.*)$/.exec(trimmed);
    if (m) {
      cur.installed = m[1] === '(none)' ? undefined : m[1];
      continue;
    }
    m = /^Candidate: (.*)$/.exec(trimmed);
    if (m) {
      cur.candidate = m[1] === '(none)' ? undefined : m[1];
      continue;
    }
    // A version line: "     1.2-3 500" or " *** 1.2-3 100" (indent 5); sources are indented deeper.
    m = /^ (\*\*\*| {3}) (\S+) (-?\d+)$/.exec(line);
    if (m?.[2] && m[3]) {
      if (!isValidVersion(m[2])) {
        // A host that answers nonsense fails alone; its version never reaches the planner.
        throw new CriuLockError(
          'input',
          `apt-cache policy printed an invalid version ${JSON.stringify(m[2].slice(0, 100))} for ${cur.key}`,
          {
            hint: "the host's apt lists or dpkg status hold a version Debian policy does not allow; fix or refresh them",
          },
        );
      }
      curVersion = { version: m[2], priority: Number(m[3]), sources: [], installed: m[1] === '***' };
      cur.versions.push(curVersion);
      continue;
    }
    m = /^ {8}(-?\d+) (.+)$/.exec(line);
    if (m?.[2] && curVersion) {
      if (m[2] !== '/var/lib/dpkg/status') curVersion.sources.push(m[2]);
    }
  }
  return out;
}

function parseSha(lines: readonly string[], nativeArch: string): Map<string, string> {
  const out = new Map<string, string>();
  let pkg = '';
  let arch = '';
  let version = '';
  for (const line of lines) {
    const idx = line.indexOf(': ');
    if (idx < 0) continue;
    const field = line.slice(0, idx);
    const value = line.slice(idx + 2).trim();
    if (field === 'Package') {
      pkg = value;
      arch = '';
      version = '';
    } else if (field === 'Architecture') arch = value;
    else if (field === 'Version') version = value;
    else if (field === 'SHA256' && pkg && version) {
      out.set(`${pkg}:${arch || nativeArch}=${version}`, value);
    }
  }
  return out;
}

/**
 * The strings of the lock the facts are read to be compared with (plan; LockIndex has them). A
 * package the lock names takes the lock's own key string, and its locked version string when dpkg
 * has that version; a locked path takes the lock's path string, and its locked build-ID string
 * when the file has that build-ID. The planner then compares most keys, versions, paths and
 * build-IDs by identity (a pointer, not the bytes of a string it has never touched), and the facts
 * keep fewer strings of their own. Comparing here costs less: the fresh string was just made.
 *
 * As in the planner, the lock's entry after the last match is tried first (dpkg-query lists by
 * name, the probe answers paths in the order sent, both mostly the lock's order): one string
 * comparison, where a Map lookup would hash a fresh string first.
 */
export interface LockedStrings {
  sharedPackages: readonly LockedPackageStrings[];
  byKey: ReadonlyMap<string, LockedPackageStrings>;
  sharedPaths: readonly LockedPathStrings[];
  byPath: ReadonlyMap<string, LockedPathStrings>;
}

interface LockedPackageStrings {
  readonly key: string;
  readonly version: string;
  readonly slot: number;
}

interface LockedPathStrings {
  readonly path: string;
  readonly buildId: string | undefined;
  readonly size: number;
  readonly mode: string;
  readonly slot: number;
}

/** The lock's entry for a path read from the host; `next`, the slot tried first. */
export function lockedPath(locked: LockedStrings, path: string, next: number): LockedPathStrings | undefined {
  const guess = locked.sharedPaths[next];
  return guess?.path === path ? guess : locked.byPath.get(path);
}

/**
 * LockVerdicts.fileAtLock for a file read from the host: a regular file, its build-ID known (an
 * ELF fact made by hand may lack one), with the size, mode and build-ID of the lock's entry for
 * its path.
 */
export function fileAtLock(fact: FileFact, lockedAs: LockedPathStrings): 0 | 1 {
  if (fact.kind !== 'elf' && fact.kind !== 'file') return 0;
  if (fact.kind === 'elf' && fact.buildId === undefined) return 0;
  const same =
    fact.size === lockedAs.size &&
    fact.mode === lockedAs.mode &&
    (lockedAs.buildId === undefined || fact.buildId === lockedAs.buildId);
  return same ? 1 : 0;
}

/** The locked build-ID string in place of an equal one read from the host. */
export function shareBuildId(fact: FileFact, lockedAs: LockedPathStrings | undefined): void {
  const want = lockedAs?.buildId;
  if (want !== undefined && fact.buildId === want) fact.buildId = want;
}

/**
 * dpkg-query's lines (DPKG_FORMAT) → installed packages by key, and by name (the native
 * architecture's key wins); packages dpkg has but not configured are added to `problems`.
 * `locked`: see LockedStrings. dpkg keys its database by name and architecture, so a key listed
 * twice is not dpkg's answer: `host` names whose answer is refused then.
 */
export function parseDpkgLines(
  lines: readonly string[],
  architecture: string,
  problems: HostFacts['problems'] = [],
  locked?: LockedStrings,
  host = 'host',
): {
  packages: Map<string, InstalledPackage>;
  byName: Map<string, string>;
  /** With `locked`: LockVerdicts' packageAtLock, offLock, offLockSlots and unlocked. */
  verdicts?: Pick<LockVerdicts, 'packageAtLock' | 'offLock' | 'offLockSlots' | 'unlocked'>;
} {
  const packages = new Map<string, InstalledPackage>();
  const byName = new Map<string, string>();
  const packageAtLock = locked && new Uint8Array(locked.sharedPackages.length);
  const unlocked: string[] = [];
  const offLock: InstalledPackage[] = [];
  const offLockSlots: number[] = [];
  let next = 0;
  for (const line of lines) {
    if (line === '') continue;
    const [
      name = '',
      arch = '',
      version = '',
      want = '',
      status = '',
      eflag = '',
      multiArch = '',
      preDepends = '',
      depends = '',
      provides = '',
    ] = line.split('\t');
    if (status === 'not-installed' || status === 'config-files' || name === '') continue;
    // Detached copies: plans outlive the probe output, and substrings would keep all of it alive.
    // Compared with the lock's once detached: flat strings compare without a runtime call.
    const read = detach(`${name}:${arch}`);
    const detached = detach(version);
    let lockedAs: LockedPackageStrings | undefined;
    if (locked) {
      const guess = locked.sharedPackages[next];
      lockedAs = guess?.key === read ? guess : locked.byKey.get(read);
      if (lockedAs) next = lockedAs.slot + 1;
    }
    const key = lockedAs?.key ?? read;
    if (packages.has(key)) throw new ProbeOutputError(host, `dpkg lists ${key} twice`);
    // dpkg's usual states become the literals the planner and isHealthy compare with (identity).
    const pkg: InstalledPackage = {
      key,
      name: detach(name),
      arch: detach(arch),
      version: detached === lockedAs?.version ? lockedAs.version : detached,
      want: want === 'install' ? 'install' : want,
      status: status === 'installed' ? 'installed' : status,
      eflag: eflag === 'ok' ? 'ok' : eflag,
      multiArch,
      preDepends,
      depends,
      provides,
    };
    if (lockedAs) {
      // The planner's "at the lock": the locked version, and the usual states (identities here).
      const at =
        pkg.version === lockedAs.version &&
        pkg.want === 'install' &&
        pkg.status === 'installed' &&
        pkg.eflag === 'ok';
      packageAtLock![lockedAs.slot] = at ? 1 : 0;
      if (!at) {
        offLock.push(pkg);
        offLockSlots.push(lockedAs.slot);
      }
    } else if (locked) unlocked.push(key);
    packages.set(key, pkg);
    if (!byName.has(name) || arch === architecture) byName.set(name, key);
    if (!isHealthy(pkg)) {
      problems.push({
        type: 'broken-dpkg-state',
        package: key,
        detail: `${key} is ${status}${eflag !== 'ok' ? ` (${eflag})` : ''}; finish or repair it with dpkg --configure -a / apt-get -f install`,
      });
    }
  }
  return packageAtLock
    ? { packages, byName, verdicts: { packageAtLock, offLock, offLockSlots, unlocked } }
    : { packages, byName };
}

const CLOCK = /^-?(?:0|[1-9][0-9]{0,15})$/;

/**
 * A stat tuple's first two fields, as a file fact holds them. Only tuples the controller sent
 * reach here (renderProbeScript refused any but KNOWN's); indexOf, not split: ~750 a host (issue 14).
 */
function sizeAndMode(stat: string): { size: number; mode: string } {
  const a = stat.indexOf(':');
  const b = stat.indexOf(':', a + 1);
  return { size: Number(stat.slice(0, a)), mode: stat.slice(a + 1, b) };
}

/**
 * The one record of a state section (dpkg-state, apt-state), split into fields, with the section's
 * failure; undefined when the section is absent.
 */
function stateRecord(
  host: string,
  sections: ReadonlyMap<string, string[]>,
  name: string,
): { f: string[]; fail: (why: string) => never } | undefined {
  const lines = sections.get(name);
  if (lines === undefined) return undefined;
  const fail = (why: string): never => {
    throw new ProbeOutputError(host, `section ${name} ${why}`);
  };
  const records = lines.at(-1) === '' ? lines.slice(0, -1) : lines;
  if (records.length !== 1) fail(`has ${records.length} records, not one`);
  return { f: records[0]!.split('\t'), fail };
}

/**
 * The dpkg-state section: `U` (unchanged since the reading the controller sent: only valid when
 * it sent one, and then dpkg's sections must be absent), `S CLOCK STATE` (read fresh at that
 * tuple) or `N` (read fresh, nothing to keep). Absent (older fixtures, a probe cut short): no reading.
 */
function dpkgAnswer(
  host: string,
  sections: ReadonlyMap<string, string[]>,
  known: DpkgReading | undefined,
): ParsedProbe['dpkg'] {
  const one = stateRecord(host, sections, 'dpkg-state');
  if (!one) return undefined;
  const { f, fail } = one;
  switch (f[0] ?? '') {
    case 'U':
      if (f.length !== 1) fail('is not an unchanged record');
      if (known === undefined) fail('answers "unchanged" although the controller sent no dpkg state');
      for (const name of ['arch', 'foreign', 'dpkg'])
        if (sections.has(name)) fail(`answers "unchanged" and prints a ${name} section too`);
      return { kind: 'unchanged' };
    case 'S':
      if (f.length !== 3 || !CLOCK.test(f[1]!) || !DPKG_STATE.test(f[2]!))
        fail('has a malformed clock or state tuple');
      return {
        kind: 'read',
        clock: Number(f[1]),
        reading: {
          state: f[2]!,
          arch: sections.get('arch') ?? [],
          foreign: sections.get('foreign') ?? [],
          dpkg: sections.get('dpkg') ?? [],
        },
      };
    case 'N':
      if (f.length !== 1) fail('is not a no-reading record');
      return { kind: 'read', clock: undefined, reading: undefined };
    default:
      return fail('is not a record the probe prints');
  }
}

/**
 * The apt-state section: `U` (only valid when the controller sent the policy answer it holds, and
 * then no policy section may follow), `S CLOCK STATE KEYS` or `N`.
 */
function aptAnswer(
  host: string,
  sections: ReadonlyMap<string, string[]>,
  sentPolicy: readonly string[] | undefined,
): AptAnswer | undefined {
  const one = stateRecord(host, sections, 'apt-state');
  if (!one) return undefined;
  const { f, fail } = one;
  switch (f[0] ?? '') {
    case 'U':
      if (f.length !== 1) fail('is not an unchanged record');
      if (sentPolicy === undefined) fail('answers "unchanged" although the controller sent no apt state');
      if (sections.has('policy')) fail('answers "unchanged" and prints a policy section too');
      return { kind: 'unchanged' };
    case 'S': {
      if (f.length !== 4 || !CLOCK.test(f[1]!) || !APT_STATE.test(f[2]!))
        fail('has a malformed clock or state tuple');
      const keys = f[3]!.split(' ');
      if (keys.some((k) => k === '')) fail('has an empty package key');
      return { kind: 'read', clock: Number(f[1]), state: f[2]!, keys };
    }
    case 'N':
      if (f.length !== 1) fail('is not a no-tuple record');
      return { kind: 'none' };
    default:
      return fail('is not a record the probe prints');
  }
}

/**
 * `known`: the readings the controller sent stat tuples for (ProbeRequest.known), and `requested`
 * the request's `paths` in the order sent. A `U` record names requested paths by index; each takes
 * its size, mode and build-ID from its reading, and only a path whose tuple was sent can be named.
 * `dpkgKnown`: the dpkg-state reading the controller sent (ProbeRequest.dpkgKnown); a `U` answer
 * takes its arch, foreign and dpkg lines, and is refused when none was sent. `locked`: see
 * LockedStrings. `aptPolicy`: the policy lines the controller holds for the apt state it sent
 * (ProbeRequest.aptState.known); a `U` apt-state answer uses them as the policy section.
 */
export function parseProbeOutput(
  host: string,
  stdout: string,
  known?: ReadonlyMap<string, StatReading>,
  requested: readonly string[] = [],
  dpkgKnown?: DpkgReading,
  locked?: LockedStrings,
  aptPolicy?: readonly string[],
): ParsedProbe {
  const sections = splitSections(stdout);
  const problems: HostFacts['problems'] = [];
  if (!sections.has(`probe ${PROBE_VERSION}`) || !sections.has('end')) {
    problems.push({ type: 'probe', detail: 'the facts probe did not run to completion' });
  }
  const os = parseOsRelease(sections.get('os-release') ?? []);
  const dpkg = dpkgAnswer(host, sections, dpkgKnown);
  const dpkgLines = dpkg?.kind === 'unchanged' ? dpkgKnown! : undefined;
  const apt = aptAnswer(host, sections, aptPolicy);
  if (apt?.kind === 'unchanged' && dpkg?.kind !== 'unchanged')
    throw new ProbeOutputError(host, 'section apt-state answers "unchanged" although dpkg\'s state moved');
  const policyLines = apt?.kind === 'unchanged' ? aptPolicy! : (sections.get('policy') ?? []);
  const architecture =
    (dpkgLines?.arch ?? sections.get('arch') ?? []).find((l) => l.trim() !== '')?.trim() ?? '';
  const platform: Platform = {
    id: os.ID ?? '',
    versionId: os.VERSION_ID ?? '',
    codename: os.VERSION_CODENAME ?? os.UBUNTU_CODENAME ?? '',
    architecture,
    foreignArchitectures: (dpkgLines?.foreign ?? sections.get('foreign') ?? [])
      .map((l) => l.trim())
      .filter((l) => l !== ''),
  };
  const { packages, byName, verdicts } = parseDpkgLines(
    dpkgLines?.dpkg ?? sections.get('dpkg') ?? [],
    architecture,
    problems,
    locked,
    host,
  );

  // The pin file's exact bytes, hex; absent when the file is not there. Its sha256 is what decides
  // whether the file must be rewritten.
  const pinHex = sections.get('pin')?.[0];
  let pinFile: string | null = null;
  let pinSha: string | null = null;
  if (pinHex !== undefined) {
    if (!HEX.test(pinHex)) throw new ProbeOutputError(host, 'the pin file is not hex');
    const bytes = Buffer.from(pinHex, 'hex');
    pinFile = bytes.toString('utf8');
    pinSha = createHash('sha256').update(bytes).digest('hex');
  }

  const packageFiles = new Map<string, FileFact[]>();
  const files = new Map<string, FileFact>();
  const mapped: MappedFile[] = [];
  const stats = new Map<string, string>();
  let clock: number | undefined;
  const fileLines = sections.get('files') ?? [];
  const unchanged = new Uint8Array(requested.length);
  const atLock = locked && new Uint8Array(locked.sharedPaths.length);
  let nextPath = 0;
  for (let i = 0; i < fileLines.length; i++) {
    const line = fileLines[i]!;
    if (line === '' && i === fileLines.length - 1) continue;
    const fail = (why: string): never => {
      throw new ProbeOutputError(host, `line ${i + 1} of section files ${why}`);
    };
    const f = line.split('\t');
    switch (f[0] ?? '') {
      case 'F': {
        if (f.length !== 9) fail('is not a package file record');
        const listName = decodeName(f[1]!, 'package', fail);
        const path = decodeName(f[2]!, 'path', fail);
        const { fact } = fileFields(path, f.slice(3), fail, `${host}: ${path}`);
        const key = listNameToKey(listName, packages, byName);
        if (!key) break;
        const list = packageFiles.get(key) ?? [];
        list.push(fact);
        packageFiles.set(key, list);
        break;
      }
      case 'R': {
        if (f.length !== 8) fail('is not a path record');
        const path = decodeName(f[1]!, 'path', fail);
        const lockedAs = locked && lockedPath(locked, path, nextPath);
        if (lockedAs) nextPath = lockedAs.slot + 1;
        const { fact, stat } = fileFields(lockedAs?.path ?? path, f.slice(2), fail, `${host}: ${path}`);
        if (stat !== undefined) stats.set(fact.path, stat);
        shareBuildId(fact, lockedAs);
        if (lockedAs) atLock![lockedAs.slot] = fileAtLock(fact, lockedAs);
        files.set(fact.path, fact);
        break;
      }
      case 'U': {
        // Requested paths first .. first + count - 1, each still at the stat tuple we sent.
        const [, first = '', count = ''] = f;
        if (f.length !== 3 || !DIGITS.test(first) || !DIGITS.test(count) || count === '0')
          fail('is not an unchanged-files record');
        const from = Number(first);
        const to = from + Number(count);
        if (to > requested.length) fail(`names paths past the ${requested.length} requested`);
        for (let j = from; j < to; j++) {
          const path = requested[j]!;
          const reading =
            known?.get(path) ?? fail('answers "unchanged" for a file whose stat the controller did not send');
          if (unchanged[j] === 1) fail('answers a path twice');
          unchanged[j] = 1;
          const { size, mode } = sizeAndMode(reading.stat);
          const fact: FileFact = { path, kind: 'elf', size, mode: fileMode(mode), buildId: reading.buildId };
          const lockedAs = locked && lockedPath(locked, path, j);
          shareBuildId(fact, lockedAs);
          if (lockedAs) atLock![lockedAs.slot] = fileAtLock(fact, lockedAs);
          files.set(path, fact);
          stats.set(path, reading.stat);
        }
        break;
      }
      case 'T': {
        if (f.length !== 2 || !CLOCK.test(f[1]!) || clock !== undefined) fail('is not the one clock record');
        clock = Number(f[1]);
        break;
      }
      case 'M': {
        if (f.length !== 13) fail('is not a mapped file record');
        const [, pid = '', range = '', deleted = '', hexPath = '', hexOwner = '', via = ''] = f;
        if (
          !DIGITS.test(pid) ||
          pid === '0' ||
          !/^[0-9a-f]{1,16}-[0-9a-f]{1,16}$/.test(range) ||
          !/^[01]$/.test(deleted) ||
          !/^[mp-]$/.test(via)
        ) {
          fail('has a malformed pid, address range, deleted flag or source');
        }
        const path = decodeName(hexPath, 'path', fail);
        const owner = hexOwner === '-' ? undefined : decodeName(hexOwner, 'package', fail);
        const { fact } = fileFields(path, f.slice(7), fail, `${host}: ${path}`);
        if (via === '-' && fact.kind !== 'missing') fail('has data for a file it did not read');
        const m: MappedFile = {
          ...fact,
          pid: Number(pid),
          deleted: deleted === '1',
          owner: owner === undefined ? undefined : listNameToKey(owner, packages, byName),
        };
        mapped.push(m);
        break;
      }
      case 'X':
        if (f.length !== 2 || !DIGITS.test(f[1]!)) fail('is not a missing-process record');
        problems.push({ type: 'process-missing', detail: `process ${f[1]}: no such process` });
        break;
      default:
        fail('is not a record the probe prints');
    }
  }
  return {
    facts: {
      host,
      platform,
      packages,
      packageFiles,
      files,
      mapped,
      policies: parsePolicies(policyLines, architecture),
      debSha256: parseSha(sections.get('sha') ?? [], architecture),
      pinFile,
      pinSha256: pinSha,
      problems,
      ...(locked && verdicts
        ? { lockVerdicts: { locked, packages, files, fileAtLock: atLock!, ...verdicts } }
        : {}),
    },
    stats,
    clock,
    dpkg,
    apt,
    policyLines: apt?.kind === 'read' ? (sections.get('policy') ?? []) : [],
  };
}
