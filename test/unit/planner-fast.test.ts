/**
 * The fast planner (one pass, per-lock index, files compared only where they decide) must give
 * exactly the plans of the straightforward one it replaced, on hosts drifted in every way the
 * planner distinguishes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FileFact, InstalledPackage, PolicyVersion } from '../../src/facts/types.js';
import type { FileEntry, PackageEntry } from '../../src/lock/lockfile.js';
import { renderPins, sha256Hex } from '../../src/plan/pins.js';
import { fingerprint, planHost } from '../../src/plan/planner.js';
import { fleetTemplate, syntheticFacts, syntheticLock } from '../../tools/bench/synthetic.js';
import { makeFacts, makeLock, pkg, pv } from './core-fixtures.js';
import { fingerprintReference, planHostReference } from './planner-reference.js';

const VERSIONS = ['1.0-1', '1.0-2', '0:1.0-2', '1.0~rc1-1', '2:0.9-1', '1.0-2+b1'];
const IDS = ['aa'.repeat(20), 'bb'.repeat(20)];

const fileEntry = fc.record({
  size: fc.constantFrom(100, 200),
  mode: fc.constantFrom('0644', '0755'),
  buildId: fc.option(fc.constantFrom(...IDS), { nil: undefined }),
});

const fileFact = (path: string): fc.Arbitrary<FileFact | undefined> =>
  fc.oneof(
    fc.constant(undefined),
    fc.constant<FileFact>({ path, kind: 'missing' }),
    fc.constant<FileFact>({ path, kind: 'symlink' }),
    fc.record({
      path: fc.constant(path),
      kind: fc.constantFrom<'elf' | 'file'>('elf', 'file'),
      size: fc.constantFrom(100, 200),
      mode: fc.constantFrom('0644', '0755'),
      buildId: fc.constantFrom<string | null>(...IDS, null),
    }),
  );

/** Package i owns files /lib/pN-F; unmanaged files live under /opt. */
const scenario = fc
  .record({
    packages: fc.array(
      fc.record({
        arch: fc.constantFrom('amd64', 'all'),
        version: fc.constantFrom(...VERSIONS),
        files: fc.array(fileEntry, { maxLength: 3 }),
      }),
      { minLength: 1, maxLength: 6 },
    ),
    unmanaged: fc.array(fileEntry, { maxLength: 2 }),
    scope: fc.constantFrom('all', 'packages'),
  })
  .chain((l) => {
    const keys = l.packages.map((p, i) => `p${i}:${p.arch}`);
    const paths = l.packages.flatMap((p, i) => p.files.map((_f, j) => `/lib/p${i}-${j}`));
    const unmanagedPaths = l.unmanaged.map((_f, j) => `/opt/u${j}`);
    const installed = fc.option(
      fc.record({
        version: fc.constantFrom(...VERSIONS),
        want: fc.constantFrom('install', 'install', 'hold'),
        status: fc.constantFrom('installed', 'installed', 'unpacked', 'triggers-pending'),
        eflag: fc.constantFrom('ok', 'ok', 'reinstreq'),
      }),
      { nil: undefined },
    );
    const policy = fc.array(
      fc.record({
        version: fc.constantFrom(...VERSIONS),
        priority: fc.constantFrom(100, 500, 1001),
        withSource: fc.boolean(),
      }),
      { maxLength: 3 },
    );
    return fc.record({
      lock: fc.constant(l),
      keys: fc.constant(keys),
      installed: fc.tuple(...keys.map(() => installed)),
      // `all` packages' policy sits under the native arch, as apt prints it.
      policies: fc.tuple(...keys.map(() => fc.option(policy, { nil: undefined }))),
      files: fc.tuple(...[...paths, ...unmanagedPaths].map((p) => fileFact(p))),
      extras: fc.array(fc.constantFrom('x1:amd64', 'x2:i386'), { maxLength: 2 }),
      pins: fc.constantFrom('current', 'absent', 'other'),
      platformId: fc.constantFrom('ubuntu', 'ubuntu', 'ubuntu', 'debian'),
      problem: fc.boolean(),
      // The planner tries the lock's order first when matching facts to slots; any other order of
      // the host's Maps must give the same plan.
      order: fc.constantFrom('as-parsed', 'as-parsed', 'reversed', 'rotated'),
    });
  });

function reorder<V>(m: ReadonlyMap<string, V>, order: 'as-parsed' | 'reversed' | 'rotated'): Map<string, V> {
  const entries = [...m];
  if (order === 'reversed') entries.reverse();
  if (order === 'rotated') entries.push(...entries.splice(0, 1));
  return new Map(entries);
}

describe('planHost (fast) agrees with the straightforward planner', () => {
  it('on random small hosts drifted in every way the planner distinguishes', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const packages: Record<string, PackageEntry> = {};
        s.lock.packages.forEach((p, i) => {
          const files: Record<string, FileEntry> = {};
          p.files.forEach((f, j) => {
            files[`/lib/p${i}-${j}`] = f.buildId === undefined ? { size: f.size, mode: f.mode } : f;
          });
          packages[s.keys[i]!] = { version: p.version, ...(p.files.length ? { files } : {}) };
        });
        const unmanaged: Record<string, FileEntry> = {};
        s.lock.unmanaged.forEach((f, j) => {
          unmanaged[`/opt/u${j}`] = f.buildId === undefined ? { size: f.size, mode: f.mode } : f;
        });
        const lock = makeLock({
          packages,
          ...(s.lock.unmanaged.length ? { unmanaged } : {}),
          scope:
            s.lock.scope === 'all'
              ? { kind: 'all' }
              : { kind: 'packages', packages: s.keys.map((k) => k.split(':')[0]!), withDeps: false },
        });
        const pins = renderPins(lock);
        const installed: Record<string, InstalledPackage> = {};
        s.installed.forEach((p, i) => {
          if (p)
            installed[s.keys[i]!] = pkg(s.keys[i]!, p.version, {
              want: p.want,
              status: p.status,
              eflag: p.eflag,
            });
        });
        for (const x of s.extras) installed[x] = pkg(x, '1.0-1');
        const policies: Record<string, PolicyVersion[]> = {};
        s.policies.forEach((rows, i) => {
          if (!rows) return;
          policies[s.keys[i]!.replace(/:all$/, ':amd64')] = rows.map((r) =>
            pv(r.version, r.priority, { sources: r.withSource ? undefined : [] }),
          );
        });
        const facts = makeFacts({
          packages: installed,
          policies,
          files: s.files.filter((f): f is FileFact => f !== undefined),
          platform: { id: s.platformId },
          pinFile:
            s.pins === 'absent' ? null : s.pins === 'current' ? pins : pins.replace(/1\.0-1/g, '1.0-2'),
          pinSha256: s.pins === 'absent' ? null : s.pins === 'current' ? sha256Hex(pins) : sha256Hex('other'),
          problems: s.problem
            ? [{ type: 'broken-dpkg-state', package: s.keys[0]!, detail: 'half-configured' }]
            : [],
        });
        const reordered = {
          ...facts,
          packages: reorder(facts.packages, s.order),
          files: reorder(facts.files, s.order),
        };
        const fast = planHost(lock, reordered, pins);
        expect(fast).toEqual(planHostReference(lock, reordered, pins));
        expect(fingerprint(lock, reordered)).toBe(fingerprintReference(lock, reordered));
        expect(fast.fingerprint).toBe(fingerprintReference(lock, reordered));
      }),
      { numRuns: 1500 },
    );
  });

  it('on the micro-benchmark hosts (2,000 packages, drifted like a fleet)', () => {
    const lock = syntheticLock({ packages: 2000, filesPer: (i) => i % 3 });
    const pins = renderPins(lock);
    const t = fleetTemplate(lock, pins);
    let changed = 0;
    for (let h = 0; h < 20; h++) {
      const facts = syntheticFacts(t, h);
      const fast = planHost(lock, facts, pins);
      expect(fast).toEqual(planHostReference(lock, facts, pins));
      if (fast.actions.length > 0) changed++;
    }
    // The comparison above means something only if the hosts really drifted.
    expect(changed).toBe(20);
  });

  it("uses the parser's verdicts only for the Maps and the lock they were made for", () => {
    const lock = syntheticLock({ packages: 300, filesPer: (i) => i % 3 });
    const pins = renderPins(lock);
    const t = fleetTemplate(lock, pins);
    const facts = syntheticFacts(t, 3);
    const v = facts.lockVerdicts!;
    const reference = planHostReference(lock, facts, pins);
    expect(reference.actions.length).toBeGreaterThan(1);
    expect(planHost(lock, facts, pins)).toEqual(reference);
    // Verdicts claiming every package and file at the lock: believed for their own Maps and lock...
    const allAtLock = {
      ...v,
      packageAtLock: new Uint8Array(v.packageAtLock.length).fill(1),
      fileAtLock: new Uint8Array(v.fileAtLock.length).fill(1),
    };
    const believed = planHost(lock, { ...facts, lockVerdicts: allAtLock }, pins);
    expect(believed.actions.filter((a) => a.type !== 'write-pins')).toEqual([]);
    // ...and ignored for copies of the Maps, and for another lock object with the same content.
    const copied = {
      ...facts,
      packages: new Map(facts.packages),
      files: new Map(facts.files),
      lockVerdicts: allAtLock,
    };
    expect(planHost(lock, copied, pins)).toEqual(reference);
    const sameContent = structuredClone(lock);
    expect(planHost(sameContent, { ...facts, lockVerdicts: allAtLock }, pins)).toEqual(
      planHostReference(sameContent, facts, pins),
    );
  });

  it('a host whose planning throws leaves nothing behind for the next host', () => {
    const lock = syntheticLock({ packages: 300, filesPer: (i) => i % 3 });
    const pins = renderPins(lock);
    const t = fleetTemplate(lock, pins);
    // Host `next` lacks package `slot`; host `first` has it at another version.
    let first = -1;
    let next = -1;
    let slot = -1;
    for (let h = 1; h < 200 && slot < 0; h++) {
      const v = syntheticFacts(t, h).lockVerdicts!;
      const missing = t.packages.findIndex(
        (_p, i) => v.packageAtLock[i] === 0 && !v.offLockSlots.includes(i),
      );
      if (missing < 0) continue;
      for (let g = 0; g < 200; g++) {
        if (syntheticFacts(t, g).lockVerdicts!.offLockSlots.includes(missing)) {
          [first, next, slot] = [g, h, missing];
          break;
        }
      }
    }
    expect(slot).toBeGreaterThanOrEqual(0);
    const facts = syntheticFacts(t, first);
    const v = facts.lockVerdicts!;
    // That version is not one dpkg could hold: planning the first host throws midway.
    const offLock = v.offLock.map((p, k) =>
      v.offLockSlots[k] === slot ? { ...p, version: 'not a version' } : p,
    );
    expect(() => planHost(lock, { ...facts, lockVerdicts: { ...v, offLock } }, pins)).toThrow();
    const later = syntheticFacts(t, next);
    const plan = planHost(lock, later, pins);
    expect(plan).toEqual(planHostReference(lock, later, pins));
    expect(plan.actions).toContainEqual(
      expect.objectContaining({ type: 'install', package: t.packages[slot]!.key, from: null }),
    );
  });

  it('hosts exactly at the lock, with any pins and platform, get the reference fingerprint', () => {
    const lock = syntheticLock({ packages: 300, filesPer: (i) => i % 3 });
    const pins = renderPins(lock);
    const t = fleetTemplate(lock, pins);
    // A host at the lock: every package at its locked version, every file as locked.
    // New Maps: the parser's verdicts (LockVerdicts) describe the old ones, so they are not used.
    const atLock = (h: number) => {
      const parsed = syntheticFacts(t, h);
      const facts = { ...parsed, packages: new Map(parsed.packages), files: new Map(parsed.files) };
      for (const p of t.packages) {
        const key = p.key;
        const installed = facts.packages.get(key) ?? { ...[...facts.packages.values()][0]!, key };
        facts.packages.set(key, {
          ...installed,
          version: p.want,
          want: 'install',
          status: 'installed',
          eflag: 'ok',
        });
        for (const f of p.files)
          facts.files.set(f.path, {
            path: f.path,
            kind: 'elf',
            size: f.size,
            mode: f.mode,
            buildId: f.buildId,
          });
      }
      return facts;
    };
    const seen = new Set<string>();
    for (let h = 0; h < 12; h++) {
      const facts = atLock(h);
      if (h % 3 === 2) facts.platform = { ...facts.platform, versionId: '13' };
      if (h % 4 === 3) facts.pinSha256 = sha256Hex(`other ${h % 2}`);
      const fast = planHost(lock, facts, pins);
      expect(fast).toEqual(planHostReference(lock, facts, pins));
      expect(fingerprint(lock, facts)).toBe(fingerprintReference(lock, facts));
      seen.add(fast.fingerprint!);
      // One package off the lock: another fingerprint.
      const moved = atLock(h);
      const first = t.packages[h]!;
      moved.packages.set(first.key, { ...moved.packages.get(first.key)!, version: first.ahead });
      const drifted = planHost(lock, moved, pins);
      expect(drifted).toEqual(planHostReference(lock, moved, pins));
      expect(drifted.fingerprint).not.toBe(fast.fingerprint);
    }
    // Platforms x pins states actually differed.
    expect(seen.size).toBeGreaterThan(3);
  });

  it('a host whose files drifted at the locked version gets a reinstall, only for that package', () => {
    const lock = makeLock({
      packages: {
        'a:amd64': { version: '1.0-1', files: { '/lib/a': { size: 1, mode: '0644', buildId: IDS[0]! } } },
        'b:amd64': { version: '1.0-1', files: { '/lib/b': { size: 1, mode: '0644', buildId: IDS[0]! } } },
      },
    });
    const pins = renderPins(lock);
    const facts = makeFacts({
      packages: { 'a:amd64': '1.0-1', 'b:amd64': '1.0-1' },
      policies: { 'a:amd64': [pv('1.0-1')], 'b:amd64': [pv('1.0-1')] },
      files: [
        { path: '/lib/a', kind: 'elf', size: 1, mode: '0644', buildId: IDS[1]! },
        { path: '/lib/b', kind: 'elf', size: 1, mode: '0644', buildId: IDS[0]! },
      ],
      pinSha256: sha256Hex(pins),
    });
    expect(planHost(lock, facts, pins).actions).toEqual([
      { type: 'reinstall', package: 'a:amd64', from: '1.0-1', to: '1.0-1' },
    ]);
  });
});
