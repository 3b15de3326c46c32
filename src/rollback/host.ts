import { CriuLockError } from '../errors.js';
import { gatherFacts } from '../facts/gather.js';
import { APT_ENV } from '../apply/apt.js';
import { summariseOutput } from '../apply/modules/output.js';
import { isValidVersion } from '../debian/version.js';
import { quote, renderCommand } from '../shell/quote.js';
import type { CommandResult, Transport } from '../transport/types.js';
import {
  aptCacheFileName,
  parseManifest,
  serializeManifest,
  TX_ROOT,
  txDir,
  type CapturedDeb,
  type TxFile,
  type TxManifest,
} from './manifest.js';
import { toPrune, type CurrentState } from './planner.js';

/**
 * The host-side steps of capture, history and rollback, all through the Transport. Scripts are
 * fixed text plus words rendered by quote(); what hosts print is parsed strictly and capped.
 */

const MAX_MANIFEST_BYTES = 1_048_576;

async function script(t: Transport, text: string, timeoutMs = 300_000): Promise<CommandResult> {
  return t.exec(['sh', '-s'], { stdin: text, become: true, env: { ...APT_ENV }, timeoutMs });
}

export interface HostTransactions {
  manifests: TxManifest[];
  /** Directories under the tx root whose manifest could not be read, with why. */
  unreadable: Array<{ id: string; error: string }>;
  /** Disk used by every transaction on the host. */
  diskBytes: number;
}

/** Every transaction recorded on the host, and the disk they take. One round trip. */
export async function readTransactions(t: Transport): Promise<HostTransactions> {
  const text = [
    `root=${quote(TX_ROOT)}`,
    'if [ -d "$root" ]; then',
    '  for d in "$root"/*/; do',
    '    [ -d "$d" ] || continue',
    '    id=$(basename "$d")',
    '    printf "=== tx %s\\n" "$id"',
    `    head -c ${MAX_MANIFEST_BYTES} "$d/manifest.json" 2>/dev/null | tr -d '\\000'`,
    '    printf "\\n"',
    '  done',
    '  printf "=== du %s\\n" "$(du -sk "$root" | cut -f1)"',
    'else',
    '  printf "=== du 0\\n"',
    'fi',
    '',
  ].join('\n');
  const r = await script(t, text, 60_000);
  if (r.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: reading ${TX_ROOT} failed: ${summariseOutput(r)}`);
  return parseTransactions(r.stdout);
}

export function parseTransactions(stdout: string): HostTransactions {
  const out: HostTransactions = { manifests: [], unreadable: [], diskBytes: 0 };
  let id: string | null = null;
  let body: string[] = [];
  const flush = (): void => {
    if (id === null) return;
    const parsed = parseManifest(body.join('\n'));
    if (parsed.ok && parsed.manifest.id === id) out.manifests.push(parsed.manifest);
    else
      out.unreadable.push({
        id: id.slice(0, 80),
        error: parsed.ok ? `manifest id ${parsed.manifest.id} does not match its directory` : parsed.error,
      });
    id = null;
    body = [];
  };
  for (const line of stdout.split('\n')) {
    const tx = /^=== tx (.*)$/.exec(line);
    const du = /^=== du (\d+)$/.exec(line);
    if (tx || du) flush();
    if (tx) id = tx[1]!;
    else if (du) out.diskBytes = Number(du[1]) * 1024;
    else if (id !== null) body.push(line);
  }
  flush();
  return out;
}

/** Versions, auto marks and pin file sha256 now, for the given package keys. One round trip. */
export async function readCurrent(
  t: Transport,
  packages: readonly string[],
  pinPath: string,
): Promise<CurrentState & { arch: string }> {
  const lines = [
    `printf '=== versions\\n'`,
    ...(packages.length > 0
      ? [
          `${renderCommand(['dpkg-query', '-W', '-f', '${Package}:${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n', ...packages])} 2>/dev/null || true`,
        ]
      : []),
    `printf '=== auto\\n'`,
    'apt-mark showauto 2>/dev/null || true',
    `printf '=== pins\\n'`,
    `if [ -f ${quote(pinPath)} ]; then sha256sum < ${quote(pinPath)} | cut -d' ' -f1; fi`,
    `printf '=== arch\\n'`,
    'dpkg --print-architecture',
    '',
  ];
  const r = await script(t, lines.join('\n'), 60_000);
  if (r.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: reading the dpkg state failed: ${summariseOutput(r)}`);
  const parsed = parseCurrent(r.stdout, packages);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(parsed.arch))
    throw new CriuLockError('ssh', `${t.host}: reading the dpkg state printed no architecture`, {
      hint: 'the target needs sh, dpkg and apt',
    });
  return { ...parsed.state, arch: parsed.arch };
}

export function parseCurrent(
  stdout: string,
  packages: readonly string[],
): { state: CurrentState; arch: string } {
  const versions = new Map<string, string | null>(packages.map((p) => [p, null]));
  const autoNames = new Set<string>();
  let pinSha256: string | null = null;
  let arch = '';
  let section = '';
  for (const line of stdout.split('\n')) {
    const head = /^=== (\w+)$/.exec(line);
    if (head) {
      section = head[1]!;
      continue;
    }
    if (line === '') continue;
    if (section === 'versions') {
      const [key, version, status] = line.split('\t');
      // Only a fully installed package counts; config-files or half-installed ones are "not there".
      if (key && version && isValidVersion(version) && /^[ih]i/.test(status ?? ''))
        versions.set(key, version);
    } else if (section === 'auto') autoNames.add(line.trim());
    else if (section === 'pins' && /^[0-9a-f]{64}$/.test(line.trim())) pinSha256 = line.trim();
    else if (section === 'arch') arch = line.trim();
  }
  // apt-mark prints native-arch packages without :arch.
  const auto = new Set<string>();
  for (const key of packages) {
    const [name, a] = key.split(':');
    if (autoNames.has(key) || ((a === arch || a === 'all') && autoNames.has(name!))) auto.add(key);
  }
  return { state: { versions, auto, pinSha256 }, arch };
}

/**
 * Rebuilds `name:arch=version` from the files installed on the host (dpkg-repack style) and
 * returns the verified .deb; throws when it cannot. The last source of a replaced version.
 */
export type Rebuilder = (
  t: Transport,
  pkg: { name: string; arch: string; version: string },
) => Promise<{ bytes: Buffer; sha256: string }>;

export interface CaptureSpec {
  id: string;
  host: string;
  kind: TxManifest['kind'];
  lockDigest: string | null;
  rollbackOf: string | null;
  /** What the transaction will change: before (now) and after versions per package. */
  packages: ReadonlyArray<{ package: string; before: string | null; after: string | null }>;
  pinPath: string;
  /** sha256 of the pin file the transaction leaves (null: none). */
  pinsAfter: string | null;
  now: Date;
  /** Rebuild from the installed files when neither the apt cache, a transaction nor apt has the .deb. */
  rebuild?: Rebuilder | undefined;
}

export interface CaptureResult {
  manifest: TxManifest;
  /** Bytes of the new transaction directory. */
  bytes: number;
}

/**
 * Records what the transaction will replace under /var/lib/criu-lock/tx/<id>/: the installed
 * versions' .debs (apt cache when its sha256 matches the apt lists, else apt-get download), the
 * pin file, the auto marks and the build-IDs of the packages' ELF files. Throws CriuLockError when
 * anything cannot be captured; the partial directory is removed, so the host is as before.
 */
export async function captureTransaction(
  t: Transport,
  spec: CaptureSpec,
  now: CurrentState,
): Promise<CaptureResult> {
  const dir = txDir(spec.id);
  const keep = spec.packages.filter(
    (p): p is { package: string; before: string; after: string | null } => p.before !== null,
  );
  const lines = [
    'set -u',
    `dir=${quote(dir)}`,
    `root=${quote(TX_ROOT)}`,
    'umask 022',
    'mkdir -p "$dir/debs" || exit 70',
    // cap KEY VERSION FILE: the apt cache when its sha256 is the one the apt lists publish, else the same
    // .deb an earlier transaction captured (hard link), else apt-get download.
    'cap() {',
    '  want=$(apt-cache show "$1=$2" 2>/dev/null | sed -n "s/^SHA256: //p" | head -n 1)',
    '  cache="/var/cache/apt/archives/$3"',
    '  if [ -n "$want" ] && [ -f "$cache" ] && [ "$(sha256sum < "$cache" | cut -d" " -f1)" = "$want" ]; then',
    '    cp "$cache" "$dir/debs/$3" || { printf "fail\\t%s\\tcopy from the apt cache failed\\n" "$1"; return; }',
    '    src=apt-cache',
    '  elif prev=$(ls -1 "$root"/*/debs/"$3" 2>/dev/null | head -n 1) && [ -n "$prev" ] && { [ -z "$want" ] || [ "$(sha256sum < "$prev" | cut -d" " -f1)" = "$want" ]; }; then',
    '    ln -f "$prev" "$dir/debs/$3" 2>/dev/null || cp "$prev" "$dir/debs/$3" || { printf "fail\\t%s\\tcopy from %s failed\\n" "$1" "$prev"; return; }',
    '    src=transaction',
    '  else',
    '    out=$(cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User=root "$1=$2" 2>&1) || {',
    '      printf "fail\\t%s\\t%s\\n" "$1" "$(printf "%s" "$out" | grep -E "^(E|W):" | tail -n 2 | tr "\\t\\n" "  ")"; return; }',
    '    src=apt-download',
    '  fi',
    '  [ -f "$dir/debs/$3" ] || { printf "fail\\t%s\\tno %s after the download\\n" "$1" "$3"; return; }',
    '  got=$(sha256sum < "$dir/debs/$3" | cut -d" " -f1)',
    '  fields=$(dpkg-deb -f "$dir/debs/$3" Package Version Architecture | sed "s/^[A-Za-z]*: //" | tr "\\n" " ")',
    '  printf "ok\\t%s\\t%s\\t%s\\t%s\\t%s\\n" "$1" "$src" "$got" "$want" "$fields"',
    '}',
    ...keep.map((p) => {
      const [name, arch] = p.package.split(':');
      return `cap ${quote(p.package)} ${quote(p.before)} ${quote(aptCacheFileName(name!, p.before, arch!))}`;
    }),
    `if [ -f ${quote(spec.pinPath)} ]; then cp ${quote(spec.pinPath)} "$dir/pins.before" || exit 71; fi`,
    ...(keep.length > 0
      ? [
          `printf '=== files\\n'`,
          `${renderCommand(['dpkg-query', '-L', ...keep.map((p) => p.package)])} 2>/dev/null || true`,
        ]
      : []),
    '',
  ];
  const fail = async (why: string): Promise<never> => {
    await t.exec(['rm', '-rf', '--', dir], { become: true });
    throw new CriuLockError('capture', `${t.host}: capture failed, nothing was changed: ${why}`, {
      hint: 'make the installed versions downloadable (apt sources) or keep their .debs in /var/cache/apt/archives; or apply --no-capture (no rollback possible)',
    });
  };
  const r = await script(t, lines.join('\n'), 900_000);
  if (r.exitCode !== 0) return fail(`the capture script failed: ${summariseOutput(r)}`);
  const debs = new Map<string, CapturedDeb>();
  const failed = new Map<string, string>();
  const paths: string[] = [];
  let inFiles = false;
  for (const line of r.stdout.split('\n')) {
    if (line === '=== files') {
      inFiles = true;
      continue;
    }
    if (inFiles) {
      if (line.startsWith('/') && !line.includes('\0')) paths.push(line);
      continue;
    }
    const f = line.split('\t');
    if (f[0] === 'fail') {
      failed.set(f[1] ?? '?', (f[2] ?? '').trim() || 'cannot get its .deb');
      continue;
    }
    if (f[0] !== 'ok') continue;
    const [, key, source, got, want, fields] = f;
    const p = keep.find((x) => x.package === key);
    if (!p || !got || !/^[0-9a-f]{64}$/.test(got)) continue;
    const [name, arch] = p.package.split(':');
    if (want && want !== got)
      return fail(`${p.package}=${p.before}: sha256 ${got} differs from the apt lists' ${want}`);
    const [fp, fv, fa] = (fields ?? '').trim().split(' ');
    if (fp !== name || fv !== p.before || fa !== arch)
      return fail(`${p.package}=${p.before}: the .deb says ${fp ?? '?'} ${fv ?? '?'} ${fa ?? '?'}`);
    debs.set(p.package, {
      file: aptCacheFileName(name!, p.before, arch!),
      sha256: got,
      source: source === 'apt-cache' || source === 'transaction' ? source : 'apt-download',
    });
  }
  for (const p of keep) {
    if (debs.has(p.package)) continue;
    const [name, arch] = p.package.split(':') as [string, string];
    const why = failed.get(p.package) ?? 'no .deb from the apt cache or apt-get download';
    if (!spec.rebuild) return fail(`${p.package}=${p.before}: ${why}`);
    try {
      const deb = await spec.rebuild(t, { name, arch, version: p.before });
      const file = aptCacheFileName(name, p.before, arch);
      const w = await t.putFile(`${dir}/debs/${file}`, deb.bytes, { mode: 0o644, become: true });
      if (w.exitCode !== 0)
        return fail(`${p.package}=${p.before}: storing the rebuilt .deb failed: ${summariseOutput(w)}`);
      debs.set(p.package, { file, sha256: deb.sha256, source: 'rebuilt' });
    } catch (err) {
      return fail(
        `${p.package}=${p.before}: ${why}; rebuilding it from the installed files failed too: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  const missing = keep.filter((p) => !debs.has(p.package));
  if (missing.length > 0)
    return fail(`no .deb captured for ${missing.map((p) => `${p.package}=${p.before}`).join(', ')}`);

  const files: TxFile[] = [];
  if (paths.length > 0) {
    const owners = await ownersOf(
      t,
      paths,
      keep.map((p) => p.package),
    );
    const facts = await gatherFacts(t, { paths });
    for (const [path, fact] of facts.files) {
      if (fact.kind !== 'elf') continue;
      const owner = owners.get(path);
      if (owner) files.push({ path, package: owner, buildId: fact.buildId ?? null });
    }
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
  }
  const manifest: TxManifest = {
    manifestVersion: 1,
    id: spec.id,
    host: spec.host,
    kind: spec.kind,
    createdAt: spec.now.toISOString(),
    lockDigest: spec.lockDigest,
    rollbackOf: spec.rollbackOf,
    status: 'captured',
    packages: spec.packages.map((p) => ({
      package: p.package,
      before: p.before,
      after: p.after,
      auto: p.before === null ? null : now.auto.has(p.package),
      deb: debs.get(p.package) ?? null,
    })),
    pins: { path: spec.pinPath, before: now.pinSha256, after: spec.pinsAfter },
    files,
  };
  const w = await t.putFile(`${dir}/manifest.json`, serializeManifest(manifest), {
    mode: 0o644,
    become: true,
  });
  if (w.exitCode !== 0) return fail(`writing the manifest failed: ${summariseOutput(w)}`);
  const du = await t.exec(['du', '-sk', dir], { become: true });
  return { manifest, bytes: Number(/^(\d+)/.exec(du.stdout)?.[1] ?? 0) * 1024 };
}

/** Which of the given packages owns each path (dpkg -S on the listed files, one round trip). */
async function ownersOf(
  t: Transport,
  paths: readonly string[],
  packages: readonly string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const r = await t.exec(['dpkg-query', '-S', ...paths], { timeoutMs: 120_000 });
  const byName = new Map<string, string>();
  for (const key of packages) byName.set(key, key).set(key.split(':')[0]!, key);
  for (const line of r.stdout.split('\n')) {
    const m = /^(.+?): (\/.*)$/.exec(line);
    if (!m) continue;
    for (const owner of m[1]!.split(', ')) {
      const key = byName.get(owner);
      if (key) {
        out.set(m[2]!, key);
        break;
      }
    }
  }
  return out;
}

/** Marks a transaction finished and verified (rewrites its manifest). */
export async function markApplied(t: Transport, m: TxManifest): Promise<void> {
  const w = await t.putFile(`${txDir(m.id)}/manifest.json`, serializeManifest({ ...m, status: 'applied' }), {
    mode: 0o644,
    become: true,
  });
  if (w.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: updating transaction ${m.id} failed: ${summariseOutput(w)}`);
}

/** Deletes all but the newest `keep` transactions; returns the ids deleted and the disk left. */
export async function pruneTransactions(
  t: Transport,
  keep: number,
): Promise<{ pruned: string[]; diskBytes: number; count: number }> {
  const state = await readTransactions(t);
  const ids = [
    ...state.manifests.map((m) => m.id),
    ...state.unreadable.map((u) => u.id).filter((id) => /^\d{8}T\d{6}Z-[0-9a-f]{6}$/.test(id)),
  ];
  const pruned = toPrune(ids, keep);
  if (pruned.length === 0) return { pruned, diskBytes: state.diskBytes, count: ids.length };
  const r = await script(
    t,
    [
      ...pruned.map((id) => renderCommand(['rm', '-rf', '--', txDir(id)])),
      `du -sk ${quote(TX_ROOT)} | cut -f1`,
      '',
    ].join('\n'),
    120_000,
  );
  if (r.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: pruning old transactions failed: ${summariseOutput(r)}`);
  return {
    pruned,
    diskBytes: Number(/(\d+)\s*$/.exec(r.stdout)?.[1] ?? 0) * 1024,
    count: ids.length - pruned.length,
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
