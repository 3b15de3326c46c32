import { createHash } from 'node:crypto';
import { lockedPathProblem } from '../../src/lock/locked-path.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidVersion } from '../../src/debian/version.js';
import { CriuLockError } from '../../src/errors.js';
import {
  canonicalChunks,
  canonicalContent,
  computeDigest,
  finalizeLock,
  parseLock,
  serializeLock,
  type FileEntry,
  type LockContent,
  type Lockfile,
  type PackageEntry,
} from '../../src/lock/lockfile.js';
import { yamlScalar, yamlString } from '../../src/lock/yaml-scalar.js';
import { readCanonicalLock, scanCanonicalLock } from '../../src/lock/canonical-reader.js';
import { parse as parseYaml } from 'yaml';
import { makeLock } from './core-fixtures.js';

const FILE = 'criu-lock.yaml';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc-2.31.so';
const LIBC_ID = 'eebe5d5f4b608b8a53ec446b63981bba373ca0ca';

function small(): Lockfile {
  return makeLock({
    host: 'node-a',
    packages: {
      'libc6:amd64': {
        version: '2.31-0ubuntu9.14',
        files: { [LIBC]: { size: 2029592, mode: '0755', buildId: LIBC_ID } },
      },
    },
  });
}

/** Runs `f` and returns the CriuLockError it throws (fails the test otherwise). */
function lockErrorOf(f: () => unknown): CriuLockError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(CriuLockError);
    const e = err as CriuLockError;
    expect(e.code).toBe('lockfile');
    expect(e.hint).toMatch(/\S/);
    return e;
  }
  throw new Error('expected parseLock to throw');
}

describe('yamlString', () => {
  it.each([
    ['1.0', '"1.0"'],
    ['12', '"12"'],
    ['1e5', '"1e5"'],
    ['0x1F', '"0x1F"'],
    ['0o17', '"0o17"'],
    ['true', '"true"'],
    ['null', '"null"'],
    ['~', '"~"'],
    ['', '""'],
    ['a:', '"a:"'],
    ['/a b', '"/a b"'],
    ['1:1.0-1', '1:1.0-1'],
    ['3.0~rc1-1', '3.0~rc1-1'],
    ['libc6:amd64', 'libc6:amd64'],
    ['/usr/lib/x', '/usr/lib/x'],
  ])('%j is written as %s', (input, expected) => {
    expect(yamlString(input)).toBe(expected);
  });

  it('writes non-strings as YAML literals', () => {
    expect([yamlScalar(null), yamlScalar(3), yamlScalar(false), yamlScalar('3')]).toEqual([
      'null',
      '3',
      'false',
      '"3"',
    ]);
  });
});

describe('serializeLock / parseLock round trip', () => {
  it('writes a small lock in the documented layout', () => {
    expect(serializeLock(small())).toMatchInlineSnapshot(`
      "# criu-lock lockfile. Generated from golden node "node-a"; regenerate, don't edit.
      lockfileVersion: 1
      source: {host: node-a, generatedAt: "2026-11-25T17:00:00Z"}
      platform: {id: ubuntu, versionId: "20.04", codename: focal, architecture: amd64}
      scope: {kind: all}
      packages:
        libc6:amd64:
          version: 2.31-0ubuntu9.14
          files:
            /usr/lib/x86_64-linux-gnu/libc-2.31.so: {size: 2029592, mode: "0755", buildId: eebe5d5f4b608b8a53ec446b63981bba373ca0ca}
      digest: sha256:92d4cc6cfdcfd2e9b630507337990fc7abe5be5436199b29a9114ea398ebe584
      "
    `);
  });

  it.each([
    ['1.0'],
    ['1:1.0-1'],
    ['3.0~rc1-1'],
    ['2.31-0ubuntu9.14'],
    ['1e5'],
    ['0x1F'],
    ['10'],
    ['1.0+dfsg-1~bpo11+1'],
    ['2:1.2:3-4'],
  ])('keeps version %s a string', (version) => {
    const lock = makeLock({ packages: { 'foo:amd64': { version } } });
    const back = parseLock(serializeLock(lock), FILE);
    expect(back.packages['foo:amd64']?.version).toBe(version);
    expect(back).toEqual(lock);
  });

  it.each([
    ['all digits', '1234567890123456789012345678901234567890'],
    ['exponent-like', '1e5'],
    ['exponent-like, longer', '12e345'],
    ['leading zero digits', '0123'],
    ['hex', 'deadbeef'],
  ])('keeps a build-ID that looks numeric (%s) a string', (_what, buildId) => {
    const lock = makeLock({
      packages: {
        'foo:amd64': { version: '1', files: { '/usr/lib/foo.so': { size: 1, mode: '0644', buildId } } },
      },
    });
    const back = parseLock(serializeLock(lock), FILE);
    expect(back.packages['foo:amd64']?.files?.['/usr/lib/foo.so']?.buildId).toBe(buildId);
  });

  it('keeps paths with spaces, colons, quotes and unicode, modes, sha256 and unmanaged files', () => {
    const files: Record<string, FileEntry> = {
      '/opt/My App/lib x.so': { size: 0, mode: '0644' },
      '/opt/a: b/c': { size: 7, mode: '4755', buildId: '00' },
      '/opt/"quoted" \'single\'/#hash': { size: 8, mode: '0000' },
      '/opt/ünïcødé/库.so': { size: 9, mode: '0755', buildId: '1e5' },
      '/opt/trailing:': { size: 10, mode: '0600' },
    };
    const lock = makeLock({
      packages: {
        'foo:amd64': { version: '1:1.0-1', sha256: 'a'.repeat(64), files },
        'bar:all': { version: '2.31-0ubuntu9.14', sha256: '1'.repeat(64) },
      },
      unmanaged: {
        '/usr/lib/locale/locale-archive': { size: 3035952, mode: '0644' },
        '/tmp/with space': { size: 1, mode: '0640' },
      },
      scope: { kind: 'processes', pids: [1, 42] },
      platform: { versionId: '12', codename: 'bookworm', id: 'debian' },
    });
    const text = serializeLock(lock);
    expect(parseLock(text, FILE)).toEqual(lock);
    // All-digit sha256 must not come back as a number either.
    expect(parseLock(text, FILE).packages['bar:all']?.sha256).toBe('1'.repeat(64));
  });

  it('reads records that are ordinary objects, with the entries in the order of the text', () => {
    const lock = makeLock({
      packages: {
        'foo:amd64': {
          version: '1.0-1',
          files: { '/b.so': { size: 1, mode: '0644' }, '/a.so': { size: 2, mode: '0755' } },
        },
        'bar:amd64': { version: '2.0-1' },
      },
      unmanaged: { '/u': { size: 3, mode: '0644' } },
    });
    const text = serializeLock(lock);
    expect(scanCanonicalLock(text)).toBeDefined();
    const back = parseLock(text, FILE);
    const foo = back.packages['foo:amd64']!;
    for (const rec of [back.packages, foo.files!, back.unmanaged!])
      expect(Object.getPrototypeOf(rec)).toBe(Object.prototype);
    expect(Object.prototype.hasOwnProperty.call(back.packages, 'foo:amd64')).toBe(true);
    expect(Object.prototype.toString.call(back.packages)).toBe('[object Object]');
    expect(Object.keys(back.packages)).toEqual(['bar:amd64', 'foo:amd64']);
    expect(Object.keys(foo.files!)).toEqual(['/a.so', '/b.so']);
    expect(back).toStrictEqual(lock);
  });

  it('keeps scopes of every kind', () => {
    for (const scope of [
      { kind: 'all' as const },
      { kind: 'packages' as const, packages: ['bash', 'libc6:amd64'], withDeps: true },
      { kind: 'processes' as const, pids: [7, 1234] },
    ]) {
      const lock = makeLock({ scope, packages: { 'bash:amd64': { version: '5.0-6ubuntu1.2' } } });
      expect(parseLock(serializeLock(lock), FILE)).toEqual(lock);
    }
  });

  it('writes an empty lock that reads back', () => {
    const lock = makeLock({ unmanaged: {} });
    const text = serializeLock(lock);
    expect(text).toContain('packages: {}\n');
    expect(text).toContain('unmanaged: {}\n');
    expect(parseLock(text, FILE)).toEqual(lock);
  });
});

describe('determinism', () => {
  const entries: Array<[string, PackageEntry]> = [
    [
      'zlib1g:amd64',
      {
        version: '1:1.2.11.dfsg-2ubuntu1.5',
        files: { '/usr/lib/x86_64-linux-gnu/libz.so.1.2.11': { size: 108936, mode: '0644', buildId: 'ab' } },
      },
    ],
    [
      'libc6:amd64',
      {
        version: '2.31-0ubuntu9.14',
        files: {
          [LIBC]: { size: 2029592, mode: '0755', buildId: LIBC_ID },
          '/usr/lib/x86_64-linux-gnu/ld-2.31.so': { size: 191504, mode: '0755', buildId: 'cd' },
        },
      },
    ],
    ['bash:amd64', { version: '5.0-6ubuntu1.2' }],
  ];

  function content(order: readonly number[], fileOrderReversed: boolean): LockContent {
    const packages: Record<string, PackageEntry> = {};
    for (const i of order) {
      const [key, entry] = entries[i]!;
      const files = entry.files
        ? Object.fromEntries(
            fileOrderReversed ? Object.entries(entry.files).reverse() : Object.entries(entry.files),
          )
        : undefined;
      packages[key] = files ? { files, version: entry.version } : { version: entry.version };
    }
    return {
      lockfileVersion: 1,
      source: { host: 'node-a', generatedAt: '2026-11-25T17:00:00Z' },
      platform: { id: 'ubuntu', versionId: '20.04', codename: 'focal', architecture: 'amd64' },
      scope: {
        kind: 'packages',
        packages: fileOrderReversed ? ['zlib1g', 'bash', 'libc6'] : ['bash', 'libc6', 'zlib1g'],
        withDeps: false,
      },
      packages,
      unmanaged: fileOrderReversed
        ? { '/b': { size: 1, mode: '0644' }, '/a': { size: 2, mode: '0644' } }
        : { '/a': { size: 2, mode: '0644' }, '/b': { size: 1, mode: '0644' } },
    };
  }

  it('gives byte-identical text for the same content inserted in a different order', () => {
    const a = serializeLock(finalizeLock(content([0, 1, 2], false)));
    const b = serializeLock(finalizeLock(content([2, 0, 1], true)));
    expect(b).toBe(a);
    // Sorted: bash before libc6 before zlib1g, ld before libc.
    expect(a.indexOf('bash:amd64')).toBeLessThan(a.indexOf('libc6:amd64'));
    expect(a.indexOf('libc6:amd64')).toBeLessThan(a.indexOf('zlib1g:amd64'));
    expect(a.indexOf('ld-2.31.so')).toBeLessThan(a.indexOf('libc-2.31.so'));
  });

  it('digests content only: source host and generatedAt do not change it', () => {
    const base = content([0, 1, 2], false);
    const other = { ...base, source: { host: 'node-z', generatedAt: '1999-01-01T00:00:00Z' } };
    expect(computeDigest(other)).toBe(computeDigest(base));
    expect(finalizeLock(other).digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('digest changes with a version, a build-ID, the platform or the scope', () => {
    const base = content([0, 1, 2], false);
    const d = computeDigest(base);
    const bumped = structuredClone(base);
    bumped.packages['bash:amd64']!.version = '5.0-6ubuntu1.3';
    const rebuilt = structuredClone(base);
    rebuilt.packages['libc6:amd64']!.files![LIBC]!.buildId = 'ff';
    const jammy = { ...base, platform: { ...base.platform, versionId: '22.04' } };
    const deps = {
      ...base,
      scope: { kind: 'packages' as const, packages: ['bash', 'libc6', 'zlib1g'], withDeps: true },
    };
    const digests = [bumped, rebuilt, jammy, deps].map(computeDigest);
    expect(new Set([d, ...digests]).size).toBe(5);
  });
});

describe('parseLock validation', () => {
  const text = serializeLock(small());
  // Line numbers of the small lock (see the inline snapshot above).
  const edit = (from: string, to: string): string => {
    expect(text).toContain(from);
    return text.replace(from, to);
  };

  it('accepts the lock it wrote', () => {
    expect(parseLock(text, FILE)).toEqual(small());
  });

  it('rejects an unknown top-level key at its line', () => {
    const e = lockErrorOf(() => parseLock(edit('digest:', 'colour: blue\ndigest:'), FILE));
    expect(e.message).toBe('unknown key "colour"');
    expect(e.location).toEqual({ file: FILE, line: 11, col: 1 });
  });

  it('rejects an unknown key inside a package entry at its line', () => {
    const e = lockErrorOf(() => parseLock(edit('    version:', '    color: red\n    version:'), FILE));
    expect(e.message).toBe('unknown key "color" in packages.libc6:amd64');
    expect(e.location).toEqual({ file: FILE, line: 8, col: 5 });
  });

  it('rejects an unknown key inside a file entry', () => {
    const e = lockErrorOf(() => parseLock(edit('mode: "0755",', 'mode: "0755", owner: root,'), FILE));
    expect(e.message).toMatch(/^unknown key "owner" in packages\.libc6:amd64\.files\./);
    expect(e.location?.line).toBe(10);
  });

  it('rejects lockfileVersion 2 with an upgrade hint', () => {
    const e = lockErrorOf(() => parseLock(edit('lockfileVersion: 1', 'lockfileVersion: 2'), FILE));
    expect(e.message).toBe('unsupported lockfileVersion 2 (this criu-lock reads version 1)');
    expect(e.location).toEqual({ file: FILE, line: 2, col: 18 });
    expect(e.hint).toMatch(/upgrade criu-lock/);
  });

  it('rejects a missing lockfileVersion', () => {
    const e = lockErrorOf(() => parseLock(edit('lockfileVersion: 1\n', ''), FILE));
    expect(e.message).toBe('missing lockfileVersion');
    expect(e.location?.file).toBe(FILE);
  });

  it('rejects a version that is not Debian syntax (shell injection attempt)', () => {
    const e = lockErrorOf(() =>
      parseLock(edit('version: 2.31-0ubuntu9.14', 'version: "1.0; touch /tmp/pwned"'), FILE),
    );
    expect(e.message).toBe('packages.libc6:amd64.version: is not a valid Debian version');
    expect(e.location).toEqual({ file: FILE, line: 8, col: 14 });
  });

  it.each([
    ['foo$(id):amd64', /character "\$" not allowed/],
    ['Foo:amd64', /must start with a lower-case letter or digit/],
    ['foo:AMD64', /architecture must start with a lower-case letter/],
    ['-foo:amd64', /must start with a lower-case letter or digit/],
  ])('rejects package key %j at its line', (key, why) => {
    const e = lockErrorOf(() => parseLock(edit('  libc6:amd64:', `  ${JSON.stringify(key)}:`), FILE));
    expect(e.message).toMatch(why);
    expect(e.message).toContain(`invalid package key ${JSON.stringify(key)}`);
    expect(e.location).toEqual({ file: FILE, line: 7, col: 3 });
  });

  it('says "invalid package key" once', () => {
    const e = lockErrorOf(() => parseLock(edit('  libc6:amd64:', '  Foo:amd64:'), FILE));
    expect(e.message).toBe(
      'invalid package key "Foo:amd64": package name must start with a lower-case letter or digit',
    );
  });

  it('rejects a package key without an architecture at its line', () => {
    const e = lockErrorOf(() =>
      parseLock(serializeLock(makeLock({ packages: { bash: { version: '5.0-6ubuntu1.2' } } })), FILE),
    );
    expect(e.message).toMatch(/invalid package key "bash"/);
    expect(e.location).toEqual({ file: FILE, line: 7, col: 3 });
  });

  it('rejects a relative file path on its line', () => {
    const e = lockErrorOf(() => parseLock(edit(`      ${LIBC}:`, `      ${LIBC.slice(1)}:`), FILE));
    expect(e.message).toContain(`invalid file path ${JSON.stringify(LIBC.slice(1))} in libc6:amd64`);
    expect(e.location?.line).toBe(10);
  });

  it('says why a relative path is rejected and points at the path', () => {
    const e = lockErrorOf(() => parseLock(edit(`      ${LIBC}:`, `      ${LIBC.slice(1)}:`), FILE));
    expect(e.message).toMatch(/absolute path/);
    expect(e.location).toEqual({ file: FILE, line: 10, col: 7 });
  });

  it.each([
    ['mode: "0755"', 'mode: 755', /mode: Invalid input: expected string, received number/],
    ['mode: "0755"', 'mode: "0999"', /four octal digits/],
    [`buildId: ${LIBC_ID}`, `buildId: ${LIBC_ID.toUpperCase()}`, /lowercase hex/],
    ['size: 2029592', 'size: -1', /size/],
  ])('rejects file entry %s → %s', (from, to, why) => {
    const e = lockErrorOf(() => parseLock(edit(from, to), FILE));
    expect(e.message).toMatch(why);
    expect(e.location?.line).toBe(10);
  });

  it('rejects an edited version through the digest, pointing at the digest', () => {
    const e = lockErrorOf(() =>
      parseLock(edit('version: 2.31-0ubuntu9.14', 'version: 2.31-0ubuntu9.9'), FILE),
    );
    expect(e.message).toMatch(/^digest mismatch: the content hashes to sha256:[0-9a-f]{64}$/);
    expect(e.location).toEqual({ file: FILE, line: 11, col: 9 });
    expect(e.hint).toMatch(/edited or corrupted/);
  });

  it('accepts a changed source host (not covered by the digest)', () => {
    expect(parseLock(edit('{host: node-a,', '{host: node-z,'), FILE).source.host).toBe('node-z');
  });

  it('rejects invalid YAML and duplicate keys with a position', () => {
    const dup = lockErrorOf(() =>
      parseLock(edit('scope: {kind: all}', 'scope: {kind: all}\nscope: {kind: all}'), FILE),
    );
    expect(dup.message).toMatch(/^invalid YAML: /);
    expect(dup.location).toMatchObject({ file: FILE, line: 6 });
    const broken = lockErrorOf(() => parseLock('lockfileVersion: [1\n', FILE));
    expect(broken.location?.line).toBeGreaterThanOrEqual(1);
  });

  it('rejects a document that is not a mapping', () => {
    const e = lockErrorOf(() => parseLock('- 1\n', FILE));
    expect(e.location).toEqual({ file: FILE, line: 1, col: 1 });
  });

  it('rejects an invalid package name in a packages scope', () => {
    const lock = makeLock({ scope: { kind: 'packages', packages: ['Bad$name'], withDeps: false } });
    const e = lockErrorOf(() => parseLock(serializeLock(lock), FILE));
    expect(e.message).toBe('invalid package name "Bad$name" in scope');
    expect(e.location).toEqual({ file: FILE, line: 5, col: 36 });
  });
});

// ---------------------------------------------------------------------------------------------
// Property: whatever valid content we write, we read back unchanged.
// ---------------------------------------------------------------------------------------------

const TRICKY_VERSIONS = [
  '1.0',
  '1:1.0-1',
  '3.0~rc1-1',
  '2.31-0ubuntu9.14',
  '1e5',
  '0x10',
  '10',
  '1.0-0',
  '2:1.2:3-4',
];
const arbVersion = fc.oneof(
  fc.constantFrom(...TRICKY_VERSIONS),
  fc.stringMatching(/^(?:[1-9]:)?[0-9][0-9A-Za-z.+~]{0,8}(?:-[0-9A-Za-z.+~]{1,6})?$/).filter(isValidVersion),
);
const arbKey = fc.stringMatching(/^[a-z0-9][a-z0-9+.-]{1,12}:(?:amd64|i386|arm64|all)$/);
const arbBuildId = fc.oneof(
  fc.stringMatching(/^[0-9a-f]{2,40}$/),
  fc.stringMatching(/^[0-9]{2,40}$/),
  fc.stringMatching(/^[1-9]e[0-9]{1,3}$/),
);
// Any code points (controls, NEL, U+2028, BOM included); paths drop what locked-path.ts forbids.
const arbText = fc.string({ unit: 'binary', maxLength: 12 });
const arbPath = arbText.map((s) => `/${s}`).filter((p) => lockedPathProblem(p) === undefined);
const arbFile: fc.Arbitrary<FileEntry> = fc.record(
  {
    size: fc.nat(),
    mode: fc.stringMatching(/^[0-7]{4}$/),
    buildId: arbBuildId,
  },
  { requiredKeys: ['size', 'mode'] },
);
const arbPackage: fc.Arbitrary<PackageEntry> = fc.record(
  {
    version: arbVersion,
    sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
    // An empty `files` is written as no `files` (same digest), so generate it absent instead.
    files: fc.dictionary(arbPath, arbFile, { minKeys: 1, maxKeys: 3 }),
  },
  { requiredKeys: ['version'] },
);
const arbName = fc.stringMatching(/^[a-z0-9][a-z0-9+.-]{1,10}(?::amd64)?$/);
const arbScope = fc.oneof(
  fc.constant({ kind: 'all' as const }),
  fc
    .record({ packages: fc.uniqueArray(arbName, { minLength: 1, maxLength: 4 }), withDeps: fc.boolean() })
    .map(({ packages, withDeps }) => ({
      kind: 'packages' as const,
      packages: [...packages].sort(),
      withDeps,
    })),
  fc
    .uniqueArray(fc.integer({ min: 1, max: 4_194_304 }), { minLength: 1, maxLength: 4 })
    .map((pids) => ({ kind: 'processes' as const, pids: [...pids].sort((a, b) => a - b) })),
);
const arbContent: fc.Arbitrary<LockContent> = fc.record(
  {
    lockfileVersion: fc.constant(1 as const),
    source: fc.record({ host: arbText, generatedAt: arbText }),
    platform: fc.record({
      id: fc.stringMatching(/^[a-z0-9._-]{1,10}$/),
      // os-release values: no spaces or control characters (LockPlatform).
      versionId: fc.stringMatching(/^[A-Za-z0-9._~+-]{0,10}$/),
      codename: fc.stringMatching(/^[A-Za-z0-9._~+-]{0,10}$/),
      architecture: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,8}$/),
    }),
    scope: arbScope,
    packages: fc.dictionary(arbKey, arbPackage, { maxKeys: 5 }),
    unmanaged: fc.dictionary(arbPath, arbFile, { maxKeys: 3 }),
  },
  { requiredKeys: ['lockfileVersion', 'source', 'platform', 'scope', 'packages'] },
);

describe('round-trip property', () => {
  it('parseLock(serializeLock(finalizeLock(x))) equals finalizeLock(x)', () => {
    fc.assert(
      fc.property(arbContent, (content) => {
        const lock = finalizeLock(content);
        const text = serializeLock(lock);
        expect(parseLock(text, FILE)).toEqual(lock);
        // Writing what we read gives the same bytes again.
        expect(serializeLock(parseLock(text, FILE))).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('the digest does not depend on key insertion order', () => {
    fc.assert(
      fc.property(arbContent, (content) => {
        const reversed: LockContent = {
          ...content,
          packages: Object.fromEntries(Object.entries(content.packages).reverse()),
        };
        expect(computeDigest(reversed)).toBe(computeDigest(content));
        expect(serializeLock(finalizeLock(reversed))).toBe(serializeLock(finalizeLock(content)));
      }),
      { numRuns: 100 },
    );
  });
});

describe('canonical fast reader', () => {
  it('reads every serialised lock exactly as the YAML parser does (or declines)', () => {
    let fast = 0;
    fc.assert(
      fc.property(arbContent, (content) => {
        const text = serializeLock(finalizeLock(content));
        const read = readCanonicalLock(text);
        if (read !== undefined) {
          fast++;
          expect(read).toEqual(parseYaml(text));
        }
      }),
      { numRuns: 300 },
    );
    // It must actually take the fast path for most canonical files, or it is dead code.
    expect(fast).toBeGreaterThan(200);
  });

  it.each([
    [
      'a version YAML reads as a number',
      (t: string) => t.replace('version: 2.31-0ubuntu9.14', 'version: 2.31'),
    ],
    ['a build-ID YAML reads as a number', (t: string) => t.replace(/buildId: [0-9a-f]+/, 'buildId: 1234')],
    [
      'a trailing comment',
      (t: string) => t.replace('version: 2.31-0ubuntu9.14', 'version: 2.31-0ubuntu9.14 # pinned'),
    ],
    ['a duplicate file', (t: string) => t.replace(/(\n {6}\/usr[^\n]+)/, '$1$1')],
    ['CRLF line ends', (t: string) => t.replace(/\n/g, '\r\n')],
  ])('declines %s, leaving it to the YAML parser', (_what, edit) => {
    const text = edit(serializeLock(small()));
    expect(text).not.toBe(serializeLock(small()));
    expect(readCanonicalLock(text)).toBeUndefined();
  });

  it.each([
    ['a package key', (t: string) => t.replace('  libc6:amd64:', '  __proto__:')],
    ['a file path', (t: string) => t.replace(`      ${LIBC}:`, '      __proto__:')],
  ])('declines __proto__ as %s (assigning it would set the prototype)', (_what, edit) => {
    const text = edit(serializeLock(small()));
    expect(text).toContain('__proto__');
    expect(readCanonicalLock(text)).toBeUndefined();
  });

  it('writes no canonical JSON for a package without a version, which has none', () => {
    const text = serializeLock(small()).replace('    version: 2.31-0ubuntu9.14\n', '');
    const scan = scanCanonicalLock(text);
    expect(scan?.doc.packages['libc6:amd64']).toBeDefined();
    expect(scan?.entries).toBeUndefined();
    expect(scanCanonicalLock(serializeLock(small()))?.entries).toBeDefined();
  });

  it('an invalid lock read by the fast path still gets a located error', () => {
    const text = serializeLock(small()).replace('version: 2.31-0ubuntu9.14', 'version: 2.31-0ubuntu9.13');
    expect(readCanonicalLock(text)).toBeDefined();
    const e = lockErrorOf(() => parseLock(text, FILE));
    expect(e.message).toMatch(/digest mismatch/);
    expect(e.location?.line).toBeGreaterThan(1);
  });
});

/** The digest's input as first defined: JSON.stringify of plain objects built with sorted keys. */
function canonicalByObjects(lock: LockContent): string {
  const sorted = (rec: object): string[] => Object.keys(rec).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const file = (f: FileEntry): object =>
    f.buildId === undefined
      ? { mode: f.mode, size: f.size }
      : { buildId: f.buildId, mode: f.mode, size: f.size };
  const files = (rec: Record<string, FileEntry>): object =>
    Object.fromEntries(sorted(rec).map((k) => [k, file(rec[k]!)]));
  const packages = Object.fromEntries(
    sorted(lock.packages).map((k) => {
      const p = lock.packages[k]!;
      return [k, { files: files(p.files ?? {}), sha256: p.sha256 ?? null, version: p.version }];
    }),
  );
  const s = lock.scope;
  const scope =
    s.kind === 'all'
      ? { kind: 'all' }
      : s.kind === 'packages'
        ? { kind: 'packages', packages: [...s.packages].sort(), withDeps: s.withDeps }
        : { kind: s.kind, pids: [...s.pids].sort((a, b) => a - b) };
  const { architecture, codename, id, versionId } = lock.platform;
  return JSON.stringify({
    packages,
    platform: { architecture, codename, id, versionId },
    scope,
    unmanaged: files(lock.unmanaged ?? {}),
  });
}

describe('canonical content', () => {
  // Keys JSON.stringify orders its own way (array indexes first) or must escape. Not `__proto__`:
  // no valid lock has it, and plain objects used to drop it from the digest.
  const oddKey = fc.oneof(
    arbText.filter((k) => k !== '__proto__'),
    fc.constantFrom('0', '7', '10', '01', '4294967294', '4294967295', '-1', 'a"b', '\u2028', 'constructor'),
  );
  const oddContent = arbContent.chain((c) =>
    fc
      .record({
        packages: fc.dictionary(oddKey, arbPackage, { maxKeys: 4 }),
        unmanaged: fc.dictionary(oddKey, arbFile, { maxKeys: 4 }),
      })
      .map((odd) => ({
        ...c,
        packages: { ...c.packages, ...odd.packages },
        unmanaged: { ...c.unmanaged, ...odd.unmanaged },
      })),
  );

  it('is byte for byte the JSON of the content as plain objects with sorted keys', () => {
    fc.assert(
      fc.property(oddContent, (content) => {
        const byObjects = canonicalByObjects(content);
        expect(canonicalContent(content)).toBe(byObjects);
        // The digest is the hash of that very text.
        expect(computeDigest(content)).toBe(`sha256:${createHash('sha256').update(byObjects).digest('hex')}`);
      }),
      { numRuns: 300 },
    );
  });

  /** Reverses runs of sibling lines (package blocks, file lines, unmanaged lines) in lockfile text. */
  function reorder(text: string, which: { packages: boolean; files: boolean; unmanaged: boolean }): string {
    const out: string[] = [];
    let blocks: string[][] = [];
    let files: string[] = [];
    let section = '';
    const flushFiles = (): void => {
      const target = blocks.length > 0 ? blocks[blocks.length - 1]! : out;
      target.push(...(which.files ? files.reverse() : files));
      files = [];
    };
    const flushBlocks = (): void => {
      flushFiles();
      for (const b of which.packages ? blocks.reverse() : blocks) out.push(...b);
      blocks = [];
    };
    for (const line of text.split('\n')) {
      if (!line.startsWith(' ')) {
        if (section === 'unmanaged') out.push(...(which.unmanaged ? files.reverse() : files));
        else flushBlocks();
        files = [];
        section = line.startsWith('unmanaged:')
          ? 'unmanaged'
          : line.startsWith('packages:')
            ? 'packages'
            : '';
        out.push(line);
      } else if (section === 'unmanaged' || line.startsWith('      ')) files.push(line);
      else if (line.startsWith('    ')) {
        flushFiles();
        blocks[blocks.length - 1]!.push(line);
      } else {
        flushFiles();
        blocks.push([line]);
      }
    }
    return out.join('\n');
  }

  it("the scan's JSON of the entries is canonicalContent's, byte for byte, whatever the order in the text", () => {
    let written = 0;
    // ASCII paths with what JSON escapes, and keys JSON.stringify orders first or escapes: the
    // scan writes these itself (non-ASCII JSON is left to canonicalContent).
    const asciiPath = fc
      .string({ unit: fc.constantFrom(...'ab/._-:#" \\\t\n\u007f0e{}'.split('')), maxLength: 10 })
      .map((s) => `/${s}`)
      .filter((p) => lockedPathProblem(p) === undefined);
    const asciiKey = fc.oneof(arbKey, fc.constantFrom('0', '7', '10', '01', 'a"b', 'constructor', '\\'));
    const asciiPackage = arbPackage.chain((p) =>
      fc.dictionary(asciiPath, arbFile, { minKeys: 1, maxKeys: 3 }).map((files) => ({ ...p, files })),
    );
    const asciiContent = arbContent.chain((c) =>
      fc
        .record({
          packages: fc.dictionary(asciiKey, asciiPackage, { maxKeys: 5 }),
          unmanaged: fc.dictionary(asciiPath, arbFile, { maxKeys: 3 }),
        })
        .map((a) => ({ ...c, ...a })),
    );
    fc.assert(
      fc.property(
        fc.oneof(asciiContent, oddContent),
        fc.record({ packages: fc.boolean(), files: fc.boolean(), unmanaged: fc.boolean() }),
        (content, which) => {
          const lock = finalizeLock(content);
          const text = reorder(serializeLock(lock), which);
          const scan = scanCanonicalLock(text);
          if (scan === undefined) return;
          // Reordering changes nothing YAML reads.
          expect(scan.doc).toEqual(parseYaml(serializeLock(lock)));
          if (scan.entries === undefined) return;
          written++;
          const chunks = canonicalChunks(lock, scan.entries);
          const bytes = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
          expect(bytes.toString('utf8')).toBe(canonicalContent(lock));
          const hash = createHash('sha256');
          for (const c of chunks) hash.update(c);
          expect(`sha256:${hash.digest('hex')}`).toBe(lock.digest);
        },
      ),
      { numRuns: 500 },
    );
    // The scan must write the JSON for a good share (most reorderings decline it), or the
    // property proves little.
    expect(written).toBeGreaterThan(25);
  });
});
