/**
 * Probe format 5: the dpkg-state reading. The controller keeps dpkg's answer with the stat tuple of
 * the files it depends on; while they have not moved, the probe answers "U" and runs neither
 * dpkg-query nor dpkg. The real probe runs here too (sh + perl + dpkg of this machine, on a copy of
 * its dpkg database through DPKG_ADMINDIR, with dpkg and dpkg-query wrapped to count their runs).
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dpkgKnown } from '../../src/facts/gather.js';
import { parseProbeOutput, type DpkgReading } from '../../src/facts/parse.js';
import { DPKG_STATE, PROBE_VERSION, renderProbeScript } from '../../src/facts/probe-script.js';
import {
  gatherWithReadings,
  loadDpkgReading,
  reusableDpkgReading,
  saveDpkgReading,
} from '../../src/facts/stat-cache.js';
import { fingerprint } from '../../src/plan/planner.js';
import { makeLock } from './core-fixtures.js';
import { recordingTransport } from '../helpers/recording-transport.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const line = (...f: string[]): string => f.join('\t');
const dpkgLine = (name: string, version: string, status = 'installed'): string =>
  line(name, 'amd64', version, 'install', status, 'ok', 'foreign', '', '', '');

const STAT = '683288:0644:16638136:65024:1700000000:1700000000';
const DPKG_BIN = '318096:0755:2170883:65024:1600000000:1600000000';
const STATE = `${STAT},-,-,${DPKG_BIN}`;
const READING: DpkgReading = {
  state: STATE,
  arch: ['amd64'],
  foreign: ['i386'],
  dpkg: [dpkgLine('bash', '5.2-1'), dpkgLine('libfoo1', '1.0-1', 'half-configured')],
};

const output = (dpkgState: string[], withDpkg: boolean): string =>
  [
    `@@probe ${PROBE_VERSION}`,
    '@@os-release',
    'ID=debian',
    'VERSION_ID="12"',
    '@@dpkg-state',
    ...dpkgState,
    ...(withDpkg ? ['@@arch', 'amd64', '@@foreign', '@@dpkg', dpkgLine('bash', '5.3-1')] : []),
    '@@end',
    '',
  ].join('\n');

describe('the dpkg-state answer', () => {
  it('"U" takes arch, foreign architectures and packages (and their problems) from the reading sent', () => {
    const { facts, dpkg } = parseProbeOutput('n', output(['U'], false), undefined, [], READING);
    expect(dpkg).toEqual({ kind: 'unchanged' });
    expect(facts.platform).toMatchObject({ architecture: 'amd64', foreignArchitectures: ['i386'] });
    expect([...facts.packages.keys()]).toEqual(['bash:amd64', 'libfoo1:amd64']);
    expect(facts.packages.get('bash:amd64')?.version).toBe('5.2-1');
    expect(facts.problems).toEqual([
      expect.objectContaining({ type: 'broken-dpkg-state', package: 'libfoo1:amd64' }),
    ]);
  });

  it('"S" reads the sections as printed and returns them as the reading to keep, with the clock', () => {
    const { facts, dpkg } = parseProbeOutput('n', output([`S\t1800000000\t${STATE}`], true));
    expect(facts.packages.get('bash:amd64')?.version).toBe('5.3-1');
    expect(dpkg).toEqual({
      kind: 'read',
      clock: 1800000000,
      reading: { state: STATE, arch: ['amd64'], foreign: [], dpkg: [dpkgLine('bash', '5.3-1')] },
    });
  });

  it('"N" (journal pending) reads the sections and keeps no reading', () => {
    const { facts, dpkg } = parseProbeOutput('n', output(['N'], true), undefined, [], READING);
    expect(facts.packages.get('bash:amd64')?.version).toBe('5.3-1');
    expect(dpkg).toEqual({ kind: 'read', clock: undefined, reading: undefined });
  });

  it.each<[string, string[], boolean, DpkgReading | undefined]>([
    ['"unchanged" when the controller sent no dpkg state (a hostile host)', ['U'], false, undefined],
    ['"unchanged" with a dpkg section as well', ['U'], true, READING],
    ['"unchanged" with a field', ['U\tx'], false, READING],
    ['two records', ['N', 'N'], true, undefined],
    ['no record', [], true, undefined],
    ['an unknown record', ['X'], true, undefined],
    ['a state of three files', [`S\t1\t${STAT},-,-`], true, undefined],
    ['a malformed state tuple', [`S\t1\t${STAT.replace(':0644:', ':644:')},-,-,-`], true, undefined],
    ['a state with a path in it', [`S\t1\t/var/lib/dpkg/status,-,-,-`], true, undefined],
    ['a malformed clock', [`S\tnow\t${STATE}`], true, undefined],
    ['a missing clock', [`S\t${STATE}`], true, undefined],
  ])('is refused with %s', (_what, records, withDpkg, known) => {
    expect(() => parseProbeOutput('node-x', output(records, withDpkg), undefined, [], known)).toThrow(
      /^node-x: refusing the facts probe's answer: section dpkg-state /,
    );
  });

  it('is optional: an answer without the section keeps no reading', () => {
    const out = output([], true).replace('@@dpkg-state\n', '');
    expect(parseProbeOutput('n', out).dpkg).toBeUndefined();
  });
});

describe('the request', () => {
  it('sends the tuple as D and the keys to ask apt about when unchanged as C', () => {
    const script = renderProbeScript({ dpkgKnown: { state: STATE, policy: ['bash:amd64'] } });
    expect(script).toContain(`\nD\t${STATE}\nC\tbash:amd64\n`);
    expect(DPKG_STATE.test(`-,-,-,-`)).toBe(true);
  });

  it.each([
    ['a malformed tuple', { state: 'x' }],
    ['a tuple with a newline', { state: `${STATE}\nU` }],
    ['a key with a tab', { state: STATE, policy: ['a\tb'] }],
  ])('refuses %s', (_what, dpkgKnownReq) => {
    expect(() => renderProbeScript({ dpkgKnown: dpkgKnownReq })).toThrow(
      /invalid dpkg state|control character/,
    );
  });

  it("the controller decides apt-cache policy from the cached list by the node filter's rule", () => {
    const reading: DpkgReading = {
      ...READING,
      dpkg: [
        dpkgLine('bash', '5.2-1'),
        dpkgLine('libfoo1', '1.0-1', 'half-configured'),
        dpkgLine('zsh', '5.9-1', 'triggers-pending'),
        dpkgLine('gone', '1.0-1', 'config-files'),
      ],
    };
    const pairs = [
      ['zsh:amd64', '5.9-1'],
      ['bash:amd64', '5.2-1'],
      ['libfoo1:amd64', '1.0-1'],
      ['gone:amd64', '1.0-1'],
      ['curl:amd64', '8.0-1'],
      ['bash:i386', '5.2-1'],
    ] as const;
    expect(dpkgKnown(reading, { policyUnless: pairs })).toEqual({
      state: STATE,
      policy: ['bash:i386', 'curl:amd64', 'gone:amd64', 'libfoo1:amd64'],
    });
    expect(dpkgKnown(reading, { paths: ['/x'] })).toEqual({ state: STATE });
  });
});

describe('the dpkg-state cache file', () => {
  it('round-trips, per host', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'criu-lock-dpkg-')), 'stat');
    saveDpkgReading(dir, 'node-a', READING);
    expect(loadDpkgReading(dir, 'node-a')).toEqual(READING);
    expect(loadDpkgReading(dir, 'node-b')).toBeUndefined();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it.each<[string, (doc: Record<string, unknown>) => unknown]>([
    ['not JSON', () => '{'],
    ['another format', (d) => ({ ...d, format: 2 })],
    ['another host', (d) => ({ ...d, host: 'node-b' })],
    ['a bad state tuple', (d) => ({ ...d, state: 'x' })],
    ['a line that is not a string', (d) => ({ ...d, dpkg: [1] })],
    ['a line with a newline', (d) => ({ ...d, dpkg: ['a\n@@end'] })],
    ['no arch', (d) => ({ ...d, arch: undefined })],
  ])('with %s reads as none (dpkg is read again)', (_what, mangle) => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-dpkg-'));
    saveDpkgReading(dir, 'node-a', READING);
    const [file] = readdirSync(dir);
    const path = join(dir, file!);
    const out = mangle(JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>);
    writeFileSync(path, typeof out === 'string' ? out : JSON.stringify(out));
    expect(loadDpkgReading(dir, 'node-a')).toBeUndefined();
  });

  it('failing to write is not an error', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'criu-lock-dpkg-')), 'a-file');
    writeFileSync(file, '');
    expect(() => saveDpkgReading(join(file, 'stat'), 'node-a', READING)).not.toThrow();
  });

  it('keeps a fresh read only when every ctime is older than the node clock', () => {
    const read = (clock: number | undefined, state = STATE) =>
      ({ kind: 'read', clock, reading: { ...READING, state } }) as const;
    expect(reusableDpkgReading(read(1700000001))).toEqual(READING);
    expect(reusableDpkgReading(read(1700000000))).toBeUndefined();
    expect(
      reusableDpkgReading(read(1700000001, `${STAT},-,-,${DPKG_BIN.replace(/1600000000$/, '1700000005')}`)),
    ).toBeUndefined();
    expect(reusableDpkgReading(read(undefined))).toBeUndefined();
    expect(reusableDpkgReading({ kind: 'unchanged' })).toBeUndefined();
    expect(reusableDpkgReading(undefined)).toBeUndefined();
  });
});

const HAVE_DPKG =
  ['/usr/bin/dpkg', '/usr/bin/dpkg-query', '/usr/bin/perl', '/usr/bin/apt-cache'].every((p) =>
    existsSync(p),
  ) && existsSync('/var/lib/dpkg/status');

describe.runIf(HAVE_DPKG)('the real probe with a dpkg-state reading', () => {
  /** A copy of this machine's dpkg database, and dpkg / dpkg-query wrappers that log each run. */
  function setup(): { admin: string; log: string; env: Record<string, string>; cacheDir: string } {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-dpkg-real-'));
    const admin = join(dir, 'admin');
    const bin = join(dir, 'bin');
    const log = join(dir, 'runs.log');
    mkdirSync(join(admin, 'updates'), { recursive: true });
    mkdirSync(bin);
    copyFileSync('/var/lib/dpkg/status', join(admin, 'status'));
    const native = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(join(admin, 'arch'), `${native}\ni386\n`);
    writeFileSync(log, '');
    for (const tool of ['dpkg', 'dpkg-query']) {
      writeFileSync(
        join(bin, tool),
        `#!/bin/sh\necho "${tool} $1" >> '${log}'\nexec /usr/bin/${tool} "$@"\n`,
        {
          mode: 0o755,
        },
      );
    }
    const env = { DPKG_ADMINDIR: admin, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
    return { admin, log, env, cacheDir: join(dir, 'cache') };
  }

  const runs = (log: string): string[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  const version = (p: string): string =>
    spawnSync('dpkg-query', ['-W', '-f=${Version}', p], { encoding: 'utf8' }).stdout;

  it('a second probe skips dpkg-query and dpkg and gives identical facts; touched, rewritten or journalled status reads again', async () => {
    const { admin, log, env, cacheDir } = setup();
    const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
    const status = join(admin, 'status');
    // A reading is kept only when the files' ctime is older than the node's clock at the probe.
    await sleep(1100);
    const { t, answers } = recordingTransport('dpkg-reading-host', env);
    const req = {
      paths: ['/usr/bin/ls'],
      pinFile: '/nonexistent.pref',
      policyUnless: [
        [`coreutils:${arch}`, version('coreutils')],
        [`bash:${arch}`, '0.0-not-this'],
      ] as Array<readonly [string, string]>,
    };
    const lock = makeLock({
      platform: { architecture: arch },
      packages: {
        [`coreutils:${arch}`]: { version: version('coreutils') },
        [`bash:${arch}`]: { version: '0.0-not-this' },
      },
    });

    const first = await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toEqual([
      'dpkg --print-architecture',
      'dpkg --print-foreign-architectures',
      'dpkg-query -W',
    ]);
    expect(first.platform.foreignArchitectures).toEqual(['i386']);
    expect(first.packages.size).toBeGreaterThan(10);
    expect([...first.policies.keys()]).toEqual([`bash:${arch}`]);
    expect(loadDpkgReading(cacheDir, t.host)?.state).toMatch(DPKG_STATE);

    const second = await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(3);
    expect(answers.at(-1)!.stdout).toContain('\n@@dpkg-state\nU\n');
    expect(answers.at(-1)!.stdout).not.toContain('\n@@dpkg\n');
    expect(second.packages).toEqual(first.packages);
    expect(second.platform).toEqual(first.platform);
    expect(second.problems).toEqual(first.problems);
    expect(second.policies).toEqual(first.policies);
    expect(fingerprint(lock, second)).toBe(fingerprint(lock, first));
    expect(answers.at(-1)!.stdout.length).toBeLessThan(answers.at(-2)!.stdout.length / 2);

    // Touched (utimes moves ctime; content, inode, size and mtime as before): read again.
    const { atime, mtime } = statSync(status);
    utimesSync(status, atime, mtime);
    const third = await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(6);
    expect(third.packages).toEqual(first.packages);

    // Rewritten the way dpkg does (status-new, then rename over): read again, the new version seen.
    await sleep(1100);
    const text = readFileSync(status, 'utf8');
    const at = text.indexOf(`Version: ${version('coreutils')}\n`, text.indexOf('\nPackage: coreutils\n'));
    expect(at).toBeGreaterThan(0);
    writeFileSync(
      join(admin, 'status-new'),
      text.slice(0, at) +
        'Version: 0.1-rewritten\n' +
        text.slice(at + `Version: ${version('coreutils')}\n`.length),
    );
    renameSync(join(admin, 'status-new'), status);
    const fourth = await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(9);
    expect(fourth.packages.get(`coreutils:${arch}`)?.version).toBe('0.1-rewritten');
    // No longer at the wanted version: the node's filter now asks apt about coreutils too.
    expect([...fourth.policies.keys()].sort()).toEqual([`bash:${arch}`, `coreutils:${arch}`].sort());
    expect(fingerprint(lock, fourth)).not.toBe(fingerprint(lock, first));

    // The rewrite is older than the clock by now: the next probe keeps a reading, the one after
    // it answers U, and the controller asks apt about coreutils in place of the node's filter.
    await sleep(1100);
    await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(12);
    const sixth = await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(12);
    expect(answers.at(-1)!.stdout).toContain('\n@@dpkg-state\nU\n');
    expect(sixth.policies).toEqual(fourth.policies);
    expect(fingerprint(lock, sixth)).toBe(fingerprint(lock, fourth));

    // A journal entry in updates/ (dpkg-query reads it too): read again, and nothing is kept.
    writeFileSync(join(admin, 'updates', '0000'), '');
    const kept = readFileSync(
      join(
        cacheDir,
        readdirSync(cacheDir).find((f) => f.endsWith('.dpkg.json'))!,
      ),
    );
    await gatherWithReadings(t, req, { cacheDir });
    expect(runs(log)).toHaveLength(15);
    expect(answers.at(-1)!.stdout).toContain('\n@@dpkg-state\nN\n');
    rmSync(join(admin, 'updates', '0000'));
    expect(
      readFileSync(
        join(
          cacheDir,
          readdirSync(cacheDir).find((f) => f.endsWith('.dpkg.json'))!,
        ),
      ),
    ).toEqual(kept);
    await t.close();
  });

  it('without a cache directory sends no dpkg state and always reads', async () => {
    const { log, env } = setup();
    const { t, answers } = recordingTransport('dpkg-reading-host', env);
    await gatherWithReadings(t, { paths: ['/usr/bin/ls'] }, { cacheDir: undefined });
    await gatherWithReadings(t, { paths: ['/usr/bin/ls'] }, { cacheDir: undefined });
    expect(runs(log).filter((l) => l.startsWith('dpkg-query'))).toHaveLength(2);
    expect(answers.map((a) => /\n@@dpkg-state\nS\t/.test(a.stdout))).toEqual([true, true]);
  });
});
