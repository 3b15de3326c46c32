import { describe, expect, it } from 'vitest';
import {
  formatPackageKey,
  isValidArchitecture,
  isValidPackageName,
  PackageNameError,
  parsePackageKey,
  type PackageKey,
} from '../../src/debian/names.js';

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof PackageNameError) return err.reason;
    throw err;
  }
  throw new Error('expected a PackageNameError');
}

describe('isValidPackageName', () => {
  it.each([
    'libc6',
    'g++',
    'libstdc++6',
    'linux-image-6.1.0-18-amd64',
    'python3.11',
    '0ad',
    'xz-utils',
    'ab',
  ])('accepts %j', (name) => {
    expect(isValidPackageName(name)).toBe(true);
  });

  it.each([
    '',
    'a',
    'LibC6',
    'libc6:amd64',
    '-libc6',
    '.libc6',
    '+x',
    'lib_c6',
    'lib c6',
    'libc6;rm',
    'libc6$(id)',
    'libc6\n',
    'libc6/bookworm',
    'libc6=2.36',
    'liba*',
    'libé',
  ])('rejects %j', (name) => {
    expect(isValidPackageName(name)).toBe(false);
  });
});

describe('isValidArchitecture', () => {
  it.each([
    'amd64',
    'arm64',
    'i386',
    'all',
    'any',
    'x32',
    'armhf',
    'ppc64el',
    's390x',
    'musl-linux-amd64',
    'linux-any',
  ])('accepts %j', (arch) => {
    expect(isValidArchitecture(arch)).toBe(true);
  });

  it.each(['', 'AMD64', '-amd64', 'amd_64', 'amd64 ', 'amd64;id', 'x86.64', 'arm64:', 'amd64\n'])(
    'rejects %j',
    (arch) => {
      expect(isValidArchitecture(arch)).toBe(false);
    },
  );
});

describe('parsePackageKey / formatPackageKey', () => {
  it.each<[string, PackageKey]>([
    ['libc6:amd64', { name: 'libc6', arch: 'amd64' }],
    ['libstdc++6:i386', { name: 'libstdc++6', arch: 'i386' }],
    ['tzdata', { name: 'tzdata' }],
    ['python3-yaml:musl-linux-amd64', { name: 'python3-yaml', arch: 'musl-linux-amd64' }],
  ])('%s', (key, expected) => {
    const parsed = parsePackageKey(key);
    expect(parsed).toEqual(expected);
    expect(formatPackageKey(parsed)).toBe(key);
  });

  it.each<[string, RegExp]>([
    ['', /at least two characters/],
    ['libc6:', /architecture must not be empty/],
    [':amd64', /at least two characters/],
    ['libc6:amd64:x', /character ":" not allowed in architecture/],
    ['LIBC6:amd64', /must start with a lower-case letter or digit/],
    ['libc6:AMD64', /must start with a lower-case letter or digit/],
    ['libc6 :amd64', /character " " not allowed in package name/],
    ['libc6;reboot', /character ";" not allowed in package name/],
    ['-y:amd64', /must start with a lower-case letter or digit/],
    ['libc6:amd64 ', /character " " not allowed in architecture/],
  ])('rejects %j', (key, reason) => {
    expect(reasonOf(() => parsePackageKey(key))).toMatch(reason);
  });

  it('puts the key in the message and is an input error', () => {
    let err: unknown;
    try {
      parsePackageKey('bad_name');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PackageNameError);
    expect(err).toMatchObject({ code: 'input', reason: expect.stringMatching(/"_" not allowed/) as unknown });
    expect((err as Error).message).toContain('invalid package key "bad_name"');
  });

  it.each<PackageKey>([
    { name: 'Libc6' },
    { name: 'libc6', arch: '' },
    { name: 'libc6', arch: 'amd64;id' },
    { name: 'x' },
  ])('formatPackageKey rejects %j', (key) => {
    expect(() => formatPackageKey(key)).toThrow(PackageNameError);
  });
});
