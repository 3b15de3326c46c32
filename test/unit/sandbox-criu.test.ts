/** Pure pieces of the sandbox's real-CRIU support (the e2e file test/e2e/criu.test.ts runs CRIU itself). */
import { describe, expect, it } from 'vitest';
import { run } from '../../tools/sandbox/exec.js';
import { parseArgs } from '../../tools/sandbox/cli.js';
import { criuArgv, criuErrors, isNoise, NS_SCRIPT } from '../../tools/sandbox/criu.js';
import { parsePolicy } from '../../tools/sandbox/debian-fetch.js';
import { fleetSpecs } from '../../tools/sandbox/fleet.js';

describe('sandbox: real CRIU helpers', () => {
  it('reads both libc6 builds and their suites from apt-cache policy', () => {
    const out = [
      'libc6:',
      '  Installed: (none)',
      '  Candidate: 2.36-9+deb12u14',
      '  Version table:',
      '     2.36-9+deb12u14 500',
      '        500 http://mirror.invalid/debian bookworm/main amd64 Packages',
      '     2.36-9+deb12u7 500',
      '        500 http://mirror.invalid/debian-security bookworm-security/main amd64 Packages',
      '',
    ].join('\n');
    expect(parsePolicy(out)).toEqual([
      { version: '2.36-9+deb12u14', suites: ['bookworm'] },
      { version: '2.36-9+deb12u7', suites: ['bookworm-security'] },
    ]);
    // An installed version is starred and also listed from the dpkg status file.
    expect(parsePolicy(' *** 1.0-1 100\n        100 /var/lib/dpkg/status\n')).toEqual([
      { version: '1.0-1', suites: [] },
    ]);
  });

  it('passes everything after the node to criu and spawn untouched', () => {
    expect(parseArgs(['criu', 'node01', 'dump', '-t', '42', '-D', '/tmp/ck', '--debug']).positional).toEqual([
      'node01',
      'dump',
      '-t',
      '42',
      '-D',
      '/tmp/ck',
      '--debug',
    ]);
    expect(parseArgs(['spawn', 'node02', '--', '/usr/bin/fleet-tool', 'tick']).positional).toEqual([
      'node02',
      '/usr/bin/fleet-tool',
      'tick',
    ]);
    // Our own flags before the node still count; after it, even --debug is CRIU's.
    const own = parseArgs(['--debug', 'criu', 'node01', 'restore', '--debug']);
    expect([own.debug, own.positional]).toEqual([true, ['node01', 'restore', '--debug']]);
    expect(() => parseArgs(['criu', '--frobnicate', 'node01', 'check'])).toThrow(
      /Unknown option '--frobnicate'/,
    );
    expect(() => parseArgs(['up', '--frobnicate'])).toThrow(/Unknown option '--frobnicate'/);
    const up = parseArgs(['up', '--libc-drift', '--criu']);
    expect([up.libcDrift, up.criu]).toEqual([true, true]);
  });

  it('gives the other libc6 build to behind nodes only', () => {
    const specs = fleetSpecs(6, { libcDrift: '2.36-9+deb12u7' });
    expect(specs.map((s) => [s.name, s.scenario, s.libc])).toEqual([
      ['node01', 'golden', undefined],
      ['node02', 'converged', undefined],
      ['node03', 'behind', '2.36-9+deb12u7'],
      ['node04', 'ahead', undefined],
      ['node05', 'missing', undefined],
      ['node06', 'converged', undefined],
    ]);
    expect(fleetSpecs(3).every((s) => s.libc === undefined)).toBe(true);
    // A converged fleet has no drift for libc6 to ride on.
    expect(
      fleetSpecs(6, { converged: true, libcDrift: '2.36-9+deb12u7' }).map((s) => [s.scenario, s.libc]),
    ).toEqual([['golden', undefined], ...Array.from({ length: 5 }, () => ['converged', undefined])]);
  });

  it('runs criu through the bundled loader', () => {
    expect(criuArgv('/run/criu-lock/criu', ['check'])).toEqual([
      '/run/criu-lock/criu/lib/ld-linux-x86-64.so.2',
      '--library-path',
      '/run/criu-lock/criu/lib',
      '/run/criu-lock/criu/criu',
      'check',
    ]);
  });

  it("finds CRIU's error lines and tells the sandbox's harmless ones apart", () => {
    const log = [
      'Error (criu/tun.c:85): tun: Unable to create tun: No such file or directory',
      "Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
      ' 22212: Error (criu/files-reg.c:2175): File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232)',
      " 22212: Error (criu/mem.c:1424): `- Can't open vma",
      'Error (criu/cr-restore.c:2320): Restoring FAILED.',
    ].join('\n');
    expect(criuErrors(log).filter((l) => !isNoise(l))).toEqual([
      'File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232)',
      "`- Can't open vma",
      'Restoring FAILED.',
    ]);
  });

  it('the namespace script is valid POSIX sh', async () => {
    const r = await run(['sh', '-n', '-c', NS_SCRIPT]);
    expect(r.exitCode, r.stderr).toBe(0);
  });
});
