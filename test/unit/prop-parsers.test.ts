/**
 * Property tests (issue 9, "Proof"): at least 10,000 runs each, fixed seed, for the parsers of
 * files criu-lock reads — Debian versions, lockfiles (fast reader against the YAML path), INI and
 * YAML inventories. Inputs are arbitrary or mutated; the only exception allowed is the project's
 * own CriuLockError.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareVersions, formatVersion, isValidVersion, parseVersion } from '../../src/debian/version.js';
import { CriuLockError } from '../../src/errors.js';
import { inventoryFromText } from '../../src/inventory/load.js';
import { readCanonicalLock } from '../../src/lock/canonical-reader.js';
import {
  finalizeLock,
  parseLock,
  parseLockDocument,
  serializeLock,
  type Lockfile,
} from '../../src/lock/lockfile.js';
import { parse as parseYaml } from 'yaml';

export const RUNS = 10_000;
/** 10,000 runs on 2 cores shared with other test runs: allow more than vitest's default per test. */
const SLOW = 240_000;
export const SEED = 20_261_129;
const settings = { numRuns: RUNS, seed: SEED };

/** The outcome of f: its value, or the CriuLockError it threw; any other exception fails the test. */
function outcome<T>(f: () => T): { ok: true; value: T } | { ok: false; error: CriuLockError } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof CriuLockError) return { ok: false, error: e };
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Debian versions
// ---------------------------------------------------------------------------------------------

const versionChars = fc.constantFrom(...'0123456789abcAZ.+-~:_ '.split(''));
const versionish = fc.oneof(
  fc.string({ unit: versionChars, maxLength: 14 }),
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc
    .tuple(
      fc.nat(30),
      fc.string({ unit: versionChars, maxLength: 8 }),
      fc.string({ unit: versionChars, maxLength: 5 }),
    )
    .map(([e, u, r]) => `${e}:${e % 3}${u}-${r}`),
);

describe('Debian version parser', () => {
  it(
    'any string: a parse, or a CriuLockError; isValidVersion agrees; formatting round-trips',
    () => {
      fc.assert(
        fc.property(versionish, (s) => {
          const r = outcome(() => parseVersion(s));
          expect(isValidVersion(s)).toBe(r.ok);
          if (r.ok) {
            expect(compareVersions(formatVersion(r.value), s)).toBe(0);
            expect(compareVersions(s, s)).toBe(0);
          }
        }),
        settings,
      );
    },
    SLOW,
  );

  it(
    'comparison is antisymmetric and transitive on valid versions',
    () => {
      const valid = versionish.filter(isValidVersion);
      fc.assert(
        fc.property(valid, valid, valid, (a, b, c) => {
          expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
          if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0)
            expect(compareVersions(a, c)).toBeLessThanOrEqual(0);
        }),
        settings,
      );
    },
    SLOW,
  );
});

// ---------------------------------------------------------------------------------------------
// Lockfiles: the canonical fast reader must accept and reject exactly what the YAML path does
// ---------------------------------------------------------------------------------------------

const pathArb = fc.oneof(
  fc.constantFrom(
    '/usr/lib/x86_64-linux-gnu/libc.so.6',
    '/usr/bin/ls',
    '/tmp/a b',
    '/tmp/t\tn\nx',
    '/usr/lib/locale/locale-archive',
    '/opt/"q"',
    '/x:y',
    '/#c',
  ),
  fc.string({ maxLength: 6 }).map((s) => `/opt/${s.replace(/\//g, '_') || 'f'}`),
);
/**
 * Mostly valid, sometimes a value at or just past a schema rule's edge, with a digest that matches:
 * parseLock checks the entries of a canonical file without zod, so only an intact digest shows
 * whether those checks refuse what zod refuses.
 */
const rarely = <T>(usual: fc.Arbitrary<T>, ...edges: T[]): fc.Arbitrary<T> =>
  fc.oneof({ arbitrary: usual, weight: 30 }, { arbitrary: fc.constantFrom(...edges), weight: 1 });
const fileArb = fc
  .record({
    size: rarely(fc.nat(10_000_000), 2 ** 53 - 1, 2 ** 53),
    mode: fc.constantFrom('0644', '0755', '4755'),
    buildId: fc.option(
      rarely(
        fc.constantFrom('ab'.repeat(20), '1234', '1e5', 'deadbeef'),
        'a',
        'ab'.repeat(64),
        `${'ab'.repeat(64)}a`,
      ),
      { nil: undefined },
    ),
  })
  .map((f) => (f.buildId === undefined ? { size: f.size, mode: f.mode } : f));
const lockArb: fc.Arbitrary<Lockfile> = fc
  .record({
    packages: fc.dictionary(
      fc.constantFrom(
        'libc6:amd64',
        'libc-bin:amd64',
        'bash:amd64',
        'tzdata:all',
        'libfoo1:i386',
        'a+b.c:arm64',
      ),
      fc.record(
        {
          version: rarely(
            fc.constantFrom('2.31-0ubuntu9.14', '1:1.0-1', '3.0~rc1-1', '1.0', '10', '1e5'),
            '1.0 beta',
            '1:',
            '1.0-',
          ),
          sha256: rarely(fc.constant('ab'.repeat(32)), 'ab'.repeat(31), `${'ab'.repeat(32)}a`),
          files: fc.dictionary(pathArb, fileArb, { minKeys: 1, maxKeys: 2 }),
        },
        { requiredKeys: ['version'] },
      ),
      { maxKeys: 3 },
    ),
    unmanaged: fc.option(fc.dictionary(pathArb, fileArb, { maxKeys: 2 }), { nil: undefined }),
    scope: fc.constantFrom<Lockfile['scope']>(
      { kind: 'all' },
      { kind: 'processes', pids: [7, 42] },
      { kind: 'packages', packages: ['libc6'], withDeps: true },
    ),
  })
  .map(({ packages, unmanaged, scope }) =>
    finalizeLock({
      lockfileVersion: 1,
      source: { host: 'golden', generatedAt: '2026-11-29T00:00:00Z' },
      platform: { id: 'ubuntu', versionId: '20.04', codename: 'focal', architecture: 'amd64' },
      scope,
      packages,
      ...(unmanaged !== undefined ? { unmanaged } : {}),
    }),
  );

/** Edits a reviewer, a merge or an attacker could make to a lockfile's text. */
const editArb = fc.oneof(
  fc.constant((t: string) => t),
  fc.nat().map((i) => (t: string) => {
    const lines = t.split('\n');
    lines.splice(i % lines.length, 1);
    return lines.join('\n');
  }),
  fc.nat().map((i) => (t: string) => {
    const lines = t.split('\n');
    const at = i % lines.length;
    lines.splice(at, 0, lines[at]!);
    return lines.join('\n');
  }),
  fc.tuple(fc.nat(), fc.constantFrom('  ', ' ', '', '      ', '\t')).map(([i, indent]) => (t: string) => {
    const lines = t.split('\n');
    const at = i % lines.length;
    lines[at] = indent + lines[at]!.trimStart();
    return lines.join('\n');
  }),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom(
        'packages: {}',
        'unmanaged: {}',
        'unmanaged:',
        'packages:',
        '# c',
        '  x: &a {size: 1, mode: "0644"}',
        '  y: *a',
        '<<: *a',
        '---',
        '...',
        'digest: x',
        '  "libc6:amd64": {}',
      ),
    )
    .map(([i, line]) => (t: string) => {
      const lines = t.split('\n');
      lines.splice(i % lines.length, 0, line);
      return lines.join('\n');
    }),
  fc
    .tuple(
      fc.constantFrom('version: ', 'size: ', 'mode: ', 'buildId: ', 'kind: ', ': {', '"'),
      fc.constantFrom('&a ', '*a', '!!str ', '"', "'", '~', '', '0x1'),
    )
    .map(
      ([at, ins]) =>
        (t: string) =>
          t.replace(at, at + ins),
    ),
  fc.constant((t: string) => t.replace(/\n/g, '\r\n')),
  fc.constant((t: string) => t.replace(/^packages:.*$/m, 'packages: {}').replace(/^ {2}\S.*$/gm, '')),
);

describe('lockfile: fast reader against the YAML path', () => {
  it(
    'accept and reject the same (edited) documents, with equal results',
    () => {
      let fastUsed = 0;
      let rejected = 0;
      fc.assert(
        fc.property(lockArb, fc.array(editArb, { maxLength: 2 }), (lock, edits) => {
          const text = edits.reduce((t, e) => e(t), serializeLock(lock));
          const viaYaml = outcome(() => parseLockDocument(text, 'l.yaml'));
          const viaParse = outcome(() => parseLock(text, 'l.yaml'));
          if (viaParse.ok !== viaYaml.ok && process.env.PROP_DEBUG)
            console.log(JSON.stringify(text), viaParse, viaYaml);
          expect(viaParse.ok).toBe(viaYaml.ok);
          if (viaParse.ok && viaYaml.ok) expect(viaParse.value).toEqual(viaYaml.value);
          if (!viaParse.ok && !viaYaml.ok) expect(viaParse.error.message).toBe(viaYaml.error.message);
          if (!viaYaml.ok) rejected++;
          const fast = readCanonicalLock(text);
          if (fast !== undefined) {
            fastUsed++;
            // What the fast reader reads is what YAML reads (and YAML reads it at all).
            let yaml: unknown;
            try {
              yaml = parseYaml(text, { uniqueKeys: true });
            } catch (e) {
              yaml = `YAML refuses it: ${(e as Error).message}`;
            }
            if (process.env.PROP_DEBUG && !isDeepStrictEqual(fast, yaml))
              console.log(JSON.stringify(text), JSON.stringify(fast), yaml);
            expect(fast).toEqual(yaml);
          }
        }),
        settings,
      );
      // Both branches must be exercised, or the property proves little.
      expect(fastUsed).toBeGreaterThan(RUNS / 10);
      expect(rejected).toBeGreaterThan(RUNS / 10);
    },
    SLOW,
  );
});

// ---------------------------------------------------------------------------------------------
// Inventories
// ---------------------------------------------------------------------------------------------

interface Model {
  groups: Array<{
    name: string;
    hosts: Array<{ name: string; port?: number | undefined; user?: string | undefined }>;
    port?: number | undefined;
  }>;
}
const nameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/).filter((n) => n !== 'all' && n !== 'ungrouped');
// Found by this test: the yaml library reads a plain `e0` (or `1e5`) as a float even in YAML 1.1
// mode, where PyYAML (Ansible) reads a string, so such a user name is refused in YAML inventories
// only. Kept out of the generator; see the fixed test below.
// (Prefixed with u: YAML 1.1 reads on/off/yes/no/y/n as booleans, as PyYAML and Ansible do.)
const userArb = fc.stringMatching(/^[a-z_-]{0,6}$/).map((n) => `u${n}`);
const modelArb: fc.Arbitrary<Model> = fc.record({
  groups: fc.uniqueArray(
    fc.record({
      name: nameArb.map((n) => `g-${n}`),
      hosts: fc.uniqueArray(
        fc.record({
          name: nameArb.map((n) => `h-${n}`),
          port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
          user: fc.option(userArb, { nil: undefined }),
        }),
        {
          maxLength: 4,
          selector: (h) => h.name,
        },
      ),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 4, selector: (g) => g.name },
  ),
});

function toYaml(m: Model): string {
  const out = ['all:', '  children:'];
  for (const g of m.groups) {
    out.push(`    ${g.name}:`);
    if (g.port !== undefined) out.push('      vars:', `        ansible_port: ${g.port}`);
    if (g.hosts.length > 0) out.push('      hosts:');
    for (const h of g.hosts) {
      const vars = [
        h.port !== undefined ? `ansible_port: ${h.port}` : '',
        h.user !== undefined ? `ansible_user: ${h.user}` : '',
      ].filter(Boolean);
      out.push(`        ${h.name}:${vars.length ? ` {${vars.join(', ')}}` : ''}`);
    }
  }
  return out.join('\n') + '\n';
}

function toIni(m: Model): string {
  const out: string[] = [];
  for (const g of m.groups) {
    out.push(`[${g.name}]`);
    for (const h of g.hosts)
      out.push(
        [
          h.name,
          h.port !== undefined ? `ansible_port=${h.port}` : '',
          h.user !== undefined ? `ansible_user=${h.user}` : '',
        ]
          .filter(Boolean)
          .join(' '),
      );
    if (g.port !== undefined) out.push(`[${g.name}:vars]`, `ansible_port=${g.port}`);
  }
  return out.join('\n') + '\n';
}

const shape = (text: string, file: string): unknown => {
  const inv = inventoryFromText(text, file, { defaultUser: 'root', homeDir: '/root', cwd: '/' });
  return inv.hosts.map((h) => ({ name: h.name, groups: [...h.groups].sort(), connection: h.connection }));
};

describe('inventory parsers', () => {
  it(
    'YAML and INI renderings of one inventory give the same hosts, groups and connections',
    () => {
      fc.assert(
        fc.property(modelArb, (m) => {
          const y = outcome(() => shape(toYaml(m), 'inv.yaml'));
          const i = outcome(() => shape(toIni(m), 'hosts.ini'));
          expect(y.ok).toBe(i.ok);
          if (y.ok && i.ok) expect(y.value).toEqual(i.value);
        }),
        settings,
      );
    },
    SLOW,
  );

  const mutated = (render: (m: Model) => string): fc.Arbitrary<string> =>
    fc
      .tuple(modelArb, fc.nat(), fc.string({ unit: 'binary', maxLength: 6 }), fc.nat(3))
      .map(([m, at, junk, how]) => {
        const text = render(m);
        const i = at % (text.length + 1);
        return how === 0
          ? text.slice(0, i) + junk + text.slice(i)
          : how === 1
            ? text.slice(0, i) + text.slice(i + 1 + (at % 7))
            : how === 2
              ? junk
              : text.replace(/:/g, junk);
      });

  it.each([
    ['YAML', toYaml, 'inv.yaml'],
    ['INI', toIni, 'hosts.ini'],
  ] as const)(
    '%s: mutated text is parsed or refused with a CriuLockError, never a crash',
    (_what, render, file) => {
      fc.assert(
        fc.property(mutated(render), (text) => {
          outcome(() => inventoryFromText(text, file));
        }),
        settings,
      );
    },
    SLOW,
  );
});

describe('crashes and divergences the properties found, kept as fixed tests', () => {
  it('an alias before its anchor in a lockfile is a located lockfile error, not an internal error', () => {
    const text = serializeLock(
      finalizeLock({
        lockfileVersion: 1,
        source: { host: 'g', generatedAt: 't' },
        platform: { id: 'ubuntu', versionId: '20.04', codename: 'focal', architecture: 'amd64' },
        scope: { kind: 'all' },
        packages: { 'libc6:amd64': { version: '2.31-0ubuntu9.14' } },
      }),
    ).replace('version: ', 'version: *a');
    const r = outcome(() => parseLock(text, 'l.yaml'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('lockfile');
      expect(r.error.message).toMatch(/^invalid YAML: /);
      expect(r.error.location?.file).toBe('l.yaml');
    }
  });

  it.each([
    ['an empty block section (YAML: null)', (t: string) => t.replace(/^unmanaged: \{\}$/m, 'unmanaged:')],
    ['a package key with nothing under it', (t: string) => t.replace('    version: 5.0-1\n', '')],
    ['a files: header with no files', (t: string) => t.replace(/^ {6}\/.*\n/m, '')],
    [
      'an indented line after packages: {}',
      (t: string) => t.replace(/^packages:\n[\s\S]*?(?=^unmanaged)/m, 'packages: {}\n  unmanaged:\n'),
    ],
  ])('the fast reader declines %s, which YAML reads differently', (_what, edit) => {
    const lock = finalizeLock({
      lockfileVersion: 1,
      source: { host: 'g', generatedAt: 't' },
      platform: { id: 'ubuntu', versionId: '20.04', codename: 'focal', architecture: 'amd64' },
      scope: { kind: 'all' },
      packages: {
        'bash:amd64': { version: '5.0-1' },
        'libc6:amd64': { version: '2.31-0ubuntu9.14', files: { '/usr/lib/x.so': { size: 1, mode: '0644' } } },
      },
      unmanaged: {},
    });
    const text = edit(serializeLock(lock));
    expect(text).not.toBe(serializeLock(lock));
    expect(readCanonicalLock(text)).toBeUndefined();
    const a = outcome(() => parseLock(text, 'l.yaml'));
    const b = outcome(() => parseLockDocument(text, 'l.yaml'));
    expect(a.ok).toBe(b.ok);
  });

  it('a user name like e0 is a string in INI and, as PyYAML reads it, in YAML (the yaml library made it NaN)', () => {
    expect(inventoryFromText('[g]\nh ansible_user=e0\n', 'hosts.ini').hosts[0]?.connection).toMatchObject({
      user: 'e0',
    });
    expect(
      inventoryFromText('all:\n  hosts:\n    h: {ansible_user: e0}\n', 'inv.yaml').hosts[0]?.connection,
    ).toMatchObject({ user: 'e0' });
    expect(
      inventoryFromText('all:\n  hosts:\n    h: {ansible_user: "e0"}\n', 'inv.yaml').hosts[0]?.connection,
    ).toMatchObject({ user: 'e0' });
  });
});
