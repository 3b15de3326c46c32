import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { run, runOk } from './exec.js';
import { BASE_DIR, BASE_MARKER, BASE_REPO_STAMP } from './state.js';
import { unmountUnder } from './system.js';

export const SUITE = 'bookworm';
const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** The only apt source of every node: the local repository, bind-mounted read-only. */
export const NODE_SOURCES_LINE = 'deb [trusted=yes] file:/srv/repo ./';
export const CHROOT_ENV: NodeJS.ProcessEnv = {
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LC_ALL: 'C',
  DEBIAN_FRONTEND: 'noninteractive',
};

export interface Mirror {
  uri: string;
  keyring: string | undefined;
  file: string;
}

interface SourceEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy: string | undefined;
  enabled: boolean;
}

/** Parses deb822 `.sources` text into entries. */
export function parseDeb822(text: string): SourceEntry[] {
  const out: SourceEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (!m?.[1]) continue;
      last = m[1].toLowerCase();
      fields.set(last, m[2] ?? '');
    }
    if (!fields.has('uris')) continue;
    const words = (k: string): string[] => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const signed = fields.get('signed-by')?.trim();
    out.push({
      types: words('types'),
      uris: words('uris'),
      suites: words('suites'),
      components: words('components'),
      signedBy: signed && signed.startsWith('/') && !signed.includes('\n') ? signed : undefined,
      enabled: (fields.get('enabled') ?? 'yes').trim().toLowerCase() !== 'no',
    });
  }
  return out;
}

/** Parses one-line `sources.list` text into entries. */
export function parseOneLine(text: string): SourceEntry[] {
  const out: SourceEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m?.[1] || !m[3] || !m[4]) continue;
    const signed = /(?:^|\s)signed-by=(\S+)/.exec(m[2] ?? '')?.[1];
    out.push({
      types: [m[1]],
      uris: [m[3]],
      suites: [m[4]],
      components: (m[5] ?? '').split(/\s+/).filter(Boolean),
      signedBy: signed?.startsWith('/') ? signed : undefined,
      enabled: true,
    });
  }
  return out;
}

/** The machine's first Debian `bookworm` `main` mirror, from its own apt sources. */
export function findMirror(etcApt = '/etc/apt'): Mirror {
  return findSource(SUITE, etcApt);
}

/** The machine's first `main` source serving `suite` (e.g. bookworm-security), from its own apt sources. */
export function findSource(suite: string, etcApt = '/etc/apt'): Mirror {
  const files: string[] = [];
  if (existsSync(join(etcApt, 'sources.list'))) files.push(join(etcApt, 'sources.list'));
  const d = join(etcApt, 'sources.list.d');
  if (existsSync(d)) {
    for (const f of readdirSync(d).sort())
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join(d, f));
  }
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const entries = file.endsWith('.sources') ? parseDeb822(text) : parseOneLine(text);
    for (const e of entries) {
      if (
        !e.enabled ||
        !e.types.includes('deb') ||
        !e.suites.includes(suite) ||
        !e.components.includes('main')
      )
        continue;
      const uri = e.uris.find((u) => /^(https?|file):/.test(u));
      if (uri) return { uri, keyring: e.signedBy, file };
    }
  }
  throw new CriuLockError('sandbox', `no Debian ${suite} main source found in ${etcApt}/sources.list{,.d}`, {
    hint: `the sandbox needs a ${suite} mirror; add one to the machine's apt sources`,
  });
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(delimiter)
    .concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** Host tools the sandbox runs, and the Debian package that provides each. */
const HOST_TOOLS: readonly (readonly [string, string])[] = [
  ['debootstrap', 'debootstrap'],
  ['gcc', 'gcc'],
  ['readelf', 'binutils'],
  ['dpkg-deb', 'dpkg'],
  ['apt-ftparchive', 'apt-utils'],
  ['ssh-keygen', 'openssh-client'],
  ['ssh', 'openssh-client'],
  ['chroot', 'coreutils'],
  ['mount', 'mount'],
];

/** Root and overlayfs are hard requirements; say so in one line. */
export function checkRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new CriuLockError(
      'sandbox',
      'the sandbox needs root (it mounts overlayfs and chroots into nodes)',
      {
        hint: 'run it as root, e.g. `sudo npm run sandbox -- up`',
      },
    );
  }
}

export async function checkOverlay(probeDir: string): Promise<void> {
  const hasOverlay = (): boolean => {
    try {
      return /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
    } catch {
      return false;
    }
  };
  if (!hasOverlay()) await run(['modprobe', 'overlay']);
  if (!hasOverlay()) {
    throw new CriuLockError(
      'sandbox',
      'the kernel has no overlayfs (not in /proc/filesystems, modprobe overlay failed)',
      {
        hint: 'use a kernel with CONFIG_OVERLAY_FS, or a VM instead of an unprivileged container',
      },
    );
  }
  const d = join(probeDir, '.overlay-probe');
  await unmountUnder(d);
  rmSync(d, { recursive: true, force: true });
  for (const s of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(d, s), { recursive: true });
  const r = await run([
    'mount',
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${d}/lower,upperdir=${d}/upper,workdir=${d}/work`,
    `${d}/merged`,
  ]);
  if (r.exitCode === 0) await run(['umount', `${d}/merged`]);
  rmSync(d, { recursive: true, force: true });
  if (r.exitCode !== 0) {
    throw new CriuLockError(
      'sandbox',
      `cannot mount overlayfs in ${probeDir}: ${r.stderr.trim().split('\n')[0] ?? ''}`,
      {
        hint: 'the state dir must be on a filesystem overlayfs accepts as upper (ext4, xfs, tmpfs); set CRIU_LOCK_SANDBOX_DIR',
      },
    );
  }
}

/** Installs missing host tools with apt-get (Debian hosts only). */
export async function ensureHostTools(log: (s: string) => void): Promise<void> {
  const missing = new Set<string>();
  for (const [cmd, pkg] of HOST_TOOLS) if (!onPath(cmd)) missing.add(pkg);
  if (!existsSync(DEFAULT_KEYRING)) missing.add('debian-archive-keyring');
  if (missing.size === 0) return;
  const pkgs = [...missing].sort();
  log(`installing host packages: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runOk(['apt-get', 'update'], { env });
  await runOk(['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs], { env });
}

/** Builds the shared base root filesystem once; a base without the marker is rebuilt. */
export async function ensureBase(log: (s: string) => void): Promise<boolean> {
  if (existsSync(join(BASE_DIR, BASE_MARKER))) return false;
  const mirror = findMirror();
  const tmp = `${BASE_DIR}.tmp`;
  await unmountUnder(tmp);
  await unmountUnder(BASE_DIR);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(dirname(tmp), { recursive: true });
  log(
    `building the base root filesystem with debootstrap from ${mirror.uri} (${mirror.file}); this happens once`,
  );
  const keyring =
    mirror.keyring && existsSync(mirror.keyring)
      ? mirror.keyring
      : existsSync(DEFAULT_KEYRING)
        ? DEFAULT_KEYRING
        : undefined;
  await runOk([
    'debootstrap',
    '--variant=minbase',
    '--include=openssh-server',
    ...(keyring ? [`--keyring=${keyring}`] : []),
    SUITE,
    tmp,
    mirror.uri,
  ]);
  await configureBase(tmp);
  rmSync(BASE_DIR, { recursive: true, force: true });
  renameSync(tmp, BASE_DIR);
  writeFileSync(join(BASE_DIR, BASE_MARKER), `${new Date().toISOString()} ${mirror.uri}\n`);
  return true;
}

async function configureBase(root: string): Promise<void> {
  // Nodes talk to no mirror: the local repository is their only source.
  rmSync(join(root, 'etc/apt/sources.list'), { force: true });
  for (const f of readdirSync(join(root, 'etc/apt/sources.list.d')))
    rmSync(join(root, 'etc/apt/sources.list.d', f), { force: true });
  writeFileSync(join(root, 'etc/apt/sources.list.d/criu-lock-sandbox.list'), `${NODE_SOURCES_LINE}\n`);
  for (const f of readdirSync(join(root, 'var/lib/apt/lists'))) {
    if (f !== 'partial' && f !== 'lock') rmSync(join(root, 'var/lib/apt/lists', f), { force: true });
  }
  await run(['chroot', root, 'apt-get', 'clean'], { env: CHROOT_ENV });
  // Every node gets its own host key; none may come from the shared base.
  for (const f of readdirSync(join(root, 'etc/ssh')))
    if (f.startsWith('ssh_host_')) rmSync(join(root, 'etc/ssh', f));
  // No daemons started by maintainer scripts inside nodes.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  // /dev/ptmx must point into the node's own devpts instance.
  rmSync(join(root, 'dev/ptmx'), { force: true });
  symlinkSync('pts/ptmx', join(root, 'dev/ptmx'));
  mkdirSync(join(root, 'srv/repo'), { recursive: true });
  mkdirSync(join(root, 'run/sshd'), { recursive: true, mode: 0o755 });
  mkdirSync(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  mkdirSync(join(root, dirname(BASE_REPO_STAMP)), { recursive: true });
  for (const py of ['usr/bin/python3', 'usr/bin/python']) {
    if (existsSync(join(root, py))) {
      throw new CriuLockError('sandbox', `the base has ${py}; nodes must have no Python`, {
        hint: `remove ${BASE_DIR}.tmp and report this`,
      });
    }
  }
}

/**
 * Makes the base's apt lists describe the current repo: `apt-get update` once, in the base, so
 * every node shares the lists through the overlay and never runs it.
 */
export async function ensureBaseLists(
  repo: string,
  packagesSha256: string,
  log: (s: string) => void,
): Promise<boolean> {
  const stamp = join(BASE_DIR, BASE_REPO_STAMP);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === packagesSha256) return false;
  log('refreshing the base apt lists from the local repository');
  const mnt = join(BASE_DIR, 'srv/repo');
  mkdirSync(mnt, { recursive: true });
  await unmountUnder(mnt);
  await runOk(['mount', '--make-private', '--bind', '-o', 'ro', repo, mnt]);
  try {
    await runOk(['chroot', BASE_DIR, 'apt-get', 'update', '-q'], { env: CHROOT_ENV });
  } finally {
    await unmountUnder(mnt);
  }
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, `${packagesSha256}\n`);
  return true;
}
