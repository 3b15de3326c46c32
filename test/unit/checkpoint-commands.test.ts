/**
 * `check --checkpoint` and `generate --checkpoint` as whole command runs on a simulated fleet:
 * real CLI parsing, the real CRIU images of test/fixtures/checkpoint (a dump of `fleet-tool tick`
 * made by CRIU 4.1.1), fake transports that answer the probe's file records and `dpkg-query -S`.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseLock } from '../../src/lock/lockfile.js';
import {
  fakeFleet,
  recordingIo,
  type FakeFile,
  type FakeFleet,
  type FakeHostSpec,
} from '../helpers/fake-fleet.js';

const CHECKPOINT = join(import.meta.dirname, '../fixtures/checkpoint');
const TOOL = '/usr/bin/fleet-tool';
const LD = '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const LIBFLEET = '/usr/lib/x86_64-linux-gnu/libfleet.so.1';

/** The files exactly as the checkpoint recorded them (size, st_mode, build-ID). */
const RECORDED: Record<string, FakeFile> = {
  [TOOL]: { size: 16360, mode: '0755', buildId: 'c49fe6bd5eb0dfc32674e894197b4528bc43599b' },
  [LD]: { size: 215000, mode: '0755', buildId: '7ebc65e52f2bbea498b4040fa92f7238377aaba9' },
  [LIBC]: { size: 1926232, mode: '0755', buildId: '93ac61ec5a8eb1396f9fbd350e3169a558528a40' },
  [LIBFLEET]: { size: 15152, mode: '0644', buildId: '393372a1777f78e337d2ad5199a2a15f89e57448' },
};
const GLIBC = '2.36-9+deb12u14';
const OTHER_GLIBC = '2.36-9+deb12u7';

/** A node like the golden one: fleet-tool is a local build no package owns. */
function node(files: Record<string, FakeFile> = RECORDED, libc6 = GLIBC): FakeHostSpec {
  return {
    installed: { 'libc6:amd64': libc6, 'libfleet1:amd64': '1.0-1' },
    available: { 'libc6:amd64': [GLIBC, OTHER_GLIBC], 'libfleet1:amd64': ['1.0-1'] },
    files,
    owners: { [LD]: 'libc6:amd64', [LIBC]: 'libc6:amd64', [LIBFLEET]: 'libfleet1:amd64' },
  };
}

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-checkpoint-commands-'));
});

async function cli(fleet: FakeFleet, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo();
  const { loadInventory, openTransport, clock } = fleet.deps(io);
  const code = await main([...argv, '-i', 'inventory.yaml'], io, { loadInventory, openTransport, clock });
  return { code, out: io.stdout, err: io.stderr };
}

describe('check --checkpoint DIR', () => {
  it("says per host whether the checkpoint would restore, in CRIU's words, with no lockfile (exit 2 on drift)", async () => {
    const fleet = fakeFleet({
      'node-a': node(),
      // The other glibc build: a different size and build-ID, as bookworm-security's has.
      'node-b': node(
        { ...RECORDED, [LIBC]: { size: 1922136, mode: '0755', buildId: 'aa'.repeat(20) } },
        OTHER_GLIBC,
      ),
      'node-c': node({ ...RECORDED, [LIBFLEET]: { ...RECORDED[LIBFLEET]!, mode: '0755' } }),
    });
    const { code, out } = await cli(fleet, ['check', '--checkpoint', CHECKPOINT]);
    expect(code).toBe(2);
    expect(out).toMatch(/ok +node-a: the checkpoint would restore here/);
    expect(out).toContain('File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232)');
    expect(out).toContain(
      'File usr/lib/x86_64-linux-gnu/libfleet.so.1 has bad mode 0100755 (expect 0100644)',
    );
    // Each host was asked who owns the checkpoint's files, so findings name the package.
    for (const h of fleet.hosts.values())
      expect(
        h.calls.some((c) => c.kind === 'exec' && c.argv[0] === 'dpkg-query' && c.argv.includes(LIBC)),
      ).toBe(true);
  });

  it('exits 0 when every host matches, and the JSON report names the checkpoint', async () => {
    const fleet = fakeFleet({ 'node-a': node(), 'node-b': node() });
    const { code, out } = await cli(fleet, ['check', '--checkpoint', CHECKPOINT, '--format', 'json']);
    expect(code).toBe(0);
    const report = JSON.parse(out) as {
      kind: string;
      lock: { path: string; digest: string };
      hosts: Array<{ name: string; status: string }>;
    };
    expect(report.kind).toBe('checkpoint');
    expect(report.lock.path).toBe(CHECKPOINT);
    expect(report.lock.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([
      ['node-a', 'ok'],
      ['node-b', 'ok'],
    ]);
  });

  it('a missing file is CRIU\'s "Can\'t open file", and an unreachable host makes it exit 3', async () => {
    const withoutTool = Object.fromEntries(Object.entries(RECORDED).filter(([p]) => p !== TOOL));
    const fleet = fakeFleet({
      'node-a': node(),
      'node-b': node(withoutTool),
      'node-c': { ...node(), unreachable: true },
    });
    const { code, out } = await cli(fleet, ['check', '--checkpoint', CHECKPOINT]);
    expect(code).toBe(3);
    expect(out).toContain("Can't open file usr/bin/fleet-tool on restore: No such file or directory");
    expect(out).toMatch(/node-c.*connection refused/);
  });

  it('refuses a directory without CRIU images before connecting to any host', async () => {
    const fleet = fakeFleet({ 'node-a': node() });
    const { code, err } = await cli(fleet, ['check', '--checkpoint', dir]);
    expect(code).toBe(1);
    expect(err).toContain(dir);
    expect(fleet.opened).toEqual([]);
  });
});

describe('generate --checkpoint DIR', () => {
  it("locks the golden node's owners of the checkpoint's files, the files as recorded, the rest unmanaged", async () => {
    const out = join(dir, 'checkpoint.yaml');
    const fleet = fakeFleet({ 'node-a': node(), 'node-b': node({}, OTHER_GLIBC) });
    const r = await cli(fleet, ['generate', '--checkpoint', CHECKPOINT, '-o', out]);
    expect(r.code).toBe(0);
    expect(fleet.opened).toEqual(['node-a']);
    expect(r.err).toContain(`warning: ${TOOL} belongs to no package on node-a: locked as unmanaged`);
    const lock = parseLock(readFileSync(out, 'utf8'), out);
    expect(lock.scope).toEqual({ kind: 'checkpoint', pids: [22212] });
    expect(lock.source).toEqual({ host: 'node-a', generatedAt: '2026-11-28T12:00:00Z' });
    expect(Object.keys(lock.packages).sort()).toEqual(['libc6:amd64', 'libfleet1:amd64']);
    expect(lock.packages['libc6:amd64']).toMatchObject({
      version: GLIBC,
      files: {
        [LD]: { size: 215000, mode: '0755', buildId: RECORDED[LD]!.buildId },
        [LIBC]: { size: 1926232, mode: '0755', buildId: RECORDED[LIBC]!.buildId },
      },
    });
    expect(lock.unmanaged).toEqual({
      [TOOL]: { size: 16360, mode: '0755', buildId: RECORDED[TOOL]!.buildId },
    });
  });

  it('warns when the golden node itself differs from the checkpoint (the lock records the checkpoint, not the node)', async () => {
    const out = join(dir, 'checkpoint.yaml');
    const fleet = fakeFleet({
      'node-a': node({ ...RECORDED, [LIBC]: { size: 1922136, mode: '0755', buildId: 'aa'.repeat(20) } }),
    });
    const r = await cli(fleet, ['generate', '--checkpoint', CHECKPOINT, '-o', out]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(
      'golden node node-a differs from the checkpoint: File usr/lib/x86_64-linux-gnu/libc.so.6 has bad size 1922136 (expect 1926232)',
    );
    expect(parseLock(readFileSync(out, 'utf8'), out).packages['libc6:amd64']?.files?.[LIBC]?.size).toBe(
      1926232,
    );
  });

  it('the lock it writes is one plan and check read: the drifted node converges to the golden glibc', async () => {
    const out = join(dir, 'checkpoint.yaml');
    const fleet = fakeFleet({ 'node-a': node(), 'node-b': node(RECORDED, OTHER_GLIBC) });
    expect((await cli(fleet, ['generate', '--checkpoint', CHECKPOINT, '-o', out])).code).toBe(0);
    const plan = await cli(fleet, ['plan', '-l', out, '--format', 'json']);
    expect(plan.code).toBe(0);
    type Action = { type: string; package?: string; from?: string; to?: string };
    const hosts = (JSON.parse(plan.out) as { hosts: Array<{ name: string; actions?: Action[] }> }).hosts;
    const packageActions = (name: string): Action[] =>
      (hosts.find((h) => h.name === name)?.actions ?? []).filter((a) => a.package !== undefined);
    expect(packageActions('node-b')).toEqual([
      { type: 'upgrade', package: 'libc6:amd64', from: OTHER_GLIBC, to: GLIBC },
    ]);
    expect(packageActions('node-a')).toEqual([]);
  });

  it('cannot be combined with --pid, --package or --with-deps; --vendor needs a file', async () => {
    const fleet = fakeFleet({ 'node-a': node() });
    for (const extra of [['--pid', '1'], ['--package', 'libc6'], ['--with-deps']]) {
      const r = await cli(fleet, ['generate', '--checkpoint', CHECKPOINT, ...extra]);
      expect(r.code).toBe(1);
      expect(r.err).toContain('--checkpoint cannot be combined with --pid, --package or --with-deps');
    }
    const v = await cli(fleet, ['generate', '--checkpoint', CHECKPOINT, '-o', '-', '--vendor']);
    expect(v.code).toBe(1);
    expect(v.err).toContain('--vendor needs a lockfile on disk');
    expect(fleet.opened).toEqual([]);
  });
});
