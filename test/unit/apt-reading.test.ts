/**
 * The apt reading (src/facts/apt-readings.ts): apt's policy answer, kept with the stat tuples of
 * dpkg's and apt's inputs, so the probe of an unchanged host runs no apt-cache policy. The real
 * probe runs here too: this machine's sh, perl, dpkg and apt, with a copy of its dpkg database
 * (DPKG_ADMINDIR) and apt-config wrapped to put apt's inputs in a scratch tree (`-o Dir=`), and
 * apt-cache wrapped to count its runs.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  currentAptState,
  loadAptReading,
  saveAptReading,
  type AptReading,
} from '../../src/facts/apt-readings.js';
import { settledState } from '../../src/facts/cache-files.js';
import { prepareProbe } from '../../src/facts/gather.js';
import { parseProbeOutput, type DpkgReading } from '../../src/facts/parse.js';
import { APT_STATE, PROBE_VERSION, renderProbeScript } from '../../src/facts/probe-script.js';
import { gatherWithReadings, loadDpkgReading } from '../../src/facts/stat-cache.js';
import { recordingTransport } from '../helpers/recording-transport.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TUPLE = '4096:0755:1466943:96:1700000000:1700000000';
const DPKG_AT = `${TUPLE},-,-,${TUPLE}`;
const APT_AT = [...Array.from({ length: 11 }, () => TUPLE), '-'].join(',');
const POLICY = [
  'bash:',
  '  Installed: 5.2-1',
  '  Candidate: 5.2-1',
  '  Version table:',
  ' *** 5.2-1 500',
  '        500 file:/srv/repo ./ Packages',
  '        100 /var/lib/dpkg/status',
];

const BASH = ['bash', 'amd64', '5.2-1', 'install', 'installed', 'ok', 'foreign', '', '', ''].join('\t');
/** dpkg's reading the controller sent; `dpkgSame` answers do not print dpkg's sections. */
const DPKG: DpkgReading = { state: DPKG_AT, arch: ['amd64'], foreign: [], dpkg: [BASH] };

const answer = (aptState: string[], policy: boolean, dpkgSame = true): string =>
  [
    `@@probe ${PROBE_VERSION}`,
    '@@dpkg-state',
    ...(dpkgSame ? ['U'] : [`S\t1800000000\t${DPKG.state}`, '@@arch', 'amd64', '@@dpkg', BASH]),
    '@@apt-state',
    ...aptState,
    ...(policy ? ['@@policy', ...POLICY] : []),
    '@@end',
    '',
  ].join('\n');

describe('the apt-state answer', () => {
  it('"U" takes the policy lines the controller sent', () => {
    const p = parseProbeOutput('n', answer(['U'], false), undefined, [], DPKG, undefined, POLICY);
    expect(p.apt).toEqual({ kind: 'unchanged' });
    expect(p.facts.policies.get('bash:amd64')?.candidate).toBe('5.2-1');
    expect(p.policyLines).toEqual([]);
  });

  it('"S" gives the tuple, the clock and the keys apt was asked about, and the policy lines to keep', () => {
    const p = parseProbeOutput(
      'n',
      answer([`S\t1800000000\t${APT_AT}\tbash:amd64 zsh:amd64`], true),
      undefined,
      [],
      DPKG,
    );
    expect(p.apt).toEqual({
      kind: 'read',
      clock: 1800000000,
      state: APT_AT,
      keys: ['bash:amd64', 'zsh:amd64'],
    });
    expect(p.facts.policies.get('bash:amd64')?.candidate).toBe('5.2-1');
    expect(p.policyLines.slice(0, POLICY.length)).toEqual(POLICY);
  });

  it('"N" (no tuple) keeps nothing; no section: no answer', () => {
    expect(parseProbeOutput('n', answer(['N'], true), undefined, [], DPKG).apt).toEqual({ kind: 'none' });
    const without = answer([], true).replace('@@apt-state\n', '');
    expect(parseProbeOutput('n', without, undefined, [], DPKG).apt).toBeUndefined();
  });

  it('refuses "U" when nothing was sent, with a policy section or a moved dpkg state, and malformed records', () => {
    expect(() => parseProbeOutput('n', answer(['U'], false), undefined, [], DPKG)).toThrow(
      /apt-state answers "unchanged" although the controller sent no apt state/,
    );
    expect(() => parseProbeOutput('n', answer(['U'], true), undefined, [], DPKG, undefined, POLICY)).toThrow(
      /prints a policy section too/,
    );
    expect(() =>
      parseProbeOutput('n', answer(['U'], false, false), undefined, [], DPKG, undefined, POLICY),
    ).toThrow(/answers "unchanged" although dpkg's state moved/);
    for (const bad of [
      [`S\t1800000000\t${APT_AT}`],
      [`S\tsoon\t${APT_AT}\tbash:amd64`],
      [`S\t1800000000\t${TUPLE}\tbash:amd64`],
      [`S\t1800000000\t${APT_AT}\tbash:amd64  zsh:amd64`],
      ['U', 'N'],
      ['X'],
    ]) {
      expect(() => parseProbeOutput('n', answer(bad, true), undefined, [], DPKG), bad.join('|')).toThrow(
        /section apt-state/,
      );
    }
  });
});

describe('the request', () => {
  const dpkg: DpkgReading = {
    state: DPKG_AT,
    arch: ['amd64'],
    foreign: [],
    dpkg: [['bash', 'amd64', '5.1-1', 'install', 'installed', 'ok', 'foreign', '', '', ''].join('\t')],
  };
  const held: AptReading = {
    dpkgState: DPKG_AT,
    aptState: APT_AT,
    policyKeys: ['bash:amd64'],
    policy: POLICY,
    simulations: [],
  };
  const req = { policyUnless: [['bash:amd64', '5.2-1']] as Array<readonly [string, string]> };

  it('offers the held state only with the dpkg reading it was read with and exactly its keys', () => {
    const sent = prepareProbe(req, { dpkg, apt: { known: held } });
    expect(sent.aptSent).toBe(held);
    expect(sent.script).toContain(`\nA\t${APT_AT}\n`);
    for (const other of [
      { ...held, dpkgState: `${TUPLE},-,-,-` },
      { ...held, policyKeys: ['bash:amd64', 'zsh:amd64'] },
    ]) {
      const p = prepareProbe(req, { dpkg, apt: { known: other } });
      expect(p.aptSent).toBeUndefined();
      expect(p.script).toMatch(/\nA\n/);
    }
    // Without a dpkg reading the node decides the keys itself: nothing is offered.
    expect(prepareProbe(req, { apt: { known: held } }).aptSent).toBeUndefined();
    expect(prepareProbe(req, {}).script).not.toMatch(/\nA(\t|\n)/);
  });

  it('refuses a malformed state to send', () => {
    expect(() => renderProbeScript({ aptState: { known: 'x' } })).toThrow(/invalid apt state tuple/);
    expect(APT_STATE.test(APT_AT)).toBe(true);
  });
});

describe('the apt reading file', () => {
  it('round-trips per host; a malformed file reads as none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-apt-reading-'));
    const r: AptReading = {
      dpkgState: DPKG_AT,
      aptState: APT_AT,
      policyKeys: ['bash:amd64'],
      policy: POLICY,
      simulations: [{ argv: ['sh', '-c', 'x'], pins: 'a'.repeat(64), stdout: 'Inst bash\n' }],
    };
    saveAptReading(dir, 'node-a', r);
    expect(loadAptReading(dir, 'node-a')).toEqual(r);
    expect(loadAptReading(dir, 'node-b')).toBeUndefined();
    saveAptReading(dir, 'node-c', { ...r, aptState: 'not a tuple' });
    expect(loadAptReading(dir, 'node-c')).toBeUndefined();
    saveAptReading(dir, 'node-d', { ...r, simulations: [{ argv: [], pins: 'x', stdout: '' }] });
    expect(loadAptReading(dir, 'node-d')).toBeUndefined();
  });

  it('keeps a fresh state only when every ctime is older than the node clock', () => {
    expect(settledState(APT_AT, 1700000001)).toBe(true);
    expect(settledState(APT_AT, 1700000000)).toBe(false);
    expect(currentAptState({ kind: 'read', state: APT_AT, clock: 1700000001, keys: ['a'] }, undefined)).toBe(
      APT_AT,
    );
    expect(
      currentAptState({ kind: 'read', state: APT_AT, clock: 1700000000, keys: ['a'] }, undefined),
    ).toBeUndefined();
    expect(currentAptState({ kind: 'unchanged' }, APT_AT)).toBe(APT_AT);
    expect(currentAptState({ kind: 'none' }, APT_AT)).toBeUndefined();
    expect(currentAptState(undefined, APT_AT)).toBeUndefined();
  });
});

const HAVE_APT =
  [
    '/usr/bin/dpkg',
    '/usr/bin/dpkg-query',
    '/usr/bin/perl',
    '/usr/bin/apt-cache',
    '/usr/bin/apt-config',
  ].every((p) => existsSync(p)) && existsSync('/var/lib/dpkg/status');

describe.runIf(HAVE_APT)('the real probe with an apt reading', () => {
  function setup(): { root: string; log: string; env: Record<string, string>; cacheDir: string } {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-apt-real-'));
    const admin = join(dir, 'admin');
    const root = join(dir, 'root');
    const bin = join(dir, 'bin');
    const log = join(dir, 'runs.log');
    mkdirSync(join(admin, 'updates'), { recursive: true });
    for (const d of [
      'etc/apt/apt.conf.d',
      'etc/apt/preferences.d',
      'etc/apt/sources.list.d',
      'var/lib/apt/lists',
    ])
      mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'etc/apt/sources.list'), 'deb file:/srv/repo ./\n');
    writeFileSync(join(root, 'var/lib/apt/lists/_srv_repo_._Packages'), 'Package: bash\n');
    copyFileSync('/var/lib/dpkg/status', join(admin, 'status'));
    mkdirSync(bin);
    writeFileSync(log, '');
    writeFileSync(
      join(bin, 'apt-config'),
      `#!/bin/sh\necho "apt-config $1" >> '${log}'\nexec /usr/bin/apt-config -o Dir='${root}/' "$@"\n`,
      { mode: 0o755 },
    );
    writeFileSync(
      join(bin, 'apt-cache'),
      `#!/bin/sh\necho "apt-cache $1" >> '${log}'\nexec /usr/bin/apt-cache "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const env = { DPKG_ADMINDIR: admin, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
    return { root, log, env, cacheDir: join(dir, 'cache') };
  }
  const runs = (log: string, tool: string): number =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith(`${tool} `)).length;
  const arch = (): string => spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
  const version = (p: string): string =>
    spawnSync('dpkg-query', ['-W', '-f=${Version}', p], { encoding: 'utf8' }).stdout;
  const section = (out: string): string => /\n@@apt-state\n([^\n]*)\n/.exec(out)?.[1]?.split('\t')[0] ?? '';

  it('an unchanged host answers U and runs no apt-cache; a touched, added or redirected input asks apt again', async () => {
    const { root, log, env, cacheDir } = setup();
    await sleep(1100);
    const { t, answers } = recordingTransport('apt-reading-host', env);
    const a = arch();
    const req = {
      policyUnless: [
        [`coreutils:${a}`, version('coreutils')],
        [`bash:${a}`, '0.0-not-this'],
      ] as Array<readonly [string, string]>,
    };
    const gather = (): ReturnType<typeof gatherWithReadings> => gatherWithReadings(t, req, { cacheDir });

    const first = await gather();
    expect(section(answers.at(-1)!.stdout)).toBe('S');
    expect(runs(log, 'apt-cache')).toBe(1);
    expect(first.aptInputs?.dpkg).toBe(loadDpkgReading(cacheDir, t.host)?.state);
    const kept = loadAptReading(cacheDir, t.host)!;
    expect(kept.policyKeys).toEqual([`bash:${a}`]);
    expect(kept.aptState).toMatch(APT_STATE);
    expect(first.aptInputs?.apt).toBe(kept.aptState);

    // dpkg unchanged, apt's inputs unchanged: "U", no apt-cache, the same policies.
    const second = await gather();
    expect(section(answers.at(-1)!.stdout)).toBe('U');
    expect(answers.at(-1)!.stdout).not.toContain('\n@@policy\n');
    expect(runs(log, 'apt-cache')).toBe(1);
    expect(second.policies).toEqual(first.policies);
    expect(second.aptInputs).toEqual(first.aptInputs);

    // Touched (ctime moves), added to, or a new preferences file: apt is asked again, once.
    const lists = join(root, 'var/lib/apt/lists/_srv_repo_._Packages');
    const changes: Array<() => void> = [
      () => {
        const { atime, mtime } = statSync(lists);
        utimesSync(lists, atime, mtime);
      },
      () => writeFileSync(join(root, 'var/lib/apt/lists/_srv_repo_._Release'), 'Origin: x\n'),
      () =>
        writeFileSync(
          join(root, 'etc/apt/preferences.d/hold'),
          'Package: bash\nPin: version 1\nPin-Priority: -1\n',
        ),
      () => writeFileSync(join(root, 'etc/apt/apt.conf.d/99local'), 'APT::Install-Recommends "0";\n'),
    ];
    let apt = 1;
    for (const change of changes) {
      change();
      const before = loadAptReading(cacheDir, t.host)!.aptState;
      await sleep(1100);
      await gather();
      expect(section(answers.at(-1)!.stdout)).toBe('S');
      expect(runs(log, 'apt-cache')).toBe(++apt);
      expect(loadAptReading(cacheDir, t.host)!.aptState).not.toBe(before);
      await gather();
      expect(section(answers.at(-1)!.stdout)).toBe('U');
      expect(runs(log, 'apt-cache')).toBe(apt);
    }

    // APT_CONFIG names a file the tuple does not cover: no tuple, apt is asked every time.
    writeFileSync(join(root, 'etc/apt/apt.conf'), '');
    const redirected = recordingTransport('apt-reading-host', {
      ...env,
      APT_CONFIG: join(root, 'etc/apt/apt.conf'),
    });
    const third = await gatherWithReadings(redirected.t, req, { cacheDir });
    expect(section(redirected.answers.at(-1)!.stdout)).toBe('N');
    expect(third.aptInputs).toBeUndefined();
    expect(runs(log, 'apt-cache')).toBe(apt + 1);
    await redirected.t.close();
    await t.close();
  });
});
