/**
 * history and rollback as whole command runs on the simulated fleet (test/helpers/fake-fleet.ts):
 * apply records a transaction, history lists it, rollback undoes it, refuses a changed host.
 * The real proof on dpkg/apt is test/e2e/rollback.test.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { serializeLock } from '../../src/lock/lockfile.js';
import { fakeFleet, recordingIo, type FakeFleet, type FakeHostSpec } from '../helpers/fake-fleet.js';
import { makeLock } from './core-fixtures.js';

const OLD = '2.31-0ubuntu9.9';
const NEW = '2.31-0ubuntu9.14';
const converged: FakeHostSpec = {
  installed: { 'libc6:amd64': NEW, 'libc-bin:amd64': NEW },
  available: { 'libc6:amd64': [NEW], 'libc-bin:amd64': [NEW] },
};
const behind = (): FakeHostSpec => ({
  installed: { 'libc6:amd64': OLD, 'libc-bin:amd64': OLD },
  available: { 'libc6:amd64': [NEW, OLD], 'libc-bin:amd64': [NEW, OLD] },
});

let lockPath: string;
/** Minutes since 12:00, across runs: each run's transactions are later than the last run's. */
let minute = 0;

beforeEach(() => {
  const dir = mkdtempSync(join(tmpdir(), 'criu-lock-rollback-cmd-'));
  lockPath = join(dir, 'criu-lock.yaml');
  writeFileSync(
    lockPath,
    serializeLock(
      makeLock({
        host: 'node-a',
        packages: { 'libc6:amd64': { version: NEW }, 'libc-bin:amd64': { version: NEW } },
      }),
    ),
  );
});

/** Runs the CLI on the fake fleet with a clock that moves a minute per call (ids sort by time). */
async function cli(fleet: FakeFleet, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIo();
  const { loadInventory, openTransport } = fleet.deps(io);
  const clock = { now: () => new Date(Date.UTC(2026, 10, 28, 12, minute++)), monotonicMs: () => minute };
  const code = await main([...argv, '-i', 'inventory.yaml'], io, { loadInventory, openTransport, clock });
  return { code, out: io.stdout, err: io.stderr };
}

interface HistoryJson {
  hosts: Array<{
    name: string;
    status: string;
    transactions: Array<{
      id: string;
      kind: string;
      rolledBack: boolean;
      packages: Array<{ package: string; before: string | null; after: string | null }>;
    }>;
  }>;
}

describe('history and rollback on a simulated fleet', () => {
  it('apply records a transaction; rollback puts versions and the (absent) pin file back; history shows both', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    const apply = await cli(fleet, [
      'apply',
      '--yes',
      '-l',
      lockPath,
      '--limit',
      'node-b',
      '--format',
      'json',
    ]);
    expect(apply.code, apply.err).toBe(0);
    const tx = (JSON.parse(apply.out) as { capture: boolean; hosts: Array<{ transaction?: string }> })
      .hosts[0]!.transaction;
    expect(tx).toMatch(/^20261128T12\d{4}Z-[0-9a-f]{6}$/);
    expect(b.installed.get('libc6:amd64')).toBe(NEW);
    expect(b.pinFile).not.toBeNull();

    const check = await cli(fleet, ['rollback', '--check', '--limit', 'node-b']);
    expect(check.code, check.err).toBe(0);
    expect(check.out).toContain(`would roll back node-b: transaction ${tx}`);
    expect(b.installed.get('libc6:amd64')).toBe(NEW);

    const rb = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(rb.code, rb.out + rb.err).toBe(0);
    expect(b.installed.get('libc6:amd64')).toBe(OLD);
    expect(b.installed.get('libc-bin:amd64')).toBe(OLD);
    expect(b.pinFile).toBeNull();
    const apt = b.calls.filter(
      (c) => c.kind === 'exec' && c.argv.includes('apt-get') && c.argv.some((a) => a.endsWith('.deb')),
    );
    // Simulated first, then one real transaction with both captured .debs, detached as apply's is.
    expect(apt.map((c) => (c.kind === 'exec' ? [c.argv[0], c.argv.includes('-s')] : null))).toEqual([
      ['apt-get', true],
      ['sh', false],
    ]);

    const h = await cli(fleet, ['history', '--limit', 'node-b', '--format', 'json']);
    expect(h.code).toBe(0);
    const txs = (JSON.parse(h.out) as HistoryJson).hosts[0]!.transactions;
    expect(txs.map((t) => [t.kind, t.rolledBack])).toEqual([
      ['rollback', false],
      ['apply', true],
    ]);
    expect(txs[1]!.id).toBe(tx);
    expect(txs[1]!.packages.find((p) => p.package === 'libc6:amd64')).toMatchObject({
      before: OLD,
      after: NEW,
    });
  });

  it('--check checks the captured .debs as the real run would, read only (exit 3 when one is gone)', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    const deb = [...b.stateFiles.keys()].find((k) => k.includes('/debs/libc6_'))!;
    b.stateFiles.delete(deb);
    const writes = b.writes.length;
    const check = await cli(fleet, ['rollback', '--check', '--limit', 'node-b']);
    expect(check.code).toBe(3);
    expect(check.out).toContain(`node-b: [check .debs] captured .deb(s) missing or changed: ${deb}`);
    expect(check.out).toContain('were removed or changed on the host');
    expect(b.writes.length).toBe(writes);
  });

  it('names the unreadable transaction directories when none is readable (a capture cut off before its manifest)', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    const manifest = [...b.stateFiles.keys()].find((k) => k.endsWith('/manifest.json'))!;
    b.stateFiles.set(manifest, '{"manifestVersion": 1, "id": ');
    const r = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(
      /node-b: \[select\] no transaction recorded on this host; 1 transaction directory is unreadable \(\d{8}T\d{6}Z-[0-9a-f]{6}: not JSON/,
    );
  });

  it('refuses a host changed since the transaction (exit 3, nothing written); --force rolls back', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    b.installed.set('libc-bin:amd64', '2.31-0ubuntu9.16');
    const writes = b.writes.length;
    const r = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(r.code).toBe(3);
    expect(r.out).toContain(`libc-bin:amd64: ${NEW} after the transaction, now 2.31-0ubuntu9.16`);
    expect(b.writes.length).toBe(writes);
    const forced = await cli(fleet, ['rollback', '--yes', '--force', '--limit', 'node-b']);
    expect(forced.code, forced.out).toBe(0);
    expect([b.installed.get('libc6:amd64'), b.installed.get('libc-bin:amd64')]).toEqual([OLD, OLD]);
  });

  it('takes the host lock like apply: refused at once while another run holds it, released after', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    b.lockOwner = 'someone-else';
    const writes = b.writes.length;
    const r = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(
      /node-b: \[host lock\] another criu-lock run \(an apply or a rollback\) holds the host lock since 2026-11-28T12:00:00Z/,
    );
    expect(b.writes.length).toBe(writes);
    expect(b.installed.get('libc6:amd64')).toBe(NEW);
    b.lockOwner = null;
    expect((await cli(fleet, ['rollback', '--yes', '--limit', 'node-b'])).code).toBe(0);
    expect(b.installed.get('libc6:amd64')).toBe(OLD);
    expect(b.lockOwner).toBeNull();
  });

  it('a rollback whose apt transaction fails puts the pin file back and leaves the versions as they were', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    const pins = b.pinFile;
    expect(pins).not.toBeNull();
    (b.spec as { aptFails?: boolean }).aptFails = true;
    const r = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/node-b: \[(simulate|apt)\] apt-get/);
    expect(b.pinFile).toBe(pins);
    expect([b.installed.get('libc6:amd64'), b.installed.get('libc-bin:amd64')]).toEqual([NEW, NEW]);
    expect(b.lockOwner).toBeNull();
  });

  it('a host with no transaction fails with a hint; without --yes and no terminal nothing runs (exit 1)', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const none = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(none.code).toBe(3);
    expect(none.out).toMatch(
      /failed\s+node-b: \[select\] no transaction recorded on this host \(hint: only an apply without --no-capture records one/,
    );
    fleet.opened.length = 0;
    const noTty = await cli(fleet, ['rollback', '--limit', 'node-b']);
    expect(noTty.code).toBe(1);
    expect(noTty.err).toMatch(/rollback needs confirmation/);
    expect(fleet.opened).toEqual([]);
  });

  it('apply --no-capture records nothing and says so', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const r = await cli(fleet, ['apply', '--yes', '--no-capture', '-l', lockPath, '--limit', 'node-b']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('capture: off (--no-capture)');
    expect([...fleet.hosts.get('node-b')!.stateFiles.keys()]).toEqual([]);
  });
});
