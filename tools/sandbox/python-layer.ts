/**
 * The python3 variant of sandbox nodes, for tests that drive the nodes with Ansible (whose modules
 * need Python). The shared base stays Python-free: python3 lives in a separate overlay layer built
 * once on top of it, and only nodes created with `python: true` mount it
 * (`lowerdir=LAYER:BASE`). Their dpkg database says python3 is installed, as on a real node.
 *
 * The layer is the upper dir of a throwaway overlay over the base in which apt installed python3
 * from the machine's own mirror (as debootstrap did for the base), with apt's lists, caches and
 * sources pointed into a scratch directory, so the layer holds python3, dpkg's records of it and
 * nothing of apt's state: the base's lists (the local repository) show through unchanged.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { CHROOT_ENV, findMirror, SUITE } from './base.js';
import { runOk } from './exec.js';
import { BASE_DIR, BASE_MARKER } from './state.js';
import { unmountUnder } from './system.js';

/** Next to the base; rebuilt when the base is (its marker, beside it, records the base's). */
export const PYTHON_LAYER = `${BASE_DIR}-python3-layer`;
const LAYER_MARKER = `${PYTHON_LAYER}.complete`;
const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

function baseStamp(): string {
  return readFileSync(join(BASE_DIR, BASE_MARKER), 'utf8').trim();
}

/** The overlay `lowerdir` of a node: the python layer over the base, or the base alone. */
export function lowerDirs(python: boolean | undefined): string {
  return python ? `${PYTHON_LAYER}:${BASE_DIR}` : BASE_DIR;
}

export function pythonLayerReady(): boolean {
  return (
    existsSync(LAYER_MARKER) &&
    existsSync(join(BASE_DIR, BASE_MARKER)) &&
    readFileSync(LAYER_MARKER, 'utf8').trim() === baseStamp()
  );
}

/** Builds the layer once per base; returns true when it was (re)built. */
export async function ensurePythonLayer(log: (s: string) => void): Promise<boolean> {
  if (pythonLayerReady()) return false;
  if (!existsSync(join(BASE_DIR, BASE_MARKER))) {
    throw new CriuLockError('sandbox', `no base at ${BASE_DIR} to build the python3 layer on`, {
      hint: 'run `npm run sandbox -- up` first',
    });
  }
  const mirror = findMirror();
  const tmp = `${PYTHON_LAYER}.tmp`;
  await unmountUnder(tmp);
  rmSync(tmp, { recursive: true, force: true });
  const [upper, work, merged] = ['upper', 'work', 'merged'].map((s) => join(tmp, s)) as [
    string,
    string,
    string,
  ];
  for (const d of [upper, work, merged]) mkdirSync(d, { recursive: true });
  log(`building the python3 layer for Ansible nodes from ${mirror.uri} (${mirror.file}); this happens once`);
  await runOk([
    'mount',
    '--make-private',
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${BASE_DIR},upperdir=${upper},workdir=${work}`,
    merged,
  ]);
  try {
    await runOk(['mount', '--make-private', '-t', 'proc', 'proc', join(merged, 'proc')]);
    const scratch = '/tmp/criu-lock-python-layer';
    const s = join(merged, scratch);
    for (const d of ['lists/partial', 'archives/partial', 'parts', 'preferences.d'])
      mkdirSync(join(s, d), { recursive: true });
    const keyring = mirror.keyring && existsSync(mirror.keyring) ? mirror.keyring : DEFAULT_KEYRING;
    copyFileSync(keyring, join(s, 'keyring.gpg'));
    writeFileSync(
      join(s, 'sources.list'),
      `deb [signed-by=${scratch}/keyring.gpg] ${mirror.uri} ${SUITE} main\n`,
    );
    const apt = [
      'apt-get',
      '-q',
      '-o',
      `Dir::Etc::SourceList=${scratch}/sources.list`,
      '-o',
      `Dir::Etc::SourceParts=${scratch}/parts`,
      '-o',
      `Dir::Etc::PreferencesParts=${scratch}/preferences.d`,
      '-o',
      `Dir::State::Lists=${scratch}/lists`,
      '-o',
      `Dir::Cache::Archives=${scratch}/archives`,
      '-o',
      'Dir::Cache::pkgcache=',
      '-o',
      'Dir::Cache::srcpkgcache=',
    ];
    await runOk(['chroot', merged, ...apt, 'update'], { env: CHROOT_ENV });
    await runOk(['chroot', merged, ...apt, 'install', '-y', '--no-install-recommends', 'python3'], {
      env: CHROOT_ENV,
    });
    rmSync(s, { recursive: true, force: true });
    if (!existsSync(join(merged, 'usr/bin/python3'))) {
      throw new CriuLockError('sandbox', 'apt installed python3 but /usr/bin/python3 is missing');
    }
  } finally {
    await unmountUnder(merged);
  }
  rmSync(LAYER_MARKER, { force: true });
  rmSync(PYTHON_LAYER, { recursive: true, force: true });
  renameSync(upper, PYTHON_LAYER);
  rmSync(tmp, { recursive: true, force: true });
  writeFileSync(LAYER_MARKER, `${baseStamp()}\n`);
  return true;
}
