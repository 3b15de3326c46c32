import { gatherFacts } from '../facts/gather.js';
import type { FileEntry, PackageEntry } from '../lock/lockfile.js';
import { formatPackageKey } from '../debian/names.js';
import { isValidVersion } from '../debian/version.js';
import type { Transport } from '../transport/types.js';
import { fetchFile, lastLine, makeTemp, removeTemp, sh } from './remote.js';
import { sha256Of } from './manifest.js';
import { verifyDebContent } from './verify-deb.js';

/**
 * Rebuilds an installed package from a host's own files, the way dpkg-repack does, with nothing
 * installed on the host: dpkg's file list gives the files, `dpkg-query -s` the control fields
 * (minus the installed-state ones), /var/lib/dpkg/info the maintainer scripts, and the Conffiles
 * field the conffiles, each checked against dpkg's md5 first so local edits never spread. The
 * .deb is assembled with dpkg-deb (part of dpkg) in a private temporary directory.
 */
export class RebuildError extends Error {
  constructor(
    readonly reason: 'not-installed' | 'edited-conffile' | 'verify' | 'failed',
    message: string,
  ) {
    super(message);
    this.name = 'RebuildError';
  }
}

// Perl (perl-base only): control file and conffiles from the status stanza, directories of the
// package created as real directories (a /usr-merge symlink such as /lib stays a directory in the
// package, as in the original), every other path listed for tar.
const PERL = String.raw`
use strict;
my ($status, $list, $root, $d) = @ARGV;
open(my $s, '<', $status) or die "criu-lock: cannot read $status: $!\n";
my @fields;
while (my $l = <$s>) {
  chomp $l;
  next if $l eq '';
  if ($l =~ /^\s/ && @fields) { $fields[-1][1] .= "\n$l"; next; }
  next unless $l =~ /^([A-Za-z0-9-]+):/;
  push @fields, [$1, $l];
}
close($s);
my @conf;
open(my $c, '>', "$root/DEBIAN/control") or die "criu-lock: control: $!\n";
for my $f (@fields) {
  if ($f->[0] eq 'Conffiles') {
    for my $line (split /\n/, $f->[1]) {
      next unless $line =~ m{^ (/\S*) (\S+)(.*)$};
      my ($p, $md5, $flags) = ($1, $2, $3);
      next if $flags =~ /obsolete|remove-on-upgrade/;
      push @conf, [$p, $md5];
    }
    next;
  }
  next if $f->[0] eq 'Status' || $f->[0] eq 'Config-Version';
  print $c "$f->[1]\n";
}
close($c);
if (@conf) {
  open(my $cf, '>', "$root/DEBIAN/conffiles") or die;
  open(my $cm, '>', "$d/conffiles.md5") or die;
  for my $e (@conf) { print $cf "$e->[0]\n"; print $cm "$e->[1]  $e->[0]\n"; }
  close($cf); close($cm);
}
open(my $l, '<', $list) or die "criu-lock: cannot read $list: $!\n";
my @paths = grep { $_ ne '/.' && $_ ne '' } map { chomp; $_ } <$l>;
close($l);
my %parent;
for my $p (@paths) { my $q = $p; while ($q =~ s{/[^/]*$}{} && $q ne '') { $parent{$q} = 1; } }
open(my $t, '>', "$d/files") or die;
for my $p (@paths) {
  if ($parent{$p} && -d $p) {
    my @st = stat($p);
    mkdir("$root$p") or -d "$root$p" or die "criu-lock: mkdir $root$p: $!\n";
    chmod($st[2] & 07777, "$root$p");
    chown($st[4], $st[5], "$root$p");
  } elsif (-l $p || -e $p) {
    print $t substr($p, 1), "\n";
  } else {
    print STDERR "criu-lock: warning: $p is listed by dpkg but missing; left out\n";
  }
}
close($t);
`;

const SCRIPT = `set -eu
key=$1 want=$2 d=$3 perl_src=$4
name=\${key%%:*} arch=\${key#*:}
info=/var/lib/dpkg/info
got=$(dpkg-query -W -f '\${db:Status-Abbrev}|\${Version}' -- "$key" 2>/dev/null) || { echo "criu-lock: $key is not installed" >&2; exit 10; }
case "$got" in "ii "*) ;; *) echo "criu-lock: $key is not fully installed (dpkg status $got)" >&2; exit 10;; esac
[ "\${got#*|}" = "$want" ] || { echo "criu-lock: $key is installed at \${got#*|}, not $want" >&2; exit 10; }
if [ -f "$info/$name:$arch.list" ]; then base=$info/$name:$arch; else base=$info/$name; fi
[ -f "$base.list" ] || { echo "criu-lock: dpkg has no file list for $key" >&2; exit 12; }
root=$d/root
rm -rf -- "$root" "$d/out.deb"
mkdir -p -- "$root/DEBIAN"
dpkg-query -s -- "$key" > "$d/status"
perl -e "$perl_src" "$d/status" "$base.list" "$root" "$d"
if [ -s "$d/conffiles.md5" ]; then
  bad=$(md5sum -c --quiet -- "$d/conffiles.md5" 2>/dev/null | sed -n 's/: FAILED.*$//p' | head -n 3 | tr '\\n' ' ') || true
  if [ -n "$bad" ]; then echo "criu-lock: conffile $bad" >&2; exit 11; fi
fi
if [ -s "$d/files" ]; then tar -C / --no-recursion -cf - -T "$d/files" | tar -C "$root" -xpf -; fi
for s in preinst postinst prerm postrm config templates triggers shlibs symbols md5sums; do
  if [ -f "$base.$s" ]; then cp -p -- "$base.$s" "$root/DEBIAN/$s"; fi
done
dpkg-deb -Zgzip -z1 --build -- "$root" "$d/out.deb" >/dev/null
rm -rf -- "$root"
echo "$d/out.deb"
`;

export interface RebuiltDeb {
  bytes: Buffer;
  sha256: string;
  size: number;
}

/** The installed ELF files of a package as a lock would record them. */
async function installedFiles(t: Transport, key: string): Promise<Record<string, FileEntry>> {
  const facts = await gatherFacts(t, { elfOf: [key] });
  const files: Record<string, FileEntry> = {};
  for (const f of facts.packageFiles.get(key) ?? []) {
    if (f.size === undefined || f.mode === undefined) continue;
    files[f.path] = f.buildId
      ? { size: f.size, mode: f.mode, buildId: f.buildId }
      : { size: f.size, mode: f.mode };
  }
  return files;
}

/**
 * Rebuilds `name:arch=version` from the files installed on the host behind `t` and verifies the
 * result: control fields, and every ELF file's size, mode and build-ID against `expect` (a lock
 * entry) or, without one, against the installed files themselves. Throws RebuildError.
 * Exported for rollback, which rebuilds replaced versions the same way.
 */
export async function rebuildPackage(
  t: Transport,
  pkg: { name: string; arch: string; version: string },
  opts: { expect?: PackageEntry; onWarning?: (message: string) => void; scratch?: string } = {},
): Promise<RebuiltDeb> {
  const key = formatPackageKey({ name: pkg.name, arch: pkg.arch });
  if (!isValidVersion(pkg.version))
    throw new RebuildError('failed', `invalid version ${JSON.stringify(pkg.version)}`);
  // A caller rebuilding many packages passes one scratch directory (fewer round trips).
  const scratch = opts.scratch ?? (await makeTemp(t, 'criu-lock-rebuild'));
  try {
    const r = await sh(t, SCRIPT, [key, pkg.version, scratch, PERL], { timeoutMs: 900_000 });
    for (const line of r.stderr.split('\n')) {
      const w = /^criu-lock: warning: (.*)$/.exec(line.trim());
      if (w?.[1]) opts.onWarning?.(`${key}: ${w[1]}`);
    }
    if (r.exitCode === 10 || r.exitCode === 12)
      throw new RebuildError('not-installed', lastLine(r).replace(/^criu-lock: /, ''));
    if (r.exitCode === 11) {
      throw new RebuildError(
        'edited-conffile',
        `${lastLine(r)
          .replace(/^criu-lock: /, '')
          .trim()} was edited on ${t.host} (its md5 is not dpkg's): a rebuilt ${key} would spread the local edit to the fleet; restore the file or vendor ${pkg.name} from an --archive`,
      );
    }
    const out = r.stdout.trim().split('\n').at(-1) ?? '';
    if (r.exitCode !== 0 || out !== `${scratch}/out.deb`)
      throw new RebuildError('failed', `rebuilding ${key} failed: ${lastLine(r)}`);
    const expect: PackageEntry = opts.expect ?? { version: pkg.version, files: await installedFiles(t, key) };
    const problem = await verifyDebContent(t, out, key, expect, scratch);
    if (problem) throw new RebuildError('verify', `the rebuilt ${key} does not match: ${problem}`);
    const bytes = await fetchFile(t, out);
    return { bytes, sha256: sha256Of(bytes), size: bytes.length };
  } finally {
    if (opts.scratch === undefined) await removeTemp(t, scratch);
  }
}
