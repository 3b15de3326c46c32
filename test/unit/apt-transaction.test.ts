import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { describeJob, parseJobRecord } from '../../src/apply/apt-job.js';
import { describeHolder } from '../../src/apply/host-lock.js';
import { CriuLockError } from '../../src/errors.js';
import { loadAptReading, pinsDigest, saveAptReading } from '../../src/facts/apt-readings.js';
import { needsSimulation, simulatePlan, simulationArgv } from '../../src/facts/simulate.js';
import { statCacheDir } from '../../src/facts/stat-cache.js';
import { parseProbeOutput } from '../../src/facts/parse.js';
import { PROBE_VERSION } from '../../src/facts/probe-script.js';
import type { InstalledPackage } from '../../src/facts/types.js';
import {
  applyTransaction,
  parseAptSimulation,
  parseRelations,
  type AptOp,
} from '../../src/plan/apt-transaction.js';
import type { HostPlan } from '../../src/plan/plan-file.js';
import { PIN_FILE } from '../../src/plan/pins.js';
import type { CommandResult, ExecOptions, Transport } from '../../src/transport/types.js';
import { makeFacts, makeLock, pkg } from './core-fixtures.js';

// Real apt-get -s output (bookworm, LC_ALL=C), from the sandbox fleet.
const REMOVES = `Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  fleet-bin
The following packages will be DOWNGRADED:
  libfleet1
0 upgraded, 0 newly installed, 1 downgraded, 1 to remove and 0 not upgraded.
Remv fleet-bin [2.31-0ubuntu9.16]
Inst libfleet1 [2.31-0ubuntu9.16] (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])
Conf libfleet1 (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])
`;
const PINNED = `Inst fleet-bin [2.31-0ubuntu9.16] (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64]) []
Inst libfleet1 [2.31-0ubuntu9.16] (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])
Conf fleet-bin (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])
Conf libfleet1 (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])
`;

describe('parseAptSimulation', () => {
  it('reads Remv, Inst (upgrade/downgrade/new) and Conf lines, ignoring the rest', () => {
    expect(parseAptSimulation(REMOVES)).toEqual<AptOp[]>([
      { op: 'remv', name: 'fleet-bin', arch: undefined, version: '2.31-0ubuntu9.16' },
      { op: 'inst', name: 'libfleet1', arch: 'amd64', from: '2.31-0ubuntu9.16', to: '2.31-0ubuntu9.14' },
      { op: 'conf', name: 'libfleet1', arch: 'amd64', version: '2.31-0ubuntu9.14' },
    ]);
    expect(parseAptSimulation(PINNED).map((o) => o.op)).toEqual(['inst', 'inst', 'conf', 'conf']);
  });

  it('reads new installs, foreign architectures, epochs, releases with spaces and broken-package brackets', () => {
    const out = [
      'Inst libfleet1 (2.31-0ubuntu9.14 criu-lock-sandbox:localhost [amd64])',
      'Inst libc6:i386 [2.31-0ubuntu9.9] (2.31-0ubuntu9.14 Ubuntu:20.04/focal-updates, Ubuntu:20.04/focal-security [i386]) [libc-bin:amd64 ]',
      'Inst libepoch0 [1.9-1] (1:1.0-1 repo [amd64])',
      'Remv libold:i386 [1.0] [libx:i386 ]',
      'Conf libc6:i386 (2.31-0ubuntu9.14 Ubuntu:20.04/focal-updates [i386])',
    ].join('\n');
    expect(parseAptSimulation(out)).toEqual<AptOp[]>([
      { op: 'inst', name: 'libfleet1', arch: 'amd64', from: null, to: '2.31-0ubuntu9.14' },
      { op: 'inst', name: 'libc6', arch: 'i386', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' },
      { op: 'inst', name: 'libepoch0', arch: 'amd64', from: '1.9-1', to: '1:1.0-1' },
      { op: 'remv', name: 'libold', arch: 'i386', version: '1.0' },
      { op: 'conf', name: 'libc6', arch: 'i386', version: '2.31-0ubuntu9.14' },
    ]);
  });

  it.each([
    ['an Inst line without parentheses', 'Inst libfleet1 2.31'],
    ['an invalid version', 'Inst libfleet1 [2.31] (2.31_bad! repo [amd64])'],
    ['an invalid package name', 'Inst LibFleet (1.0 repo [amd64])'],
    ['an arch qualifier that disagrees', 'Inst libc6:i386 (1.0 repo [amd64])'],
    ['a Remv without version', 'Remv fleet-bin'],
    ['a purge', 'Purg fleet-bin [1.0]'],
    ['a Conf with junk', 'Conf libfleet1 (1.0 repo [amd64]) trailing'],
  ])('rejects %s', (_what, line) => {
    expect(() => parseAptSimulation(`Reading package lists...\n${line}\n`)).toThrow(CriuLockError);
    expect(() => parseAptSimulation(line)).toThrow(/unexpected line in apt-get -s output/);
  });
});

describe('parseRelations', () => {
  it('splits groups and alternatives and keeps version constraints', () => {
    expect(parseRelations('libfleet1 (= 2.31-0ubuntu9.16), libc6 (>= 2.34) | libc6-alt, perl:any')).toEqual([
      [{ name: 'libfleet1', op: '=', version: '2.31-0ubuntu9.16' }],
      [{ name: 'libc6', op: '>=', version: '2.34' }, { name: 'libc6-alt' }],
      [{ name: 'perl' }],
    ]);
  });
});

const LOCK = makeLock({ packages: { 'libfleet1:amd64': { version: '2.31-0ubuntu9.14' } } });

function plan(over: Partial<HostPlan> = {}): HostPlan {
  return {
    name: 'node-b',
    status: 'changes',
    fingerprint: `sha256:${'1'.repeat(64)}`,
    actions: [
      { type: 'write-pins', path: PIN_FILE, sha256: 'a'.repeat(64) },
      { type: 'downgrade', package: 'libfleet1:amd64', from: '2.31-0ubuntu9.16', to: '2.31-0ubuntu9.14' },
    ],
    blocked: [],
    notes: [],
    ...over,
  };
}

const installed = (list: InstalledPackage[]): Map<string, InstalledPackage> =>
  new Map(list.map((p) => [p.key, p]));

describe('applyTransaction', () => {
  const ctx = {
    nativeArch: 'amd64',
    packages: installed([
      pkg('libfleet1:amd64', '2.31-0ubuntu9.16'),
      pkg('fleet-bin:amd64', '2.31-0ubuntu9.16', {
        depends: 'libfleet1 (= 2.31-0ubuntu9.16), libc6 (>= 2.34)',
      }),
    ]),
  };

  it('a removal blocks the host with would-remove, naming the package and the locked version that forces it', () => {
    const out = applyTransaction(plan(), parseAptSimulation(REMOVES), LOCK, ctx);
    expect(out.status).toBe('blocked');
    expect(out.actions).toEqual(plan().actions);
    expect(out.blocked).toEqual([
      {
        package: 'fleet-bin:amd64',
        version: '2.31-0ubuntu9.16',
        reason: 'would-remove',
        detail:
          'apt would remove fleet-bin:amd64 2.31-0ubuntu9.16: it depends on libfleet1 (= 2.31-0ubuntu9.16), and the lock needs libfleet1:amd64 2.31-0ubuntu9.14; criu-lock never removes packages',
      },
    ]);
  });

  it('when no dependency explains a removal it still blocks, naming the locked versions', () => {
    const out = applyTransaction(
      plan(),
      [{ op: 'remv', name: 'openssh-server', arch: undefined, version: '1:9.2p1-2' }],
      LOCK,
      ctx,
    );
    expect(out.status).toBe('blocked');
    expect(out.blocked[0]).toMatchObject({ package: 'openssh-server:amd64', reason: 'would-remove' });
    expect(out.blocked[0]?.detail).toMatch(
      /resolves the locked version\(s\) libfleet1:amd64 2\.31-0ubuntu9\.14 only by removing it/,
    );
  });

  it('packages apt moves beyond the plan are listed in aptExtra; the plan keeps its status', () => {
    const ops = parseAptSimulation(PINNED);
    const out = applyTransaction(plan(), ops, LOCK, ctx);
    expect(out.status).toBe('changes');
    expect(out.blocked).toEqual([]);
    expect(out.aptExtra).toEqual([
      { action: 'downgrade', package: 'fleet-bin:amd64', from: '2.31-0ubuntu9.16', to: '2.31-0ubuntu9.14' },
    ]);
    const fresh = applyTransaction(
      plan(),
      [{ op: 'inst', name: 'libnew1', arch: 'amd64', from: null, to: '1.0-1' }, ...ops],
      LOCK,
      ctx,
    );
    expect(fresh.aptExtra?.map((x) => `${x.action} ${x.package}`)).toEqual([
      'downgrade fleet-bin:amd64',
      'install libnew1:amd64',
    ]);
  });

  it('a transaction that is exactly the plan adds nothing', () => {
    const ops = parseAptSimulation(REMOVES).filter((o) => o.op !== 'remv');
    const out = applyTransaction(plan(), ops, LOCK, ctx);
    expect(out).toEqual(plan());
    expect('aptExtra' in out).toBe(false);
  });

  it('apt moving a planned package to another version than the plan asked is an error', () => {
    expect(() =>
      applyTransaction(
        plan(),
        [{ op: 'inst', name: 'libfleet1', arch: 'amd64', from: '2.31-0ubuntu9.16', to: '2.31-0ubuntu9.9' }],
        LOCK,
        ctx,
      ),
    ).toThrow(/would install libfleet1:amd64 2\.31-0ubuntu9\.9, the plan asked for 2\.31-0ubuntu9\.14/);
  });
});

const TUPLE = '4096:0755:1466943:96:1700000000:1700000000';
const DPKG_AT = `${TUPLE},-,-,${TUPLE}`;
const APT_AT = Array.from({ length: 12 }, () => TUPLE).join(',');

/** A transport that answers the simulation with fixed output and records what it ran. */
class SimTransport implements Transport {
  readonly host = 'node-b';
  readonly calls: Array<{ argv: string[]; opts: ExecOptions }> = [];
  constructor(private readonly reply: Partial<CommandResult>) {}
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    this.calls.push({ argv: [...argv], opts });
    return Promise.resolve({
      command: argv.join(' '),
      exitCode: 0,
      stdout: '',
      stderr: '',
      durationMs: 1,
      timedOut: false,
      ...this.reply,
    });
  }
  putFile(): Promise<CommandResult> {
    throw new Error('no writes in a simulation');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('simulatePlan', () => {
  const facts = makeFacts({ packages: { 'libfleet1:amd64': '2.31-0ubuntu9.16' } });

  it('runs the exact install argv with -s (no --no-remove) under the pins apply will write, in one round trip', async () => {
    const t = new SimTransport({ stdout: PINNED });
    const out = await simulatePlan(t, plan(), LOCK, facts, 'PINS TEXT');
    expect(t.calls).toHaveLength(1);
    const { argv, opts } = t.calls[0]!;
    expect(argv).toEqual(simulationArgv(plan()));
    expect(argv.slice(3, 5)).toEqual(['criu-lock-sim', PIN_FILE]);
    expect(argv.slice(5)).toEqual([
      'apt-get',
      'install',
      '-y',
      '-q',
      '--allow-downgrades',
      '--no-install-recommends',
      '-o',
      'Dpkg::Options::=--force-confdef',
      '-o',
      'Dpkg::Options::=--force-confold',
      '-o',
      'DPkg::Lock::Timeout=120',
      '-s',
      'libfleet1:amd64=2.31-0ubuntu9.14',
    ]);
    expect(argv[2]).toContain('Dir::Etc::PreferencesParts=$d');
    expect(opts).toMatchObject({
      stdin: 'PINS TEXT',
      env: { LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' },
      become: true,
    });
    expect(out.aptExtra).toHaveLength(1);
  });

  it('hosts without package actions, or blocked for other reasons than unavailable versions, are not simulated', async () => {
    const t = new SimTransport({ stdout: REMOVES });
    const pinsOnly = plan({ actions: [{ type: 'write-pins', path: PIN_FILE, sha256: 'a'.repeat(64) }] });
    expect(await simulatePlan(t, pinsOnly, LOCK, facts, '')).toBe(pinsOnly);
    const broken = plan({
      status: 'blocked',
      blocked: [{ package: 'x:amd64', version: null, reason: 'broken-dpkg-state', detail: 'd' }],
    });
    expect(needsSimulation(broken)).toBe(false);
    expect(await simulatePlan(t, broken, LOCK, facts, '')).toBe(broken);
    expect(t.calls).toEqual([]);
    expect(
      needsSimulation(
        plan({
          status: 'blocked',
          blocked: [{ package: 'y:amd64', version: '1', reason: 'version-unavailable', detail: 'd' }],
        }),
      ),
    ).toBe(true);
  });

  it('takes the simulation kept at the states the probe found, for the same argv and pins, instead of asking apt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-sim-reading-'));
    vi.stubEnv('CRIU_LOCK_CACHE_DIR', dir);
    try {
      const cacheDir = statCacheDir()!;
      const inputs = { dpkg: DPKG_AT, apt: APT_AT };
      saveAptReading(cacheDir, 'node-b', {
        dpkgState: inputs.dpkg,
        aptState: inputs.apt,
        policyKeys: ['libfleet1:amd64'],
        policy: [],
        simulations: [],
      });
      const at = { ...facts, aptInputs: inputs };
      const t = new SimTransport({ stdout: PINNED });
      const first = await simulatePlan(t, plan(), LOCK, at, 'PINS TEXT');
      expect(t.calls).toHaveLength(1);
      expect(loadAptReading(cacheDir, 'node-b')?.simulations).toEqual([
        { argv: simulationArgv(plan()), pins: pinsDigest('PINS TEXT'), stdout: PINNED },
      ]);
      const again = await simulatePlan(t, plan(), LOCK, at, 'PINS TEXT');
      expect(t.calls).toHaveLength(1);
      expect(again).toEqual(first);
      // Other pins, other states or no states at all: apt is asked.
      await simulatePlan(t, plan(), LOCK, at, 'OTHER PINS');
      expect(t.calls).toHaveLength(2);
      const moved = {
        ...facts,
        aptInputs: { dpkg: DPKG_AT, apt: APT_AT.replace(':1700000000,', ':1700000001,') },
      };
      await simulatePlan(t, plan(), LOCK, moved, 'PINS TEXT');
      await simulatePlan(t, plan(), LOCK, facts, 'PINS TEXT');
      expect(t.calls).toHaveLength(4);
      expect(loadAptReading(cacheDir, 'node-b')?.simulations).toHaveLength(2);
      // A refused simulation is never kept: the next run asks apt again and sees its errors.
      const refusing = new SimTransport({ exitCode: 100, stderr: 'E: Version not found\n' });
      await expect(simulatePlan(refusing, plan(), LOCK, at, 'THIRD PINS')).rejects.toThrow(
        /Version not found/,
      );
      expect(loadAptReading(cacheDir, 'node-b')?.simulations).toHaveLength(2);
    } finally {
      vi.unstubAllEnvs();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a refused simulation fails the host with apt's E: lines", async () => {
    const t = new SimTransport({
      exitCode: 100,
      stdout: 'Reading package lists...\n',
      stderr: 'E: Unable to correct problems, you have held broken packages.\n',
    });
    await expect(simulatePlan(t, plan(), LOCK, facts, '')).rejects.toThrow(
      /node-b: apt-get -s refused the planned transaction: E: Unable to correct problems/,
    );
  });
});

describe('a bad answer from a host', () => {
  it('an invalid version in apt-cache policy fails the parse (that host), never reaches the planner', () => {
    const out = [
      `@@probe ${PROBE_VERSION}`,
      '@@arch',
      'amd64',
      '@@policy',
      'libfleet1:',
      '  Installed: 1.0',
      '  Candidate: 1.0',
      '  Version table:',
      ' *** 2.31_bad!version 500',
      '        500 file:/srv/repo ./ Packages',
      '@@end',
      '',
    ].join('\n');
    expect(() => parseProbeOutput('node-b', out)).toThrow(
      /apt-cache policy printed an invalid version "2\.31_bad!version" for libfleet1:amd64/,
    );
  });
});

describe('host lock and apt job records', () => {
  it('describes the holder with its start time', () => {
    expect(describeHolder('0123abcd\t2026-11-29T01:00:00Z\t4242\n')).toBe(
      'another criu-lock run (an apply or a rollback) holds the host lock since 2026-11-29T01:00:00Z (holder pid 4242 on the host)',
    );
    expect(describeHolder('')).toBe('another criu-lock run (an apply or a rollback) holds the host lock');
  });

  it('parses a job record and says what state the host is in', () => {
    const rec = parseJobRecord(
      '/var/lib/criu-lock/jobs/x',
      [
        '@@status',
        '100',
        '@@started',
        '2026-11-29T01:00:00Z',
        '@@pins',
        'restored',
        '@@audit',
        '@@log',
        'E: boom',
        '',
        '@@end',
        '',
      ].join('\n'),
    );
    expect(rec).toMatchObject({
      exitCode: 100,
      started: '2026-11-29T01:00:00Z',
      pins: 'restored',
      audit: '',
    });
    expect(describeJob(rec)).toBe(
      'dpkg is consistent (dpkg --audit is empty); the previous pin file was restored',
    );
    const died = parseJobRecord(
      '/j',
      [
        '@@status',
        'died',
        '@@started',
        'x',
        '@@pins',
        '@@audit',
        'The following packages are only half configured',
        '@@log',
        '@@end',
      ].join('\n'),
    );
    expect(died.exitCode).toBeNull();
    expect(describeJob(died)).toMatch(
      /^dpkg --audit reports: The following packages are only half configured$/,
    );
    expect(() => parseJobRecord('/j', '@@status\n0\n')).toThrow(/incomplete/);
  });
});
