import { compareFile } from '../check/compare.js';
import { gatherFacts } from '../facts/gather.js';
import type { PackageEntry } from '../lock/lockfile.js';
import type { Transport } from '../transport/types.js';
import { lastLine, sh } from './remote.js';

/**
 * Checks a .deb lying on a host against one locked package: its control fields name the locked
 * package, architecture and version, and every file the lock records for it (ELF files: size,
 * mode, build-ID, read the way CRIU reads them) is in the package exactly like that. Returns the
 * first problem, or undefined when the package matches.
 */
export async function verifyDebContent(
  t: Transport,
  file: string,
  key: string,
  entry: PackageEntry,
  scratch: string,
): Promise<string | undefined> {
  const [name, arch] = key.split(':') as [string, string];
  const files = Object.entries(entry.files ?? {});
  const root = `${scratch}/extract`;
  // One round trip: the control fields, and the files extracted when the lock records any.
  // Only the locked files are extracted (members are "./path"); a missing one shows up as missing.
  const r = await sh(
    t,
    'f=$1 d=$2; shift 2; dpkg-deb -f -- "$f" Package Version Architecture || exit 2; [ "$#" -gt 0 ] || exit 0; rm -rf -- "$d" && mkdir -p -- "$d" || exit 3; dpkg-deb --fsys-tarfile "$f" | tar -x -C "$d" -- "$@" 2>/dev/null; exit 0',
    [file, root, ...files.map(([p]) => `.${p}`)],
  );
  if (r.exitCode === 2) return `it is not a readable .deb: ${lastLine(r)}`;
  const control = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (m?.[1]) control.set(m[1], (m[2] ?? '').trim());
  }
  const want: [string, string][] = [
    ['Package', name],
    ['Version', entry.version],
    ['Architecture', arch],
  ];
  for (const [field, value] of want) {
    if (control.get(field) !== value)
      return `its ${field} is ${JSON.stringify(control.get(field) ?? '')}, the lock needs ${JSON.stringify(value)}`;
  }
  if (files.length === 0) return undefined;
  if (r.exitCode !== 0) return `cannot extract it: ${lastLine(r)}`;
  try {
    const facts = await gatherFacts(t, { paths: files.map(([p]) => root + p) });
    for (const [path, want] of files) {
      const finding = compareFile(key, path, want, facts.files.get(root + path));
      if (finding?.type === 'file')
        return `${path} differs from the lock (${finding.problem}: ${finding.criu})`;
    }
    return undefined;
  } finally {
    await sh(t, 'rm -rf -- "$1"', [root]);
  }
}
