import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { mapLimit, runOk } from './exec.js';
import { cachedRealLibc } from './real-libc.js';
import type { Paths } from './state.js';

/**
 * The synthetic packages of the sandbox. Every .so is compiled here with gcc and carries its
 * version as a string, so every version gets its own ELF build-ID, like real library updates.
 */
const LIBDIR = 'usr/lib/x86_64-linux-gnu';
const MAINTAINER = 'criu-lock sandbox <sandbox@localhost>';
/** Fixed timestamp so rebuilding the repo gives byte-identical .debs (and a valid apt list cache). */
const SOURCE_DATE_EPOCH = '1700000000';

interface LibSpec {
  kind: 'lib';
  package: string;
  file: string;
  soname: string;
  symbol: string;
}
interface PkgBuild {
  package: string;
  version: string;
  arch: 'amd64' | 'all';
  /** false: built into debs-local/ only, served by no repository. */
  inRepo: boolean;
  description: string;
  depends?: string;
  build: (root: string, work: string) => Promise<void>;
  isLib: boolean;
}

const FLEET_VERSIONS = ['2.31-0ubuntu9.9', '2.31-0ubuntu9.14', '2.31-0ubuntu9.16'];
const EPOCH_VERSIONS = ['1.9-1', '1:1.0-1'];
const TILDE_VERSIONS = ['3.0~rc1-1', '3.0~rc2-1', '3.0-1'];

function libSource(symbol: string, what: string, version: string): string {
  return `/* synthetic library of the criu-lock sandbox */
const char *${symbol}(void) { return "${what} ${version}"; }
const char ${symbol}_ident[] __attribute__((used)) = "${what}-ident-${version}";
`;
}

const FLEET_TOOL_SOURCE = `/* fleet-tool: prints the libfleet version; "fleet-tool sleep" keeps libfleet mapped forever;
   "fleet-tool tick" too, and counts in its process name (/proc/PID/comm "tick N") so a restored
   process can be seen running without any open file */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
const char *fleet_version(void);
int main(int argc, char **argv) {
  const char *v = fleet_version();
  printf("%s\\n", v);
  fflush(stdout);
  if (argc > 1 && strcmp(argv[1], "sleep") == 0) {
    for (;;) { pause(); if (v[0] == 0) break; }
  }
  if (argc > 1 && strcmp(argv[1], "tick") == 0) {
    char name[16];
    for (unsigned long n = 0; v[0] != 0; n++) {
      snprintf(name, sizeof name, "tick %lu", n % 100000000UL);
      prctl(PR_SET_NAME, name, 0, 0, 0);
      usleep(100000);
    }
  }
  return 0;
}
`;

async function compileLib(spec: LibSpec, version: string, root: string, work: string): Promise<string> {
  const src = join(work, `${spec.soname}.c`);
  writeFileSync(src, libSource(spec.symbol, spec.package, version));
  const out = join(root, LIBDIR, spec.file);
  mkdirSync(dirname(out), { recursive: true });
  await runOk(
    ['gcc', '-shared', '-fPIC', '-O2', '-Wl,--build-id=sha1', `-Wl,-soname,${spec.soname}`, '-o', out, src],
    { cwd: work },
  );
  chmodSync(out, 0o644);
  return out;
}

function lib(spec: LibSpec, version: string, description: string, inRepo = true): PkgBuild {
  return {
    package: spec.package,
    version,
    arch: 'amd64',
    inRepo,
    description,
    isLib: true,
    build: async (root, work) => {
      await compileLib(spec, version, root, work);
    },
  };
}

const LIBFLEET: LibSpec = {
  kind: 'lib',
  package: 'libfleet1',
  file: 'libfleet.so.1',
  soname: 'libfleet.so.1',
  symbol: 'fleet_version',
};
const LIBEPOCH: LibSpec = {
  kind: 'lib',
  package: 'libepoch0',
  file: 'libepoch.so.0',
  soname: 'libepoch.so.0',
  symbol: 'epoch_version',
};
const LIBTILDE: LibSpec = {
  kind: 'lib',
  package: 'libtilde0',
  file: 'libtilde.so.0',
  soname: 'libtilde.so.0',
  symbol: 'tilde_version',
};
const LIBGOLDEN: LibSpec = {
  kind: 'lib',
  package: 'golden-extra',
  file: 'libgoldenextra.so.1',
  soname: 'libgoldenextra.so.1',
  symbol: 'goldenextra_version',
};

export function packageBuilds(): PkgBuild[] {
  const out: PkgBuild[] = [];
  for (const v of FLEET_VERSIONS) {
    out.push(lib(LIBFLEET, v, 'synthetic shared library (lockstep with fleet-bin, like libc6)'));
    out.push({
      package: 'fleet-bin',
      version: v,
      arch: 'amd64',
      inRepo: true,
      isLib: false,
      depends: `libfleet1 (= ${v})`,
      description: 'synthetic tool linked against libfleet.so.1 (like libc-bin)',
      build: async (root, work) => {
        const libRoot = join(work, 'libroot');
        const so = await compileLib(LIBFLEET, v, libRoot, work);
        const src = join(work, 'fleet-tool.c');
        writeFileSync(src, FLEET_TOOL_SOURCE.replace('fleet-tool:', `fleet-tool ${v}:`));
        const bin = join(root, 'usr/bin/fleet-tool');
        mkdirSync(dirname(bin), { recursive: true });
        await runOk(['gcc', '-O2', '-Wl,--build-id=sha1', '-o', bin, src, so], { cwd: work });
        chmodSync(bin, 0o755);
      },
    });
  }
  for (const v of EPOCH_VERSIONS)
    out.push(lib(LIBEPOCH, v, 'synthetic library whose newest version carries an epoch'));
  for (const v of TILDE_VERSIONS) out.push(lib(LIBTILDE, v, 'synthetic library with ~ pre-release versions'));
  out.push({
    package: 'fleet-doc',
    version: '1.0-1',
    arch: 'all',
    inRepo: true,
    isLib: false,
    description: 'synthetic documentation, no ELF files',
    build: (root) => {
      const d = join(root, 'usr/share/doc/fleet-doc');
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'README'), 'fleet-doc: plain text, no ELF.\n');
      return Promise.resolve();
    },
  });
  out.push(lib(LIBGOLDEN, '1.0-1', 'synthetic library installed from a local .deb only', false));
  return out;
}

/** Debian file name of a package: epoch dropped, as in the archive. */
export function debFileName(pkg: string, version: string, arch: string): string {
  return `${pkg}_${version.replace(/^\d+:/, '')}_${arch}.deb`;
}

/** Digest of everything that shapes the repo, so `up` rebuilds it only when the generator changed. */
function specHash(): string {
  const h = createHash('sha256');
  h.update('repo-v1\n');
  h.update(FLEET_TOOL_SOURCE);
  h.update(libSource('s', 'p', 'v'));
  for (const b of packageBuilds())
    h.update(`${b.package} ${b.version} ${b.arch} ${b.inRepo} ${b.depends ?? ''} ${b.description}\n`);
  // Real libc6 builds join the repo once they are cached (see real-libc.ts).
  for (const d of cachedRealLibc()?.debs ?? []) h.update(`real ${basename(d)}\n`);
  return h.digest('hex');
}

export interface RepoInfo {
  repo: string;
  debsLocal: string;
  /** sha256 of the repo's Packages file (the base's apt lists must match it). */
  packagesSha256: string;
  rebuilt: boolean;
}

/** Builds the local apt repository and the local-only .debs, unless an identical build exists. */
export async function ensureRepo(p: Paths, log: (s: string) => void): Promise<RepoInfo> {
  const want = specHash();
  const stamp = join(p.repo, '.spec-sha256');
  const packagesFile = join(p.repo, 'Packages');
  const info = (rebuilt: boolean): RepoInfo => ({
    repo: p.repo,
    debsLocal: p.debsLocal,
    packagesSha256: createHash('sha256').update(readFileSync(packagesFile)).digest('hex'),
    rebuilt,
  });
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want && existsSync(packagesFile))
    return info(false);

  log('building synthetic packages and the local apt repository');
  const repoTmp = `${p.repo}.tmp`;
  const localTmp = `${p.debsLocal}.tmp`;
  for (const d of [p.build, repoTmp, localTmp]) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
  }
  const builds = packageBuilds();
  await mapLimit(builds, 4, async (b, i) => {
    const work = join(p.build, `${i}-${b.package}`);
    const root = join(work, 'root');
    mkdirSync(join(root, 'DEBIAN'), { recursive: true });
    await b.build(root, work);
    const control = [
      `Package: ${b.package}`,
      `Version: ${b.version}`,
      `Architecture: ${b.arch}`,
      `Maintainer: ${MAINTAINER}`,
      `Installed-Size: 20`,
      ...(b.isLib ? ['Multi-Arch: same'] : []),
      ...(b.depends ? [`Depends: ${b.depends}`] : []),
      'Section: misc',
      'Priority: optional',
      `Description: ${b.description}`,
      ` Part of the criu-lock sandbox; version ${b.version}.`,
      '',
    ].join('\n');
    writeFileSync(join(root, 'DEBIAN/control'), control);
    if (b.isLib) writeFileSync(join(root, 'DEBIAN/triggers'), 'activate-noawait ldconfig\n');
    const out = join(b.inRepo ? repoTmp : localTmp, debFileName(b.package, b.version, b.arch));
    await runOk(['dpkg-deb', '--root-owner-group', '-Zgzip', '--build', root, out], {
      env: { ...process.env, SOURCE_DATE_EPOCH },
    });
  });
  for (const d of cachedRealLibc()?.debs ?? []) copyFileSync(d, join(repoTmp, basename(d)));
  const pk = await runOk(['apt-ftparchive', 'packages', '.'], { cwd: repoTmp });
  writeFileSync(join(repoTmp, 'Packages'), pk.stdout);
  const rel = await runOk(
    [
      'apt-ftparchive',
      '-o',
      'APT::FTPArchive::Release::Origin=criu-lock-sandbox',
      '-o',
      'APT::FTPArchive::Release::Label=criu-lock-sandbox',
      'release',
      '.',
    ],
    { cwd: repoTmp, env: { ...process.env, SOURCE_DATE_EPOCH } },
  );
  // Release carries a Date: line; drop it so identical packages give an identical Release.
  writeFileSync(join(repoTmp, 'Release'), rel.stdout.replace(/^Date: .*\n/m, ''));
  writeFileSync(join(repoTmp, '.spec-sha256'), `${want}\n`);
  for (const [tmp, dst] of [
    [repoTmp, p.repo],
    [localTmp, p.debsLocal],
  ] as const) {
    rmSync(dst, { recursive: true, force: true });
    renameSync(tmp, dst);
  }
  rmSync(p.build, { recursive: true, force: true });
  log(`repository: ${readdirSync(p.repo).filter((f) => f.endsWith('.deb')).length} packages in ${p.repo}`);
  return info(true);
}
