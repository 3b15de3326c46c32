/**
 * Probe format 3: heads only for files whose stat moved since a cached reading, and apt-cache
 * policy only for packages not at their locked version. The real probe runs here (sh + perl on
 * this machine); readelf is the independent answer for build-IDs.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reinstallsWithoutPolicy } from '../../src/commands/host-steps.js';
import { parseProbeOutput, type StatReading } from '../../src/facts/parse.js';
import { KNOWN, PROBE_VERSION, renderProbeScript } from '../../src/facts/probe-script.js';
import {
  gatherWithReadings,
  loadReadings,
  MAX_READINGS,
  reusableReadings,
  saveReadings,
  statCacheDir,
} from '../../src/facts/stat-cache.js';
import { elfAnswer } from '../helpers/fake-fleet.js';
import { elf, makeFacts, makeLock, pkg } from './core-fixtures.js';
import { recordingTransport } from '../helpers/recording-transport.js';

const hx = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readelfBuildId(path: string): string | undefined {
  const r = spawnSync('readelf', ['-n', path], { encoding: 'utf8' });
  return /\sBuild ID: ([0-9a-f]+)$/m.exec(r.stdout)?.[1];
}
const HAVE_READELF = spawnSync('readelf', ['--version']).status === 0;

const HEADER = [`@@probe ${PROBE_VERSION}`, '@@arch', 'amd64', '@@files', 'T\t1800000000'];
const STAT = '4096:0755:12:2049:1700000000:1700000000';
const rec = (path: string, head: string, stat = STAT): string => {
  const [size, mode, ino, dev, mtime, ctime] = stat.split(':');
  return ['R', hx(path), 'elf', size, mode, ino, `${dev}:${mtime}:${ctime}`, head].join('\t');
};
const answer = (...records: string[]): string => [...HEADER, ...records, '@@end', ''].join('\n');
const ID = 'ab'.repeat(20);

describe('the "U" answer (unchanged since the reading the controller sent)', () => {
  const known = new Map<string, StatReading>([
    ['/usr/lib/x.so', { stat: STAT, buildId: ID }],
    ['/usr/lib/z.so', { stat: STAT.replace(':12:', ':14:'), buildId: null }],
  ]);
  const requested = ['/usr/lib/x.so', '/usr/lib/y.so', '/usr/lib/z.so'];

  it('takes size, mode and build-ID from the readings of the requested paths it names, and reports stats and clock', () => {
    const { facts, stats, clock } = parseProbeOutput(
      'n',
      answer('U\t0\t1', rec('/usr/lib/y.so', elfAnswer(ID)), 'U\t2\t1'),
      known,
      requested,
    );
    expect(facts.files.get('/usr/lib/x.so')).toEqual({
      path: '/usr/lib/x.so',
      kind: 'elf',
      size: 4096,
      mode: '0755',
      buildId: ID,
    });
    expect(facts.files.get('/usr/lib/z.so')).toMatchObject({ kind: 'elf', buildId: null });
    expect(facts.files.get('/usr/lib/y.so')?.buildId).toBe(ID);
    expect(stats.get('/usr/lib/x.so')).toBe(STAT);
    expect(stats.get('/usr/lib/z.so')).toBe(STAT.replace(':12:', ':14:'));
    expect(KNOWN.test(STAT)).toBe(true);
    expect(clock).toBe(1800000000);
  });

  it.each<[string, string, ReadonlyMap<string, StatReading> | undefined]>([
    ['for a path the controller sent nothing about', 'U\t0\t1', undefined],
    ['for a requested path without a reading', 'U\t0\t2', known],
    ['past the requested paths', 'U\t2\t2', known],
    ['for no path', 'U\t0\t0', known],
    ['twice for one path', 'U\t0\t1\nU\t0\t1', known],
    ['with a malformed index', 'U\t-1\t1', known],
    ['with a missing count', 'U\t0', known],
    ['as a head in a path record (format 3)', rec('/usr/lib/x.so', '='), known],
    [
      'in a package file record (generate sends no stat)',
      ['F', hx('libc6'), hx('/usr/lib/x.so'), 'elf', '4096', '0755', '12', '2049:1:1', '='].join('\t'),
      known,
    ],
    ['with a second clock record', ['T', '5'].join('\t'), known],
    ['with a malformed stamp', rec('/usr/lib/x.so', '', '4096:0755:12:x:1:1'), known],
  ])('is refused %s', (_what, record, k) => {
    expect(() => parseProbeOutput('node-x', answer(record), k, requested)).toThrow(
      /^node-x: refusing the facts probe's answer: line \d+ of section files /,
    );
  });
});

describe('readings kept for the next run', () => {
  const facts = makeFacts({
    files: [
      elf('/old.so', 1, '0755', ID),
      elf('/racy.so', 1, '0755', ID),
      elf('/noid.so', 1, '0755', null),
      { path: '/text', kind: 'file', size: 1, mode: '0644' },
    ],
  });
  const stats = new Map([
    ['/old.so', '1:0755:1:1:99:99'],
    ['/racy.so', '1:0755:2:1:100:100'],
    ['/noid.so', '1:0755:3:1:50:50'],
    ['/text', '1:0644:4:1:50:50'],
  ]);

  it('only ELF answers whose ctime is older than the node clock (a write in the same second could hide)', () => {
    expect([...reusableReadings(facts, stats, 100)]).toEqual([
      ['/old.so', { stat: '1:0755:1:1:99:99', buildId: ID }],
      ['/noid.so', { stat: '1:0755:3:1:50:50', buildId: null }],
    ]);
    expect(reusableReadings(facts, stats, undefined).size).toBe(0);
  });
});

describe('the cache file', () => {
  it('round-trips, is private, and is per host', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'criu-lock-stat-')), 'stat');
    const r = new Map([['/a.so', { stat: '1:0755:1:1:1:1', buildId: ID }]]);
    saveReadings(dir, 'node-a', r);
    expect(loadReadings(dir, 'node-a')).toEqual(r);
    expect(loadReadings(dir, 'node-b').size).toBe(0);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('is three parallel arrays (format 2)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-stat-'));
    saveReadings(
      dir,
      'node-a',
      new Map([
        ['/a.so', { stat: '1:0755:1:1:1:1', buildId: ID }],
        ['/b\n\t.so', { stat: '2:0644:2:1:1:1', buildId: null }],
      ]),
    );
    const [file] = readdirSync(dir);
    expect(JSON.parse(readFileSync(join(dir, file!), 'utf8'))).toEqual({
      format: 2,
      host: 'node-a',
      paths: ['/a.so', '/b\n\t.so'],
      stats: ['1:0755:1:1:1:1', '2:0644:2:1:1:1'],
      buildIds: [ID, null],
    });
    expect(loadReadings(dir, 'node-a').get('/b\n\t.so')).toEqual({ stat: '2:0644:2:1:1:1', buildId: null });
  });

  const one = (path: unknown, stat: unknown, buildId: unknown) => (d: Record<string, unknown>) => ({
    ...d,
    paths: [path],
    stats: [stat],
    buildIds: [buildId],
  });
  it.each<[string, (doc: Record<string, unknown>) => unknown]>([
    ['not JSON', () => '{'],
    ['not an object', () => [2, 'node-a']],
    ['another format', (d) => ({ ...d, format: 3 })],
    ['no format', ({ format: _f, ...d }) => d],
    [
      'the format 1 layout (an object keyed by path)',
      ({ host }) => ({ format: 1, host, readings: { '/a.so': ['1:0755:1:1:1:1', ID] } }),
    ],
    ['the format 1 layout labelled format 2', ({ host }) => ({ format: 2, host, readings: {} })],
    ['another host', (d) => ({ ...d, host: 'node-b' })],
    ['a bad stat tuple', one('/a.so', '1:755:1:1:1:1', ID)],
    ['a stat tuple with a newline', one('/a.so', '1:0755:1:1:1:1\n', ID)],
    ['a stat that is not a string', one('/a.so', 1, ID)],
    ['a bad build-ID', one('/a.so', '1:0755:1:1:1:1', 'XYZ')],
    ['an odd-length build-ID', one('/a.so', '1:0755:1:1:1:1', 'abc')],
    ['an empty build-ID', one('/a.so', '1:0755:1:1:1:1', '')],
    ['a build-ID that is not a string', one('/a.so', '1:0755:1:1:1:1', 12)],
    ['a relative path', one('a.so', '1:0755:1:1:1:1', ID)],
    ['an empty path', one('', '1:0755:1:1:1:1', ID)],
    ['a path that is not a string', one(null, '1:0755:1:1:1:1', ID)],
    ['arrays of different lengths', (d) => ({ ...d, buildIds: [ID, ID] })],
    ['a missing array', ({ stats: _s, ...d }) => d],
    ['an array that is an object', (d) => ({ ...d, paths: { 0: '/a.so', length: 1 } })],
    [
      'one bad entry among good ones',
      (d) => ({
        ...d,
        paths: ['/a.so', '/b.so'],
        stats: ['1:0755:1:1:1:1', '1:0755:1:1:1'],
        buildIds: [ID, ID],
      }),
    ],
  ])('with %s reads as empty (every head is read again)', (_what, mangle) => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-stat-'));
    saveReadings(dir, 'node-a', new Map([['/a.so', { stat: '1:0755:1:1:1:1', buildId: ID }]]));
    const [file] = spawnSync('ls', [dir], { encoding: 'utf8' }).stdout.trim().split('\n');
    const path = join(dir, file!);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(loadReadings(dir, 'node-a').size).toBe(1);
    const out = mangle(doc);
    writeFileSync(path, typeof out === 'string' ? out : JSON.stringify(out));
    expect(loadReadings(dir, 'node-a').size).toBe(0);
  });

  it('keeps at most MAX_READINGS readings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-stat-'));
    const many = new Map<string, StatReading>();
    for (let i = 0; i <= MAX_READINGS; i++) many.set(`/f${i}`, { stat: `${i}:0755:1:1:1:1`, buildId: null });
    saveReadings(dir, 'node-a', many);
    const back = loadReadings(dir, 'node-a');
    expect(back.size).toBe(MAX_READINGS);
    expect(back.has(`/f${MAX_READINGS}`)).toBe(false);
  });

  it('failing to write is not an error, also under a file where the directory should be', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'criu-lock-stat-')), 'a-file');
    writeFileSync(file, '');
    const r = new Map([['/a.so', { stat: '1:0755:1:1:1:1', buildId: ID }]]);
    expect(() => saveReadings(join(file, 'stat'), 'node-a', r)).not.toThrow();
  });

  it('lives in CRIU_LOCK_CACHE_DIR, XDG_CACHE_HOME or ~/.cache; "off" disables it', () => {
    expect(statCacheDir({ CRIU_LOCK_CACHE_DIR: '/c' })).toBe('/c/stat');
    expect(statCacheDir({ CRIU_LOCK_CACHE_DIR: 'off' })).toBeUndefined();
    expect(statCacheDir({ CRIU_LOCK_CACHE_DIR: 'none' })).toBeUndefined();
    expect(statCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/criu-lock/stat');
    expect(statCacheDir({ XDG_CACHE_HOME: 'relative' })).toMatch(/\/\.cache\/criu-lock\/stat$/);
  });
});

describe.runIf(HAVE_READELF)('the real probe on this machine with cached readings', () => {
  it('answers unchanged files with one U run, re-reads a changed one, and every answer equals readelf', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-stat-real-'));
    const cacheDir = join(dir, 'cache');
    const a = join(dir, 'a.so');
    const b = join(dir, 'b.so');
    copyFileSync('/usr/bin/ls', a);
    copyFileSync('/usr/bin/true', b);
    // Readings are kept only for files whose ctime is older than the probe's clock.
    await sleep(1100);
    const { t, answers } = recordingTransport('cache-test-host');
    const paths = [a, b, join(dir, 'missing')];

    const first = await gatherWithReadings(t, { paths }, { cacheDir });
    expect(first.files.get(a)?.buildId).toBe(readelfBuildId(a));
    expect(loadReadings(cacheDir, t.host).size).toBe(2);
    const fullBytes = answers.at(-1)!.stdout.length;

    const [name] = readdirSync(cacheDir).filter((f) => !f.endsWith('.dpkg.json'));
    const cacheFile = join(cacheDir, name!);
    const written = statSync(cacheFile);
    const second = await gatherWithReadings(t, { paths }, { cacheDir });
    // Nothing moved: the readings file is not rewritten (same inode: no rename over it).
    expect(statSync(cacheFile).ino).toBe(written.ino);
    const out = answers.at(-1)!.stdout;
    // a and b are requested paths 0 and 1: one run; the missing path is answered in full.
    expect(out.split('\n').filter((l) => l.startsWith('U\t'))).toEqual(['U\t0\t2']);
    expect(out.split('\n').filter((l) => l.startsWith('R\t'))).toHaveLength(1);
    expect(second.files.get(a)).toEqual(first.files.get(a));
    expect(second.files.get(b)).toEqual(first.files.get(b));
    expect(out.length).toBeLessThan(fullBytes - 2 * 1000);

    // Same size, same mtime, same inode, other build-ID: only ctime tells. One byte of b's
    // build-ID note changes in place, then its mtime is set back.
    const before = readelfBuildId(b)!;
    const bytes = readFileSync(b);
    const at = bytes.indexOf(Buffer.from(before, 'hex'));
    expect(at).toBeGreaterThan(0);
    bytes[at] = bytes[at]! ^ 0xff;
    const { mtime, ino } = statSync(b);
    writeFileSync(b, bytes);
    utimesSync(b, mtime, mtime);
    expect(statSync(b).ino).toBe(ino);
    const third = await gatherWithReadings(t, { paths }, { cacheDir });
    const lines = answers.at(-1)!.stdout.split('\n');
    expect(lines.find((l) => l.startsWith(`R\t${hx(b)}\t`))).toBeDefined();
    expect(lines.find((l) => l.startsWith(`R\t${hx(a)}\t`))).toBeUndefined();
    expect(lines.filter((l) => l.startsWith('U\t'))).toEqual(['U\t0\t1']);
    expect(third.files.get(b)?.buildId).toBe(readelfBuildId(b));
    expect(third.files.get(b)?.buildId).not.toBe(before);
    await t.close();
  });

  it('without a cache directory sends no stat tuples', async () => {
    const { t, answers } = recordingTransport('cache-test-host');
    const facts = await gatherWithReadings(t, { paths: ['/usr/bin/ls'] }, { cacheDir: undefined });
    expect(facts.files.get('/usr/bin/ls')?.buildId).toBe(readelfBuildId('/usr/bin/ls'));
    expect(answers.at(-1)!.stdout).not.toMatch(/^U\t/m);
  });
});

describe('apt-cache policy only for packages that may move', () => {
  const dpkgVersion = (p: string): string =>
    spawnSync('dpkg-query', ['-W', '-f=${Version}', p], { encoding: 'utf8' }).stdout;
  const HAVE_APT = spawnSync('apt-cache', ['--version']).status === 0 && dpkgVersion('coreutils') !== '';

  it.runIf(HAVE_APT)('the node drops keys installed at exactly the wanted version, keeps the rest', () => {
    const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
    const script = renderProbeScript({
      policyUnless: [
        [`coreutils:${arch}`, dpkgVersion('coreutils')],
        [`bash:${arch}`, '0.0-not-this'],
        ['criu-lock-no-such-package:amd64', '1.0'],
      ],
    });
    const r = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8' });
    const { facts } = parseProbeOutput('local', r.stdout);
    expect(facts.policies.has(`bash:${arch}`)).toBe(true);
    expect(facts.policies.has(`coreutils:${arch}`)).toBe(false);
  });

  it('refuses a version or key that could break the framing', () => {
    expect(() => renderProbeScript({ policyUnless: [['a:amd64', '1\n@@end']] })).toThrow(/control character/);
    expect(() => renderProbeScript({ policyUnless: [['a\tb', '1']] })).toThrow(/control character/);
  });

  it('a reinstall (package at its version, files differ) is the only case asked again', () => {
    const lock = makeLock({
      packages: {
        'libc6:amd64': {
          version: '2.31-1',
          files: { '/lib/libc.so.6': { size: 1, mode: '0755', buildId: ID } },
        },
        'bash:amd64': { version: '5.0-1', files: { '/bin/bash': { size: 1, mode: '0755', buildId: ID } } },
        'zlib1g:amd64': {
          version: '1.2-1',
          files: { '/lib/libz.so': { size: 1, mode: '0755', buildId: ID } },
        },
      },
    });
    const facts = makeFacts({
      packages: {
        'libc6:amd64': '2.31-1',
        'bash:amd64': pkg('bash:amd64', '5.0-1'),
        'zlib1g:amd64': '1.2-0',
      },
      files: [
        elf('/lib/libc.so.6', 1, '0755', 'cd'.repeat(20)),
        elf('/bin/bash', 1, '0755', ID),
        elf('/lib/libz.so', 1, '0755', 'cd'.repeat(20)),
      ],
    });
    // zlib1g moves by version: the probe kept its policy. bash matches. libc6 is a reinstall.
    expect(reinstallsWithoutPolicy(lock, facts)).toEqual(['libc6:amd64']);
  });
});
