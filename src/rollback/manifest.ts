import { z } from 'zod';
import { DebPackageKey, DebVersion } from '../debian/schemas.js';

/**
 * A transaction record, as stored on each host under /var/lib/criu-lock/tx/<id>/manifest.json.
 * It says what one apply (or rollback) replaced, so that the change can be undone exactly even
 * after the old versions have left the archive: the replaced .debs sit beside the manifest.
 */
export const MANIFEST_VERSION = 1;
export const TX_ROOT = '/var/lib/criu-lock/tx';

const PackageKey = DebPackageKey;
const Version = DebVersion;
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex sha256');
/** Transaction ids sort by time: 20261129T011233Z-a1b2c3. */
export const TxId = z
  .string()
  .regex(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/, 'is not a transaction id (like 20261129T011233Z-a1b2c3)');
/** A file name inside the transaction's debs/ directory: no slashes, no leading dot. */
const DebFile = z.string().regex(/^[A-Za-z0-9+][A-Za-z0-9+.~_%-]*\.deb$/, 'is not a .deb file name');

export const CapturedDeb = z.strictObject({
  file: DebFile,
  sha256: Sha256,
  /**
   * Where the bytes came from: the node's apt cache (sha256 matched the apt lists), an earlier
   * transaction's copy, apt-get download, or a rebuild from the installed files.
   */
  source: z.enum(['apt-cache', 'transaction', 'apt-download', 'rebuilt']),
});
export type CapturedDeb = z.infer<typeof CapturedDeb>;

export const TxPackage = z.strictObject({
  package: PackageKey,
  /** Installed version before the transaction; null when the package was absent. */
  before: Version.nullable(),
  /** Version the transaction installs; null when it removes the package. */
  after: Version.nullable(),
  /** dpkg/apt auto-installed mark before the transaction; null when the package was absent. */
  auto: z.boolean().nullable(),
  /** The .deb of `before`; null when `before` is null. */
  deb: CapturedDeb.nullable(),
});
export type TxPackage = z.infer<typeof TxPackage>;

export const TxFile = z.strictObject({
  // Any absolute name Linux allows (a newline too, as in a lockfile); JSON carries it escaped.
  path: z.string().regex(/^\/[^\0]*$/),
  package: PackageKey,
  /** ELF build-ID before the transaction (null: an ELF file without one). */
  buildId: z
    .string()
    .regex(/^[0-9a-f]+$/)
    .nullable(),
});
export type TxFile = z.infer<typeof TxFile>;

export const TxPins = z.strictObject({
  // A file in preferences.d itself: not `.` or `..`, which a host's manifest could name.
  path: z.string().regex(/^\/etc\/apt\/preferences\.d\/(?!\.\.?$)[A-Za-z0-9_.-]+$/),
  /** sha256 of the pin file before (its copy is pins.before beside the manifest); null when absent. */
  before: Sha256.nullable(),
  /** sha256 the transaction leaves; null when it leaves no pin file. */
  after: Sha256.nullable(),
});
export type TxPins = z.infer<typeof TxPins>;

export const TxManifest = z.strictObject({
  manifestVersion: z.literal(MANIFEST_VERSION),
  id: TxId,
  host: z.string(),
  kind: z.enum(['apply', 'rollback']),
  /** ISO time the capture finished. */
  createdAt: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/, 'must be an ISO time in UTC'),
  /** Digest of the lock the apply converged to (null for a rollback). */
  lockDigest: z.string().nullable(),
  /** For a rollback: the transaction it undid. */
  rollbackOf: TxId.nullable(),
  /** captured: recorded, change not finished (or failed); applied: changed and verified. */
  status: z.enum(['captured', 'applied']),
  packages: z.array(TxPackage),
  pins: TxPins,
  files: z.array(TxFile),
});
export type TxManifest = z.infer<typeof TxManifest>;

export function serializeManifest(m: TxManifest): string {
  return `${JSON.stringify(TxManifest.parse(m), null, 2)}\n`;
}

/** Parses a manifest a host sent; the error says which field, never trusting the text further. */
export function parseManifest(
  text: string,
): { ok: true; manifest: TxManifest } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (
    typeof raw === 'object' &&
    raw !== null &&
    'manifestVersion' in raw &&
    raw.manifestVersion !== MANIFEST_VERSION
  ) {
    return {
      ok: false,
      error: `unknown manifestVersion ${JSON.stringify(raw.manifestVersion)} (this criu-lock reads ${MANIFEST_VERSION})`,
    };
  }
  const r = TxManifest.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return { ok: false, error: `${issue.path.map(String).join('.') || 'manifest'}: ${issue.message}` };
  }
  return { ok: true, manifest: r.data };
}

/**
 * A transaction id from a time and 12 random bits: `YYYYMMDDTHHMMSSZ-mmmrrr`, where `mmm` is the
 * millisecond in hex (000–3e7) and `rrr` random. Ids sort by time to the millisecond, on the
 * controller (history, rollback's "most recent", retention) and in the node's glob order (the
 * capture's pruning): two transactions in the same second on one host (a rollback, then another)
 * must not sort by chance. Ids made before had 24 random bits; the format is the same.
 */
export function makeTxId(now: Date, random: number): string {
  const iso = now.toISOString(); // 2026-11-29T01:12:33.456Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const ms = now.getUTCMilliseconds().toString(16).padStart(3, '0');
  return `${stamp}-${ms}${((random >>> 0) & 0xfff).toString(16).padStart(3, '0')}`;
}

export function txDir(id: string): string {
  return `${TX_ROOT}/${TxId.parse(id)}`;
}

/** apt's cache file name for a version: the epoch colon is written %3a. */
export function aptCacheFileName(name: string, version: string, arch: string): string {
  return `${name}_${version.replace(/:/g, '%3a')}_${arch}.deb`;
}
