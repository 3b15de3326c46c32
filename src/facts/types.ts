/** What a host looks like, as far as criu-lock cares. Produced by the probe, consumed by the pure core. */

export interface Platform {
  id: string;
  versionId: string;
  codename: string;
  architecture: string;
  foreignArchitectures: string[];
}

/** One dpkg database entry. `key` is `name:arch`. */
export interface InstalledPackage {
  key: string;
  name: string;
  arch: string;
  version: string;
  /** dpkg's want state: install, hold, deinstall, purge, unknown. */
  want: string;
  /** dpkg's status: installed, unpacked, half-configured, half-installed, config-files, triggers-*. */
  status: string;
  /** dpkg's error flag: ok or reinstreq. */
  eflag: string;
  multiArch: string;
  preDepends: string;
  depends: string;
  provides: string;
}

export type FileKind = 'elf' | 'file' | 'missing' | 'symlink' | 'other' | 'unreadable';

export interface FileFact {
  path: string;
  kind: FileKind;
  size?: number;
  /** Permission bits as four octal digits, e.g. "0755". */
  mode?: string;
  /** Lowercase hex build-ID; null for an ELF file without one. Absent for non-ELF files. */
  buildId?: string | null;
}

export interface MappedFile extends FileFact {
  pid: number;
  /** The file was deleted (or replaced) after the process mapped it. */
  deleted: boolean;
  /** Owning package key, found through /usr-merge aliases; undefined when no package owns it. */
  owner?: string | undefined;
}

export interface PolicyVersion {
  version: string;
  priority: number;
  /** Where apt can get it from; excludes /var/lib/dpkg/status. */
  sources: string[];
  installed: boolean;
}

/** `apt-cache policy` for one package. */
export interface AptPolicy {
  key: string;
  installed?: string | undefined;
  candidate?: string | undefined;
  versions: PolicyVersion[];
}

export interface HostProblem {
  type: 'broken-dpkg-state' | 'process-missing' | 'probe';
  detail: string;
  package?: string;
}

export interface HostFacts {
  host: string;
  platform: Platform;
  /** Installed (or problematic) packages by key; config-files-only entries are left out. */
  packages: ReadonlyMap<string, InstalledPackage>;
  /** ELF files per owning package key (scope all / packages). */
  packageFiles: Map<string, FileFact[]>;
  /** Facts for explicitly requested paths (check). */
  files: ReadonlyMap<string, FileFact>;
  mapped: MappedFile[];
  policies: Map<string, AptPolicy>;
  /** SHA256 of `name:arch=version` .debs as the apt lists publish them. */
  debSha256: Map<string, string>;
  /** Current content of our pin file, or null when absent. */
  pinFile: string | null;
  /** sha256 (hex) of the pin file as it is on the host, or null when absent. */
  pinSha256: string | null;
  problems: HostProblem[];
  /**
   * The stat tuples of dpkg's and apt's inputs at which apt answered this probe, when a later run
   * may reuse apt's answers at them (src/facts/apt-readings.ts); absent otherwise.
   */
  aptInputs?: { dpkg: string; apt: string };
  /** What the parser already judged against the lock it was given; see LockVerdicts. */
  lockVerdicts?: LockVerdicts;
}

/**
 * The facts parser's verdicts on a host's packages and files against the lock it was given
 * (GatherOptions.locked), made while each line was fresh: it looks every package and path up in
 * the lock anyway, to share the lock's strings. The planner then reads one byte per locked
 * package and path instead of walking the host's Maps again (decision 23).
 *
 * They describe the Maps named here as parsed; facts are not changed after parsing (the Maps are
 * read-only in HostFacts), and the planner uses the verdicts only when `packages` and `files` are
 * still the facts' own Maps and `locked` is the lock it plans against.
 */
export interface LockVerdicts {
  /** The lock's strings the parser was given (indexLock(lock)), by identity. */
  readonly locked: object;
  readonly packages: ReadonlyMap<string, InstalledPackage>;
  readonly files: ReadonlyMap<string, FileFact>;
  /**
   * Per locked package, in the lock's sorted order: 1 when dpkg has it at the locked version,
   * wanted, installed and without error flag; 0 otherwise (different, absent or problematic).
   */
  readonly packageAtLock: Uint8Array;
  /**
   * Per locked path, in the lock's sorted order: 1 when it was answered as a regular file (ELF or
   * not, its build-ID known) with the size, mode and build-ID of the path's entry in the lock
   * (LockedStrings.byPath); 0 otherwise.
   */
  readonly fileAtLock: Uint8Array;
  /**
   * The host's entries for locked packages judged 0 in packageAtLock, as read, with their slots
   * (offLockSlots[k] is offLock[k]'s); a key read twice appears twice and the last one counts, as
   * in the Map. The planner takes them from here rather than from the Map.
   */
  readonly offLock: readonly InstalledPackage[];
  readonly offLockSlots: readonly number[];
  /** Keys of the host's packages that the lock does not lock, each once. */
  readonly unlocked: readonly string[];
}
