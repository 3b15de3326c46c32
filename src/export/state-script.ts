import { lockedPaths } from '../check/compare.js';
import { PROBE_VERSION, renderProbeScript } from '../facts/probe-script.js';
import { CriuLockError } from '../errors.js';
import { indexLock } from '../lock/lock-index.js';
import type { Lockfile } from '../lock/lockfile.js';

/**
 * The node-side half of an exported Ansible project: one POSIX sh script, run by Ansible's
 * `script` module (which needs no Python on the node), that
 *
 * 1. runs criu-lock's own facts probe (`renderProbeScript`, the exact text plan and check send),
 * 2. compares its output with the lock, embedded in the script, the way criu-lock does: a locked
 *    package is right when dpkg has it configured at the locked version; a locked file when its
 *    size, mode and (if the lock has one) CRIU build-ID match,
 * 3. prints one line per difference and, with `verify`, exits 1 when there is any.
 *
 * Output lines (tab-separated), for the playbook to act on:
 *   move      KEY VERSION REQUEST  package missing or at another version; REQUEST is apt's word
 *   reinstall KEY VERSION REQUEST  package at the locked version, but a file differs
 *   held      KEY VERSION    package that must move but is on hold (plan blocks it too)
 *   broken    KEY STATUS     dpkg has the package but not configured
 *   file      KEY PATH WHAT  a file that differs (WHAT: missing, not-regular, size, mode, build-id)
 *   platform  FIELD WANT GOT the node is not the lock's platform (exits 1 in either mode)
 * REQUEST is `KEY=VERSION`, or the vendored .deb's path on the node when the node's apt sources
 * do not offer VERSION and the export carries the package-store file (the planner's rule).
 *
 * The build-ID is the probe's own answer: the probe walks CRIU's path through each ELF file on
 * the node (decision 24), the walk plan and check use, held to src/elf/build-id.ts by tests.
 */

const EXPECTED_EOF = '__CRIU_LOCK_EXPECTED__';
const PROBE_EOF = '__CRIU_LOCK_PROBE__';
const COMPARE_EOF = '__CRIU_LOCK_COMPARE__';

// Perl: core of perl-base only (no modules).
export const COMPARE_PERL = String.raw`
use strict;
my ($mode, $expf, $factsf) = @ARGV;
my (@pkgs, %want, %files, @platform, %stored);
open(my $e, '<', $expf) or die "cannot read $expf\n";
while (my $l = <$e>) {
  chomp($l);
  my @f = split(/\t/, $l, -1);
  if ($f[0] eq 'P') { push(@pkgs, $f[1]); $want{$f[1]} = $f[2]; }
  elsif ($f[0] eq 'F') { push(@{$files{$f[1]}}, [@f[2..5]]); }
  elsif ($f[0] eq 'X') { @platform = @f[1..3]; }
  elsif ($f[0] eq 'S') { $stored{$f[1]} = $f[2]; }
}
close($e);
my (%have, %status, %held, %file, %os, %avail, $arch, $sec, $pol, $polv, $ver);
open(my $fh, '<', $factsf) or die "cannot read $factsf\n";
while (my $l = <$fh>) {
  chomp($l);
  if ($l =~ /^@@(.*)$/) { $sec = $1; $ver = $1 if $sec =~ /^probe (\d+)$/; next; }
  next unless defined $sec;
  my @f = split(/\t/, $l, -1);
  if ($sec eq 'os-release' && $l =~ /^([A-Z0-9_]+)=(.*)$/) {
    my ($k, $v) = ($1, $2);
    $v =~ s/^"(.*)"$/$1/ or $v =~ s/^'(.*)'$/$1/;
    $os{$k} = $v;
  } elsif ($sec eq 'arch' && $l ne '') {
    $arch = $l;
  } elsif ($sec eq 'dpkg' && @f >= 6) {
    my $key = "$f[0]:$f[1]";
    # config-files only: the package is not installed.
    next if $f[4] eq 'config-files' || $f[4] eq 'not-installed';
    $have{$key} = $f[2];
    $status{$key} = ($f[4] eq 'installed' || $f[4] =~ /^triggers-/) && $f[5] eq 'ok' ? 'ok' : "$f[4]/$f[5]";
    $held{$key} = 1 if $f[3] eq 'hold';
  } elsif ($sec eq 'policy' && $l ne '') {
    # apt-cache policy: "name[:arch]:", then "     VERSION PRIO" / " *** VERSION PRIO", then its
    # sources indented by 8; /var/lib/dpkg/status is not a source (src/facts/parse.ts).
    if ($l !~ /^ /) { ($pol = $l) =~ s/:$//; undef $polv; }
    elsif ($l =~ /^ (?:\*\*\*| {3}) (\S+) -?\d+$/) { $polv = $1; }
    elsif (defined $pol && defined $polv && $l =~ /^ {8}-?\d+ (.+)$/ && $1 ne '/var/lib/dpkg/status') { $avail{$pol}{$polv} = 1; }
  } elsif ($sec eq 'files' && $f[0] eq 'R') {
    # Probe format 6: R, hex path, kind, size, mode, inode, stamp, and for an ELF file the
    # build-ID walk's answer (=HEX, -, or ! when refused or changed). Never a U run: this
    # script sends no stat tuples; nor a dpkg state, so the dpkg section is always printed).
    $file{pack('H*', $f[1])} = [@f[2, 3, 4, 7]];
  }
}
close($fh);
die "the facts probe did not finish\n" unless defined $sec && $sec eq 'end';
die "the facts probe printed format " . ($ver // 'none') . ", this script reads ${PROBE_VERSION}\n" unless defined $ver && $ver == ${PROBE_VERSION};

# The node's own apt sources first; the vendored .deb only when they lack the version.
sub request {
  my ($key) = @_;
  my $v = $want{$key};
  return "$key=$v" unless defined $stored{$key};
  (my $name = $key) =~ s/:[^:]+$//;
  for my $k ($key, "$name:$arch", $name) { return "$key=$v" if $avail{$k} && $avail{$k}{$v}; }
  return $stored{$key};
}

sub file_problem {
  my ($path, $size, $fmode, $bid) = @_;
  my $got = $file{$path};
  return 'missing' if !$got || $got->[0] eq 'missing';
  my ($kind, $gsize, $gmode, $answer) = @$got;
  return 'not-regular' unless $kind eq 'elf' || $kind eq 'file';
  return 'size' unless $gsize eq $size;
  return 'mode' unless $gmode eq $fmode;
  return undef if $bid eq '-';
  # The probe walked CRIU's path through the file on this node (decision 24): "=HEX" or "-".
  return 'unreadable' if $kind eq 'elf' && $answer =~ /^!/;
  my $id = $kind eq 'elf' && $answer =~ /^=([0-9a-f]+)$/ ? $1 : '';
  return $id eq $bid ? undef : 'build-id';
}

my $bad = 0;
my @got = (defined $os{ID} ? $os{ID} : '', defined $os{VERSION_ID} ? $os{VERSION_ID} : '', defined $arch ? $arch : '');
my @field = ('id', 'versionId', 'architecture');
for my $i (0 .. 2) {
  next if $platform[$i] eq $got[$i];
  print join("	", 'platform', $field[$i], $platform[$i], $got[$i]), "
";
  $bad = -1;
}
exit(1) if $bad;
for my $key (@pkgs) {
  my @problems;
  for my $f (@{$files{$key} || []}) {
    my $p = file_problem(@$f);
    push(@problems, join("\t", 'file', $key, $f->[0], $p)) if defined $p;
  }
  my $verb;
  if (!defined $have{$key} || $have{$key} ne $want{$key}) { $verb = 'move'; }
  elsif ($status{$key} ne 'ok') { print join("\t", 'broken', $key, $status{$key}), "\n"; $bad++; }
  elsif (@problems) { $verb = 'reinstall'; }
  if (defined $verb && $held{$key}) { print join("\t", 'held', $key, $want{$key}), "\n"; $bad++; }
  elsif (defined $verb) { print join("\t", $verb, $key, $want{$key}, request($key)), "\n"; $bad++; }
  if ($mode eq 'verify') { print "$_\n" for @problems; $bad += @problems; }
}
for my $f (@{$files{'-'} || []}) {
  my $p = file_problem(@$f);
  if (defined $p) { print join("\t", 'file', '-', $f->[0], $p), "\n"; $bad++; }
}
# The last line, always: the play fails a host whose script printed no "end" (a copy cut short).
print "end\n";
exit($mode eq 'verify' && $bad ? 1 : 0);
`;

/**
 * The lock travels in the script as tab-separated lines, and the script's output reaches the play
 * as Ansible's `stdout_lines`, which Python's str.splitlines cuts at \v, \f, \x1c-\x1e, U+0085,
 * U+2028 and U+2029 too (a path holding one garbled the "blocked" message). A lockfile may hold
 * such characters (a path may), and `check` and `apply` handle them; the export cannot, and says so.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNEXPORTABLE = /[\t\n\r\0\v\f\x1c-\x1e\x85\u2028\u2029]/;

function assertField(s: string, what: string): void {
  if (UNEXPORTABLE.test(s)) {
    throw new CriuLockError(
      'input',
      `cannot export this lock: its ${what} ${JSON.stringify(s)} holds a tab, a line break or a NUL`,
      {
        hint: 'the exported project carries the lock as tab-separated lines, read back as Ansible splits lines (also at \\v, \\f, \\x1c-\\x1e, U+0085, U+2028, U+2029); converge such hosts with criu-lock apply',
      },
    );
  }
}

export interface StateScriptOptions {
  /** Vendored .debs at the locked version: package key → the file's path on the node. */
  store?: ReadonlyMap<string, string> | undefined;
}

/**
 * The lock as the comparator reads it: `X id versionId arch`, `P key version`,
 * `F key|- path size mode buildId|-` and `S key node-path` for vendored .debs.
 */
export function expectedLines(lock: Lockfile, o: StateScriptOptions = {}): string[] {
  const index = indexLock(lock);
  const { id, versionId, architecture } = lock.platform;
  [id, versionId, architecture].forEach((v) => assertField(v, 'platform field'));
  const out: string[] = [`X\t${id}\t${versionId}\t${architecture}`];
  for (const { key, entry } of index.packages) {
    assertField(key, 'package key');
    out.push(`P\t${key}\t${entry.version}`);
  }
  const file = (
    owner: string,
    path: string,
    f: { size: number; mode: string; buildId?: string | undefined },
  ): string => {
    assertField(path, 'path');
    return `F\t${owner}\t${path}\t${f.size}\t${f.mode}\t${f.buildId ?? '-'}`;
  };
  for (const { key, files } of index.packages) for (const [path, f] of files) out.push(file(key, path, f));
  for (const [path, f] of index.unmanaged) out.push(file('-', path, f));
  for (const [key, path] of [...(o.store ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!(key in lock.packages)) throw new Error(`vendored ${key} is not in the lock`);
    if (!/^\/[A-Za-z0-9._%+~:/-]+\.deb$/.test(path))
      throw new Error(`refusing vendored path ${JSON.stringify(path)}`);
    out.push(`S\t${key}\t${path}`);
  }
  return out;
}

/** `sh criu-lock-state.sh plan|verify` on the node; see the comment at the top of this file. */
export function renderStateScript(lock: Lockfile, o: StateScriptOptions = {}): string {
  // apt-cache policy only for the packages the export could install from a vendored .deb.
  const policyFor = [...(o.store?.keys() ?? [])].sort();
  const probe = renderProbeScript({
    paths: lockedPaths(lock),
    ...(policyFor.length > 0 ? { policyFor } : {}),
  });
  for (const eof of [EXPECTED_EOF, PROBE_EOF, COMPARE_EOF]) {
    if (probe.includes(eof)) throw new Error(`the probe script contains ${eof}`);
  }
  // The body is one `{ ... }` group, which sh reads whole before it runs any of it: a copy cut
  // short anywhere after the first line (a full disk) is a syntax error, never a silent exit 0
  // that the play would read as "nothing to do". The mode has no default for the same reason.
  return [
    '#!/bin/sh',
    '{',
    `# Generated by criu-lock export ansible from lock ${lock.digest}; regenerate, don't edit.`,
    '# Usage: sh criu-lock-state.sh plan|verify',
    'set -eu',
    'export LC_ALL=C',
    'mode="${1:-}"',
    'case "$mode" in plan|verify) ;; *) echo "usage: $0 plan|verify" >&2; exit 64 ;; esac',
    'tmp=$(mktemp -d)',
    'trap \'rm -rf "$tmp"\' EXIT',
    `cat > "$tmp/expected" <<'${EXPECTED_EOF}'`,
    ...expectedLines(lock, o),
    EXPECTED_EOF,
    `sh -s > "$tmp/facts" <<'${PROBE_EOF}'`,
    probe.trimEnd(),
    PROBE_EOF,
    `perl - "$mode" "$tmp/expected" "$tmp/facts" <<'${COMPARE_EOF}'`,
    COMPARE_PERL.trim(),
    COMPARE_EOF,
    '}',
    '',
  ].join('\n');
}
