import {
  BUILD_ID_MAP_SIZE,
  ELF_HEAD_BYTES,
  MAX_DESC_SIZE,
  MAX_NOTE_STEPS,
  MAX_PROGRAM_HEADERS,
} from '../elf/build-id.js';
import { renderCommand } from '../shell/quote.js';

/**
 * The facts probe: one POSIX sh script sent over the connection's stdin (`sh -s`), so a run
 * costs one round trip. Targets need only Essential packages: sh, coreutils, dpkg, apt and
 * perl-base. Perl reads the files and walks CRIU's build-ID path through them on the node
 * (decision 24): an ELF file costs its build-ID on the wire, not its head. src/elf/build-id.ts
 * is the reference walk the perl one is held to (test/unit/build-id-perl.test.ts).
 */
export interface ProbeRequest {
  /** ELF files owned by these package keys, or by every installed package. */
  elfOf?: 'all' | readonly string[];
  /** Explicit paths to stat and read (check). */
  paths?: readonly string[];
  /** Processes whose mapped files to read (generate --pid). */
  pids?: readonly number[];
  /** Package keys to ask `apt-cache policy` about. */
  policyFor?: readonly string[];
  /**
   * `[key, version]` pairs: `apt-cache policy` runs on the node only for those keys that are not
   * installed and configured at exactly that version string (the packages a plan may move).
   */
  policyUnless?: ReadonlyArray<readonly [string, string]>;
  /**
   * Stat tuples (`size:mode:inode:dev:mtime:ctime`, see KNOWN) of `paths` whose build-ID the
   * controller already holds: a file whose stat is still that tuple is answered by a `U` run
   * (its index in `paths`) instead of its head.
   */
  known?: ReadonlyMap<string, string>;
  /**
   * The dpkg-state reading the controller holds (stat-cache.ts): `state` is its DPKG_STATE tuple.
   * When dpkg's files are still at that tuple the probe answers `U` in its dpkg-state section and
   * runs neither dpkg-query nor dpkg; `policy` are then the keys to ask `apt-cache policy` about in
   * place of the node's `policyUnless` filter (the controller decided them from the same list).
   */
  dpkgKnown?: { state: string; policy?: readonly string[] };
  /**
   * Print the apt-state section when apt is asked about any package: the stat tuples of apt's own
   * inputs (APT_STATE). `known`: the tuple the controller holds apt's policy answer for, for exactly
   * the `dpkgKnown.policy` keys (apt-readings.ts): when dpkg's files are unchanged and apt's are
   * still at `known`, apt-cache policy does not run and the section answers `U`.
   */
  aptState?: { known?: string };
  /** `name:arch=version` requests whose .deb SHA256 the apt lists publish. */
  shaFor?: readonly string[];
  /** Pin file to read back. */
  pinFile?: string;
}

/** Bytes of each ELF file the probe reads first (the one ELF_HEAD_BYTES); its walk reads more only if the notes lie further. */
export const HEAD_BYTES = ELF_HEAD_BYTES;
const PERL_EOF = '__CRIU_LOCK_PERL__';

// Perl: only core features of perl-base (no modules). Output is one tab-separated record a line.
// Every path and package list name travels hex-encoded (both ways), so no byte of a file name can
// forge a field or a record: a name may hold tabs, newlines, "@@" or anything but NUL.
// File records end with the same six fields: kind, size, mode, inode, stamp (dev:mtime:ctime),
// and for an ELF file the walk's answer (format 6; build_id below), empty for any other kind.
// Requested paths whose stat is still the tuple the controller sent print no record of
// their own: a run of them is one "U <first> <count>" record (indexes into the P records, in order).
// dpkg's state (format 5) is the section dpkg-state, printed by perl before arch, foreign and dpkg:
// one record, "S <clock> <state>" (read now; state is DPKG_STATE's tuple of dpkg's files, clock the
// node's time before it was taken), "N" (read now, nothing to keep: dpkg's journal was pending) or
// "U" (the files are still at the tuple the controller sent as D: arch, foreign and dpkg are not
// printed, and apt-cache policy is asked for the C keys instead of the W filter's).
// dpkg-query's fields (a plain string: the ${...} are dpkg's, and dpkg-query expands the \t and
// \n itself; perl passes it in list form, so no shell sees it either).
const DPKG_FORMAT =
  '${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Want}\\t${db:Status-Status}\\t${db:Status-Eflag}\\t${Multi-Arch}\\t${Pre-Depends}\\t${Depends}\\t${Provides}\\n';

const PERL = String.raw`
use strict;
my $HEAD = ${HEAD_BYTES};
my ($WIN, $MAXPH, $MAXNOTES) = (${BUILD_ID_MAP_SIZE}, ${MAX_PROGRAM_HEADERS}, ${MAX_NOTE_STEPS});
my $INFO = '/var/lib/dpkg/info';
my @NONE = ('', '', '', '', '');
sub hx { return unpack('H*', $_[0]); }
sub stamp { return "$_[0][0]:$_[0][9]:$_[0][10]"; }
# size, mode, inode, stamp: the record's fields, and joined by ':' the stat tuple (KNOWN).
sub fields { my ($s) = @_; return ($s->[7], sprintf('%04o', $s->[2] & 07777), $s->[1], stamp($s)); }
sub probe {
  my ($p, $open) = @_;
  my @st;
  if (defined $open) { @st = stat($open); } else { @st = lstat($p); $open = $p; return ('missing', @NONE) unless @st; return ('symlink', @NONE) if -l _; }
  return ('missing', @NONE) unless @st;
  return ('other', @NONE) unless -f _;
  my $fh;
  open($fh, '<:raw', $open) or return ('unreadable', fields(\@st), '');
  # Describe the file we opened, not the name: a rename between stat and open cannot mix two files.
  my @f = stat($fh);
  unless (@f && -f _) { close($fh); return ('other', @NONE); }
  my ($size, $mode, $ino, $stamp) = fields(\@f);
  my $buf = '';
  my $n = sysread($fh, $buf, $HEAD);
  unless (defined $n) { close($fh); return ('unreadable', $size, $mode, $ino, $stamp, ''); }
  # C1: CRIU needs 5 bytes and the magic; anything else is a plain file.
  unless ($size >= 5 && $n >= 4 && substr($buf, 0, 4) eq "\x7fELF") { close($fh); return ('file', $size, $mode, $ino, $stamp, ''); }
  my $id = build_id($fh, $size, $buf);
  close($fh);
  return ('elf', $size, $mode, $ino, $stamp, $id);
}
# CRIU's build-ID walk (criu/files-reg.c; decision 2: the quirks C1-C14 in src/elf/build-id.ts,
# which this follows step for step, and its caps). Reads go to the file already open, so every
# byte comes from the inode described. "=HEX": the build-ID; "-": none; "!phdrs N" or "!notes":
# past a cap (the controller refuses the file); "!changed": a read came up short.
sub build_id {
  my ($fh, $size, $head) = @_;
  my $win = $size < $WIN ? $size : $WIN;
  my $rd = sub {
    my ($off, $len) = @_;
    return substr($head, $off, $len) if $off + $len <= length($head);
    my $b = '';
    return undef unless sysseek($fh, $off, 0);
    my $got = sysread($fh, $b, $len);
    return (defined $got && $got == $len) ? $b : undef;
  };
  my $e = $rd->(0, 5);
  return '!changed' unless defined $e;
  my $class = ord(substr($e, 4, 1));
  my ($eh, $phs, $phoffat, $phnumat, $poffat, $pszat, $w);
  if ($class == 1) { ($eh, $phs, $phoffat, $phnumat, $poffat, $pszat, $w) = (52, 32, 28, 44, 4, 16, 4); }
  elsif ($class == 2) { ($eh, $phs, $phoffat, $phnumat, $poffat, $pszat, $w) = (64, 56, 32, 56, 8, 32, 8); }
  else { return '-'; }
  return '-' if $eh > $win;
  $e = $rd->(0, $eh);
  return '!changed' unless defined $e;
  my ($u16, $u32) = ord(substr($e, 5, 1)) == 2 ? ('n', 'N') : ('v', 'V');
  # A 64-bit word as two 32-bit halves (no "Q": a 32-bit perl has none); past 2^53 it is inexact
  # but far outside the window either way.
  my $word = sub {
    my ($s, $at) = @_;
    return unpack($u32, substr($s, $at, 4)) if $w == 4;
    my ($a, $b) = unpack($u32 x 2, substr($s, $at, 8));
    return $u32 eq 'N' ? $a * 4294967296 + $b : $b * 4294967296 + $a;
  };
  # ALIGN(x, 4) on a 32-bit word (C9): sizes from 0xfffffffd wrap to 0.
  my $align4 = sub { return $_[0] >= 0xfffffffd ? 0 : ($_[0] + 3) & 0xfffffffc; };
  my $phnum = unpack($u16, substr($e, $phnumat, 2));
  my $phoff = $word->($e, $phoffat);
  return '-' if $phnum == 0 || $phoff == 0;
  my $vis = $phoff + $phs > $win ? 0 : int(($win - $phoff) / $phs);
  $vis = $phnum if $phnum < $vis;
  return '-' if $vis == 0;
  return "!phdrs $vis" if $vis > $MAXPH;
  my $t = $rd->($phoff, $vis * $phs);
  return '!changed' unless defined $t;
  my $steps = 0;
  for my $i (0 .. $vis - 1) {
    my $b = $i * $phs;
    next unless unpack($u32, substr($t, $b, 4)) == 4;
    my $po = $word->($t, $b + $poffat);
    my $pf = $word->($t, $b + $pszat);
    next if $po == 0;
    my $last = $po + $pf;
    $last = $win - 12 if $win - 12 < $last;
    my $at = $po;
    while ($at <= $last) {
      return '!notes' if ++$steps > $MAXNOTES;
      my $h = $rd->($at, 12);
      return '!changed' unless defined $h;
      my ($nsz, $dsz, $type) = unpack($u32 x 3, $h);
      if ($type == 3) {
        return '-' if $dsz == 0 || $dsz > ${MAX_DESC_SIZE};
        my $d = $at + 12 + $align4->($nsz);
        return '-' if $d + $dsz > $win;
        my $x = $rd->($d, $dsz);
        return defined $x ? '=' . unpack('H*', $x) : '!changed';
      }
      $at += 12 + $align4->($nsz) + $align4->($dsz);
    }
  }
  return '-';
}
sub canon { my ($p) = @_; $p =~ s{^/(bin|sbin|lib|lib32|lib64|libx32)(/|$)}{/usr/$1$2}; return $p; }
sub lists {
  opendir(my $d, $INFO) or return ();
  my @l = sort grep { /\.list$/ } readdir($d);
  closedir($d);
  return map { substr($_, 0, -5) } @l;
}
sub files_of {
  my ($name) = @_;
  open(my $fh, '<', "$INFO/$name.list") or return ();
  my @f = <$fh>;
  close($fh);
  chomp(@f);
  return @f;
}
# apt's inputs besides dpkg's files, at the paths apt resolves itself (apt-config: Dir:: settings
# and #include are honoured): each file's stat tuple, and each directory's with every entry's, in
# name order; then /etc/machine-id (Ubuntu's phased updates). undef when APT_CONFIG names a config
# file (not among them) or apt-config fails: no tuple, so nothing of apt's answer is kept.
my @APT_INPUTS = ('Dir::Etc::main/f', 'Dir::Etc::parts/d', 'Dir::Etc::preferences/f', 'Dir::Etc::preferencesparts/d', 'Dir::Etc::sourcelist/f', 'Dir::Etc::sourceparts/d', 'Dir::State::lists/d', 'Dir::State::extended_states/f', 'Dir::State::status/f');
sub tuple { my @st = stat($_[0]); return @st ? join(':', fields(\@st)) : '-'; }
sub apt_state {
  return undef if defined $ENV{APT_CONFIG} && $ENV{APT_CONFIG} ne '';
  my $i = 0;
  open(my $c, '-|', 'apt-config', 'shell', map { ('V' . $i++, $_) } @APT_INPUTS) or return undef;
  my @got = <$c>;
  close($c) or return undef;
  return undef unless @got == @APT_INPUTS;
  my @parts;
  for my $j (0 .. $#got) {
    return undef unless $got[$j] =~ /^V$j='([^']*)'\n\z/;
    my $p = $1;
    push(@parts, tuple($p));
    next unless -d $p;
    opendir(my $d, $p) or return undef;
    my @names = sort grep { $_ ne '.' && $_ ne '..' } readdir($d);
    closedir($d);
    push(@parts, tuple("$p/$_")) for @names;
  }
  push(@parts, tuple('/etc/machine-id'));
  return join(',', @parts);
}
sub devno { my ($maj, $min) = map { hex($_) } split(/:/, $_[0]); return ($min & 0xff) | (($maj & 0xfff) << 8) | (($min & ~0xff) << 12) | (($maj & ~0xfff) << 32); }
my (@elf, @paths, @pids, @known, $pin, @policy, %unless, $dknown, @ifsame, $awant, $aknown, $dsame);
while (my $l = <DATA>) {
  chomp($l);
  my ($t, $v, $k) = split(/\t/, $l, 3);
  if ($t eq 'E') { push(@elf, $v eq '*' ? $v : pack('H*', $v)); }
  elsif ($t eq 'P') { push(@paths, pack('H*', $v)); push(@known, $k); }
  elsif ($t eq 'I') { push(@pids, $v); }
  elsif ($t eq 'N') { $pin = pack('H*', $v); }
  elsif ($t eq 'K') { push(@policy, $v); }
  elsif ($t eq 'W') { $unless{$v} = $k; }
  elsif ($t eq 'D') { $dknown = $v; }
  elsif ($t eq 'C') { push(@ifsame, $v); }
  elsif ($t eq 'A') { $awant = 1; $aknown = $v if defined $v && $v ne ''; }
}
print "\@\@os-release\n";
for my $f ('/etc/os-release', '/usr/lib/os-release') {
  next unless open(my $fh, '<', $f);
  while (my $l = <$fh>) { chomp($l); print "$l\n"; }
  close($fh);
  last;
}
# dpkg's state (format 5): dpkg-query -W reads the status file and the journal in updates/,
# dpkg --print-foreign-architectures the arch file, --print-architecture the dpkg binary (or
# arch-native, dpkg >= 1.22). When the controller sent the tuple of those files (D) and they are
# still at it, the answer is "U" and none of the three runs: the controller has their answer.
# The journal is checked before the files: a checkpoint between the two renames status, so an
# unchanged status after an empty updates/ means the state was the same when updates/ was empty.
# The clock is read first: the controller keeps a reading only when every ctime is older.
print "\@\@dpkg-state\n";
my $now = time();
my $dstate;
if (!defined $ENV{DPKG_ROOT} || $ENV{DPKG_ROOT} eq '') {
  my $admin = (defined $ENV{DPKG_ADMINDIR} && $ENV{DPKG_ADMINDIR} ne '') ? $ENV{DPKG_ADMINDIR} : '/var/lib/dpkg';
  if (opendir(my $u, "$admin/updates")) {
    my @journal = grep { $_ ne '.' && $_ ne '..' } readdir($u);
    closedir($u);
    $dstate = join(',', map { my @st = lstat($_); @st ? join(':', fields(\@st)) : '-' } ("$admin/status", "$admin/arch", "$admin/arch-native", '/usr/bin/dpkg')) unless @journal;
  }
}
if (defined $dknown && defined $dstate && $dknown eq $dstate) {
  print "U\n";
  $dsame = 1;
  push(@policy, @ifsame);
  %unless = ();
} else {
  print defined $dstate ? "S\t$now\t$dstate\n" : "N\n";
  # One sh prints arch and foreign and then becomes dpkg-query: perl forks once (a perl fork costs
  # the node several ms more than a sh one: measured 11 against 6 ms per dpkg call). dpkg-query
  # must succeed: a host whose package list could not be read must not look like one with none.
  open(my $q, '-|', 'sh', '-c', 'echo @@arch; dpkg --print-architecture; echo @@foreign; dpkg --print-foreign-architectures; echo @@dpkg; exec dpkg-query -W "$1"', 'sh', '-f=${DPKG_FORMAT}') or die "cannot run dpkg-query: $!\n";
  my $listed = 0;
  while (my $l = <$q>) {
    print $l;
    # One dpkg-query serves the dpkg section and the policy filter.
    unless ($listed) { $listed = 1 if $l eq "\@\@dpkg\n"; next; }
    next unless %unless;
    chomp($l);
    # apt-cache policy only for the keys a plan may move: a key installed and configured at exactly
    # the wanted version string is dropped; any other case keeps it (errs towards asking apt).
    my ($n, $a, $v, $w, $s, $e) = split(/\t/, $l, -1);
    my $key = "$n:$a";
    next unless defined $e && exists $unless{$key} && $unless{$key} eq $v && $e eq 'ok';
    delete $unless{$key} if $s eq 'installed' || $s eq 'triggers-pending' || $s eq 'triggers-awaited';
  }
  close($q) or die "dpkg-query failed\n";
}
push(@policy, sort keys %unless);
# apt's own inputs, only when apt is to be asked something: "U" when dpkg's files are unchanged and
# apt's are still at the tuple the controller holds apt's answer for (A, sent only with the C keys
# that answer is for): apt-cache policy does not run. Else "S CLOCK STATE KEYS" (KEYS: the keys
# apt-cache policy is asked about, space-separated) or "N" (no tuple: nothing to keep).
if ($awant && @policy) {
  print "\@\@apt-state\n";
  my $clock = time();
  my $astate = apt_state();
  if (defined $astate && $dsame && defined $aknown && $aknown eq $astate) { print "U\n"; @policy = (); }
  elsif (defined $astate) { print join("\t", 'S', $clock, $astate, join(' ', @policy)), "\n"; }
  else { print "N\n"; }
}
# The pin file's exact bytes: the controller hashes them (no Digest module in perl-base).
if (defined $pin && -f $pin && open(my $fh, '<:raw', $pin)) {
  local $/;
  my $c = <$fh>;
  close($fh);
  print "\@\@pin\n", hx(defined $c ? $c : ''), "\n";
}
if (@elf || @paths || @pids) {
  print "\@\@files\n";
  # The node's clock first: a reading is reused later only if its ctime is older than this.
  print "T\t", time(), "\n";
}
if (@elf) {
  # Keys are name:arch; dpkg names the list file name:arch only for Multi-Arch: same packages.
  my @names = ($elf[0] eq '*') ? lists() : map { (-e "$INFO/$_.list") ? $_ : (split(/:/, $_))[0] } @elf;
  for my $name (@names) {
    for my $f (files_of($name)) {
      next if $f eq '/.' || -d $f;
      my @r = probe($f);
      print join("\t", 'F', hx($name), hx($f), @r), "\n" if $r[0] eq 'elf';
    }
  }
}
# Unchanged is decided on lstat alone (no open): the tuple holds the inode, and any write, chmod or
# rename over the name moves ctime or the inode.
my ($run, $runs) = (0, 0);
for my $i (0 .. $#paths) {
  my ($p, $k) = ($paths[$i], $known[$i]);
  if (defined $k) {
    my @st = lstat($p);
    if (@st && -f _ && $k eq join(':', fields(\@st))) {
      if ($runs && $run + $runs == $i) { $runs++; } else { print "U\t$run\t$runs\n" if $runs; ($run, $runs) = ($i, 1); }
      next;
    }
  }
  print join("\t", 'R', hx($p), probe($p)), "\n";
}
print "U\t$run\t$runs\n" if $runs;
if (@pids) {
  my %owner;
  for my $name (lists()) { for my $f (files_of($name)) { my $c = canon($f); $owner{$c} = $name unless exists $owner{$c}; } }
  for my $pid (@pids) {
    my $fh;
    unless (open($fh, '<', "/proc/$pid/maps")) { print "X\t$pid\n"; next; }
    my %seen;
    while (my $m = <$fh>) {
      chomp($m);
      next unless $m =~ /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ ([0-9a-f]+:[0-9a-f]+) (\d+) +(\/.*)$/;
      my ($range, $dev, $inode, $shown) = ($1, $2, $3, $4);
      next if $inode == 0;
      # The maps line escapes a newline in the name as \012 and cannot tell a literal "\012" or
      # " (deleted)" from those: the exact name is the map_files link, and nlink 0 means deleted.
      my $entry = "/proc/$pid/map_files/$range";
      my ($path, $deleted, $via, @r);
      my $link = readlink($entry);
      if (defined $link && substr($link, 0, 1) eq '/') {
        my @st = stat($entry);
        $deleted = (@st && $st[3] == 0) ? 1 : 0;
        $path = $link;
        $path =~ s/ \(deleted\)$// if $deleted;
        next if $seen{$path}++;
        @r = probe($path, $entry);
        $via = 'm';
      } else {
        # No map_files (not root): the name from the maps line, read only if it is still the same
        # inode on the same device as the mapping.
        $path = $shown;
        $deleted = ($path =~ s/ \(deleted\)$//) ? 1 : 0;
        $path =~ s/\\012/\n/g;
        next if $seen{$path}++;
        my @st = stat($path);
        if (!$deleted && @st && $st[1] == $inode && $st[0] == devno($dev)) { @r = probe($path, $path); $via = 'p'; }
        else { @r = ('missing', @NONE); $via = '-'; }
      }
      next if $r[0] eq 'other';
      my $o = $owner{canon($path)};
      print join("\t", 'M', $pid, $range, $deleted, hx($path), (defined $o ? hx($o) : '-'), $via, @r), "\n";
    }
    close($fh);
  }
}
if (@policy) {
  print "\@\@policy\n";
  $| = 1;
  open(my $err, '>&', \*STDERR);
  open(STDERR, '>', '/dev/null');
  system('apt-cache', 'policy', @policy);
  open(STDERR, '>&', $err);
  $| = 0;
}
# Printed only when everything above ran: the parser refuses an answer without it.
print "\@\@end\n";
`;

function section(name: string): string {
  return `echo '@@${name}'`;
}

/** A stat tuple as the probe compares it: size:mode:inode:dev:mtime:ctime (decimal, mode octal). */
export const KNOWN =
  /^(?:0|[1-9][0-9]{0,15}):[0-7]{4}:(?:0|[1-9][0-9]{0,15}):(?:0|[1-9][0-9]{0,19}):-?(?:0|[1-9][0-9]{0,15}):-?(?:0|[1-9][0-9]{0,15})$/;

/**
 * The stat tuples of the files dpkg's answer depends on, in this order: the status file, the arch
 * and arch-native files (in DPKG_ADMINDIR, else /var/lib/dpkg) and /usr/bin/dpkg; each KNOWN's
 * format, or `-` for a file that does not exist. Joined by commas.
 */
const STATE_PART = KNOWN.source.slice(1, -1);
export const DPKG_STATE = new RegExp(`^(?:${STATE_PART}|-)(?:,(?:${STATE_PART}|-)){3}$`);

/** Most parts an apt state tuple may have (files of apt's directories; a bound, not a guess). */
export const APT_STATE_MAX_PARTS = 10_000;
/**
 * The stat tuples of apt's inputs as the probe's apt_state prints them (see its comment): KNOWN's
 * format or `-`, joined by commas. Their number depends on the host's files.
 */
export const APT_STATE = new RegExp(
  `^(?:${STATE_PART}|-)(?:,(?:${STATE_PART}|-)){9,${APT_STATE_MAX_PARTS}}$`,
);

/** The output format's version, printed first; the parser refuses any other. */
export const PROBE_VERSION = 6;

function hex(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** Paths travel hex-encoded, so any byte but NUL is fine; they must still be absolute. */
function assertPath(p: string): void {
  if (!p.startsWith('/') || p.includes('\0'))
    throw new Error(`refusing path ${JSON.stringify(p)}: not an absolute path without NUL`);
}

/**
 * `P <hex path>` records, by path. check and plan send every host the same locked paths, and hex
 * encoding them was the larger part of rendering a host's probe (~750 Buffer round trips, issue 14):
 * each path is checked and encoded once per process. Bounded: past PATH_RECORDS_MAX it starts over.
 */
const pathRecords = new Map<string, string>();
const PATH_RECORDS_MAX = 200_000;

function pathRecord(p: string): string {
  let r = pathRecords.get(p);
  if (r === undefined) {
    assertPath(p);
    r = `P\t${hex(p)}`;
    if (pathRecords.size >= PATH_RECORDS_MAX) pathRecords.clear();
    pathRecords.set(p, r);
  }
  return r;
}

/** Reject anything that could break the script's framing; callers validate semantics earlier. */
function assertLine(s: string, what: string): void {
  if (/[\n\r\0\t]/.test(s))
    throw new Error(`refusing ${what} with a control character: ${JSON.stringify(s)}`);
}

export function renderProbeScript(req: ProbeRequest): string {
  const lines: string[] = ['export LC_ALL=C', section(`probe ${PROBE_VERSION}`)];
  if (req.shaFor && req.shaFor.length > 0) {
    req.shaFor.forEach((k) => assertLine(k, 'package'));
    lines.push(
      section('sha'),
      `${renderCommand(['apt-cache', 'show', ...req.shaFor])} 2>/dev/null | grep -E '^(Package|Architecture|Version|SHA256):'`,
    );
  }
  // Everything else is one perl process (os-release, dpkg-query, pins, files, apt-cache policy):
  // each process spawned on the node costs it milliseconds of CPU (issue 14).
  const data: string[] = [];
  if (req.pinFile !== undefined) {
    assertPath(req.pinFile);
    data.push(`N\t${hex(req.pinFile)}`);
  }
  if (req.policyFor && req.policyUnless) throw new Error('policyFor and policyUnless exclude each other');
  for (const k of req.policyFor ?? []) {
    assertLine(k, 'package');
    data.push(`K\t${k}`);
  }
  for (const [k, v] of req.policyUnless ?? []) {
    assertLine(k, 'package');
    assertLine(v, 'version');
    data.push(`W\t${k}\t${v}`);
  }
  if (req.dpkgKnown) {
    if (!DPKG_STATE.test(req.dpkgKnown.state))
      throw new Error(`invalid dpkg state tuple ${JSON.stringify(req.dpkgKnown.state)}`);
    data.push(`D\t${req.dpkgKnown.state}`);
    for (const k of req.dpkgKnown.policy ?? []) {
      assertLine(k, 'package');
      data.push(`C\t${k}`);
    }
  }
  if (req.aptState) {
    const k = req.aptState.known;
    if (k !== undefined && !APT_STATE.test(k))
      throw new Error(`invalid apt state tuple ${JSON.stringify(k.slice(0, 100))}`);
    data.push(k === undefined ? 'A' : `A\t${k}`);
  }
  if (req.elfOf === 'all') data.push('E\t*');
  else for (const k of req.elfOf ?? []) data.push(`E\t${hex(k)}`);
  for (const p of req.paths ?? []) {
    const record = pathRecord(p);
    const k = req.known?.get(p);
    if (k !== undefined && !KNOWN.test(k))
      throw new Error(`invalid stat tuple ${JSON.stringify(k)} for ${p}`);
    data.push(k === undefined ? record : `${record}\t${k}`);
  }
  for (const pid of req.pids ?? []) {
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`invalid pid ${pid}`);
    data.push(`I\t${pid}`);
  }
  lines.push(`perl - <<'${PERL_EOF}'`, PERL.trim(), '__DATA__', ...data, PERL_EOF);
  return lines.join('\n') + '\n';
}
