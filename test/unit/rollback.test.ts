import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  aptCacheFileName,
  makeTxId,
  TxId,
  parseManifest,
  serializeManifest,
  type TxManifest,
} from '../../src/rollback/manifest.js';
import { parseCurrent, parseTransactions } from '../../src/rollback/host.js';
import {
  historyEntries,
  lastNotCompleted,
  parseSimulation,
  planRollback,
  rollbackAptArgv,
  rollbackTxPackages,
  selectTarget,
  stateChanges,
  toPrune,
  unexpectedRemovals,
  type CurrentState,
} from '../../src/rollback/planner.js';

const SHA = (c: string): string => c.repeat(64);
const PIN = '/etc/apt/preferences.d/criu-lock.pref';

function tx(over: Partial<TxManifest> = {}): TxManifest {
  return {
    manifestVersion: 1,
    id: '20261129T011731Z-dbccbc',
    host: 'node03',
    kind: 'apply',
    createdAt: '2026-11-29T01:17:31.670Z',
    lockDigest: `sha256:${SHA('a')}`,
    rollbackOf: null,
    status: 'applied',
    packages: [
      {
        package: 'libfleet1:amd64',
        before: '2.31-0ubuntu9.9',
        after: '2.31-0ubuntu9.14',
        auto: true,
        deb: { file: 'libfleet1_2.31-0ubuntu9.9_amd64.deb', sha256: SHA('1'), source: 'apt-download' },
      },
      {
        package: 'libepoch0:amd64',
        before: '1.9-1',
        after: '1:1.0-1',
        auto: false,
        deb: { file: 'libepoch0_1.9-1_amd64.deb', sha256: SHA('2'), source: 'apt-cache' },
      },
      { package: 'libtilde0:amd64', before: null, after: '3.0~rc2-1', auto: null, deb: null },
    ],
    pins: { path: PIN, before: null, after: SHA('9') },
    files: [{ path: '/usr/lib/x86_64-linux-gnu/libfleet.so.1', package: 'libfleet1:amd64', buildId: 'ff15' }],
    ...over,
  };
}

/** The host exactly as `t` left it. */
function after(t: TxManifest, auto: string[] = []): CurrentState {
  return {
    versions: new Map(t.packages.map((p) => [p.package, p.after])),
    auto: new Set(auto),
    pinSha256: t.pins.after,
  };
}

describe('transaction manifest', () => {
  it('round-trips and rejects what a host should never send', () => {
    const m = tx();
    expect(parseManifest(serializeManifest(m))).toEqual({ ok: true, manifest: m });
    const bad = (patch: (o: Record<string, unknown>) => void): string => {
      const o = JSON.parse(serializeManifest(m)) as Record<string, unknown>;
      patch(o);
      const r = parseManifest(JSON.stringify(o));
      return r.ok ? 'accepted' : r.error;
    };
    expect(bad((o) => (o.manifestVersion = 2))).toMatch(/unknown manifestVersion 2/);
    expect(bad((o) => (o.id = '../../etc'))).toMatch(/^id: is not a transaction id/);
    expect(bad((o) => ((o.packages as Array<Record<string, unknown>>)[0]!.before = '1.0; rm -rf /'))).toMatch(
      /packages\.0\.before: is not a valid Debian version/,
    );
    expect(
      bad(
        (o) =>
          (((o.packages as Array<Record<string, unknown>>)[0]!.deb as Record<string, unknown>).file =
            '../x.deb'),
      ),
    ).toMatch(/packages\.0\.deb\.file/);
    expect(bad((o) => (o.extra = 1))).toMatch(/Unrecognized key/i);
    const notJson = parseManifest('{not json');
    expect(notJson.ok ? '' : notJson.error).toMatch(/^not JSON/);
  });

  it('makes ids that sort by time to the millisecond (the millisecond, then 12 random bits)', () => {
    expect(makeTxId(new Date('2026-11-29T01:02:03.999Z'), 0xabc)).toBe('20261129T010203Z-3e7abc');
    expect(makeTxId(new Date('2026-11-29T01:02:03.000Z'), 0xfffabc)).toBe('20261129T010203Z-000abc');
    // Two transactions in the same second on one host (a rollback, then another): by time, not by chance.
    expect(
      makeTxId(new Date('2026-11-29T01:02:03.100Z'), 0xfff) <
        makeTxId(new Date('2026-11-29T01:02:03.101Z'), 0),
    ).toBe(true);
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2000-01-01'), max: new Date('2099-12-31'), noInvalidDate: true }),
        fc.date({ min: new Date('2000-01-01'), max: new Date('2099-12-31'), noInvalidDate: true }),
        fc.nat(),
        fc.nat(),
        (a, b, ra, rb) => {
          const ia = makeTxId(a, ra);
          const ib = makeTxId(b, rb);
          expect(ia).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
          expect(TxId.safeParse(ia).success).toBe(true);
          if (a.getTime() < b.getTime()) expect(ia < ib).toBe(true);
        },
      ),
    );
  });

  it('names cached .debs as apt does (epoch colon as %3a)', () => {
    expect(aptCacheFileName('libepoch0', '1:1.0-1', 'amd64')).toBe('libepoch0_1%3a1.0-1_amd64.deb');
    expect(aptCacheFileName('libfleet1', '2.31-0ubuntu9.9', 'amd64')).toBe(
      'libfleet1_2.31-0ubuntu9.9_amd64.deb',
    );
  });
});

describe('history and target selection', () => {
  const apply = tx();
  const rb = tx({ id: '20261129T011742Z-153742', kind: 'rollback', lockDigest: null, rollbackOf: apply.id });
  const older = tx({ id: '20261128T230000Z-000001' });

  it('lists newest first and marks what a rollback undid', () => {
    const h = historyEntries([older, apply, rb]);
    expect(h.map((e) => [e.tx.id, e.rolledBackBy])).toEqual([
      [rb.id, null],
      [apply.id, rb.id],
      [older.id, null],
    ]);
  });

  it('does not count a rollback that never completed as having undone anything', () => {
    const cut = { ...rb, status: 'captured' as const };
    expect(historyEntries([older, apply, cut]).map((e) => e.rolledBackBy)).toEqual([null, null, null]);
    expect(selectTarget([older, apply, cut], apply.id)).toMatchObject({ ok: true, rolledBackBy: null });
  });

  it('--last is the newest transaction, a rollback included; --to picks one; unknown ids and empty hosts are errors', () => {
    expect(selectTarget([older, apply, rb])).toMatchObject({ ok: true, tx: { id: rb.id } });
    expect(selectTarget([older, apply, rb], apply.id)).toMatchObject({
      ok: true,
      tx: { id: apply.id },
      rolledBackBy: rb.id,
    });
    expect(selectTarget([older], apply.id)).toMatchObject({
      ok: false,
      error: `no transaction ${apply.id} on this host`,
      hint: `recorded: ${older.id}`,
    });
    expect(selectTarget([])).toMatchObject({ ok: false, error: 'no transaction recorded on this host' });
  });
});

describe('planRollback', () => {
  it('on an untouched host: captured .debs back, the newly installed package removed, marks and pins restored', () => {
    const t = tx();
    const d = planRollback(t, after(t), { force: false });
    expect(d.type).toBe('plan');
    if (d.type !== 'plan') return;
    expect(d.plan.install).toEqual([
      {
        package: 'libfleet1:amd64',
        version: '2.31-0ubuntu9.9',
        debPath: `/var/lib/criu-lock/tx/${t.id}/debs/libfleet1_2.31-0ubuntu9.9_amd64.deb`,
        sha256: SHA('1'),
      },
      {
        package: 'libepoch0:amd64',
        version: '1.9-1',
        debPath: `/var/lib/criu-lock/tx/${t.id}/debs/libepoch0_1.9-1_amd64.deb`,
        sha256: SHA('2'),
      },
    ]);
    expect(d.plan.remove).toEqual(['libtilde0:amd64']);
    expect(d.plan.marks).toEqual({ auto: ['libfleet1:amd64'], manual: [] });
    expect(d.plan.pins).toBe('remove');
    expect(d.plan.changes).toEqual([]);
    expect(d.plan.nothingToDo).toBe(false);
    expect(rollbackAptArgv(d.plan, { simulate: true, lockTimeout: 60 }).slice(-4)).toEqual([
      '-s',
      `/var/lib/criu-lock/tx/${t.id}/debs/libfleet1_2.31-0ubuntu9.9_amd64.deb`,
      `/var/lib/criu-lock/tx/${t.id}/debs/libepoch0_1.9-1_amd64.deb`,
      'libtilde0:amd64-',
    ]);
    expect(rollbackAptArgv(d.plan, { simulate: false, lockTimeout: 60 })).not.toContain('-s');
    // The rollback's own transaction records what it replaces, so it can be rolled back too.
    expect(rollbackTxPackages(d.plan, after(t))).toEqual([
      { package: 'libepoch0:amd64', before: '1:1.0-1', after: '1.9-1' },
      { package: 'libfleet1:amd64', before: '2.31-0ubuntu9.14', after: '2.31-0ubuntu9.9' },
      { package: 'libtilde0:amd64', before: '3.0~rc2-1', after: null },
    ]);
  });

  it.each([
    [
      'a manual upgrade',
      (s: CurrentState) => ({ ...s, versions: new Map([...s.versions, ['libepoch0:amd64', '1:1.1-1']]) }),
      ['package libepoch0:amd64 1:1.0-1 1:1.1-1'],
    ],
    [
      'a removed package',
      (s: CurrentState) => ({ ...s, versions: new Map([...s.versions, ['libtilde0:amd64', null]]) }),
      ['package libtilde0:amd64 3.0~rc2-1 null'],
    ],
    [
      'an edited pin file',
      (s: CurrentState) => ({ ...s, pinSha256: SHA('e') }),
      [`pins ${PIN} ${SHA('9')} ${SHA('e')}`],
    ],
  ])(
    'refuses a host changed since the transaction (%s) unless --force, saying what changed',
    (_what, change, expected) => {
      const t = tx();
      const now = change(after(t));
      const show = (c: ReturnType<typeof stateChanges>[number]): string =>
        c.type === 'package'
          ? `package ${c.package} ${c.expected} ${c.actual}`
          : `pins ${c.path} ${c.expected} ${c.actual}`;
      expect(stateChanges(t, now).map(show)).toEqual(expected);
      const refused = planRollback(t, now, { force: false });
      expect(refused).toMatchObject({
        type: 'refused',
        reason: `the host changed since transaction ${t.id}`,
      });
      const forced = planRollback(t, now, { force: true });
      expect(forced.type).toBe('plan');
      if (forced.type === 'plan') expect(forced.plan.changes.map(show)).toEqual(expected);
    },
  );

  it('says when the transaction never completed and the host is neither as it left it nor as captured', () => {
    const t = tx({ status: 'captured' });
    const elsewhere: CurrentState = {
      versions: new Map(t.packages.map((p) => [p.package, p.before])).set('libepoch0:amd64', '1:2.0-1'),
      auto: new Set(),
      pinSha256: null,
    };
    const d = planRollback(t, elsewhere, { force: false });
    expect(d.type === 'refused' ? d.reason : '').toMatch(/never completed/);
  });

  it('says when the transaction was already rolled back and the host changed since', () => {
    const t = tx();
    const changed: CurrentState = {
      versions: new Map(t.packages.map((p) => [p.package, p.before])).set('libepoch0:amd64', '1:2.0-1'),
      auto: new Set(['libfleet1:amd64']),
      pinSha256: null,
    };
    const d = planRollback(t, changed, { force: false, rolledBackBy: '20261129T020000Z-000002' });
    expect(d.type === 'refused' ? d.reason : '').toMatch(/already rolled back by 20261129T020000Z-000002/);
  });

  it('--last on a transaction that never completed: pass over it, refuse it, or take it', () => {
    const t = tx({ status: 'captured' });
    const captured: CurrentState = {
      versions: new Map(t.packages.map((p) => [p.package, p.before])),
      auto: new Set(),
      pinSha256: t.pins.before,
    };
    expect(lastNotCompleted(t, captured)).toBe('pass');
    expect(lastNotCompleted(t, after(t))).toBe('refuse');
    const elsewhere = { ...captured, versions: new Map(captured.versions).set('libepoch0:amd64', '1:2.0-1') };
    expect(lastNotCompleted(t, elsewhere)).toBe('take');
    expect(lastNotCompleted(tx(), captured)).toBe('take');
  });

  it('has nothing to do, and refuses nothing, on a host already exactly as captured', () => {
    // A transaction whose apt failed cleanly, or one already rolled back: not a dead end for --last.
    const back: CurrentState = {
      versions: new Map(tx().packages.map((p) => [p.package, p.before])),
      auto: new Set(['libfleet1:amd64']),
      pinSha256: null,
    };
    for (const [t, rolledBackBy] of [
      [tx({ status: 'captured' }), null],
      [tx(), '20261129T020000Z-000002'],
    ] as const) {
      for (const force of [false, true]) {
        const d = planRollback(t, back, { force, rolledBackBy });
        expect(d.type === 'plan' && d.plan.nothingToDo).toBe(true);
      }
    }
  });

  it('refuses, even with --force, packages dpkg holds half-way (they are neither installed nor absent)', () => {
    const t = tx({ kind: 'rollback', rollbackOf: '20261129T000000Z-000000' });
    const now: CurrentState = {
      ...after(t),
      versions: new Map([['libepoch0:amd64', '1:1.0-1']]),
      unfinished: new Map([
        ['libfleet1:amd64', 'iU 2.31-0ubuntu9.14'],
        ['libtilde0:amd64', 'iF 3.0~rc2-1'],
      ]),
    };
    for (const force of [false, true]) {
      const d = planRollback(t, now, { force });
      expect(d).toEqual({
        type: 'refused',
        reason:
          'dpkg holds libfleet1:amd64 (iU 2.31-0ubuntu9.14), libtilde0:amd64 (iF 3.0~rc2-1) half-way (not installed and not absent)',
        changes: [],
        remedy:
          'finish the interrupted dpkg run on the host first (dpkg --configure -a, or apt-get -f install); --force does not override this',
      });
    }
  });

  it('property: after doing the plan, the host is exactly the captured state', () => {
    const version = fc.constantFrom('1.0-1', '1.1-1', '2:0.9-3', '3.0~rc1-1');
    const pkg = fc.record({
      before: fc.option(version, { nil: null }),
      after: version,
      auto: fc.boolean(),
      current: fc.option(version, { nil: null }),
      autoNow: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(pkg, { minLength: 1, maxLength: 6 }),
        fc.option(fc.constant(SHA('b')), { nil: null }),
        fc.option(fc.constant(SHA('c')), { nil: null }),
        (pkgs, pinBefore, pinNow) => {
          const t = tx({
            packages: pkgs.map((p, i) => ({
              package: `p${i}:amd64`,
              before: p.before,
              after: p.after,
              auto: p.before === null ? null : p.auto,
              deb:
                p.before === null
                  ? null
                  : { file: `p${i}_1_amd64.deb`, sha256: SHA('d'), source: 'apt-download' as const },
            })),
            pins: { path: PIN, before: pinBefore, after: SHA('9') },
          });
          const now: CurrentState = {
            versions: new Map(pkgs.map((p, i) => [`p${i}:amd64`, p.current])),
            auto: new Set(pkgs.flatMap((p, i) => (p.autoNow ? [`p${i}:amd64`] : []))),
            pinSha256: pinNow,
          };
          const d = planRollback(t, now, { force: true });
          if (d.type !== 'plan') throw new Error('forced plans are never refused');
          // Simulate: apt installs the debs (marked manual), removes the listed packages, then marks and pins.
          const versions = new Map(now.versions);
          const auto = new Set(now.auto);
          for (const i of d.plan.install) {
            versions.set(i.package, i.version);
            auto.delete(i.package);
          }
          for (const r of d.plan.remove) versions.set(r, null);
          for (const a of d.plan.marks.auto) auto.add(a);
          for (const m of d.plan.marks.manual) auto.delete(m);
          const pin = d.plan.pins === 'keep' ? now.pinSha256 : d.plan.pins === 'remove' ? null : pinBefore;
          for (const p of t.packages) {
            expect(versions.get(p.package) ?? null).toBe(p.before);
            if (p.before !== null) expect(auto.has(p.package)).toBe(p.auto);
          }
          expect(pin).toBe(pinBefore);
        },
      ),
    );
  });
});

describe('apt simulation and removals', () => {
  const sim = [
    'Inst libfleet1 [2.31-0ubuntu9.14] (2.31-0ubuntu9.9 local-deb [amd64])',
    'Remv libtilde0 [3.0~rc2-1]',
    'Remv golden-extra [1.0-1]',
    'Conf libfleet1 (2.31-0ubuntu9.9 local-deb [amd64])',
    '',
  ].join('\n');

  it('reads Inst and Remv lines', () => {
    expect(parseSimulation(sim)).toEqual({
      installs: [{ package: 'libfleet1', version: '2.31-0ubuntu9.9' }],
      removes: ['libtilde0', 'golden-extra'],
    });
  });

  it('flags removals beyond the recorded ones (apt drops :arch for the native one)', () => {
    expect(unexpectedRemovals(['libtilde0', 'golden-extra'], ['libtilde0:amd64'], 'amd64')).toEqual([
      'golden-extra',
    ]);
    expect(unexpectedRemovals(['libtilde0:i386'], ['libtilde0:amd64'], 'amd64')).toEqual(['libtilde0:i386']);
    expect(unexpectedRemovals(['libtilde0:i386'], ['libtilde0:i386'], 'amd64')).toEqual([]);
  });
});

describe('retention', () => {
  it('keeps the newest N', () => {
    const ids = ['20261129T030000Z-000003', '20261129T010000Z-000001', '20261129T020000Z-000002'];
    expect(toPrune(ids, 2)).toEqual(['20261129T010000Z-000001']);
    expect(toPrune(ids, 5)).toEqual([]);
    expect(toPrune(ids, 1)).toEqual(['20261129T010000Z-000001', '20261129T020000Z-000002']);
  });
});

describe('parsing what hosts print', () => {
  it('reads every manifest and the disk usage; a bad manifest is reported, not trusted', () => {
    const good = serializeManifest(tx());
    const out = [
      `=== tx ${tx().id}`,
      good,
      '=== tx 20261129T000000Z-000000',
      '{"manifestVersion": 1}',
      '=== tx 20261129T000001Z-000001',
      serializeManifest(tx()),
      '=== du 96',
      '',
    ].join('\n');
    const r = parseTransactions(out);
    expect(r.manifests.map((m) => m.id)).toEqual([tx().id]);
    expect(r.diskBytes).toBe(96 * 1024);
    expect(r.unreadable.map((u) => u.id)).toEqual(['20261129T000000Z-000000', '20261129T000001Z-000001']);
    expect(r.unreadable[1]!.error).toMatch(/does not match its directory/);
  });

  it("reads dpkg's status: installed (triggers pending too) has its version; unpacked or half-done is unfinished", () => {
    const out = [
      '=== versions',
      'a:amd64\t1.0-1\tii ',
      'b:amd64\t1.0-1\tit ',
      'c:amd64\t1.0-1\tiW ',
      'd:amd64\t2.0-1\tiU ',
      'e:amd64\t2.0-1\tiF ',
      'f:amd64\t2.0-1\tiHR',
      'g:amd64\t3.0-1\trc ',
      'h:amd64\t3.0-1\tun ',
      '=== auto',
      '=== pins',
      '=== arch',
      'amd64',
      '',
    ].join('\n');
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => `${k}:amd64`);
    const { state } = parseCurrent(out, keys);
    expect([...state.versions].filter(([, v]) => v !== null).map(([k]) => k)).toEqual([
      'a:amd64',
      'b:amd64',
      'c:amd64',
    ]);
    expect([...(state.unfinished ?? [])]).toEqual([
      ['d:amd64', 'iU 2.0-1'],
      ['e:amd64', 'iF 2.0-1'],
      ['f:amd64', 'iHR 2.0-1'],
    ]);
  });

  it('reads versions (installed ones only), auto marks with or without :arch, the pin sha256 and the arch', () => {
    const out = [
      '=== versions',
      'libfleet1:amd64\t2.31-0ubuntu9.14\tii ',
      'libtilde0:amd64\t3.0~rc2-1\trc ',
      'evil:amd64\t1.0; rm\tii ',
      '=== auto',
      'libfleet1',
      'libepoch0:i386',
      '=== pins',
      SHA('f'),
      '=== arch',
      'amd64',
      '',
    ].join('\n');
    const { state, arch } = parseCurrent(out, [
      'libfleet1:amd64',
      'libtilde0:amd64',
      'libepoch0:i386',
      'evil:amd64',
    ]);
    expect(arch).toBe('amd64');
    expect([...state.versions]).toEqual([
      ['libfleet1:amd64', '2.31-0ubuntu9.14'],
      ['libtilde0:amd64', null],
      ['libepoch0:i386', null],
      ['evil:amd64', null],
    ]);
    expect([...state.auto].sort()).toEqual(['libepoch0:i386', 'libfleet1:amd64']);
    expect(state.pinSha256).toBe(SHA('f'));
    expect(
      parseCurrent('=== versions\n=== auto\n=== pins\n=== arch\namd64\n', []).state.pinSha256,
    ).toBeNull();
  });
});
