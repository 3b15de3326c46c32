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
  packages: Map<string, InstalledPackage>;
  /** ELF files per owning package key (scope all / packages). */
  packageFiles: Map<string, FileFact[]>;
  /** Facts for explicitly requested paths (check). */
  files: Map<string, FileFact>;
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
}
