/**
 * Linear-time patterns and large inventories (issue 9): a host pattern or a known_hosts pattern
 * such as `*a*a*a*a*a*a*b` against a long name must not backtrack, and 20,000-host inventories
 * load and select in well under a second.
 */
import { describe, expect, it } from 'vitest';
import { inventoryFromText } from '../../src/inventory/load.js';
import { globToRegExp, selectHosts } from '../../src/inventory/limit.js';
import { compileGlob, globMatch } from '../../src/pattern/glob.js';
import { lookupHostKey, parseKnownHosts } from '../../src/transport/known-hosts.js';

function ms(f: () => unknown): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

/** CPU milliseconds (user + system) of this process: with ~6 test runs sharing 2 cores, wall time says little. */
function cpuMs(f: () => unknown): number {
  const before = process.cpuUsage();
  f();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

describe('compileGlob agrees with fnmatch (the RegExp translation) on ordinary patterns', () => {
  it.each([
    ['web*', 'web01', true],
    ['web*', 'db01', false],
    ['*', '', true],
    ['?', '', false],
    ['node-?', 'node-a', true],
    ['node-[ab]', 'node-b', true],
    ['node-[!ab]', 'node-b', false],
    ['node-[!ab]', 'node-c', true],
    ['node-[a-c]x', 'node-bx', true],
    ['node-[a-c]x', 'node-dx', false],
    ['node-[', 'node-[', true],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYYcZ', false],
    ['**', 'anything', true],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['Web*', 'web1', false],
  ])('%s vs %s → %s', (pattern, name, expected) => {
    expect(globMatch(pattern, name)).toBe(expected);
    expect(globToRegExp(pattern).test(name)).toBe(expected);
  });

  it.each([
    ['[]]', ']', true],
    ['[!]]', 'a', true],
    ['[!]]', ']', false],
  ])('fnmatch: a "]" first in a class is literal: %s vs %s → %s', (pattern, name, expected) => {
    expect(globMatch(pattern, name)).toBe(expected);
  });
});

describe('no backtracking', () => {
  const pattern = '*a*a*a*a*a*a*b';
  const long = 'a'.repeat(5_000);

  it(`${pattern} against 5,000 × "a" answers in milliseconds`, () => {
    const match = compileGlob(pattern);
    let result = true;
    const took = ms(() => (result = match(long)));
    expect(result).toBe(false);
    expect(took).toBeLessThan(100);
  });

  it('as a --limit term over an inventory with such a host name', () => {
    // (YAML keys are at most 1024 characters.) A RegExp translation takes minutes here.
    const name = 'a'.repeat(1_000);
    const inv = inventoryFromText(
      `all:\n  hosts:\n    ${name}: {ansible_host: 10.0.0.1}\n    ${name}b: {ansible_host: 10.0.0.2}\n`,
      'inv.yaml',
    );
    let names: string[] = [];
    const took = ms(() => (names = selectHosts(inv, pattern).map((h) => h.name)));
    expect(names).toEqual([`${name}b`]);
    expect(took).toBeLessThan(200);
  });

  it('as a known_hosts pattern against a long host name', () => {
    const kh = parseKnownHosts(`${pattern},!*c ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n`, 'kh');
    const host = `${'a'.repeat(5_000)}`;
    let status = '';
    const took = ms(() => (status = lookupHostKey(kh.entries, host, 22, 'ssh-ed25519', 'AAAA').status));
    expect(status).toBe('unknown');
    expect(took).toBeLessThan(100);
    expect(
      lookupHostKey(kh.entries, `${host}b`, 22, 'ssh-ed25519', 'AAAAC3NzaC1lZDI1NTE5AAAAIE').status,
    ).toBe('match');
  });
});

describe('20,000-host inventories', () => {
  const N = 20_000;
  const yaml = [
    'all:',
    '  vars: {ansible_user: root}',
    '  children:',
    '    golden:',
    '      hosts:',
    '        gold01: {ansible_host: 10.255.0.1}',
    ...Array.from({ length: 20 }, (_, g) => [
      `    rack${g}:`,
      '      vars: {ansible_port: 2222}',
      '      hosts:',
      ...Array.from(
        { length: N / 20 },
        (_, i) => `        node${g}-${i}: {ansible_host: 10.${g}.${i >> 8}.${i & 255}}`,
      ),
    ]).flat(),
  ].join('\n');
  const ini = [
    '[golden]',
    'gold01 ansible_host=10.255.0.1',
    ...Array.from({ length: 20 }, (_, g) => [
      `[rack${g}]`,
      ...Array.from({ length: N / 20 }, (_, i) => `node${g}-${i} ansible_host=10.${g}.${i >> 8}.${i & 255}`),
      `[rack${g}:vars]`,
      'ansible_port=2222',
    ]).flat(),
    '[all:vars]',
    'ansible_user=root',
  ].join('\n');

  it.each([
    ['YAML', yaml, 'inv.yaml'],
    ['INI', ini, 'hosts.ini'],
  ])('%s: load and select with patterns, timed', (format, text, file) => {
    let inv = inventoryFromText(text, file);
    const load = cpuMs(() => (inv = inventoryFromText(text, file)));
    expect(inv.hosts).toHaveLength(N + 1);
    expect(inv.hosts.find((h) => h.name === 'node7-42')?.connection).toMatchObject({
      address: '10.7.0.42',
      port: 2222,
      user: 'root',
    });
    let picked = 0;
    const select = cpuMs(() => {
      picked = selectHosts(inv, 'rack*:!rack1:&all').length;
      picked += selectHosts(inv, 'node1?-*').length;
      picked += selectHosts(inv, 'all').length;
    });
    expect(picked).toBe(N - N / 20 + (N / 20) * 10 + N + 1);
    console.log(
      `${format} inventory, ${N} hosts: load ${load.toFixed(0)} ms CPU, three --limit selections ${select.toFixed(0)} ms CPU`,
    );
    // Before the fix: 9.7 s (INI) and 15.6 s (YAML) wall for the load alone (quadratic group lookups).
    // The YAML bound is looser: the yaml library's parseDocument alone takes ~0.6 s CPU here.
    expect(select).toBeLessThan(500);
    expect(load).toBeLessThan(format === 'INI' ? 1_500 : 3_000);
  });
});
