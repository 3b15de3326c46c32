import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareFile, compareHost, lockedPaths, type Finding } from '../../src/check/compare.js';
import { compareVersions, isValidVersion } from '../../src/debian/version.js';
import type { FileFact, HostFacts, PolicyVersion } from '../../src/facts/types.js';
import type { FileEntry, Lockfile, PackageEntry } from '../../src/lock/lockfile.js';
import type { BlockReason, HostPlan } from '../../src/plan/plan-file.js';
import { parsePins, PIN_FILE, PIN_PRIORITY, pinEntries, renderPins, sha256Hex } from '../../src/plan/pins.js';
import { fingerprint, planHost } from '../../src/plan/planner.js';
import { elf, filesOf, makeFacts, makeLock, pkg, pv, type FactsSpec } from './core-fixtures.js';

const LIBC = '/usr/lib/x86_64-linux-gnu/libc-2.31.so';
const ID_A = 'eebe5d5f4b608b8a53ec446b63981bba373ca0ca';
const ID_B = '0123456789abcdef0123456789abcdef01234567';

/** Plans `facts` against `lock` with the host's pin file already current unless the spec says otherwise. */
function plan(lock: Lockfile, spec: FactsSpec): HostPlan {
  const pins = renderPins(lock);
  const facts = makeFacts({ pinSha256: sha256Hex(pins), ...spec });
  return planHost(lock, facts, pins);
}

const summary = (p: HostPlan): { status: string; actions: string[]; blocked: string[] } => ({
  status: p.status,
  actions: p.actions.map((a) =>
    a.type === 'write-pins' ? 'write-pins' : `${a.type} ${a.package} ${a.from ?? '-'}→${a.to}`,
  ),
  blocked: p.blocked.map((b) => `${b.reason} ${b.package ?? '-'}`),
});

describe('planHost: package actions', () => {
  const one = (version: string): Lockfile => makeLock({ packages: { 'foo:amd64': { version } } });

  it.each<[string, string, string | undefined, PolicyVersion[], string]>([
    ['install', '1.0-1', undefined, [pv('1.0-1')], 'install foo:amd64 -→1.0-1'],
    [
      'upgrade',
      '1.0-2',
      '1.0-1',
      [pv('1.0-2'), pv('1.0-1', 100, { sources: [], installed: true })],
      'upgrade foo:amd64 1.0-1→1.0-2',
    ],
    [
      'downgrade',
      '1.0-1',
      '1.0-2',
      [pv('1.0-2', 100, { installed: true }), pv('1.0-1')],
      'downgrade foo:amd64 1.0-2→1.0-1',
    ],
    [
      'downgrade to a tilde pre-release',
      '3.0~rc2-1',
      '3.0-1',
      [pv('3.0-1'), pv('3.0~rc2-1')],
      'downgrade foo:amd64 3.0-1→3.0~rc2-1',
    ],
    ['epoch upgrade', '1:1.0-1', '1.9-1', [pv('1:1.0-1'), pv('1.9-1')], 'upgrade foo:amd64 1.9-1→1:1.0-1'],
    [
      'ubuntu security upgrade',
      '2.31-0ubuntu9.14',
      '2.31-0ubuntu9.9',
      [pv('2.31-0ubuntu9.16'), pv('2.31-0ubuntu9.14')],
      'upgrade foo:amd64 2.31-0ubuntu9.9→2.31-0ubuntu9.14',
    ],
  ])('%s', (_what, want, installed, policy, action) => {
    const p = plan(one(want), {
      packages: installed ? { 'foo:amd64': installed } : {},
      policies: { 'foo:amd64': policy },
    });
    expect(summary(p)).toEqual({ status: 'changes', actions: [action], blocked: [] });
  });

  it.each([
    ['the same string', '1.0-1', '1.0-1'],
    ['dpkg-equal strings (implicit epoch 0)', '0:1.0-1', '1.0-1'],
    ['dpkg-equal strings (absent revision is -0)', '1.0', '1.0-0'],
  ])('does nothing for %s', (_what, want, installed) => {
    const p = plan(one(want), {
      packages: { 'foo:amd64': installed },
      policies: { 'foo:amd64': [pv(installed, 100, { installed: true })] },
    });
    expect(summary(p)).toEqual({ status: 'ok', actions: [], blocked: [] });
    expect(p.name).toBe('node-b');
    expect(p.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('reinstalls when the version matches but a build-ID differs', () => {
    const lock = makeLock({
      packages: {
        'libc6:amd64': {
          version: '2.31-0ubuntu9.14',
          files: { [LIBC]: { size: 2029592, mode: '0755', buildId: ID_A } },
        },
      },
    });
    const p = plan(lock, {
      packages: { 'libc6:amd64': '2.31-0ubuntu9.14' },
      policies: { 'libc6:amd64': [pv('2.31-0ubuntu9.14', 500, { installed: true })] },
      files: [elf(LIBC, 2029592, '0755', ID_B)],
    });
    expect(summary(p)).toEqual({
      status: 'changes',
      actions: ['reinstall libc6:amd64 2.31-0ubuntu9.14→2.31-0ubuntu9.14'],
      blocked: [],
    });
  });

  it('orders actions install, upgrade, downgrade, reinstall, each by package, after write-pins', () => {
    const lock = makeLock({
      packages: {
        'a-down:amd64': { version: '1' },
        'b-up:amd64': { version: '2' },
        'c-new:amd64': { version: '1' },
        'd-re:amd64': { version: '1', files: { '/usr/lib/d.so': { size: 1, mode: '0644', buildId: 'aa' } } },
        'e-up:amd64': { version: '2' },
        'f-new:all': { version: '1' },
      },
    });
    const offer = (v: string): PolicyVersion[] => [pv(v)];
    const p = plan(lock, {
      pinSha256: null,
      packages: { 'a-down:amd64': '2', 'b-up:amd64': '1', 'd-re:amd64': '1', 'e-up:amd64': '1' },
      // apt prints Architecture: all packages under the native arch.
      policies: {
        'a-down:amd64': offer('1'),
        'b-up:amd64': offer('2'),
        'c-new:amd64': offer('1'),
        'd-re:amd64': offer('1'),
        'e-up:amd64': offer('2'),
        'f-new:amd64': offer('1'),
      },
      files: [elf('/usr/lib/d.so', 1, '0644', 'bb')],
    });
    expect(summary(p).actions).toEqual([
      'write-pins',
      'install c-new:amd64 -→1',
      'install f-new:all -→1',
      'upgrade b-up:amd64 1→2',
      'upgrade e-up:amd64 1→2',
      'downgrade a-down:amd64 2→1',
      'reinstall d-re:amd64 1→1',
    ]);
  });
});

describe('planHost: blocked', () => {
  const lock = makeLock({
    packages: { 'foo:amd64': { version: '1.0-2' }, 'bar:amd64': { version: '5.0-1' } },
  });
  const okBar = { 'bar:amd64': [pv('5.0-1', 100, { installed: true })] };

  it.each<[string, FactsSpec, BlockReason, RegExp]>([
    [
      'version not offered by any source',
      {
        packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
        policies: {
          'foo:amd64': [pv('1.0-3'), pv('1.0-1', 100, { sources: [], installed: true })],
          ...okBar,
        },
      },
      'version-unavailable',
      /^the node's apt sources offer 1\.0-3, not 1\.0-2$/,
    ],
    [
      'version only in dpkg status',
      {
        packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
        policies: { 'foo:amd64': [pv('1.0-2', 100, { sources: [] })], ...okBar },
      },
      'version-unavailable',
      /^no apt source of the node offers foo; run plan --refresh/,
    ],
    [
      'no policy at all',
      { packages: { 'bar:amd64': '5.0-1' }, policies: okBar },
      'version-unavailable',
      /no apt source of the node offers foo/,
    ],
    [
      'package on hold',
      {
        packages: { 'foo:amd64': pkg('foo:amd64', '1.0-1', { want: 'hold' }), 'bar:amd64': '5.0-1' },
        policies: { 'foo:amd64': [pv('1.0-2')], ...okBar },
      },
      'held',
      /^foo:amd64 is on hold \(apt-mark unhold foo to let it move\)$/,
    ],
    [
      'another preference pins a different version at 1001',
      {
        packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
        policies: { 'foo:amd64': [pv('1.0-2', 500), pv('1.0-1', 1001, { installed: true })], ...okBar },
      },
      'conflicting-pin',
      /^another apt preference pins 1\.0-1 at priority 1001 \(≥ 1001\)/,
    ],
    [
      'another preference pins a different version at 1200',
      {
        packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
        policies: { 'foo:amd64': [pv('1.0-3', 1200), pv('1.0-2', 500)], ...okBar },
      },
      'conflicting-pin',
      /pins 1\.0-3 at priority 1200/,
    ],
  ])('%s', (_what, spec, reason, detail) => {
    const p = plan(lock, spec);
    expect(p.status).toBe('blocked');
    expect(p.blocked).toEqual([
      { package: 'foo:amd64', version: '1.0-2', reason, detail: expect.stringMatching(detail) as unknown },
    ]);
    expect(p.actions.filter((a) => a.type !== 'write-pins' && a.package === 'foo:amd64')).toEqual([]);
  });

  it('a held package already at the locked version is not blocked', () => {
    const p = plan(lock, {
      packages: { 'foo:amd64': pkg('foo:amd64', '1.0-2', { want: 'hold' }), 'bar:amd64': '5.0-1' },
      policies: { 'foo:amd64': [pv('1.0-2')], ...okBar },
    });
    expect(summary(p)).toEqual({ status: 'ok', actions: [], blocked: [] });
  });

  it('a pin below 1000 is no conflict', () => {
    const p = plan(lock, {
      packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
      policies: { 'foo:amd64': [pv('1.0-2', 500), pv('1.0-1', 990, { installed: true })], ...okBar },
    });
    expect(summary(p).blocked).toEqual([]);
  });

  it('our own previous pin for another version is not a conflict', () => {
    const oldLock = makeLock({
      packages: { 'foo:amd64': { version: '1.0-1' }, 'bar:amd64': { version: '5.0-1' } },
    });
    const oldPins = renderPins(oldLock);
    const p = plan(lock, {
      pinFile: oldPins,
      pinSha256: sha256Hex(oldPins),
      packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '5.0-1' },
      policies: {
        'foo:amd64': [pv('1.0-2', 500), pv('1.0-1', 1001, { installed: true })],
        'bar:amd64': [pv('5.0-1', 1001, { installed: true })],
      },
    });
    expect(summary(p)).toEqual({
      status: 'changes',
      actions: ['write-pins', 'upgrade foo:amd64 1.0-1→1.0-2'],
      blocked: [],
    });
  });

  it('our own pin of an arch-all package (written without :all) is not a conflict', () => {
    const allLock = makeLock({ packages: { 'tzdata:all': { version: '2024b-0ubuntu0.20.04' } } });
    const oldPins = renderPins(makeLock({ packages: { 'tzdata:all': { version: '2024a-0ubuntu0.20.04' } } }));
    expect(oldPins).toContain('Package: tzdata\n');
    const p = plan(allLock, {
      pinFile: oldPins,
      pinSha256: sha256Hex(oldPins),
      packages: { 'tzdata:all': '2024a-0ubuntu0.20.04' },
      policies: {
        'tzdata:amd64': [
          pv('2024b-0ubuntu0.20.04', 500),
          pv('2024a-0ubuntu0.20.04', 1001, { installed: true }),
        ],
      },
    });
    expect(summary(p)).toEqual({
      status: 'changes',
      actions: ['write-pins', 'upgrade tzdata:all 2024a-0ubuntu0.20.04→2024b-0ubuntu0.20.04'],
      blocked: [],
    });
  });

  it('a platform mismatch blocks everything, including the pin file', () => {
    const p = plan(lock, {
      pinSha256: null,
      platform: { id: 'ubuntu', versionId: '22.04', codename: 'jammy' },
      packages: {},
      policies: { 'foo:amd64': [pv('1.0-2')] },
    });
    expect(p.status).toBe('blocked');
    expect(p.actions).toEqual([]);
    expect(p.blocked).toEqual([
      {
        package: null,
        version: null,
        reason: 'platform-mismatch',
        detail: 'versionId is "22.04", the lock needs "20.04"',
      },
    ]);
  });

  it.each([
    [{ id: 'debian' }, 'id is "debian", the lock needs "ubuntu"'],
    [{ architecture: 'arm64' }, 'architecture is "arm64", the lock needs "amd64"'],
  ])('platform mismatch %j', (platform, detail) => {
    const p = plan(lock, { platform });
    expect(p.blocked.map((b) => [b.reason, b.detail])).toEqual([['platform-mismatch', detail]]);
  });

  it('a codename-only difference is no mismatch (id and versionId decide)', () => {
    const p = plan(lock, {
      platform: { codename: 'Focal' },
      packages: { 'foo:amd64': '1.0-2', 'bar:amd64': '5.0-1' },
    });
    expect(p.status).toBe('ok');
  });

  it('a broken dpkg state blocks the host but other packages are still planned', () => {
    const p = plan(lock, {
      packages: {
        'foo:amd64': '1.0-1',
        'bar:amd64': '5.0-1',
        'zzz:amd64': pkg('zzz:amd64', '1', { status: 'half-installed', eflag: 'reinstreq' }),
      },
      policies: { 'foo:amd64': [pv('1.0-2')], ...okBar },
      problems: [
        {
          type: 'broken-dpkg-state',
          package: 'zzz:amd64',
          detail: 'zzz:amd64 is half-installed (reinstreq)',
        },
      ],
    });
    expect(summary(p)).toEqual({
      status: 'blocked',
      actions: ['upgrade foo:amd64 1.0-1→1.0-2'],
      blocked: ['broken-dpkg-state zzz:amd64'],
    });
    expect(p.blocked[0]?.detail).toBe('zzz:amd64 is half-installed (reinstreq)');
  });

  it('process-missing problems do not block', () => {
    const p = plan(lock, {
      packages: { 'foo:amd64': '1.0-2', 'bar:amd64': '5.0-1' },
      problems: [{ type: 'process-missing', detail: 'process 9: gone' }],
    });
    expect(p.status).toBe('ok');
  });

  it('an unmanaged file that differs blocks the host with file-mismatch', () => {
    const l = makeLock({
      packages: {},
      unmanaged: { '/usr/lib/locale/locale-archive': { size: 3035952, mode: '0644' } },
      scope: { kind: 'processes', pids: [1] },
    });
    const p = plan(l, {
      files: [{ path: '/usr/lib/locale/locale-archive', kind: 'file', size: 1, mode: '0644' }],
    });
    expect(p.status).toBe('blocked');
    expect(p.blocked.map((b) => b.reason)).toEqual(['file-mismatch']);
  });
});

describe('planHost: notes and pins', () => {
  const locked = { 'foo:amd64': { version: '1.0-1' } };
  const host: FactsSpec = { packages: { 'foo:amd64': '1.0-1', 'extra:amd64': '9.9-1', 'aaa:all': '1' } };

  it('notes extra packages, sorted, for scope all', () => {
    const p = plan(makeLock({ packages: locked }), host);
    expect(p.notes).toEqual([
      { type: 'extra-package', package: 'aaa:all', version: '1' },
      { type: 'extra-package', package: 'extra:amd64', version: '9.9-1' },
    ]);
    expect(p.status).toBe('ok');
  });

  it.each([
    [{ kind: 'packages' as const, packages: ['foo'], withDeps: false }],
    [{ kind: 'processes' as const, pids: [1] }],
  ])('does not note extra packages for scope %j', (scope) => {
    expect(plan(makeLock({ packages: locked, scope }), host).notes).toEqual([]);
  });

  it('writes pins when the pin file differs or is absent, not when it is current', () => {
    const lock = makeLock({ packages: locked });
    const pins = renderPins(lock);
    const want = { type: 'write-pins', path: PIN_FILE, sha256: sha256Hex(pins) };
    for (const pinSha256 of [null, sha256Hex('old pins\n')]) {
      const p = planHost(lock, makeFacts({ ...host, pinSha256 }), pins);
      expect(p.actions).toEqual([want]);
      expect(p.status).toBe('changes');
    }
    expect(planHost(lock, makeFacts({ ...host, pinSha256: sha256Hex(pins) }), pins).actions).toEqual([]);
  });
});

describe('fingerprint', () => {
  const lock = makeLock({ packages: { 'foo:amd64': { version: '1.0-1' }, 'bar:amd64': { version: '2' } } });
  const base: FactsSpec = {
    packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '2', 'extra:amd64': '1' },
    pinSha256: 'a'.repeat(64),
    policies: { 'foo:amd64': [pv('1.0-1')] },
  };
  const fp = (over: FactsSpec): string => fingerprint(lock, makeFacts({ ...base, ...over }));

  it('is stable for the same state', () => {
    expect(fp({})).toBe(fp({}));
    expect(fp({})).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it.each<[string, FactsSpec]>([
    [
      'a locked package version',
      { packages: { 'foo:amd64': '1.0-2', 'bar:amd64': '2', 'extra:amd64': '1' } },
    ],
    ['a locked package removed', { packages: { 'bar:amd64': '2', 'extra:amd64': '1' } }],
    [
      'a hold',
      {
        packages: {
          'foo:amd64': pkg('foo:amd64', '1.0-1', { want: 'hold' }),
          'bar:amd64': '2',
          'extra:amd64': '1',
        },
      },
    ],
    [
      'a dpkg status',
      {
        packages: {
          'foo:amd64': pkg('foo:amd64', '1.0-1', { status: 'unpacked' }),
          'bar:amd64': '2',
          'extra:amd64': '1',
        },
      },
    ],
    ['the pin file', { pinSha256: 'b'.repeat(64) }],
    ['the pin file removed', { pinSha256: null }],
    ['the platform', { platform: { versionId: '20.10' } }],
  ])('changes with %s', (_what, over) => {
    expect(fp(over)).not.toBe(fp({}));
  });

  it.each<[string, FactsSpec]>([
    ['an extra package', { packages: { 'foo:amd64': '1.0-1', 'bar:amd64': '2', 'extra:amd64': '7' } }],
    ['apt policies', { policies: { 'foo:amd64': [pv('1.0-9', 900)] } }],
    ['files', { files: [elf('/x', 1, '0644', 'aa')] }],
    ['the host name', { host: 'node-z' }],
  ])('does not change with %s', (_what, over) => {
    expect(fp(over)).toBe(fp({}));
  });
});

// ---------------------------------------------------------------------------------------------
// compareHost / compareFile: findings and CRIU's words
// ---------------------------------------------------------------------------------------------

describe('compareHost', () => {
  const lock = makeLock({
    packages: {
      'libc6:amd64': {
        version: '2.31-0ubuntu9.14',
        files: {
          [LIBC]: { size: 2029592, mode: '0755', buildId: ID_A },
          '/usr/lib/x86_64-linux-gnu/libm-2.31.so': { size: 1369384, mode: '0644', buildId: 'cc' },
          '/usr/lib/x86_64-linux-gnu/libmvec.so.1': { size: 100, mode: '0644' },
        },
      },
      'bash:amd64': { version: '5.0-6ubuntu1.2' },
      'zsh:amd64': { version: '5.8-3ubuntu1.1' },
    },
    unmanaged: { '/usr/lib/locale/locale-archive': { size: 3035952, mode: '0644' } },
  });

  it('finds nothing on a matching host', () => {
    const facts = makeFacts({
      packages: {
        'libc6:amd64': '2.31-0ubuntu9.14',
        'bash:amd64': '5.0-6ubuntu1.2',
        'zsh:amd64': '5.8-3ubuntu1.1',
      },
      files: filesOf(lock),
    });
    expect(compareHost(lock, facts)).toEqual([]);
  });

  it('reports every difference with the text CRIU prints', () => {
    const facts = makeFacts({
      platform: { codename: 'groovy' },
      packages: {
        'libc6:amd64': '2.31-0ubuntu9.14',
        'bash:amd64': pkg('bash:amd64', '5.0-6ubuntu1.2', { status: 'half-configured', eflag: 'ok' }),
      },
      files: [
        elf(LIBC, 2029592, '0755', ID_B),
        elf('/usr/lib/x86_64-linux-gnu/libm-2.31.so', 1369385, '0644', 'cc'),
        { path: '/usr/lib/locale/locale-archive', kind: 'symlink' },
      ],
    });
    const findings = compareHost(lock, facts);
    expect(findings).toEqual<Finding[]>([
      { type: 'platform-mismatch', field: 'codename', expected: 'focal', actual: 'groovy' },
      { type: 'package-broken', package: 'bash:amd64', detail: 'half-configured (ok)' },
      {
        type: 'file',
        package: 'libc6:amd64',
        path: LIBC,
        problem: 'build-id',
        expected: ID_A,
        actual: ID_B,
        criu: 'File usr/lib/x86_64-linux-gnu/libc-2.31.so has bad build-ID',
      },
      {
        type: 'file',
        package: 'libc6:amd64',
        path: '/usr/lib/x86_64-linux-gnu/libm-2.31.so',
        problem: 'size',
        expected: '1369384',
        actual: '1369385',
        criu: 'File usr/lib/x86_64-linux-gnu/libm-2.31.so has bad size 1369385 (expect 1369384)',
      },
      {
        type: 'file',
        package: 'libc6:amd64',
        path: '/usr/lib/x86_64-linux-gnu/libmvec.so.1',
        problem: 'missing',
        criu: "Can't open file usr/lib/x86_64-linux-gnu/libmvec.so.1 on restore: No such file or directory",
      },
      { type: 'package-missing', package: 'zsh:amd64', expected: '5.8-3ubuntu1.1' },
      {
        type: 'file',
        package: null,
        path: '/usr/lib/locale/locale-archive',
        problem: 'not-regular',
        actual: 'symlink',
        criu: 'File usr/lib/locale/locale-archive is not a regular file (symlink)',
      },
    ]);
  });

  it('reports a version mismatch using dpkg equality', () => {
    const l = makeLock({ packages: { 'foo:amd64': { version: '1.0' } } });
    expect(compareHost(l, makeFacts({ packages: { 'foo:amd64': '1.0-0' } }))).toEqual([]);
    expect(compareHost(l, makeFacts({ packages: { 'foo:amd64': '1.0-1' } }))).toEqual([
      { type: 'version-mismatch', package: 'foo:amd64', expected: '1.0', actual: '1.0-1' },
    ]);
  });

  it('checks size, then mode, then build-ID (first difference wins)', () => {
    const want: FileEntry = { size: 10, mode: '0755', buildId: 'aa' };
    const problem = (got: FileFact): string | undefined => {
      const f = compareFile('p:amd64', '/a', want, got);
      return f?.type === 'file' ? f.problem : f?.type;
    };
    expect(problem(elf('/a', 11, '0644', 'bb'))).toBe('size');
    expect(problem(elf('/a', 10, '0644', 'bb'))).toBe('mode');
    expect(problem(elf('/a', 10, '0755', 'bb'))).toBe('build-id');
    expect(compareFile('p:amd64', '/a', want, elf('/a', 10, '0755', 'aa'))).toBeUndefined();
  });

  it('reports a lost build-ID as "(none)" and ignores build-IDs the lock did not record', () => {
    expect(
      compareFile(null, '/a', { size: 1, mode: '0644', buildId: 'aa' }, elf('/a', 1, '0644', null)),
    ).toMatchObject({ problem: 'build-id', actual: '(none)' });
    expect(compareFile(null, '/a', { size: 1, mode: '0644' }, elf('/a', 1, '0644', 'bb'))).toBeUndefined();
  });

  it('describes a mode difference', () => {
    const f = compareFile(
      'p:amd64',
      '/usr/bin/x',
      { size: 1, mode: '0755' },
      { path: '/usr/bin/x', kind: 'file', size: 1, mode: '0644' },
    );
    expect(f).toMatchObject({ problem: 'mode', expected: '0755', actual: '0644' });
    expect(f?.type === 'file' ? f.criu : '').toMatch(/^File usr\/bin\/x has bad mode /);
  });

  it("prints the mode the way CRIU's files-reg.c does (full st_mode)", () => {
    const f = compareFile(
      'p:amd64',
      '/usr/bin/x',
      { size: 1, mode: '0755' },
      { path: '/usr/bin/x', kind: 'file', size: 1, mode: '0644' },
    );
    expect(f?.type === 'file' ? f.criu : '').toBe('File usr/bin/x has bad mode 0100644 (expect 0100755)');
  });

  it('lists every locked path once, sorted', () => {
    expect(lockedPaths(lock)).toEqual([
      '/usr/lib/locale/locale-archive',
      LIBC,
      '/usr/lib/x86_64-linux-gnu/libm-2.31.so',
      '/usr/lib/x86_64-linux-gnu/libmvec.so.1',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Pins
// ---------------------------------------------------------------------------------------------

describe('renderPins', () => {
  const lock = makeLock({
    packages: {
      'libc6:amd64': { version: '2.31-0ubuntu9.14' },
      'libc-bin:amd64': { version: '2.31-0ubuntu9.14' },
      'tzdata:all': { version: '2024a-0ubuntu0.20.04' },
      'libc6:i386': { version: '2.31-0ubuntu9.14' },
    },
  });

  it('renders one stanza per package, arch-all without :all', () => {
    expect(renderPins(lock).replace(lock.digest, 'sha256:DIGEST')).toMatchInlineSnapshot(`
      "# Managed by criu-lock: every package of the lockfile pinned to its exact version.
      # Lockfile digest: sha256:DIGEST
      # Do not edit; change the lockfile and run \`criu-lock apply\`.

      Package: libc-bin:amd64
      Pin: version 2.31-0ubuntu9.14
      Pin-Priority: 1001

      Package: libc6:amd64
      Pin: version 2.31-0ubuntu9.14
      Pin-Priority: 1001

      Package: libc6:i386
      Pin: version 2.31-0ubuntu9.14
      Pin-Priority: 1001

      Package: tzdata
      Pin: version 2024a-0ubuntu0.20.04
      Pin-Priority: 1001
      "
    `);
  });

  it('parses back to the lock versions at priority 1001', () => {
    const back = parsePins(renderPins(lock));
    expect(Object.fromEntries(back)).toEqual(
      Object.fromEntries(
        pinEntries(lock).map((e) => [e.package, { version: e.version, priority: PIN_PRIORITY }]),
      ),
    );
    expect(back.get('tzdata')).toEqual({ version: '2024a-0ubuntu0.20.04', priority: 1001 });
  });

  it('is deterministic', () => {
    expect(renderPins(lock)).toBe(renderPins(structuredClone(lock)));
  });
});

// ---------------------------------------------------------------------------------------------
// Property: planning the result of an apply yields an empty plan.
// ---------------------------------------------------------------------------------------------

const VERSIONS = [
  '1.0',
  '1.0-1',
  '1.0-2',
  '1:0.9-1',
  '2.0~rc1-1',
  '2.0-1',
  '2.31-0ubuntu9.9',
  '2.31-0ubuntu9.14',
  '3.0~rc2-1',
  '3.0-1',
  '0.5+dfsg-1',
];
const arbVersion = fc.constantFrom(...VERSIONS).filter(isValidVersion);
const arbKey = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9+.-]{1,6}:(?:amd64|i386)$/),
  fc.stringMatching(/^[a-z][a-z0-9+.-]{1,6}:all$/),
);
const arbFileEntry = fc
  .record({
    size: fc.nat(1000),
    mode: fc.constantFrom('0644', '0755'),
    buildId: fc.option(fc.stringMatching(/^[0-9a-f]{4}$/), { nil: undefined }),
  })
  .map(({ buildId, ...rest }): FileEntry => (buildId === undefined ? rest : { ...rest, buildId }));

interface HostCase {
  lock: Lockfile;
  facts: HostFacts;
  /** Base priorities of versions per policy key, before our pins. */
  base: Map<string, Map<string, number>>;
}

const arbCase: fc.Arbitrary<HostCase> = fc
  .uniqueArray(arbKey, { minLength: 1, maxLength: 6, selector: (k) => k.split(':')[0] })
  .chain((keys) =>
    fc.record({
      keys: fc.constant(keys),
      entries: fc.array(
        fc.record({
          version: arbVersion,
          files: fc.dictionary(fc.stringMatching(/^[a-z]{1,6}\.so$/), arbFileEntry, { maxKeys: 2 }),
          installed: fc.option(arbVersion, { nil: undefined }),
          others: fc.uniqueArray(arbVersion, { maxLength: 3 }),
          basePriority: fc.constantFrom(100, 500, 990),
          fileState: fc.constantFrom('match', 'drift', 'missing'),
          oldPin: fc.boolean(),
        }),
        { minLength: keys.length, maxLength: keys.length },
      ),
      extras: fc.dictionary(fc.stringMatching(/^x[a-z]{1,5}:amd64$/), arbVersion, { maxKeys: 3 }),
      scopeAll: fc.boolean(),
      pinState: fc.constantFrom('absent', 'stale', 'current'),
    }),
  )
  .map(({ keys, entries, extras, scopeAll, pinState }) => {
    const packages: Record<string, PackageEntry> = {};
    // dpkg never lets two packages own one path, so each package gets its own directory.
    // (Generated values are never mutated: fast-check reuses them while shrinking.)
    const filesByKey = new Map(
      keys.map((k, i) => [
        k,
        Object.fromEntries(
          Object.entries(entries[i]!.files).map(([base, f]) => [`/usr/lib/${k.split(':')[0]}/${base}`, f]),
        ),
      ]),
    );
    keys.forEach((k, i) => {
      const e = entries[i]!;
      const files = filesByKey.get(k)!;
      packages[k] = Object.keys(files).length > 0 ? { version: e.version, files } : { version: e.version };
    });
    const lock = makeLock({
      packages,
      scope: scopeAll
        ? { kind: 'all' }
        : { kind: 'packages', packages: keys.map((k) => k.split(':')[0]!).sort(), withDeps: false },
    });
    const installed: Record<string, string> = { ...extras };
    const policies: Record<string, PolicyVersion[]> = {};
    const base = new Map<string, Map<string, number>>();
    const files: FileFact[] = [];
    const oldPinned: Record<string, PackageEntry> = {};
    keys.forEach((k, i) => {
      const e = entries[i]!;
      if (e.installed !== undefined) installed[k] = e.installed;
      const policyKey = k.endsWith(':all') ? `${k.split(':')[0]}:amd64` : k;
      const offered = [e.version, ...e.others.filter((v) => compareVersions(v, e.version) !== 0)];
      const prio = new Map(offered.map((v) => [v, e.basePriority]));
      base.set(policyKey, prio);
      // A previous criu-lock run pinned another version: apt shows it at 1001 until the pins change.
      const pinnedOld = e.oldPin ? e.others.find((v) => compareVersions(v, e.version) !== 0) : undefined;
      if (pinnedOld) oldPinned[k] = { version: pinnedOld };
      policies[policyKey] = offered.map((v) => pv(v, v === pinnedOld ? PIN_PRIORITY : e.basePriority));
      for (const [path, f] of Object.entries(filesByKey.get(k)!)) {
        if (e.fileState === 'missing') continue;
        const size = e.fileState === 'drift' ? f.size + 1 : f.size;
        files.push(
          f.buildId === undefined
            ? { path, kind: 'file', size, mode: f.mode }
            : elf(path, size, f.mode, f.buildId),
        );
      }
    });
    const oldPins =
      Object.keys(oldPinned).length > 0
        ? renderPins(makeLock({ packages: oldPinned }))
        : pinState === 'stale'
          ? '# something else\n'
          : null;
    const current = renderPins(lock);
    const pinFile = pinState === 'current' && oldPins === null ? current : oldPins;
    const facts = makeFacts({
      packages: installed,
      policies,
      files,
      pinFile,
      pinSha256: pinFile === null ? null : sha256Hex(pinFile),
    });
    return { lock, facts, base };
  });

/** What apply does to a host: pins written (apt now prefers the pinned versions), packages moved, files replaced. */
function simulateApply(c: HostCase, p: HostPlan, pins: string): HostFacts {
  const cloned = structuredClone(c.facts);
  const packages = new Map(cloned.packages);
  const files = new Map(cloned.files);
  const facts: HostFacts = { ...cloned, packages, files };
  for (const a of p.actions) {
    switch (a.type) {
      case 'write-pins': {
        facts.pinFile = pins;
        facts.pinSha256 = sha256Hex(pins);
        const pinned = parsePins(pins);
        for (const [policyKey, prio] of c.base) {
          const policy = facts.policies.get(policyKey)!;
          const name = policyKey.split(':')[0]!;
          const mine = pinned.get(policyKey) ?? pinned.get(name);
          policy.versions = policy.versions.map((v) => ({
            ...v,
            priority:
              mine && compareVersions(mine.version, v.version) === 0 ? mine.priority : prio.get(v.version)!,
          }));
        }
        break;
      }
      case 'install':
      case 'upgrade':
      case 'downgrade':
      case 'reinstall': {
        packages.set(a.package, pkg(a.package, a.to));
        for (const f of filesOf(makeLock({ packages: { [a.package]: c.lock.packages[a.package]! } })))
          files.set(f.path, f);
        break;
      }
      default: {
        const never: never = a;
        throw new Error(`unknown action ${JSON.stringify(never)}`);
      }
    }
  }
  return facts;
}

describe('planning the result of an apply yields an empty plan', () => {
  it('holds for random locks and hosts whose apt sources offer every locked version', () => {
    fc.assert(
      fc.property(arbCase, (c) => {
        const pins = renderPins(c.lock);
        const first = planHost(c.lock, c.facts, pins);
        expect(first.blocked).toEqual([]);
        expect(first.status).toBe(first.actions.length > 0 ? 'changes' : 'ok');
        const after = planHost(c.lock, simulateApply(c, first, pins), pins);
        expect({ status: after.status, actions: after.actions, blocked: after.blocked }).toEqual({
          status: 'ok',
          actions: [],
          blocked: [],
        });
        // Planning is a function: the same input gives the same plan.
        expect(planHost(c.lock, c.facts, pins)).toEqual(first);
      }),
      { numRuns: 300 },
    );
  });
});
