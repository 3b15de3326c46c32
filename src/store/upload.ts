import { readFile } from 'node:fs/promises';
import type { PackageAction } from '../plan/plan-file.js';
import type { Transport } from '../transport/types.js';
import { debPath } from './manifest.js';
import { hostSha256, lastLine, sh } from './remote.js';
import { REMOTE_STORE_DIR, remoteDebPath } from './remote-paths.js';

export { REMOTE_STORE_DIR, remoteDebPath };

/** The plan's actions that install from the package store. */
export function storeActions(
  actions: readonly PackageAction[],
): (PackageAction & { source: 'store'; sha256: string })[] {
  return actions.filter(
    (a): a is PackageAction & { source: 'store'; sha256: string } =>
      a.source === 'store' && a.sha256 !== undefined,
  );
}

export type UploadResult =
  { ok: true; files: number; bytes: number; reused: number } | { ok: false; error: string };

/**
 * Uploads the store files `actions` need and checks each one's sha256 on the host, against the
 * sha256 the plan names. A file already there with the right sha256 is not sent again. On any
 * mismatch every upload is removed and nothing is installed.
 */
export async function uploadStoreFiles(
  t: Transport,
  dir: string,
  actions: readonly PackageAction[],
): Promise<UploadResult> {
  const wanted = [...new Set(storeActions(actions).map((a) => a.sha256))].sort();
  if (wanted.length === 0) return { ok: true, files: 0, bytes: 0, reused: 0 };
  const mk = await sh(t, 'umask 077 && mkdir -p -- "$1"', [REMOTE_STORE_DIR]);
  if (mk.exitCode !== 0) return { ok: false, error: `cannot create ${REMOTE_STORE_DIR}: ${lastLine(mk)}` };
  const there = await hostSha256(t, wanted.map(remoteDebPath));
  let bytes = 0;
  let reused = 0;
  for (const sha of wanted) {
    const remote = remoteDebPath(sha);
    if (there.get(remote) === sha) {
      reused++;
      continue;
    }
    let content: Buffer;
    try {
      content = await readFile(debPath(dir, sha));
    } catch (err) {
      await removeStoreUploads(t, actions);
      return {
        ok: false,
        error: `package store file ${debPath(dir, sha)} is unreadable: ${(err as Error).message}`,
      };
    }
    const put = await t.putFile(remote, content, { mode: 0o600, become: true });
    if (put.exitCode !== 0) {
      await removeStoreUploads(t, actions);
      return { ok: false, error: `upload of ${remote} failed: ${lastLine(put)}` };
    }
    bytes += content.length;
  }
  // Everything was already there and checked above: no second pass over the files.
  if (reused === wanted.length) return { ok: true, files: wanted.length, bytes: 0, reused };
  const check = await hostSha256(t, wanted.map(remoteDebPath));
  const bad = wanted.filter((sha) => check.get(remoteDebPath(sha)) !== sha);
  if (bad.length > 0) {
    await removeStoreUploads(t, actions);
    const names = storeActions(actions)
      .filter((a) => bad.includes(a.sha256))
      .map((a) => `${a.package}=${a.to}`);
    return {
      ok: false,
      error: `refused: the uploaded .deb for ${names.join(', ')} does not have the sha256 the plan names (${bad.map((s) => s.slice(0, 12)).join(', ')}…); nothing was installed`,
    };
  }
  return { ok: true, files: wanted.length, bytes, reused };
}

/** Removes the uploads of these actions (and the directory when it is empty). */
export async function removeStoreUploads(t: Transport, actions: readonly PackageAction[]): Promise<void> {
  const files = [...new Set(storeActions(actions).map((a) => remoteDebPath(a.sha256)))];
  if (files.length === 0) return;
  await sh(t, 'd=$1; shift; rm -f -- "$@"; rmdir -- "$d" 2>/dev/null; exit 0', [
    REMOTE_STORE_DIR,
    ...files,
  ]).catch(() => undefined);
}
