import type { PackageAction } from '../plan/plan-file.js';
import type { Transport } from '../transport/types.js';
import { readStoreFile } from './local-file.js';
import { debPath, sha256Of } from './manifest.js';
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
 * On the host, for each file: its sha256 (sha256sum's line) and its control fields (a line
 * `F<TAB>file<TAB>Package<TAB>Version<TAB>Architecture`, the fields empty when dpkg-deb cannot
 * read it). Missing files print nothing.
 */
export const UPLOAD_CHECK_SCRIPT = [
  'for f do',
  '  [ -f "$f" ] || continue',
  '  sha256sum -- "$f" || continue',
  `  printf 'F\t%s\t' "$f"`,
  `  dpkg-deb -W --showformat='\${Package}\t\${Version}\t\${Architecture}' "$f" 2>/dev/null`,
  `  printf '\n'`,
  'done',
  'exit 0',
].join('\n');

/**
 * Uploads the store files `actions` need, and checks each one on the host: its sha256 against
 * the one the plan names, and its control fields against the package, version and architecture
 * the action installs (a manifest can name any .deb; apt would install whatever it holds). A file
 * is hashed here before it is sent, so a store file that is not what its name says never leaves
 * this machine; one already on the host with the right sha256 is not sent again. On any mismatch
 * every upload is removed and nothing is installed.
 */
export async function uploadStoreFiles(
  t: Transport,
  dir: string,
  actions: readonly PackageAction[],
): Promise<UploadResult> {
  const byDeb = new Map(storeActions(actions).map((a) => [a.sha256, a]));
  const wanted = [...byDeb.keys()].sort();
  if (wanted.length === 0) return { ok: true, files: 0, bytes: 0, reused: 0 };
  const mk = await sh(t, 'umask 077 && mkdir -p -- "$1"', [REMOTE_STORE_DIR]);
  if (mk.exitCode !== 0) return { ok: false, error: `cannot create ${REMOTE_STORE_DIR}: ${lastLine(mk)}` };
  const there = await hostSha256(t, wanted.map(remoteDebPath));
  const fail = async (error: string): Promise<UploadResult> => {
    await removeStoreUploads(t, actions);
    return { ok: false, error };
  };
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
      content = readStoreFile(debPath(dir, sha));
    } catch (err) {
      return fail((err as Error).message);
    }
    if (sha256Of(content) !== sha)
      return fail(
        `package store file ${debPath(dir, sha)} does not hash to its name (tampered or corrupt); nothing was sent`,
      );
    const put = await t.putFile(remote, content, { mode: 0o600, become: true });
    if (put.exitCode !== 0) return fail(`upload of ${remote} failed: ${lastLine(put)}`);
    bytes += content.length;
  }
  const check = await sh(t, UPLOAD_CHECK_SCRIPT, wanted.map(remoteDebPath));
  const sums = new Map<string, string>();
  const fields = new Map<string, string>();
  for (const line of check.stdout.split('\n')) {
    const sum = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (sum?.[1] && sum[2]) sums.set(sum[2], sum[1]);
    const f = line.split('\t');
    if (f[0] === 'F' && f[1] !== undefined) fields.set(f[1], f.slice(2).join(' '));
  }
  const bad = wanted.filter((sha) => sums.get(remoteDebPath(sha)) !== sha);
  if (bad.length > 0) {
    const names = bad.map((s) => `${byDeb.get(s)!.package}=${byDeb.get(s)!.to}`);
    return fail(
      `refused: the uploaded .deb for ${names.join(', ')} does not have the sha256 the plan names (${bad.map((s) => s.slice(0, 12)).join(', ')}…); nothing was installed`,
    );
  }
  for (const sha of wanted) {
    const a = byDeb.get(sha)!;
    const [name, arch] = a.package.split(':');
    const says = fields.get(remoteDebPath(sha)) ?? '';
    if (says !== `${name} ${a.to} ${arch}`)
      return fail(
        `refused: the package store's .deb for ${a.package}=${a.to} says it is ${says.trim() === '' ? 'no readable package' : `${says} (package version architecture)`}; nothing was installed`,
      );
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
