import { compareFile } from '../check/compare.js';
import { gatherFacts } from '../facts/gather.js';
import type { PackageEntry } from '../lock/lockfile.js';
import type { Transport } from '../transport/types.js';
import { debControl, lastLine, sh } from './remote.js';

/**
 * Checks a .deb lying on a host against one locked package: its control fields name the locked
 * package, architecture and version, and every file the lock records for it (ELF files: size,
 * mode, build-ID, read the way CRIU reads them) is in the package exactly like that. Returns the
 * first problem, or undefined when the package matches.
 */
export async function verifyDebContent(t: Transport, file: string, key: string, entry: PackageEntry, scratch: string): Promise<string | undefined> {
  const [name, arch] = key.split(':') as [string, string];
  const control = await debControl(t, file);
  const want: [string, string][] = [
    ['Package', name],
    ['Version', entry.version],
    ['Architecture', arch],
  ];
  for (const [field, value] of want) {
    if (control.get(field) !== value) return `its ${field} is ${JSON.stringify(control.get(field) ?? '')}, the lock needs ${JSON.stringify(value)}`;
  }
  const files = Object.entries(entry.files ?? {});
  if (files.length === 0) return undefined;
  const root = `${scratch}/extract`;
  const x = await sh(t, 'rm -rf -- "$2" && mkdir -p -- "$2" && dpkg-deb -x -- "$1" "$2"', [file, root]);
  if (x.exitCode !== 0) return `dpkg-deb -x failed: ${lastLine(x)}`;
  try {
    const facts = await gatherFacts(t, { paths: files.map(([p]) => root + p) });
    for (const [path, want] of files) {
      const finding = compareFile(key, path, want, facts.files.get(root + path));
      if (finding?.type === 'file') return `${path} differs from the lock (${finding.problem}: ${finding.criu})`;
    }
    return undefined;
  } finally {
    await sh(t, 'rm -rf -- "$1"', [root]);
  }
}
