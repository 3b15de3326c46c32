/**
 * The facts parser given the lock's strings (GatherOptions.locked, as plan passes it) must read
 * exactly the facts it reads without them, and the planner must plan them exactly alike: only
 * which string objects the facts hold may differ.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseProbeOutput, type StatReading } from '../../src/facts/parse.js';
import { indexLock } from '../../src/lock/lock-index.js';
import type { FileEntry, PackageEntry } from '../../src/lock/lockfile.js';
import { renderPins } from '../../src/plan/pins.js';
import { fingerprint, planHost } from '../../src/plan/planner.js';
import { elfAnswer } from '../helpers/fake-fleet.js';
import { makeLock, REPO } from './core-fixtures.js';
import { fingerprintReference, planHostReference } from './planner-reference.js';
import { reinstallsWithoutPolicy } from '../../src/commands/host-steps.js';
import { FOCAL_PROBE_HEAD } from '../helpers/probe-output.js';

const VERSIONS = ['1.0-1', '1.0-2', '0:1.0-2', '1.0~rc1-1', '2:0.9-1'];
const IDS = ['aa'.repeat(20), 'bb'.repeat(20)];
const hx = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

const fileEntry = fc.record({
  size: fc.constantFrom(100, 200),
  mode: fc.constantFrom('0644', '0755', '4755'),
  buildId: fc.option(fc.constantFrom(...IDS), { nil: undefined }),
});

/** How the probe answers a locked path: not at all, a path record of some kind, or "unchanged". */
const fileAnswer = fc.oneof(
  fc.constant({ kind: 'absent' as const }),
  fc.constant({ kind: 'missing' as const }),
  fc.constant({ kind: 'symlink' as const }),
  fc.record({
    kind: fc.constantFrom('elf' as const, 'file' as const, 'unchanged' as const),
    size: fc.constantFrom(100, 200),
    mode: fc.constantFrom('0644', '0755', '4755'),
    buildId: fc.constantFrom<string | null>(...IDS, null),
  }),
);

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
  })
  .chain((l) => {
    const paths = [
      ...l.packages.flatMap((p, i) => p.files.map((_f, j) => `/lib/p${i}-${j}`)),
      ...l.unmanaged.map((_f, j) => `/opt/u${j}`),
    ];
    const installed = fc.option(
      fc.record({
        version: fc.constantFrom(...VERSIONS),
        want: fc.constantFrom('install', 'install', 'hold', 'deinstall'),
        status: fc.constantFrom('installed', 'installed', 'unpacked', 'half-configured', 'triggers-pending'),
        eflag: fc.constantFrom('ok', 'ok', 'reinstreq'),
      }),
      { nil: undefined },
    );
    return fc.record({
      lock: fc.constant(l),
      installed: fc.tuple(...l.packages.map(() => installed)),
      policies: fc.tuple(
        ...l.packages.map(() =>
          fc.array(
            fc.record({ version: fc.constantFrom(...VERSIONS), priority: fc.constantFrom(100, 500, 1001) }),
            {
              maxLength: 2,
            },
          ),
        ),
      ),
      files: fc.tuple(...paths.map(() => fileAnswer)),
      extras: fc.subarray(['p0:i386', 'zz:amd64', 'p1x:amd64']),
      pins: fc.boolean(),
      // dpkg-query sorts by name and the probe answers paths in the order sent; any other order
      // must read the same facts.
      order: fc.constantFrom('as-sent', 'reversed', 'rotated'),
    });
  });

function reorder<T>(items: T[], order: 'as-sent' | 'reversed' | 'rotated'): T[] {
  if (order === 'reversed') return [...items].reverse();
  if (order === 'rotated') return [...items.slice(1), ...items.slice(0, 1)];
  return items;
}

describe("parseProbeOutput with the lock's strings (plan)", () => {
  it('reads the same facts, and the planner plans them alike, as without them', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const packages: Record<string, PackageEntry> = {};
        const keys = s.lock.packages.map((p, i) => `p${i}:${p.arch}`);
        const entryOf = (f: { size: number; mode: string; buildId: string | undefined }): FileEntry =>
          f.buildId === undefined
            ? { size: f.size, mode: f.mode }
            : { size: f.size, mode: f.mode, buildId: f.buildId };
        s.lock.packages.forEach((p, i) => {
          const files: Record<string, FileEntry> = {};
          p.files.forEach((f, j) => (files[`/lib/p${i}-${j}`] = entryOf(f)));
          packages[keys[i]!] = { version: p.version, ...(p.files.length ? { files } : {}) };
        });
        const unmanaged: Record<string, FileEntry> = {};
        s.lock.unmanaged.forEach((f, j) => (unmanaged[`/opt/u${j}`] = entryOf(f)));
        const lock = makeLock({ packages, ...(s.lock.unmanaged.length ? { unmanaged } : {}) });
        const pins = renderPins(lock);
        const requested = indexLock(lock).paths;

        const dpkg: string[] = [];
        s.installed.forEach((p, i) => {
          if (!p) return;
          const [name, arch] = keys[i]!.split(':');
          dpkg.push([name, arch, p.version, p.want, p.status, p.eflag, 'same', '', 'libc6', ''].join('\t'));
        });
        for (const x of s.extras)
          dpkg.push([...x.split(':'), '1.0-1', 'install', 'installed', 'ok', 'no', '', '', ''].join('\t'));
        const policy: string[] = [];
        s.policies.forEach((rows, i) => {
          if (rows.length === 0) return;
          policy.push(
            `${keys[i]!.split(':')[0]}:`,
            '  Installed: (none)',
            `  Candidate: ${rows[0]!.version}`,
          );
          for (const r of rows)
            policy.push(`     ${r.version} ${r.priority}`, `        ${r.priority} ${REPO}`);
        });
        const known = new Map<string, StatReading>();
        const records: string[] = [];
        requested.forEach((path, i) => {
          const a = s.files[i]!;
          if (a.kind === 'absent') return;
          if (a.kind === 'missing' || a.kind === 'symlink') {
            records.push(['R', hx(path), a.kind, '', '', '', '', ''].join('\t'));
            return;
          }
          const stat = `${a.size}:${a.mode}:${10 + i}:2049:1700000000:1700000000`;
          if (a.kind === 'unchanged') {
            known.set(path, { stat, buildId: a.buildId });
            records.push(`U\t${i}\t1`);
            return;
          }
          const head = a.kind === 'elf' ? elfAnswer(a.buildId) : '';
          records.push(
            [
              'R',
              hx(path),
              a.kind,
              `${a.size}`,
              a.mode,
              `${10 + i}`,
              '2049:1700000000:1700000000',
              head,
            ].join('\t'),
          );
        });
        const out = [
          ...FOCAL_PROBE_HEAD,
          '@@arch',
          'amd64',
          '@@foreign',
          '@@dpkg',
          ...reorder(dpkg, s.order),
          '@@policy',
          ...policy,
          ...(s.pins ? ['@@pin', hx(pins)] : []),
          '@@files',
          'T\t1800000000',
          ...reorder(records, s.order),
          '@@end',
          '',
        ].join('\n');

        const plain = parseProbeOutput('n', out, known, requested);
        const shared = parseProbeOutput('n', out, known, requested, undefined, indexLock(lock));
        const { lockVerdicts: verdicts, ...sharedFacts } = shared.facts;
        expect(sharedFacts).toEqual(plain.facts);
        expect(plain.facts.lockVerdicts).toBeUndefined();
        // The parser's verdicts (LockVerdicts), judged again from the facts read without the lock.
        const idx = indexLock(lock);
        expect(verdicts?.locked).toBe(idx);
        idx.sharedPackages.forEach((lp, i) => {
          const p = plain.facts.packages.get(lp.key);
          const at =
            p?.version === lp.version && p.want === 'install' && p.status === 'installed' && p.eflag === 'ok';
          expect(verdicts!.packageAtLock[i]).toBe(at ? 1 : 0);
        });
        idx.sharedPaths.forEach((lp, i) => {
          const f = plain.facts.files.get(lp.path);
          const at =
            (f?.kind === 'file' || (f?.kind === 'elf' && f.buildId !== undefined)) &&
            f.size === lp.size &&
            f.mode === lp.mode &&
            (lp.buildId === undefined || f.buildId === lp.buildId);
          expect(verdicts!.fileAtLock[i]).toBe(at ? 1 : 0);
        });
        // The entries handed over for packages not at the lock: the Map's own, the last read per slot.
        const handed = new Map(verdicts!.offLockSlots.map((slot, k) => [slot, verdicts!.offLock[k]]));
        idx.sharedPackages.forEach((lp, i) => {
          if (verdicts!.packageAtLock[i] === 0) expect(handed.get(i)).toBe(shared.facts.packages.get(lp.key));
        });
        expect([...verdicts!.unlocked]).toEqual(
          [...plain.facts.packages.keys()].filter((k) => !idx.keys.has(k)),
        );
        expect([...shared.facts.packages.keys()]).toEqual([...plain.facts.packages.keys()]);
        expect([...shared.facts.files.keys()]).toEqual([...plain.facts.files.keys()]);
        expect(shared.stats).toEqual(plain.stats);
        const plan = planHost(lock, shared.facts, pins);
        expect(plan).toEqual(planHost(lock, plain.facts, pins));
        expect(plan).toEqual(planHostReference(lock, plain.facts, pins));
        expect(fingerprint(lock, shared.facts)).toBe(fingerprintReference(lock, plain.facts));
        // The reinstalls plan asks apt about in a second round trip: the verdicts change nothing.
        expect(reinstallsWithoutPolicy(lock, shared.facts)).toEqual(
          reinstallsWithoutPolicy(lock, plain.facts),
        );
      }),
      { numRuns: 1000 },
    );
  });
});
