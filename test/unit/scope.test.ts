/**
 * One place for scopes and Debian names: the zod schemas every file uses, generate's flag
 * checks, the scope switch shared by generate and buildLock, and the located-error helpers.
 */
import { mkdtempSync } from 'node:fs';
import { caught as thrown } from '../helpers/caught.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { main } from '../../src/cli/main.js';
import { scopeOf } from '../../src/commands/generate.js';
import { DebArchitecture, DebPackageKey, DebPackageRef, DebVersion } from '../../src/debian/schemas.js';
import { parseYamlSource } from '../../src/input/yaml-source.js';
import { issueError, parseWith } from '../../src/input/zod-error.js';
import { buildLock, selectForScope } from '../../src/lock/build-lock.js';
import { fakeFleet, recordingIo } from '../helpers/fake-fleet.js';
import { makeFacts, pkg } from './core-fixtures.js';

describe('Debian schemas', () => {
  it.each(['libc6:amd64', 'libstdc++6:i386', 'tzdata:all', 'g++-10:arm64'])(
    'DebPackageKey accepts %s',
    (k) => {
      expect(DebPackageKey.safeParse(k).success).toBe(true);
    },
  );

  it.each([
    ['libc6', 'a package key needs an architecture (name:arch)'],
    ['Libc6:amd64', 'package name must start with a lower-case letter or digit'],
    ['-x:amd64', 'package name must start with a lower-case letter or digit'],
    ['libc6:amd64:x', `character ":" not allowed in architecture (only a-z, 0-9, '-')`],
    ['libc6:AMD64', 'architecture must start with a lower-case letter or digit'],
    ['a;b:amd64', `character ";" not allowed in package name (only a-z, 0-9, '+', '-', '.')`],
  ])('DebPackageKey rejects %j: %s', (k, why) => {
    const r = DebPackageKey.safeParse(k);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe(why);
  });

  it('DebPackageRef takes a name with or without an architecture', () => {
    expect(DebPackageRef.safeParse('libc6').success).toBe(true);
    expect(DebPackageRef.safeParse('libc6:i386').success).toBe(true);
    expect(DebPackageRef.safeParse('libc6 ').success).toBe(false);
  });

  it('DebVersion and DebArchitecture follow dpkg', () => {
    expect(DebVersion.safeParse('1:2.31-0ubuntu9.14').success).toBe(true);
    expect(DebVersion.safeParse('2.31 0').error?.issues[0]?.message).toBe('is not a valid Debian version');
    expect(DebArchitecture.safeParse('amd64').success).toBe(true);
    expect(DebArchitecture.safeParse('').success).toBe(false);
  });
});

describe('generate flags', () => {
  it.each(['Bad$name', 'libc6:AMD64', 'a:b:c', 'x', ':amd64'])('--package %j is a usage error', (p) => {
    const e = thrown(() => scopeOf({ packages: [p], withDeps: false, pids: [] }));
    expect(e.code).toBe('usage');
    expect(e.message).toBe(`invalid package name ${JSON.stringify(p)}`);
  });

  it('maps flags to the lockfile scope', () => {
    expect(scopeOf({ packages: [], withDeps: false, pids: [] })).toEqual({ kind: 'all' });
    expect(scopeOf({ packages: ['libc6:i386'], withDeps: true, pids: [] })).toEqual({
      kind: 'packages',
      packages: ['libc6:i386'],
      withDeps: true,
    });
    expect(scopeOf({ packages: [], withDeps: false, pids: [42] })).toEqual({ kind: 'processes', pids: [42] });
    expect(thrown(() => scopeOf({ packages: ['a1'], withDeps: false, pids: [1] })).message).toMatch(
      /cannot be combined/,
    );
  });
});

describe('selectForScope (the one scope switch)', () => {
  const facts = makeFacts({
    host: 'gold',
    packages: {
      'libc6:amd64': pkg('libc6:amd64', '2.31-0ubuntu9.14', {
        depends: 'libcrypt1 (>= 1:4.4.10-10ubuntu4), libgcc-s1',
      }),
      'libcrypt1:amd64': '1:4.4.10-10ubuntu4',
      'libgcc-s1:amd64': '10.5.0-1ubuntu1~20.04',
      'bash:amd64': '5.0-6ubuntu1.2',
    },
  });

  it('packages: the named ones, with --with-deps their installed closure; the scope is recorded sorted', () => {
    const only = selectForScope(facts, { kind: 'packages', packages: ['libc6'], withDeps: false }, 'gold');
    expect(only.packages.map((p) => p.pkg.key)).toEqual(['libc6:amd64']);
    const deps = selectForScope(
      facts,
      { kind: 'packages', packages: ['libc6', 'bash'], withDeps: true },
      'gold',
    );
    expect(deps.packages.map((p) => p.pkg.key).sort()).toEqual([
      'bash:amd64',
      'libc6:amd64',
      'libcrypt1:amd64',
      'libgcc-s1:amd64',
    ]);
    expect(deps.scope).toEqual({ kind: 'packages', packages: ['bash', 'libc6'], withDeps: true });
  });

  it('packages: a name not installed is a usage error naming the golden node', () => {
    const e = thrown(() =>
      selectForScope(facts, { kind: 'packages', packages: ['zsh'], withDeps: false }, 'gold'),
    );
    expect(e.code).toBe('usage');
    expect(e.message).toBe('package zsh is not installed on golden node gold');
  });

  it('all: refuses a golden node with broken dpkg state', () => {
    const broken = makeFacts({
      packages: { 'bash:amd64': '5.0-6ubuntu1.2' },
      problems: [{ type: 'broken-dpkg-state', package: 'bash:amd64', detail: 'half-installed' }],
    });
    expect(thrown(() => selectForScope(broken, { kind: 'all' }, 'gold')).message).toMatch(
      /broken dpkg state: bash:amd64/,
    );
  });

  it('buildLock locks exactly what selectForScope selects', () => {
    const scope = { kind: 'packages' as const, packages: ['libc6'], withDeps: true };
    const { lock } = buildLock(facts, scope, { host: 'gold', generatedAt: '2026-11-28T00:00:00Z' });
    expect(Object.keys(lock.packages).sort()).toEqual(
      selectForScope(facts, scope, 'gold')
        .packages.map((p) => p.pkg.key)
        .sort(),
    );
  });
});

describe('generate reads files only of the packages its scope locks', () => {
  it('--package libc6 --with-deps: the file probe names libc6 and its dependency, nothing else', async () => {
    const V = '2.31-0ubuntu9.14';
    const fleet = fakeFleet({
      gold: {
        installed: { 'libc6:amd64': V, 'libc-bin:amd64': V, 'bash:amd64': '5.0-6ubuntu1.2' },
        depends: { 'libc6:amd64': 'libc-bin (= 2.31-0ubuntu9.14)' },
      },
    });
    const io = recordingIo();
    const { loadInventory, openTransport, clock } = fleet.deps(io);
    const out = join(mkdtempSync(join(tmpdir(), 'criu-lock-gen-')), 'lock.yaml');
    const code = await main(
      ['generate', '-i', 'inventory.yaml', '--package', 'libc6', '--with-deps', '-o', out],
      io,
      { loadInventory, openTransport, clock },
    );
    expect(code, io.stderr).toBe(0);
    const scripts = fleet.hosts.get('gold')!.calls.flatMap((c) => (c.kind === 'exec' ? [c.stdin ?? ''] : []));
    expect(scripts.length).toBe(3); // package list, files of the chosen packages, checksums
    // Package names travel hex-encoded in the probe's data.
    const elfOf = (script: string): string[] =>
      [...script.matchAll(/^E\t(.*)$/gm)].map((m) => Buffer.from(m[1]!, 'hex').toString('utf8')).sort();
    expect(elfOf(scripts[0]!)).toEqual([]);
    expect(elfOf(scripts[1]!)).toEqual(['libc-bin:amd64', 'libc6:amd64']);
    expect(scripts[2]).toContain(`libc6:amd64=${V}`);
    expect(scripts[2]).not.toContain('bash');
    expect(io.stderr).toMatch(/wrote .*lock\.yaml: 2 package\(s\), 0 file\(s\) from gold/);
  });
});

describe('generate: a scope that cannot be selected is an input error (exit 1), not a host failure', () => {
  it('--package of a package the golden node lacks', async () => {
    const fleet = fakeFleet({ gold: { installed: { 'bash:amd64': '5.0-6ubuntu1.2' } } });
    const io = recordingIo();
    const { loadInventory, openTransport, clock } = fleet.deps(io);
    const code = await main(['generate', '-i', 'inventory.yaml', '--package', 'zsh', '-o', '-'], io, {
      loadInventory,
      openTransport,
      clock,
    });
    expect(code).toBe(1);
    expect(io.stderr).toBe(
      'error: package zsh is not installed on golden node gold\n  hint: check the name with `dpkg -l` on the golden node\n',
    );
    expect(io.stdout).toBe('');
  });
});

describe('located errors', () => {
  it('a YAML syntax error names file:line:col', () => {
    const e = thrown(() => parseYamlSource('a: [1, 2\nb: 3\n', 'f.yaml', { code: 'input', hint: 'fix it' }));
    expect(e.message).toMatch(/^invalid YAML: /);
    expect(e.location?.file).toBe('f.yaml');
    expect(e.location?.line).toBeGreaterThanOrEqual(1);
    expect(e.hint).toBe('fix it');
  });

  it('an unknown key is located at the key, a bad value at the value', () => {
    const src = parseYamlSource('top:\n  good: 1\n  extra: 2\n', 'f.yaml', { code: 'input', hint: 'h' });
    const Schema = z.strictObject({ top: z.strictObject({ good: z.number() }) });
    const unknown = thrown(() =>
      parseWith(Schema, src.doc.toJS(), {
        code: 'input',
        hint: 'h',
        what: 'file',
        file: 'f.yaml',
        locate: src.locate,
      }),
    );
    expect(unknown.message).toBe('unknown key "extra" in top');
    expect(unknown.location).toEqual({ file: 'f.yaml', line: 3, col: 3 });

    const bad = parseYamlSource('top:\n  good: "x"\n', 'f.yaml', { code: 'input', hint: 'h' });
    const r = Schema.safeParse(bad.doc.toJS());
    const e = issueError(r.error!, {
      code: 'input',
      hint: 'h',
      what: 'file',
      file: 'f.yaml',
      locate: bad.locate,
      prefix: 'in f: ',
    });
    expect(e.message).toMatch(/^in f: top\.good: /);
    expect(e.location).toEqual({ file: 'f.yaml', line: 2, col: 9 });
  });

  it('without a source the error names the file only', () => {
    const e = thrown(() =>
      parseWith(
        z.strictObject({ a: z.number() }),
        { a: 'x' },
        { code: 'plan', hint: 'h', what: 'plan', file: 'p.json' },
      ),
    );
    expect(e.code).toBe('plan');
    expect(e.location).toEqual({ file: 'p.json' });
    expect(e.message).toMatch(/^a: /);
  });
});
