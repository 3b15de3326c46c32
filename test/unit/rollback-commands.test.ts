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
    // Simulated first (under the pins it will leave, in a private copy), then one real transaction
    // with both captured .debs, detached as apply's is.
    expect(apt.map((c) => (c.kind === 'exec' ? [c.argv[3], c.argv.includes('-s')] : null))).toEqual([
      ['criu-lock-rb-sim', true],
      ['criu-lock-apt-run', false],
    ]);
    // The pin file changed only after the simulation: the first write is the pin change.
    const order = b.calls.flatMap((c) => (c.kind === 'exec' && c.argv[0] === 'sh' ? [c.argv[3]] : []));
    expect(order.indexOf('criu-lock-rb-sim')).toBeLessThan(order.indexOf('criu-lock-pins-back'));

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

  it('a rollback refused at its simulation changes nothing, and the next --last passes over it to the apply', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    const pins = b.pinFile;
    (b.spec as { aptFails?: boolean }).aptFails = true;
    const refused = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(refused.code).toBe(3);
    expect(refused.out).toMatch(/\[simulate\] apt-get -s refused the rollback: .*; nothing was changed/);
    expect(b.pinFile).toBe(pins);
    expect(b.installed.get('libc6:amd64')).toBe(NEW);
    (b.spec as { aptFails?: boolean }).aptFails = false;
    const again = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(again.code, again.out + again.err).toBe(0);
    expect(again.err).toMatch(/\[node-b\] passing over \d{8}T\d{6}Z-[0-9a-f]{6}: never completed/);
    expect(b.installed.get('libc6:amd64')).toBe(OLD);
    expect(b.pinFile).toBeNull();
  });

  it('--last does not undo a transaction that never completed but whose change landed; --to does', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind() });
    const b = fleet.hosts.get('node-b')!;
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'node-b'])).code).toBe(0);
    // As after an apply whose connection was lost while its apt job went on to succeed.
    const manifest = [...b.stateFiles.keys()].find((k) => k.endsWith('/manifest.json'))!;
    b.stateFiles.set(
      manifest,
      b.stateFiles.get(manifest)!.replace('"status": "applied"', '"status": "captured"'),
    );
    const id = manifest.split('/').at(-2)!;
    const last = await cli(fleet, ['rollback', '--yes', '--limit', 'node-b']);
    expect(last.code).toBe(3);
    expect(last.out).toContain(
      `the newest transaction ${id} never completed, yet the host is as it would have left it`,
    );
    expect(b.installed.get('libc6:amd64')).toBe(NEW);
    const named = await cli(fleet, ['rollback', '--yes', '--to', id, '--limit', 'node-b']);
    expect(named.code, named.out).toBe(0);
    expect(b.installed.get('libc6:amd64')).toBe(OLD);
  });

  it('Ctrl-C stops further hosts from starting, as in apply; the host in progress finishes', async () => {
    const fleet = fakeFleet({ 'node-a': converged, 'node-b': behind(), 'node-c': behind() });
    expect((await cli(fleet, ['apply', '--yes', '-l', lockPath, '--limit', 'fleet'])).code).toBe(0);
    const running = cli(fleet, ['rollback', '--yes', '--limit', 'fleet', '--forks', '1']);
    const started = fleet.events.length;
    while (!fleet.events.slice(started).some((e) => e.event === 'apt-start'))
      await new Promise((r) => setImmediate(r));
    process.emit('SIGINT', 'SIGINT');
    const r = await running;
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/rolled back +node-b/);
    expect(r.out).toContain(
      'node-c: [interrupted] not started: the run was interrupted; nothing was changed',
    );
    expect(fleet.hosts.get('node-c')!.installed.get('libc6:amd64')).toBe(NEW);
    expect(process.listenerCount('SIGINT')).toBe(0);
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
