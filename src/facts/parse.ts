import { buildIdFromBuffer, readBuildId, type BuildIdResult } from '../elf/build-id.js';
import { isValidVersion } from '../debian/version.js';
import { CriuLockError } from '../errors.js';
import { isHealthy } from './queries.js';
import type {
  AptPolicy,
  FileFact,
  FileKind,
  HostFacts,
  InstalledPackage,
  MappedFile,
  Platform,
} from './types.js';

/** An ELF file whose build-ID needs more bytes than the probe sent (rare: notes past the head). */
export interface PendingElf {
  fact: FileFact;
  /** Path to read on the host (for mapped files, the /proc/PID/map_files entry). */
  openPath: string;
  chunks: Array<{ offset: number; bytes: Uint8Array }>;
  ranges: Array<{ offset: number; length: number }>;
}

export interface ParsedProbe {
  facts: HostFacts;
  pending: PendingElf[];
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
export function listNameToKey(listName: string, packages: ReadonlyMap<string, InstalledPackage>, byName: ReadonlyMap<string, string>): string | undefined {
  if (listName.includes(':')) return packages.has(listName) ? listName : undefined;
  return byName.get(listName);
}

/** A flat copy of a string, so it holds no reference to the (large) string it was cut from. */
function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}

function decodeHead(hex: string | undefined): Uint8Array {
  return hex ? Buffer.from(hex, 'hex') : new Uint8Array();
}

function fileFact(path: string, fields: readonly string[]): { fact: FileFact; head: Uint8Array } {
  const kind = (FILE_KINDS.has(fields[0] as FileKind) ? fields[0] : 'unreadable') as FileKind;
  const fact: FileFact = { path, kind };
  if (fields[1] !== undefined && fields[1] !== '') fact.size = Number(fields[1]);
  if (fields[2] !== undefined && fields[2] !== '') fact.mode = fields[2];
  return { fact, head: decodeHead(fields[3]) };
}

function applyBuildId(fact: FileFact, result: BuildIdResult): boolean {
  switch (result.kind) {
    case 'build-id':
      fact.buildId = result.buildId;
      return true;
    case 'no-build-id':
      fact.buildId = null;
      return true;
    case 'not-elf':
      fact.kind = 'file';
      delete fact.buildId;
      return true;
    case 'need-bytes':
      return false;
    default: {
      const never: never = result;
      return never;
    }
  }
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
        throw new CriuLockError('input', `apt-cache policy printed an invalid version ${JSON.stringify(m[2].slice(0, 100))} for ${cur.key}`, {
          hint: 'the host\'s apt lists or dpkg status hold a version Debian policy does not allow; fix or refresh them',
        });
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

export function parseProbeOutput(host: string, stdout: string): ParsedProbe {
  const sections = splitSections(stdout);
  const problems: HostFacts['problems'] = [];
  if (!sections.has('probe 1') || !sections.has('end')) {
    problems.push({ type: 'probe', detail: 'the facts probe did not run to completion' });
  }
  const os = parseOsRelease(sections.get('os-release') ?? []);
  const architecture = (sections.get('arch') ?? []).find((l) => l.trim() !== '')?.trim() ?? '';
  const platform: Platform = {
    id: os.ID ?? '',
    versionId: os.VERSION_ID ?? '',
    codename: os.VERSION_CODENAME ?? os.UBUNTU_CODENAME ?? '',
    architecture,
    foreignArchitectures: (sections.get('foreign') ?? []).map((l) => l.trim()).filter((l) => l !== ''),
  };

  const packages = new Map<string, InstalledPackage>();
  const byName = new Map<string, string>();
  for (const line of sections.get('dpkg') ?? []) {
    if (line === '') continue;
    const [name = '', arch = '', version = '', want = '', status = '', eflag = '', multiArch = '', preDepends = '', depends = '', provides = ''] =
      line.split('\t');
    if (status === 'not-installed' || status === 'config-files' || name === '') continue;
    const key = `${name}:${arch}`;
    // Detached copies: plans outlive the probe output, and substrings would keep all of it alive.
    const pkg: InstalledPackage = {
      key: detach(key), name: detach(name), arch: detach(arch), version: detach(version), want, status, eflag,
      multiArch, preDepends, depends, provides,
    };
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

  const pinLines = sections.get('pin');
  const pinSha = sections.get('pin-sha')?.[0]?.trim();
  const pinFile = pinSha && pinLines ? pinLines.filter((l) => l.startsWith('|')).map((l) => l.slice(1)).join('\n') : null;

  const pending: PendingElf[] = [];
  const packageFiles = new Map<string, FileFact[]>();
  const files = new Map<string, FileFact>();
  const mapped: MappedFile[] = [];
  const resolve = (fact: FileFact, head: Uint8Array, openPath: string): void => {
    if (fact.kind !== 'elf') return;
    const result = buildIdFromBuffer(head, fact.size);
    if (!applyBuildId(fact, result) && result.kind === 'need-bytes') {
      pending.push({ fact, openPath, chunks: [{ offset: 0, bytes: head }], ranges: result.ranges });
    }
  };
  for (const line of sections.get('files') ?? []) {
    if (line === '') continue;
    const f = line.split('\t');
    switch (f[0] ?? '') {
      case 'F': {
        const key = listNameToKey(f[1] ?? '', packages, byName);
        if (!key) break;
        const { fact, head } = fileFact(f[2] ?? '', f.slice(3));
        resolve(fact, head, fact.path);
        const list = packageFiles.get(key) ?? [];
        list.push(fact);
        packageFiles.set(key, list);
        break;
      }
      case 'R': {
        const { fact, head } = fileFact(f[1] ?? '', f.slice(2));
        resolve(fact, head, fact.path);
        files.set(fact.path, fact);
        break;
      }
      case 'M': {
        const [, pid = '', path = '', deleted = '', owner = '-', openPath = ''] = f;
        const { fact, head } = fileFact(path, f.slice(6));
        const m: MappedFile = {
          ...fact,
          pid: Number(pid),
          deleted: deleted === '1',
          owner: owner === '-' ? undefined : listNameToKey(owner, packages, byName),
        };
        resolve(m, head, openPath || path);
        mapped.push(m);
        break;
      }
      case 'X':
        problems.push({ type: 'process-missing', detail: `process ${f[1]}: ${f[2] ?? 'not found'}` });
        break;
      default:
        break;
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
      policies: parsePolicies(sections.get('policy') ?? [], architecture),
      debSha256: parseSha(sections.get('sha') ?? [], architecture),
      pinFile,
      pinSha256: pinSha ?? null,
      problems,
    },
    pending,
  };
}

/** Feed fetched ranges to pending files; returns those that still need more bytes. */
export function resolvePending(pending: readonly PendingElf[]): PendingElf[] {
  const still: PendingElf[] = [];
  for (const p of pending) {
    const size = p.fact.size ?? 0;
    const result = readBuildId({
      size,
      read(offset, length) {
        for (const c of p.chunks) {
          if (offset >= c.offset && offset + length <= c.offset + c.bytes.length) {
            return c.bytes.subarray(offset - c.offset, offset - c.offset + length);
          }
        }
        return undefined;
      },
    });
    if (!applyBuildId(p.fact, result) && result.kind === 'need-bytes') {
      still.push({ ...p, ranges: result.ranges });
    }
  }
  return still;
}
