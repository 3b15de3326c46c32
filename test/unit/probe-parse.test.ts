import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildIdFromBuffer } from '../../src/elf/build-id.js';
import { listNameToKey, parsePolicies, parseProbeOutput } from '../../src/facts/parse.js';
import { PROBE_VERSION, renderProbeScript, type ProbeRequest } from '../../src/facts/probe-script.js';
import type { InstalledPackage } from '../../src/facts/types.js';
import { indexLock } from '../../src/lock/lock-index.js';
import { renderPins } from '../../src/plan/pins.js';
import { planHost } from '../../src/plan/planner.js';
import { makeLock, pkg } from './core-fixtures.js';
import { planHostReference } from './planner-reference.js';
import { FOCAL_PROBE_HEAD } from '../helpers/probe-output.js';

// ---------------------------------------------------------------------------------------------
// Helpers: real files of this machine, readelf as the independent oracle
// ---------------------------------------------------------------------------------------------

const HAVE_TOOLS = ['/usr/bin/readelf', '/usr/bin/dpkg', '/usr/bin/perl', '/usr/bin/apt-cache'].every((p) =>
  existsSync(p),
);
const LS = '/usr/bin/ls';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';

function modeOf(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

/** `readelf -n`'s Build ID for each path (the GNU binutils reading, independent of our parser). */
function readelfBuildIds(paths: readonly string[]): Map<string, string> {
  const r = spawnSync('readelf', ['-n', ...paths], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = new Map<string, string>();
  let current = paths.length === 1 ? paths[0] : undefined;
  for (const line of r.stdout.split('\n')) {
    const file = /^File: (.+)$/.exec(line);
    if (file?.[1]) current = file[1];
    const id = /\sBuild ID: ([0-9a-f]+)$/.exec(line);
    if (id?.[1] && current !== undefined) out.set(current, id[1]);
  }
  return out;
}

/**
 * The build-ID walk's answer for a file (probe format 6), as the probe prints it: computed here
 * by the reference walk (src/elf/build-id.ts) over the whole file.
 */
function elfAnswer(path: string): string {
  const r = buildIdFromBuffer(readFileSync(path));
  if (r.kind === 'build-id') return `=${r.buildId}`;
  if (r.kind === 'no-build-id') return '-';
  throw new Error(`${path}: ${r.kind}`);
}

function elfRecord(path: string): string[] {
  return [
    'elf',
    String(statSync(path).size),
    modeOf(path),
    String(statSync(path).ino),
    STAMP,
    elfAnswer(path),
  ];
}

/** Names travel hex-encoded in probe records. */
const hx = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const NONE = ['', '', '', '', ''];
/** A stamp field (dev:mtime:ctime) for hand-written records. */
const STAMP = '2049:1700000000:1700000000';

function runProbe(req: ProbeRequest): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync('sh', ['-s'], {
    input: renderProbeScript(req),
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const dpkgLine = (...fields: string[]): string => fields.join('\t');

const POLICY_SAMPLE = `libfleet1:
  Installed: 2.31-0ubuntu9.14
  Candidate: 2.31-0ubuntu9.14
  Version table:
     2.31-0ubuntu9.16 500
        500 file:/srv/repo ./ Packages
 *** 2.31-0ubuntu9.14 1001
        500 file:/srv/repo ./ Packages
        100 /var/lib/dpkg/status`;

const PIN_TEXT =
  '# Managed by criu-lock\n\nPackage: libc6:amd64\nPin: version 2.31-0ubuntu9.14\nPin-Priority: 1001\n';
const PIN_SHA = createHash('sha256').update(PIN_TEXT).digest('hex');

/** A probe's stdout as the script prints it on an Ubuntu 20.04 node, with file heads from this machine. */
function sampleOutput(): string {
  const ls = elfRecord(LS);
  const libc = elfRecord(LIBC);
  return [
    `@@probe ${PROBE_VERSION}`,
    '@@os-release',
    'NAME="Ubuntu"',
    'VERSION="20.04.6 LTS (Focal Fossa)"',
    'ID=ubuntu',
    'ID_LIKE=debian',
    'VERSION_ID="20.04"',
    'VERSION_CODENAME=focal',
    'UBUNTU_CODENAME=focal',
    '@@arch',
    'amd64',
    '@@foreign',
    'i386',
    '@@dpkg',
    dpkgLine(
      'libc6',
      'amd64',
      '2.31-0ubuntu9.14',
      'install',
      'installed',
      'ok',
      'same',
      '',
      'libgcc-s1, libcrypt1 (>= 1:4.4.10-10ubuntu4)',
      '',
    ),
    dpkgLine(
      'libc6',
      'i386',
      '2.31-0ubuntu9.14',
      'install',
      'installed',
      'ok',
      'same',
      '',
      'libgcc-s1, libcrypt1 (>= 1:4.4.10-10ubuntu4)',
      '',
    ),
    dpkgLine(
      'bash',
      'amd64',
      '5.0-6ubuntu1.2',
      'hold',
      'installed',
      'ok',
      'foreign',
      'libc6 (>= 2.15), libtinfo6 (>= 6)',
      'base-files (>= 2.1.12), debianutils (>= 2.15)',
      '',
    ),
    dpkgLine(
      'coreutils',
      'amd64',
      '8.30-3ubuntu2',
      'install',
      'installed',
      'ok',
      'foreign',
      'libacl1 (>= 2.2.23)',
      '',
      '',
    ),
    dpkgLine(
      'tzdata',
      'all',
      '2024a-0ubuntu0.20.04',
      'install',
      'installed',
      'ok',
      'foreign',
      '',
      'debconf (>= 0.5) | debconf-2.0',
      '',
    ),
    dpkgLine(
      'mawk',
      'amd64',
      '1.3.4.20200120-2',
      'install',
      'triggers-pending',
      'ok',
      'foreign',
      'libc6 (>= 2.29)',
      '',
      'awk',
    ),
    dpkgLine('oldconf', 'amd64', '1.0-1', 'deinstall', 'config-files', 'ok', '', '', '', ''),
    dpkgLine('gone', 'amd64', '', 'purge', 'not-installed', 'ok', '', '', '', ''),
    dpkgLine('halfpkg', 'amd64', '2.0-1', 'install', 'half-installed', 'reinstreq', '', '', '', ''),
    dpkgLine('unpackd', 'amd64', '3.0-1', 'install', 'unpacked', 'ok', '', '', '', ''),
    dpkgLine('needsfix', 'amd64', '4.0-1', 'install', 'installed', 'reinstreq', '', '', '', ''),
    '@@pin',
    hx(PIN_TEXT),
    '@@policy',
    POLICY_SAMPLE,
    'libc6:i386:',
    '  Installed: 2.31-0ubuntu9.14',
    '  Candidate: 2.31-0ubuntu9.16',
    '  Version table:',
    '     2.31-0ubuntu9.16 500',
    '        500 http://mirror.example/ubuntu focal-updates/main i386 Packages',
    ' *** 2.31-0ubuntu9.14 100',
    '        100 /var/lib/dpkg/status',
    'ghost:',
    '  Installed: (none)',
    '  Candidate: (none)',
    '  Version table:',
    '@@sha',
    'Package: libc6',
    'Architecture: amd64',
    'Version: 2.31-0ubuntu9.14',
    'SHA256: ' + 'ab'.repeat(32),
    'Package: tzdata',
    'Architecture: all',
    'Version: 2024a-0ubuntu0.20.04',
    'SHA256: ' + 'cd'.repeat(32),
    '@@files',
    ['F', hx('coreutils'), hx('/bin/ls'), ...ls].join('\t'),
    ['F', hx('libc6:amd64'), hx('/lib/x86_64-linux-gnu/libc.so.6'), ...libc].join('\t'),
    ['F', hx('notinstalled:amd64'), hx('/usr/lib/x.so'), ...ls].join('\t'),
    ['R', hx(LS), ...ls].join('\t'),
    ['R', hx('/etc/hostname'), 'file', '12', '0644', '77', STAMP, ''].join('\t'),
    ['R', hx('/nonexistent'), 'missing', ...NONE].join('\t'),
    ['R', hx('/lib64'), 'symlink', ...NONE].join('\t'),
    // ELF magic but no valid class: the walk finds no build-ID.
    ['R', hx('/opt/noclass.so'), 'elf', '8', '0644', '78', STAMP, '-'].join('\t'),
    // Shorter than the 5 bytes CRIU reads first: the probe prints a plain file.
    ['R', hx('/opt/magic-only'), 'file', '4', '0644', '79', STAMP, ''].join('\t'),
    [
      'M',
      '4242',
      '7f0-7f1',
      '0',
      hx('/usr/lib/x86_64-linux-gnu/libc.so.6'),
      hx('libc6:amd64'),
      'm',
      ...libc,
    ].join('\t'),
    ['M', '4242', '55a-55b', '0', hx('/usr/bin/bash'), hx('bash'), 'm', ...ls].join('\t'),
    [
      'M',
      '4242',
      '7f2-7f3',
      '0',
      hx('/usr/lib/locale/locale-archive'),
      '-',
      'm',
      'file',
      '3035952',
      '0644',
      '80',
      STAMP,
      '',
    ].join('\t'),
    ['M', '4242', '7f4-7f5', '1', hx('/tmp/plugin.so'), '-', 'm', ...libc].join('\t'),
    ['X', '999'].join('\t'),
    '@@end',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

describe('parseProbeOutput on realistic output', () => {
  const { facts } = parseProbeOutput('node-b', sampleOutput());
  const oracle = readelfBuildIds([LS, LIBC]);

  it('has readelf answers to compare with', () => {
    expect(oracle.get(LS)).toMatch(/^[0-9a-f]{40}$/);
    expect(oracle.get(LIBC)).toMatch(/^[0-9a-f]{40}$/);
  });

  it('reads the platform from os-release, arch and foreign arches', () => {
    expect(facts.host).toBe('node-b');
    expect(facts.platform).toEqual({
      id: 'ubuntu',
      versionId: '20.04',
      codename: 'focal',
      architecture: 'amd64',
      foreignArchitectures: ['i386'],
    });
  });

  it('reads dpkg records field by field, keyed name:arch', () => {
    expect(facts.packages.get('bash:amd64')).toEqual({
      key: 'bash:amd64',
      name: 'bash',
      arch: 'amd64',
      version: '5.0-6ubuntu1.2',
      want: 'hold',
      status: 'installed',
      eflag: 'ok',
      multiArch: 'foreign',
      preDepends: 'libc6 (>= 2.15), libtinfo6 (>= 6)',
      depends: 'base-files (>= 2.1.12), debianutils (>= 2.15)',
      provides: '',
    });
    expect(facts.packages.get('mawk:amd64')?.provides).toBe('awk');
    expect(facts.packages.get('tzdata:all')?.version).toBe('2024a-0ubuntu0.20.04');
    expect(facts.packages.has('libc6:i386')).toBe(true);
  });

  it('leaves out config-files and not-installed entries', () => {
    expect(facts.packages.has('oldconf:amd64')).toBe(false);
    expect(facts.packages.has('gone:amd64')).toBe(false);
    expect([...facts.packages.keys()].sort()).toEqual([
      'bash:amd64',
      'coreutils:amd64',
      'halfpkg:amd64',
      'libc6:amd64',
      'libc6:i386',
      'mawk:amd64',
      'needsfix:amd64',
      'tzdata:all',
      'unpackd:amd64',
    ]);
  });

  it('reports broken dpkg states (half-installed, unpacked, reinstreq), not triggers-pending', () => {
    const broken = facts.problems.filter((p) => p.type === 'broken-dpkg-state');
    expect(broken.map((p) => p.package).sort()).toEqual(['halfpkg:amd64', 'needsfix:amd64', 'unpackd:amd64']);
    const half = broken.find((p) => p.package === 'halfpkg:amd64');
    expect(half?.detail).toBe(
      'halfpkg:amd64 is half-installed (reinstreq); finish or repair it with dpkg --configure -a / apt-get -f install',
    );
    expect(broken.find((p) => p.package === 'unpackd:amd64')?.detail).toMatch(/^unpackd:amd64 is unpacked; /);
    expect(broken.find((p) => p.package === 'needsfix:amd64')?.detail).toMatch(
      /^needsfix:amd64 is installed \(reinstreq\); /,
    );
  });

  it('reports a vanished process and no probe problem', () => {
    expect(facts.problems.filter((p) => p.type === 'process-missing')).toEqual([
      { type: 'process-missing', detail: 'process 999: no such process' },
    ]);
    expect(facts.problems.some((p) => p.type === 'probe')).toBe(false);
  });

  it('reads the pin file back byte for byte, and hashes those bytes', () => {
    expect(facts.pinFile).toBe(PIN_TEXT);
    expect(facts.pinSha256).toBe(PIN_SHA);
  });

  it('refuses a pin section that is not hex', () => {
    const out = sampleOutput().replace(`@@pin\n${hx(PIN_TEXT)}\n`, '@@pin\n|Package: *\n');
    expect(() => parseProbeOutput('node-b', out)).toThrow(
      /^node-b: refusing the facts probe's answer: the pin file is not hex/,
    );
  });

  it('refuses a dpkg section that lists a package twice (dpkg keys its database by name and architecture)', () => {
    const row = dpkgLine('zz-twice', 'amd64', '1.0', 'install', 'installed', 'ok', '', '', '', '');
    const out = sampleOutput().replace('@@dpkg\n', `@@dpkg\n${row}\n${row.replace('1.0', '2.0')}\n`);
    expect(() => parseProbeOutput('node-b', out)).toThrow(
      /^node-b: refusing the facts probe's answer: dpkg lists zz-twice:amd64 twice/,
    );
  });

  it('parses apt-cache policy: installed marker, priorities, sources without dpkg status', () => {
    expect(facts.policies.get('libfleet1:amd64')).toEqual({
      key: 'libfleet1:amd64',
      installed: '2.31-0ubuntu9.14',
      candidate: '2.31-0ubuntu9.14',
      versions: [
        {
          version: '2.31-0ubuntu9.16',
          priority: 500,
          sources: ['file:/srv/repo ./ Packages'],
          installed: false,
        },
        {
          version: '2.31-0ubuntu9.14',
          priority: 1001,
          sources: ['file:/srv/repo ./ Packages'],
          installed: true,
        },
      ],
    });
  });

  it('keeps arch-qualified policy headers and treats "(none)" as absent', () => {
    const i386 = facts.policies.get('libc6:i386');
    expect(i386?.candidate).toBe('2.31-0ubuntu9.16');
    expect(i386?.versions.map((v) => [v.version, v.priority, v.sources.length, v.installed])).toEqual([
      ['2.31-0ubuntu9.16', 500, 1, false],
      ['2.31-0ubuntu9.14', 100, 0, true],
    ]);
    expect(facts.policies.get('ghost:amd64')).toEqual({
      key: 'ghost:amd64',
      installed: undefined,
      candidate: undefined,
      versions: [],
    });
    expect([...facts.policies.keys()].sort()).toEqual(['ghost:amd64', 'libc6:i386', 'libfleet1:amd64']);
  });

  it('reads .deb SHA256s keyed name:arch=version (arch all included)', () => {
    expect(facts.debSha256).toEqual(
      new Map([
        ['libc6:amd64=2.31-0ubuntu9.14', 'ab'.repeat(32)],
        ['tzdata:all=2024a-0ubuntu0.20.04', 'cd'.repeat(32)],
      ]),
    );
  });

  it('maps list names to keys (bash → bash:amd64, libc6:amd64 stays) and drops unknown owners', () => {
    expect([...facts.packageFiles.keys()].sort()).toEqual(['coreutils:amd64', 'libc6:amd64']);
    const [ls] = facts.packageFiles.get('coreutils:amd64') ?? [];
    expect(ls).toEqual({
      path: '/bin/ls',
      kind: 'elf',
      size: statSync(LS).size,
      mode: modeOf(LS),
      buildId: oracle.get(LS),
    });
    expect(facts.packageFiles.get('libc6:amd64')?.[0]?.buildId).toBe(oracle.get(LIBC));
  });

  it('takes the build-IDs the walk printed (which agree with readelf on real files)', () => {
    expect(facts.files.get(LS)?.buildId).toBe(oracle.get(LS));
  });

  it('reads requested paths of every kind', () => {
    expect(facts.files.get('/etc/hostname')).toEqual({
      path: '/etc/hostname',
      kind: 'file',
      size: 12,
      mode: '0644',
    });
    expect(facts.files.get('/nonexistent')).toEqual({ path: '/nonexistent', kind: 'missing' });
    expect(facts.files.get('/lib64')).toEqual({ path: '/lib64', kind: 'symlink' });
    // ELF magic but no valid class: an ELF file without build-ID, as CRIU sees it (and the walk says).
    expect(facts.files.get('/opt/noclass.so')).toEqual({
      path: '/opt/noclass.so',
      kind: 'elf',
      size: 8,
      mode: '0644',
      buildId: null,
    });
    // Shorter than the 5 bytes CRIU reads first: not ELF at all (the probe says so).
    expect(facts.files.get('/opt/magic-only')).toEqual({
      path: '/opt/magic-only',
      kind: 'file',
      size: 4,
      mode: '0644',
    });
  });

  it('reads mapped files with owners, deleted flags and build-IDs', () => {
    const byPath = new Map(facts.mapped.map((m) => [m.path, m]));
    expect(byPath.get(LIBC)).toMatchObject({
      pid: 4242,
      deleted: false,
      owner: 'libc6:amd64',
      kind: 'elf',
      buildId: oracle.get(LIBC),
    });
    expect(byPath.get('/usr/bin/bash')?.owner).toBe('bash:amd64');
    expect(byPath.get('/usr/lib/locale/locale-archive')).toEqual({
      path: '/usr/lib/locale/locale-archive',
      kind: 'file',
      size: 3035952,
      mode: '0644',
      pid: 4242,
      deleted: false,
      owner: undefined,
    });
    expect(byPath.get('/tmp/plugin.so')).toMatchObject({ deleted: true, owner: undefined });
  });
});

describe('parseProbeOutput on incomplete output', () => {
  it.each([
    ['cut before @@end', (s: string) => s.slice(0, s.indexOf('@@end'))],
    ['no @@probe header', (s: string) => s.replace(`@@probe ${PROBE_VERSION}\n`, '')],
    ['an older probe version', (s: string) => s.replace(`@@probe ${PROBE_VERSION}\n`, '@@probe 2\n')],
    ['empty output', () => ''],
  ])('%s → a probe problem', (_what, mangle) => {
    const { facts } = parseProbeOutput('node-b', mangle(sampleOutput()));
    expect(facts.problems.filter((p) => p.type === 'probe')).toEqual([
      { type: 'probe', detail: 'the facts probe did not run to completion' },
    ]);
  });

  it('no pin file: pinFile and pinSha256 are null', () => {
    const out = sampleOutput().replace(`@@pin\n${hx(PIN_TEXT)}\n`, '');
    const { facts } = parseProbeOutput('node-b', out);
    expect(facts.pinFile).toBeNull();
    expect(facts.pinSha256).toBeNull();
  });
});

describe("the build-ID walk's answers", () => {
  const size = statSync(LS).size;
  const rec = (answer: string): string =>
    ['R', hx(LS), 'elf', String(size), '0755', '5', STAMP, answer].join('\t');
  const out = (answer: string): string =>
    [`@@probe ${PROBE_VERSION}`, '@@arch', 'amd64', '@@files', rec(answer), '@@end', ''].join('\n');

  it('refuses a file past a cap, naming host and file, as the controller walk did', () => {
    expect(() => parseProbeOutput('n', out('!notes'))).toThrow(
      `n: ${LS}: ELF file refused: more than 4096 note headers`,
    );
    expect(() => parseProbeOutput('n', out('!phdrs 2000'))).toThrow(
      `n: ${LS}: ELF file refused: 2000 program headers (at most 1024 are read)`,
    );
  });

  it('fails the host when the file changed while its notes were read', () => {
    expect(() => parseProbeOutput('n', out('!changed'))).toThrow(
      /changed or vanished while its ELF notes were read/,
    );
  });

  it.each([
    ['a cap that was not reached', '!phdrs 1024'],
    ['a descriptor longer than CRIU reads', `=${'ab'.repeat(513)}`],
    ['an empty build-ID', '='],
    ['upper-case hex', '=ABCD'],
    ['no answer at all', ''],
    ['a head, as format 5 sent', '7f454c46'],
  ])('refuses %s as an answer the probe cannot have printed', (_what, answer) => {
    expect(() => parseProbeOutput('n', out(answer))).toThrow(
      /refusing the facts probe's answer: line 1 of section files/,
    );
  });
});

describe("the parser's verdicts on the walk's answers (LockVerdicts)", () => {
  it('judge a file at the lock only for the locked build-ID', () => {
    const size = statSync(LS).size;
    const real = readelfBuildIds([LS]).get(LS)!;
    const other = real.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const out = [
      ...FOCAL_PROBE_HEAD,
      '@@arch',
      'amd64',
      '@@dpkg',
      'coreutils\tamd64\t9.1-1\tinstall\tinstalled\tok\tforeign\t\t\t',
      '@@files',
      ['R', hx(LS), 'elf', String(size), '0755', '5', STAMP, `=${real}`].join('\t'),
      '@@end',
      '',
    ].join('\n');
    for (const [buildId, reinstall] of [
      [real, false],
      [other, true],
    ] as const) {
      const lock = makeLock({
        packages: {
          'coreutils:amd64': { version: '9.1-1', files: { [LS]: { size, mode: '0755', buildId } } },
        },
      });
      const { facts } = parseProbeOutput('n', out, undefined, [LS], undefined, indexLock(lock));
      expect(facts.lockVerdicts?.packageAtLock).toEqual(Uint8Array.of(1));
      expect(facts.lockVerdicts?.fileAtLock).toEqual(Uint8Array.of(reinstall ? 0 : 1));
      expect(facts.files.get(LS)?.buildId).toBe(real);
      const pins = renderPins(lock);
      const plan = planHost(lock, facts, pins);
      expect(plan).toEqual(planHostReference(lock, facts, pins));
      // It must move (a reinstall, blocked here: no apt source was printed) only for another build-ID.
      expect(plan.blocked.map((b) => b.package)).toEqual(reinstall ? ['coreutils:amd64'] : []);
    }
  });
});

describe('listNameToKey', () => {
  const packages = new Map<string, InstalledPackage>(
    [pkg('libc6:amd64', '1'), pkg('libc6:i386', '1'), pkg('bash:amd64', '1'), pkg('tzdata:all', '1')].map(
      (p) => [p.key, p],
    ),
  );
  const byName = new Map([
    ['bash', 'bash:amd64'],
    ['tzdata', 'tzdata:all'],
    ['libc6', 'libc6:amd64'],
  ]);
  it.each([
    ['libc6:amd64', 'libc6:amd64'],
    ['libc6:i386', 'libc6:i386'],
    ['libc6:arm64', undefined],
    ['bash', 'bash:amd64'],
    ['tzdata', 'tzdata:all'],
    ['zsh', undefined],
  ])('%s → %s', (list, key) => {
    expect(listNameToKey(list, packages, byName)).toBe(key);
  });

  it('prefers the native architecture for an unqualified list name', () => {
    const out = [
      ...FOCAL_PROBE_HEAD,
      '@@arch',
      'amd64',
      '@@dpkg',
      dpkgLine('foo', 'i386', '1', 'install', 'installed', 'ok', 'foreign', '', '', ''),
      dpkgLine('foo', 'amd64', '1', 'install', 'installed', 'ok', 'foreign', '', '', ''),
      dpkgLine('bar', 'amd64', '1', 'install', 'installed', 'ok', 'foreign', '', '', ''),
      dpkgLine('bar', 'i386', '1', 'install', 'installed', 'ok', 'foreign', '', '', ''),
      '@@files',
      ['M', '1', '1-2', '0', hx('/usr/bin/foo'), hx('foo'), 'p', 'file', '1', '0755', '3', STAMP, ''].join(
        '\t',
      ),
      ['M', '1', '3-4', '0', hx('/usr/bin/bar'), hx('bar'), 'p', 'file', '1', '0755', '4', STAMP, ''].join(
        '\t',
      ),
      '@@end',
      '',
    ].join('\n');
    const { facts } = parseProbeOutput('n', out);
    expect(facts.mapped.map((m) => m.owner)).toEqual(['foo:amd64', 'bar:amd64']);
  });
});

describe('parsePolicies', () => {
  it('parses the sample and qualifies unqualified headers with the native arch', () => {
    const p = parsePolicies(POLICY_SAMPLE.split('\n'), 'arm64');
    expect([...p.keys()]).toEqual(['libfleet1:arm64']);
    const installed = p.get('libfleet1:arm64')?.versions.filter((v) => v.installed);
    expect(installed).toEqual([
      {
        version: '2.31-0ubuntu9.14',
        priority: 1001,
        sources: ['file:/srv/repo ./ Packages'],
        installed: true,
      },
    ]);
  });

  it('reads negative priorities and several sources', () => {
    const lines = [
      'foo:',
      '  Installed: (none)',
      '  Candidate: 2.0-1',
      '  Version table:',
      '     2.0-1 -10',
      '        500 http://a.example/ubuntu focal/main amd64 Packages',
      '        100 http://b.example/ubuntu focal-backports/main amd64 Packages',
    ];
    expect(parsePolicies(lines, 'amd64').get('foo:amd64')?.versions).toEqual([
      {
        version: '2.0-1',
        priority: -10,
        sources: [
          'http://a.example/ubuntu focal/main amd64 Packages',
          'http://b.example/ubuntu focal-backports/main amd64 Packages',
        ],
        installed: false,
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// renderProbeScript
// ---------------------------------------------------------------------------------------------

describe('renderProbeScript', () => {
  it.each<[string, ProbeRequest]>([
    ['a relative path', { paths: ['usr/lib/a'] }],
    ['a path with a NUL', { paths: ['/usr/lib/a\0b'] }],
    ['a relative pin file', { pinFile: 'etc/apt/x.pref' }],
    ['a package with a carriage return', { policyFor: ['bash\r'] }],
    ['a sha request with a newline', { shaFor: ['bash:amd64=1\n'] }],
    ['a non-positive pid', { pids: [0] }],
    ['a fractional pid', { pids: [1.5] }],
  ])('refuses %s', (_what, req) => {
    expect(() => renderProbeScript(req)).toThrow(/refusing|invalid pid/);
  });

  it('sends package names and the pin file as perl DATA lines, which no shell reads', () => {
    const script = renderProbeScript({
      policyFor: ["foo'bar:amd64", 'bash:amd64'],
      pinFile: '/etc/apt/preferences.d/my pins.pref',
    });
    expect(script).toContain(
      `__DATA__\nN\t${hx('/etc/apt/preferences.d/my pins.pref')}\nK\tfoo'bar:amd64\nK\tbash:amd64\n__CRIU_LOCK_PERL__\n`,
    );
    expect(renderProbeScript({ policyUnless: [['bash:amd64', '5.2-1']] })).toContain(
      '\nW\tbash:amd64\t5.2-1\n',
    );
  });

  it('frames the shell part in sections; one perl process prints the rest', () => {
    const script = renderProbeScript({ elfOf: ['libc6:amd64'], paths: ['/usr/bin/ls'], pids: [7] });
    const sections = script.split('\n').filter((l) => l.startsWith("echo '@@"));
    // Format 5: arch and foreign come from perl too, which skips them when dpkg's state is unchanged.
    expect(sections).toEqual([`echo '@@probe ${PROBE_VERSION}'`]);
    expect(script.match(/^perl /gm)).toHaveLength(1);
    expect(script).toContain(
      `__DATA__\nE\t${hx('libc6:amd64')}\nP\t${hx('/usr/bin/ls')}\nI\t7\n__CRIU_LOCK_PERL__\n`,
    );
    expect(renderProbeScript({ elfOf: 'all' })).toContain('__DATA__\nE\t*\n');
  });

  it('renders every host of a run the same path records (encoded once), each with its own tuples', () => {
    const paths = ['/usr/bin/ls', '/usr/lib/a\tb.so'];
    const a = renderProbeScript({ paths, known: new Map([['/usr/bin/ls', '1:0755:1:1:1:1']]) });
    const b = renderProbeScript({ paths: [...paths], known: new Map([[paths[1]!, '2:0644:2:2:2:2']]) });
    expect(a).toContain(`__DATA__\nP\t${hx(paths[0]!)}\t1:0755:1:1:1:1\nP\t${hx(paths[1]!)}\n`);
    expect(b).toContain(`__DATA__\nP\t${hx(paths[0]!)}\nP\t${hx(paths[1]!)}\t2:0644:2:2:2:2\n`);
    // A path is still refused after others were encoded, and on every later render too.
    for (let i = 0; i < 2; i++) {
      expect(() => renderProbeScript({ paths: [...paths, 'relative'] })).toThrow(/refusing path/);
      expect(() => renderProbeScript({ paths: ['/a\0b'] })).toThrow(/refusing path/);
    }
    expect(() =>
      renderProbeScript({ paths, known: new Map([['/usr/bin/ls', '1:0755:1:1:1:1\nI\t1']]) }),
    ).toThrow(/invalid stat tuple/);
  });
});

// ---------------------------------------------------------------------------------------------
// The real probe on this machine (Debian, dpkg, apt, perl-base), run with `sh -s`
// ---------------------------------------------------------------------------------------------

describe.runIf(HAVE_TOOLS)('the rendered probe on this machine', () => {
  const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
  const res = runProbe({
    elfOf: [`coreutils:${arch}`],
    paths: [LS, '/nonexistent'],
    pids: [process.pid],
    policyFor: [`bash:${arch}`],
    pinFile: '/nonexistent.pref',
  });
  const { facts } = parseProbeOutput('localhost', res.stdout);

  it('runs to completion', () => {
    expect(res.status).toBe(0);
    expect(facts.problems.filter((p) => p.type === 'probe' || p.type === 'process-missing')).toEqual([]);
  });

  it('reads the platform', () => {
    const osRelease = spawnSync(
      'sh',
      ['-c', '. /etc/os-release && echo "$ID|$VERSION_ID|$VERSION_CODENAME"'],
      { encoding: 'utf8' },
    ).stdout.trim();
    expect(facts.platform.id).toBe('debian');
    expect(`${facts.platform.id}|${facts.platform.versionId}|${facts.platform.codename}`).toBe(osRelease);
    expect(facts.platform.architecture).toBe(arch);
  });

  it('reads coreutils ELF files with the build-IDs readelf reports', () => {
    const files = facts.packageFiles.get(`coreutils:${arch}`) ?? [];
    expect(files.length).toBeGreaterThan(20);
    const oracle = readelfBuildIds(files.map((f) => f.path));
    expect(oracle.size).toBe(files.length);
    for (const f of files) {
      expect(f.kind).toBe('elf');
      expect(f.size).toBe(statSync(f.path).size);
      expect(f.mode).toBe(modeOf(f.path));
      expect({ path: f.path, buildId: f.buildId }).toEqual({ path: f.path, buildId: oracle.get(f.path) });
    }
    // dpkg lists /bin/ls (pre-/usr-merge path); it is the same file as /usr/bin/ls.
    expect(files.map((f) => f.path)).toContain('/bin/ls');
  });

  it('reads the requested paths', () => {
    expect(facts.files.get('/nonexistent')).toEqual({ path: '/nonexistent', kind: 'missing' });
    expect(facts.files.get(LS)).toMatchObject({
      kind: 'elf',
      size: statSync(LS).size,
      buildId: readelfBuildIds([LS]).get(LS),
    });
  });

  it("reads this process's mapped files and finds libc6 as owner through the /usr-merge alias", () => {
    const mine = facts.mapped.filter((m) => m.pid === process.pid);
    expect(mine.length).toBeGreaterThan(0);
    const libc = mine.find((m) => m.path === LIBC);
    expect(libc).toMatchObject({
      owner: `libc6:${arch}`,
      deleted: false,
      kind: 'elf',
      size: statSync(LIBC).size,
    });
    expect(libc?.buildId).toBe(readelfBuildIds([LIBC]).get(LIBC));
    // dpkg itself knows the file only under /lib, so the owner was found through the alias.
    expect(spawnSync('dpkg', ['-S', LIBC], { encoding: 'utf8' }).status).not.toBe(0);
    const ld = mine.find((m) => m.path.endsWith('/ld-linux-x86-64.so.2'));
    expect(ld?.owner).toBe(`libc6:${arch}`);
  });

  it('asks apt-cache policy about bash and finds no pin file', () => {
    const bash = facts.policies.get(`bash:${arch}`);
    expect(bash?.installed).toBe(facts.packages.get(`bash:${arch}`)?.version);
    expect(bash?.versions.filter((v) => v.installed).map((v) => v.version)).toEqual([bash?.installed]);
    expect(facts.pinFile).toBeNull();
    expect(facts.pinSha256).toBeNull();
  });
});

describe.runIf(HAVE_TOOLS)('no shell injection through the probe', () => {
  const PWNED = '/tmp/criu-lock-pwned';
  const dir = mkdtempSync(join(tmpdir(), 'criu-lock-probe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a pin file path with quotes and a command does not run the command', () => {
    rmSync(PWNED, { force: true });
    const res = runProbe({ pinFile: "/tmp/x'; touch /tmp/criu-lock-pwned; '", policyFor: ["foo'bar"] });
    expect(res.status).toBe(0);
    expect(existsSync(PWNED)).toBe(false);
    const { facts } = parseProbeOutput('localhost', res.stdout);
    expect(facts.problems.filter((p) => p.type === 'probe')).toEqual([]);
    expect(facts.pinFile).toBeNull();
  });

  it('a dpkg-query that fails ends the answer early: the host fails, it never reads as having no packages', () => {
    const bin = mkdtempSync(join(tmpdir(), 'criu-lock-bin-'));
    writeFileSync(join(bin, 'dpkg-query'), '#!/bin/sh\necho "dpkg-query: broken" >&2\nexit 2\n', {
      mode: 0o755,
    });
    const r = spawnSync('sh', ['-s'], {
      input: renderProbeScript({ paths: ['/usr/bin/ls'] }),
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    rmSync(bin, { recursive: true, force: true });
    const { facts } = parseProbeOutput('localhost', r.stdout);
    expect(r.stdout).not.toContain('@@end');
    expect(facts.problems).toContainEqual({
      type: 'probe',
      detail: 'the facts probe did not run to completion',
    });
  });

  it('reads back a pin file whose path holds quotes, $(...), backticks and spaces', () => {
    rmSync(PWNED, { force: true });
    const sub = join(dir, "it's $(touch criu-lock-pwned) `touch criu-lock-pwned`");
    mkdirSync(sub);
    const file = join(sub, "'; touch criu-lock-pwned; ' x.pref");
    const content = 'Package: bash\nPin: version 5.2.15-2+b8\nPin-Priority: 1001\n';
    writeFileSync(file, content);
    const res = runProbe({ pinFile: file });
    const { facts } = parseProbeOutput('localhost', res.stdout);
    expect(existsSync(PWNED)).toBe(false);
    expect(existsSync(join(process.cwd(), 'criu-lock-pwned'))).toBe(false);
    expect(facts.pinFile).toBe(content);
    const sha = spawnSync('sha256sum', [file], { encoding: 'utf8' }).stdout.slice(0, 64);
    expect(facts.pinSha256).toBe(sha);
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile hosts: names that try to forge records, records of the wrong shape, oversized answers
// ---------------------------------------------------------------------------------------------

const HEADER = [
  `@@probe ${PROBE_VERSION}`,
  '@@arch',
  'amd64',
  '@@dpkg',
  dpkgLine('foo', 'amd64', '1', 'install', 'installed', 'ok', 'foreign', '', '', ''),
];
const withFiles = (...records: string[]): string =>
  [...HEADER, '@@files', ...records, '@@end', ''].join('\n');

describe('parseProbeOutput refuses records of the wrong shape', () => {
  const good = ['R', hx('/etc/hostname'), 'file', '12', '0644', '77', STAMP, ''];
  it('accepts the well-formed record', () => {
    expect(parseProbeOutput('n', withFiles(good.join('\t'))).facts.files.get('/etc/hostname')).toEqual({
      path: '/etc/hostname',
      kind: 'file',
      size: 12,
      mode: '0644',
    });
  });
  it.each<[string, string]>([
    ['a raw (not hex) path', ['R', '/etc/hostname', 'file', '12', '0644', '77', STAMP, ''].join('\t')],
    [
      'an odd-length hex path',
      ['R', hx('/etc/hostname').slice(1), 'file', '12', '0644', '77', STAMP, ''].join('\t'),
    ],
    ['a relative path', ['R', hx('etc/hostname'), 'file', '12', '0644', '77', STAMP, ''].join('\t')],
    ['a path with NUL', ['R', hx('/etc/a\0b'), 'file', '12', '0644', '77', STAMP, ''].join('\t')],
    ['a path that is not UTF-8', ['R', '2fff', 'file', '12', '0644', '77', STAMP, ''].join('\t')],
    ['a missing field', good.slice(0, 7).join('\t')],
    ['an extra field', [...good, 'x'].join('\t')],
    ['an unknown kind', ['R', hx('/a'), 'socket', '12', '0644', '77', STAMP, ''].join('\t')],
    ['a negative size', ['R', hx('/a'), 'file', '-1', '0644', '77', STAMP, ''].join('\t')],
    ['a size beyond 2^53', ['R', hx('/a'), 'file', '99999999999999999', '0644', '77', STAMP, ''].join('\t')],
    ['a bad mode', ['R', hx('/a'), 'file', '1', '755', '77', ''].join('\t')],
    ['a build-ID on a non-ELF file', ['R', hx('/a'), 'file', '1', '0755', '77', STAMP, '=00'].join('\t')],
    ['data for a missing file', ['R', hx('/a'), 'missing', '1', '', '', '', ''].join('\t')],
    ['an ELF file without an answer', ['R', hx('/a'), 'elf', '9999', '0755', '7', STAMP, ''].join('\t')],
    ['an unknown record type', ['Z', hx('/a')].join('\t')],
    [
      'a mapped file with a bad address range',
      ['M', '1', '7f0', '0', hx('/a'), '-', 'm', 'file', '1', '0644', '3', STAMP, ''].join('\t'),
    ],
    [
      'a mapped file with pid 0',
      ['M', '0', '1-2', '0', hx('/a'), '-', 'm', 'file', '1', '0644', '3', STAMP, ''].join('\t'),
    ],
    [
      'a mapped file read through no source',
      ['M', '1', '1-2', '0', hx('/a'), '-', '-', 'file', '1', '0644', '3', STAMP, ''].join('\t'),
    ],
    ['an empty line inside the section', ['', good.join('\t')].join('\n')],
  ])('%s → the whole answer is refused with the line', (_what, record) => {
    expect(() => parseProbeOutput('node-x', withFiles(record))).toThrow(
      /^node-x: refusing the facts probe's answer: line \d+ of section files /,
    );
  });
});

describe.runIf(HAVE_TOOLS && process.getuid?.() === 0)(
  'a process whose executable name holds a tab, a newline and a forged record',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-hostile-'));
    // After the newline comes what an old line-based parser would have read as a second record.
    // (A file name cannot hold "/", so the forged path is relative; the old parser took it anyway.)
    const evil = join(
      dir,
      `evil\tname\n${['M', '1', 'forged', '0', '-', 'forged', 'file', '1', '0600'].join('\t')}\n@@end`,
    );
    let child: ReturnType<typeof spawn> | undefined;
    afterAll(() => {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    it('is read under its exact name, with the build-ID of the file it runs', async () => {
      copyFileSync('/usr/bin/sleep', evil);
      chmodSync(evil, 0o755);
      child = spawn(evil, ['60'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 300));
      const res = runProbe({ pids: [child.pid!] });
      expect(res.status).toBe(0);
      const { facts } = parseProbeOutput('localhost', res.stdout);
      const paths = facts.mapped.map((m) => m.path);
      expect(paths).toContain(evil);
      expect(paths.filter((p) => p.includes('forged'))).toEqual([evil]);
      expect(paths.every((p) => p.startsWith('/'))).toBe(true);
      const exe = facts.mapped.find((m) => m.path === evil);
      expect(exe).toMatchObject({
        kind: 'elf',
        size: statSync(evil).size,
        deleted: false,
        owner: undefined,
        buildId: readelfBuildIds(['/usr/bin/sleep']).get('/usr/bin/sleep'),
      });
    });
  },
);
