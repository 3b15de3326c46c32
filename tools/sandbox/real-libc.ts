import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { CHROOT_ENV } from './base.js';
import { download, policyVersions, privateApt } from './debian-fetch.js';
import { runOk } from './exec.js';
import { BASE_DIR } from './state.js';

/**
 * Real libc6 drift: Debian bookworm's point release and bookworm-security carry two builds of the
 * same glibc. The sandbox keeps both builds of libc6 and libc-bin (lockstep, like libfleet1 and
 * fleet-bin) beside the base and serves them from its local repository, so only the first run
 * needs the network. Versions are read with apt-cache policy, never hard-coded.
 */
export const LIBC_PACKAGES = ['libc6', 'libc-bin'] as const;

export interface RealLibc {
  /** The build the base has (debootstrap installed it): what golden and undrifted nodes run. */
  base: string;
  /** The other build: what a node with libc drift gets. */
  drift: string;
  /** Cached .deb files (both builds of both packages). */
  debs: string[];
}

export function realLibcDir(): string {
  return join(dirname(BASE_DIR), 'libc6-real');
}

export function cachedRealLibc(): RealLibc | undefined {
  const manifest = join(realLibcDir(), 'manifest.json');
  if (!existsSync(manifest)) return undefined;
  try {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { base: string; drift: string; debs: string[] };
    const debs = m.debs.map((f) => join(realLibcDir(), f));
    return debs.every((d) => existsSync(d)) ? { base: m.base, drift: m.drift, debs } : undefined;
  } catch {
    return undefined;
  }
}

/** Fetches (once) both real libc6 builds. The base must exist (its libc6 is the "base" build). */
export async function ensureRealLibc(log: (s: string) => void): Promise<RealLibc> {
  const have = cachedRealLibc();
  if (have) return have;
  const q = await runOk(['chroot', BASE_DIR, 'dpkg-query', '-W', '-f=${Version}', 'libc6'], {
    env: CHROOT_ENV,
  });
  const base = q.stdout.trim();
  const dir = realLibcDir();
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const apt = await privateApt(
    join(tmp, 'apt'),
    [{ lookup: 'bookworm' }, { lookup: 'bookworm-security' }],
    log,
  );
  const versions = await policyVersions(apt, 'libc6');
  const drift = versions.find((v) => v.version !== base);
  if (!versions.some((v) => v.version === base) || !drift) {
    throw new CriuLockError(
      'sandbox',
      `need two libc6 builds (the base's ${base} and another); bookworm and bookworm-security serve ${versions.map((v) => v.version).join(', ') || 'none'}`,
      {
        hint: 'the point release and bookworm-security carry the same build right now; real libc drift is unavailable',
      },
    );
  }
  const requests = [base, drift.version].flatMap((v) => LIBC_PACKAGES.map((p) => `${p}=${v}`));
  log(`fetching libc6 ${base} and ${drift.version} (${drift.suites.join(', ')})`);
  const debs = await download(apt, requests);
  const names: string[] = [];
  for (const d of debs) {
    copyFileSync(d, join(tmp, basename(d)));
    names.push(basename(d));
  }
  writeFileSync(
    join(tmp, 'manifest.json'),
    `${JSON.stringify({ base, drift: drift.version, debs: names.sort() }, null, 2)}\n`,
  );
  rmSync(join(tmp, 'apt'), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  const got = cachedRealLibc();
  if (!got) throw new CriuLockError('internal', `libc6 cache in ${dir} is incomplete`);
  return got;
}
