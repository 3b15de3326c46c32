import { CriuLockError } from '../errors.js';
import { factsFromProbe } from '../facts/gather.js';
import { renderProbeScript, type ProbeRequest } from '../facts/probe-script.js';
import type { HostFacts } from '../facts/types.js';
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
  TxId,
  txDir,
  type CapturedDeb,
  type TxFile,
  type TxManifest,
} from './manifest.js';
import { unfinishedProblem, type CurrentState } from './planner.js';

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
    // du -sk prints KiB; more than 15 digits is no disk's, and is left out rather than shown.
    else if (du) out.diskBytes = du[1]!.length > 15 ? 0 : Number(du[1]) * 1024;
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
  const r = await script(t, [...currentLines(packages, pinPath), ''].join('\n'), 60_000);
  if (r.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: reading the dpkg state failed: ${summariseOutput(r)}`);
  return currentOf(t, r.stdout, packages);
}

/** The state read's script (readCurrent); the dpkg-query answer is kept in $cur for the capture's guard. */
function currentLines(packages: readonly string[], pinPath: string): string[] {
  return [
    `printf '=== versions\\n'`,
    ...(packages.length > 0
      ? [
          `cur=$(${renderCommand(['dpkg-query', '-W', '-f', '${Package}:${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n', ...packages])} 2>/dev/null)`,
          '[ -z "$cur" ] || printf "%s\\n" "$cur"',
        ]
      : ['cur=']),
    `printf '=== auto\\n'`,
    'apt-mark showauto 2>/dev/null || true',
    `printf '=== pins\\n'`,
    `if [ -f ${quote(pinPath)} ]; then sha256sum < ${quote(pinPath)} | cut -d' ' -f1; fi`,
    `printf '=== arch\\n'`,
    'dpkg --print-architecture',
  ];
}

/** The state read's answer, checked: throws when it names no architecture. */
function currentOf(
  t: Transport,
  stdout: string,
  packages: readonly string[],
): CurrentState & { arch: string } {
  const parsed = parseCurrent(stdout, packages);
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
  const unfinished = new Map<string, string>();
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
      // dpkg's status letter (the abbreviation's second): installed, or installed with triggers
      // to run, counts with its version; not-installed and config-files are absent; unpacked,
      // half-installed and half-configured are neither (refused by capture and rollback).
      const st = status?.[1];
      if (key && version && isValidVersion(version)) {
        if (st === 'i' || st === 'W' || st === 't') versions.set(key, version);
        else if (st === 'U' || st === 'H' || st === 'F') unfinished.set(key, `${status!.trim()} ${version}`);
      }
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
  return { state: { versions, auto, pinSha256, unfinished }, arch };
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
  /** Keep the newest `keep` transactions once this one is written (retention in the same round trip). */
  keep?: number | undefined;
}

export interface CaptureResult {
  manifest: TxManifest;
  /** Bytes of the new transaction directory. */
  bytes: number;
  /** What retention left, when the spec asked for it (`keep`). */
  retention?: Retention;
}

/**
 * Records what the transaction will replace under /var/lib/criu-lock/tx/<id>/: the installed
 * versions' .debs (apt cache when its sha256 matches the apt lists, else apt-get download), the
 * pin file, the auto marks and the build-IDs of the packages' ELF files. Throws CriuLockError when
 * anything cannot be captured; the partial directory is removed, so the host is as before.
 *
 * Two round trips (issue 14): one script fetches every .deb and reads the build-IDs (the facts
 * probe for the packages' files, appended), one writes the manifest, measures and prunes
 * (readAndCapture puts the state read in the first one too). On the
 * node: one `apt-cache show` and one `apt-get download` for all packages (one per package only
 * when the joint download fails, to name the package), and one sha256 per captured file.
 */
export async function captureTransaction(
  t: Transport,
  spec: CaptureSpec,
  now: CurrentState,
): Promise<CaptureResult> {
  const capture = prepareCapture(t, spec);
  return capture.finish(await script(t, capture.text, CAPTURE_TIMEOUT_MS), spec, now);
}

const CAPTURE_TIMEOUT_MS = 900_000;

/**
 * readCurrent, then captureTransaction with what it read, in one script when the host is as the
 * plan saw it: the capture part runs with the before-versions the plan expects (`planned`), behind
 * a guard that compares them with dpkg's answer read in the same script. When they differ (the
 * host moved since the plan), the script stops after the state read, before making anything, and
 * the capture runs again with the versions the host has. So the manifest always holds what the
 * host had right before the capture, as with two separate round trips; the common case saves one.
 * `specFor` makes the spec from that state (the manifest's before-versions, marks and pins).
 */
export async function readAndCapture(
  t: Transport,
  planned: ReadonlyArray<{ package: string; before: string | null }>,
  pinPath: string,
  specFor: (now: CurrentState) => CaptureSpec,
): Promise<CaptureResult> {
  const packages = planned.map((p) => p.package);
  const guess = specFor({
    versions: new Map(planned.map((p) => [p.package, p.before])),
    auto: new Set(),
    pinSha256: null,
  });
  const capture = prepareCapture(t, guess);
  // What the guard expects dpkg-query to say of the installed ones: "key<TAB>version", sorted
  // bytewise (keys and versions are ASCII, where JavaScript's order is sort's in the C locale).
  const expected = replaced(guess)
    .map((p) => `${p.package}\t${p.before}`)
    .sort()
    .join('\n');
  const text = [
    ...currentLines(packages, pinPath),
    `got=$(printf "%s\\n" "$cur" | awk -F '\\t' '$3 ~ /^[ih]i/ { print $1 "\\t" $2 }' | LC_ALL=C sort)`,
    `if [ "$got" != ${quote(expected)} ]; then printf '${MOVED_MARK}\\n'; exit 0; fi`,
    `printf '${CAPTURE_PART_MARK}\\n'`,
    capture.text,
  ].join('\n');
  const r = await script(t, text, CAPTURE_TIMEOUT_MS);
  const at = (mark: string): number => r.stdout.indexOf(`\n${mark}\n`);
  const cut = at(CAPTURE_PART_MARK);
  const stateEnd = cut >= 0 ? cut : at(MOVED_MARK);
  if (stateEnd < 0)
    throw new CriuLockError('ssh', `${t.host}: reading the dpkg state failed: ${summariseOutput(r)}`);
  // Only the capture part makes the transaction's directory.
  const removeGuess = async (): Promise<void> => {
    if (cut >= 0) await capture.discard();
  };
  let now: CurrentState;
  try {
    now = currentOf(t, r.stdout.slice(0, stateEnd + 1), packages);
  } catch (e) {
    await removeGuess();
    throw e;
  }
  // A package dpkg holds half-way would be recorded as absent, and a rollback would remove it.
  const half = unfinishedProblem(packages, now);
  if (half) {
    await removeGuess();
    throw new CriuLockError('capture', `${t.host}: capture failed, nothing was changed: ${half}`, {
      hint: 'finish the interrupted dpkg run on the host (dpkg --configure -a, or apt-get -f install), then plan again',
    });
  }
  const spec = specFor(now);
  if (cut >= 0 && sameReplaced(spec, guess)) {
    const rest = r.stdout.slice(cut + CAPTURE_PART_MARK.length + 2);
    return capture.finish({ ...r, stdout: rest }, spec, now);
  }
  // The host is not as planned (or the guard and this parse disagree): capture what it has now.
  await removeGuess();
  return captureTransaction(t, spec, now);
}

/** The combined script's marks: the capture part follows, or the host moved (readAndCapture). */
const CAPTURE_PART_MARK = '=== capture';
const MOVED_MARK = '=== moved';

/** Whether two specs fetch the same versions (the capture script depends on nothing else of them). */
function sameReplaced(a: CaptureSpec, b: CaptureSpec): boolean {
  const x = replaced(a);
  const y = replaced(b);
  return x.length === y.length && x.every((p, i) => p.package === y[i]!.package && p.before === y[i]!.before);
}

/** The versions a capture fetches: every package installed before the transaction. */
function replaced(spec: CaptureSpec): Array<{ package: string; before: string; after: string | null }> {
  return spec.packages.filter(
    (p): p is { package: string; before: string; after: string | null } => p.before !== null,
  );
}

/**
 * The capture script for `spec`, and what reads its answer into the transaction. `finish` takes the
 * spec again (the manifest's fields) with the state it was made from; its replaced versions must
 * be the ones the script fetched.
 */
function prepareCapture(
  t: Transport,
  planned: CaptureSpec,
): {
  text: string;
  finish: (r: CommandResult, spec: CaptureSpec, now: CurrentState) => Promise<CaptureResult>;
  /** Removes what the script made: the transaction's directory. */
  discard: () => Promise<void>;
} {
  const dir = txDir(planned.id);
  const keep = replaced(planned);
  const probe: ProbeRequest = { elfOf: keep.map((p) => p.package) };
  const discard = async (): Promise<void> => {
    await t.exec(['rm', '-rf', '--', dir], { become: true });
  };
  const fail = async (why: string, hint?: string): Promise<never> => {
    await discard();
    throw new CriuLockError('capture', `${t.host}: capture failed, nothing was changed: ${why}`, {
      hint:
        hint ??
        'make the installed versions downloadable (apt sources) or keep their .debs in /var/cache/apt/archives; or apply --no-capture (no rollback possible)',
    });
  };
  return {
    text: captureScript(dir, keep, planned.pinPath, probe),
    finish: (r, spec, now) => finishCapture(t, { r, spec, now, dir, keep, probe, fail }),
    discard,
  };
}

async function finishCapture(
  t: Transport,
  c: {
    r: CommandResult;
    spec: CaptureSpec;
    now: CurrentState;
    dir: string;
    keep: ReadonlyArray<{ package: string; before: string }>;
    probe: ProbeRequest;
    fail: (why: string, hint?: string) => Promise<never>;
  },
): Promise<CaptureResult> {
  const { r, spec, now, dir, keep, probe, fail } = c;
  if (r.exitCode !== 0) return fail(`the capture script failed: ${summariseOutput(r)}`);
  const cut = r.stdout.indexOf(`\n${PROBE_MARK}\n`);
  const debLines = (cut < 0 ? r.stdout : r.stdout.slice(0, cut)).split('\n');
  const debs = new Map<string, CapturedDeb>();
  const failed = new Map<string, string>();
  for (const line of debLines) {
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
    // What a download into a full file system leaves: an empty file, not another package's bytes.
    if (got === EMPTY_SHA256)
      return fail(
        `${p.package}=${p.before}: the captured .deb is empty`,
        `${TX_ROOT} on the host is probably out of space (df -h ${TX_ROOT}); free some, or lower --keep-transactions, then apply again`,
      );
    if (want && want !== got)
      return fail(`${p.package}=${p.before}: sha256 ${got} differs from the apt lists' ${want}`);
    // "=": the script found the hash in the apt lists' record for exactly this key and version
    // (checked just above: want is that record's hash); else the .deb's own fields must name them.
    if (fields === '=') {
      if (!want) return fail(`${p.package}=${p.before}: the .deb's fields were not read`);
    } else {
      const [fp, fv, fa] = (fields ?? '').trim().split(' ');
      if (fp !== name || fv !== p.before || fa !== arch)
        return fail(`${p.package}=${p.before}: the .deb says ${fp ?? '?'} ${fv ?? '?'} ${fa ?? '?'}`);
    }
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
  if (keep.length > 0) {
    if (cut < 0) return fail('the capture script printed no build-IDs');
    let facts: HostFacts;
    try {
      facts = factsFromProbe(t, probe, { ...r, stdout: r.stdout.slice(cut + PROBE_MARK.length + 2) }).facts;
    } catch (err) {
      return fail(`reading the build-IDs failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    // A path two of the packages list is recorded once, for the first of them.
    const seen = new Set<string>();
    for (const p of keep) {
      for (const f of facts.packageFiles.get(p.package) ?? []) {
        if (f.kind !== 'elf' || seen.has(f.path)) continue;
        seen.add(f.path);
        files.push({ path: f.path, package: p.package, buildId: f.buildId ?? null });
      }
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
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
  // What the host answered becomes the manifest: if that does not validate, the partial
  // transaction is removed like any other failed capture.
  let text: string;
  try {
    text = serializeManifest(manifest);
  } catch (e) {
    return fail(
      `the host's answers make no valid transaction record (${(e as Error).message.split('\n')[0]})`,
    );
  }
  // The manifest, the transaction's size and (with `keep`) retention: one round trip.
  const w = await t.exec(
    ['sh', '-c', FINISH_SCRIPT, 'criu-lock-tx-finish', dir, TX_ROOT, String(spec.keep ?? -1)],
    { stdin: text, become: true, env: { LC_ALL: 'C' }, timeoutMs: 120_000 },
  );
  if (w.exitCode === 3) return fail(`writing the manifest failed: ${summariseOutput(w)}`);
  if (w.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: pruning old transactions failed: ${summariseOutput(w)}`);
  const bytes = Number(/^txdu\t(\d{1,15})$/m.exec(w.stdout)?.[1] ?? 0) * 1024;
  return { manifest, bytes, ...(spec.keep === undefined ? {} : { retention: parseRetention(w.stdout) }) };
}

/** sha256 of no bytes at all. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Marks the probe's output at the end of the capture script's. */
const PROBE_MARK = '=== probe';
/** The capture script's first line (so a recording transport can tell it apart). */
export const CAPTURE_MARK = '# criu-lock: rollback capture';

/** The capture script: every replaced version's .deb, the pin file, then the build-ID probe. */
function captureScript(
  dir: string,
  keep: ReadonlyArray<{ package: string; before: string }>,
  pinPath: string,
  probe: ProbeRequest,
): string {
  const pkgs = keep.map((p, i) => {
    const [name, arch] = p.package.split(':');
    return {
      i,
      key: quote(p.package),
      ver: quote(p.before),
      file: quote(aptCacheFileName(name!, p.before, arch!)),
    };
  });
  return [
    CAPTURE_MARK,
    'set -u',
    `dir=${quote(dir)}`,
    `root=${quote(TX_ROOT)}`,
    'umask 022',
    'mkdir -p "$dir/debs" || exit 70',
    // The hash alone, cut by the shell (one exec per file, not two).
    'sha() { set -- "$(sha256sum < "$1")"; printf "%s" "${1%% *}"; }',
    // want KEY VERSION: the SHA256 the apt lists publish for it (first record), from one apt-cache run.
    'want() {',
    '  w= p= a= v=',
    '  while IFS= read -r l; do',
    '    case $l in',
    '      "Package: "*) p=${l#Package: } a= v= ;;',
    '      "Architecture: "*) a=${l#Architecture: } ;;',
    '      "Version: "*) v=${l#Version: } ;;',
    '      "SHA256: "*) if [ -z "$w" ] && [ "$p:$a" = "$1" ] && [ "$v" = "$2" ]; then w=${l#SHA256: }; fi ;;',
    '    esac',
    '  done < "$dir/.want"',
    '}',
    // reuse FILE WANT: the apt cache's copy when its sha256 is the one the apt lists publish, else
    // the same .deb an earlier transaction captured (hard link). Sets src and got (one hash).
    'reuse() {',
    '  src= got= f=$dir/debs/$1',
    '  if [ -n "$2" ] && [ -f "/var/cache/apt/archives/$1" ] && cp "/var/cache/apt/archives/$1" "$f" && got=$(sha "$f") && [ "$got" = "$2" ]; then src=apt-cache; return; fi',
    '  rm -f -- "$f"',
    '  for prev in "$root"/*/debs/"$1"; do',
    '    [ -f "$prev" ] && [ "$prev" != "$f" ] || continue',
    '    { ln -f "$prev" "$f" 2>/dev/null || cp "$prev" "$f"; } && got=$(sha "$f") && { [ -z "$2" ] || [ "$got" = "$2" ]; } && { src=transaction; return; }',
    '    rm -f -- "$f"',
    '  done',
    '}',
    'dl() { out=$(cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User=root "$@" 2>&1); }',
    'why() { printf "%s" "$out" | grep -E "^(E|W):" | tail -n 2 | tr "\\t\\n" "  "; }',
    // report KEY FILE SRC GOT WANT WHY: the ok line or the fail line. Its last field is "=" when the
    // .deb's hash is the one the apt lists publish for exactly this package, version and
    // architecture (the record names them), else the .deb's own fields, read by dpkg-deb.
    'report() {',
    '  if [ -n "$3" ] && [ -f "$dir/debs/$2" ]; then',
    '    if [ -n "$5" ] && [ "$4" = "$5" ]; then fields="="',
    '    else fields=$(dpkg-deb -f "$dir/debs/$2" Package Version Architecture | sed "s/^[A-Za-z]*: //" | tr "\\n" " "); fi',
    '    printf "ok\\t%s\\t%s\\t%s\\t%s\\t%s\\n" "$1" "$3" "$4" "$5" "$fields"',
    '  else printf "fail\\t%s\\t%s\\n" "$1" "$6"; fi',
    '}',
    ...(pkgs.length > 0
      ? [
          `apt-cache show ${pkgs.map((p) => `${p.key}=${p.ver}`).join(' ')} 2>/dev/null | grep -E "^(Package|Architecture|Version|SHA256): " > "$dir/.want"`,
          ...pkgs.flatMap((p) => [
            `want ${p.key} ${p.ver}; w${p.i}=$w; reuse ${p.file} "$w"; s${p.i}=$src g${p.i}=$got y${p.i}=`,
          ]),
          // Everything still missing in one apt-get download; one per package only if that fails.
          'set --',
          ...pkgs.map((p) => `[ -n "$s${p.i}" ] || set -- "$@" ${p.key}=${p.ver}`),
          'ok=1; if [ $# -gt 0 ]; then dl "$@" || ok=; fi',
          ...pkgs.map(
            (p) =>
              `if [ -z "$s${p.i}" ]; then if [ -z "$ok" ] && [ ! -f "$dir/debs/"${p.file} ]; then dl ${p.key}=${p.ver} || y${p.i}=$(why); fi; if [ -f "$dir/debs/"${p.file} ]; then s${p.i}=apt-download g${p.i}=$(sha "$dir/debs/"${p.file}); elif [ -z "$y${p.i}" ]; then y${p.i}="no "${p.file}" after the download"; fi; fi`,
          ),
          'rm -f -- "$dir/.want"',
          ...pkgs.map((p) => `report ${p.key} ${p.file} "$s${p.i}" "$g${p.i}" "$w${p.i}" "$y${p.i}"`),
        ]
      : []),
    `if [ -f ${quote(pinPath)} ]; then cp ${quote(pinPath)} "$dir/pins.before" || exit 71; fi`,
    ...(pkgs.length > 0 ? [`printf '${PROBE_MARK}\\n'`, '(', renderProbeScript(probe).trimEnd(), ')'] : []),
    '',
  ].join('\n');
}

/**
 * `sh -c FINISH criu-lock-tx-finish DIR ROOT KEEP` with the manifest on stdin: writes it atomically
 * (exit 3 when it cannot), prints the transaction's size, then with KEEP ≥ 0 deletes all but the
 * newest KEEP transactions (PRUNE) and prints what is left.
 */
const PRUNE = [
  // Transaction directories are named by id (UTC time first), so the glob's order is their age.
  'tx_ids() { for d in "$root"/*/; do id=${d%/}; id=${id##*/}; case $id in ' +
    '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) [ -d "$d" ] && printf "%s\\n" "$id" ;; esac; done; }',
  'n=0; for id in $(tx_ids); do n=$((n + 1)); done',
  'drop=$((n - keep)); i=0; rc=0',
  'for id in $(tx_ids); do',
  '  i=$((i + 1)); [ $i -le $drop ] || break',
  '  rm -rf -- "${root:?}/$id" || rc=1',
  '  printf "pruned\\t%s\\n" "$id"',
  'done',
  '[ $drop -gt 0 ] || drop=0',
  'printf "kept\\t%s\\n" $((n - drop))',
  'printf "du\\t%s\\n" "$(du -sk "$root" | cut -f1)"',
  'exit $rc',
].join('\n');

export const FINISH_SCRIPT = [
  'dir=$1 root=$2 keep=$3',
  'tmp=$(mktemp "$dir/.manifest.XXXXXX") || exit 3',
  `{ cat > "$tmp" && chmod 0644 "$tmp" && { sync -- "$tmp" 2>/dev/null || true; } && mv -f -- "$tmp" "$dir/manifest.json"; } || { rm -f -- "$tmp"; exit 3; }`,
  'printf "txdu\\t%s\\n" "$(du -sk "$dir" | cut -f1)"',
  '[ "$keep" -ge 0 ] || exit 0',
  PRUNE,
].join('\n');

export const PRUNE_SCRIPT = ['root=$1 keep=$2', PRUNE].join('\n');

export interface Retention {
  pruned: string[];
  diskBytes: number;
  count: number;
}

export function parseRetention(stdout: string): Retention {
  const pruned = [...stdout.matchAll(/^pruned\t(\S+)$/gm)]
    .map((m) => m[1]!)
    .filter((id) => TxId.safeParse(id).success);
  return {
    pruned,
    diskBytes: Number(/^du\t(\d{1,15})$/m.exec(stdout)?.[1] ?? 0) * 1024,
    count: Number(/^kept\t(\d{1,9})$/m.exec(stdout)?.[1] ?? 0),
  };
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

/**
 * Deletes all but the newest `keep` transactions (every directory named like a transaction id);
 * returns the ids deleted and the disk left. One round trip.
 */
export async function pruneTransactions(t: Transport, keep: number): Promise<Retention> {
  const r = await t.exec(
    ['sh', '-c', PRUNE_SCRIPT, 'criu-lock-tx-prune', TX_ROOT, String(Math.max(0, keep))],
    {
      become: true,
      env: { LC_ALL: 'C' },
      timeoutMs: 120_000,
    },
  );
  if (r.exitCode !== 0)
    throw new CriuLockError('ssh', `${t.host}: pruning old transactions failed: ${summariseOutput(r)}`);
  return parseRetention(r.stdout);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
