import { describe, expect, it } from 'vitest';
import { caught } from '../helpers/caught.js';
import {
  findGolden,
  inventoryFromText,
  selectHosts,
  splitHostPattern,
  type Inventory,
} from '../../src/inventory/index.js';

const opts = { cwd: '/w', homeDir: '/home/t', defaultUser: 't' };

// node-a golden; fleet = dc1 (node-b, node-c) + dc2 (node-c, node-d); web01 ungrouped.
const inv = inventoryFromText(
  [
    'all:',
    '  hosts:',
    '    web01:',
    '  children:',
    '    golden:',
    '      hosts:',
    '        node-a:',
    '    fleet:',
    '      children:',
    '        dc1:',
    '          hosts:',
    '            node-b:',
    '            node-c:',
    '        dc2:',
    '          hosts:',
    '            node-c:',
    '            node-d:',
    '    node-b-group:',
    '      hosts:',
    '        node-d:',
  ].join('\n'),
  'inv.yaml',
  opts,
);

const names = (i: Inventory, pattern: string | undefined): string[] =>
  selectHosts(i, pattern).map((h) => h.name);

describe('selectHosts', () => {
  it.each<[string | undefined, string[]]>([
    [undefined, ['web01', 'node-a', 'node-b', 'node-c', 'node-d']],
    ['all', ['web01', 'node-a', 'node-b', 'node-c', 'node-d']],
    ['*', ['web01', 'node-a', 'node-b', 'node-c', 'node-d']],
    ['node-a', ['node-a']],
    ['dc1', ['node-b', 'node-c']],
    ['fleet', ['node-b', 'node-c', 'node-d']], // through children
    ['ungrouped', ['web01']],
    ['node-*', ['node-a', 'node-b', 'node-c', 'node-d']], // hosts, and the node-b-group group
    ['node-?', ['node-a', 'node-b', 'node-c', 'node-d']],
    ['node-[bc]', ['node-b', 'node-c']],
    ['node-[!bc]', ['node-a', 'node-d']],
    ['dc*', ['node-b', 'node-c', 'node-d']], // globs match group names too
    ['~node-(a|d)', ['node-a', 'node-d']],
    ['~web', ['web01']], // a regex is anchored at the start only, like re.match
    ['dc1:golden', ['node-a', 'node-b', 'node-c']], // union, in inventory order
    ['dc1,golden', ['node-a', 'node-b', 'node-c']],
    ['dc1, golden', ['node-a', 'node-b', 'node-c']],
    ['fleet:!dc1', ['node-d']],
    ['fleet:&dc2', ['node-c', 'node-d']],
    ['dc1:&dc2', ['node-c']],
    ['!golden', ['web01', 'node-b', 'node-c', 'node-d']], // only exclusions: start from all
    ['&dc2', ['node-c', 'node-d']],
    // Evaluation order: unions, then intersections, then exclusions, wherever they are written.
    ['!node-c:dc1:dc2', ['node-b', 'node-d']],
    ['&dc2:!node-d:fleet:golden', ['node-c']],
    ['fleet,&dc1,!node-b', ['node-c']],
    // A term naming a host picks the host, though a group "node-b-group" exists alongside.
    ['node-b', ['node-b']],
    ['node-b-group', ['node-d']],
    // Subscripts, as Ansible: [i], [-i], [i:j] inclusive, [i:]
    ['fleet[0]', ['node-b']],
    ['fleet[-1]', ['node-d']],
    ['fleet[1:2]', ['node-c', 'node-d']],
    ['fleet[1:]', ['node-c', 'node-d']],
  ])('%j → %j', (pattern, expected) => {
    expect(names(inv, pattern)).toEqual(expected);
  });

  it.each([
    ['nope', /host pattern "nope" matches no host or group/],
    ['fleet:!nope', /host pattern "nope" \(in "fleet:!nope"\) matches no host or group/],
    ['dc1:&nope*', /"nope\*"/],
    ['fleet[7]', /matches no hosts at that index/],
    ['golden:&dc1', /host pattern "golden:&dc1" selects no hosts/],
    ['~(', /not a valid regular expression/],
    ['@retry.txt', /limit files/],
  ])('%j is a usage error', (pattern, message) => {
    const err = caught(() => selectHosts(inv, pattern));
    expect(err.code).toBe('usage');
    expect(err.message).toMatch(message);
    expect(err.hint).toBeTruthy();
  });

  it('lists known groups and hosts in the hint', () => {
    expect(caught(() => selectHosts(inv, 'web02')).hint).toBe(
      'known groups: golden, fleet, dc1, dc2, node-b-group; hosts: web01, node-a, node-b, node-c, node-d',
    );
  });

  it('splits patterns like Ansible, keeping ranges and IPv6 addresses whole', () => {
    // With a comma the parts are the terms, colons and all (ansible 2.14: `web,db:!web1` is `web`
    // and a term `db:!web1` that matches nothing); without one, colons separate.
    expect(splitHostPattern('a:b,!c:&d')).toEqual(['a:b', '!c:&d']);
    expect(splitHostPattern('a:b:!c:&d')).toEqual(['a', 'b', '!c', '&d']);
    expect(splitHostPattern('web[1:2]:db')).toEqual(['web[1:2]', 'db']);
    expect(splitHostPattern('fe80::1')).toEqual(['fe80::1']);
  });
});

describe('findGolden', () => {
  it('returns the single host of group golden', () => {
    expect(findGolden(inv).name).toBe('node-a');
  });

  it('honours --golden HOST', () => {
    expect(findGolden(inv, 'node-c').name).toBe('node-c');
  });

  const noGolden = inventoryFromText('all:\n  hosts:\n    a:\n', 'one.yaml', opts);
  const empty = inventoryFromText('golden:\nall:\n  hosts:\n    a:\n', 'empty.yaml', opts);
  const two = inventoryFromText('golden:\n  children:\n    x:\n      hosts: {a: , b: }\n', 'two.yaml', opts);

  it.each<[string, Inventory, string | undefined, string, RegExp, RegExp]>([
    [
      'unknown --golden',
      inv,
      'node-z',
      'usage',
      /--golden node-z: no such host in inv\.yaml/,
      /known groups: .*hosts: web01/,
    ],
    ['no group golden', noGolden, undefined, 'inventory', /has no group "golden"/, /--golden HOST/],
    [
      'empty group golden',
      empty,
      undefined,
      'inventory',
      /group "golden" in empty\.yaml has no hosts/,
      /--golden HOST/,
    ],
    [
      'two golden hosts (through a child group)',
      two,
      undefined,
      'inventory',
      /group "golden" has 2 hosts \(a, b\); it must have exactly one/,
      /--golden HOST/,
    ],
  ])('%s', (_name, inventory, override, code, message, hint) => {
    const err = caught(() => findGolden(inventory, override));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.hint).toMatch(hint);
  });

  it('accepts --golden even when group golden is ambiguous', () => {
    expect(findGolden(two, 'b').name).toBe('b');
  });
});
