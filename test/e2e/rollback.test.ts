/**
 * Rollback end to end on the sandbox fleet: apply records a transaction, the old versions then
 * leave the repository, and rollback still puts the node back exactly (dpkg-query output byte for
 * byte, build-IDs, the pin file). node03 starts "behind", node04 "ahead".
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as cli } from '../helpers/run-cli.js';
import { renderPins } from '../../src/plan/pins.js';
import { loadLock } from '../../src/lock/lockfile.js';
import { nodeExec, readelfBuildId, resetNode, useSandbox } from './sandbox.js';

const sb = useSandbox();
const PIN_FILE = '/etc/apt/preferences.d/criu-lock.pref';
const TX_ROOT = '/var/lib/criu-lock/tx';
const SYNTHETIC = ['fleet-bin', 'libepoch0', 'libtilde0'];
const ELF = [
  '/usr/bin/fleet-tool',
  '/usr/lib/x86_64-linux-gnu/libfleet.so.1',
  '/usr/lib/x86_64-linux-gnu/libepoch.so.0',
  '/usr/lib/x86_64-linux-gnu/libtilde.so.0',
];
const TXID = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

interface HistoryJson {
  hosts: Array<{
    name: string;
    status: string;
    diskBytes: number;
    transactions: Array<{
      id: string;
      kind: string;
      status: string;
      rollbackOf: string | null;
      rolledBack: boolean;
      rolledBackBy: string | null;
      lockDigest: string | null;
      packages: Array<{
        package: string;
        before: string | null;
        after: string | null;
        debSource: string | null;
      }>;
    }>;
  }>;
}

function conn(): string[] {
  const s = sb.state();
  return ['-i', s.inventory, '--known-hosts', s.knownHosts];
}

/** Exactly what an operator would compare: `dpkg-query -W` of the whole node. */
async function dpkgQuery(node: string): Promise<string> {
  const r = await nodeExec(node, ['dpkg-query', '-W']);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
}

async function buildIds(node: string): Promise<Array<string | undefined>> {
  return Promise.all(ELF.map((p) => readelfBuildId(node, p)));
}

function dpkgStatus(node: string): string {
  return readFileSync(join(sb.node(node).root, 'var/lib/dpkg/status'), 'utf8');
}

function pinFile(node: string): string | null {
  const p = join(sb.node(node).root, PIN_FILE);
  return existsSync(p) ? readFileSync(p, 'utf8') : null;
}

function txDirs(node: string): string[] {
  const d = join(sb.node(node).root, TX_ROOT);
  return existsSync(d) ? readdirSync(d) : [];
}

async function history(node: string): Promise<HistoryJson['hosts'][number]> {
  const r = await cli('history', ...conn(), '--limit', node, '--format', 'json');
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as HistoryJson).hosts[0]!;
}

describe.skipIf(sb.skip)('rollback on the sandbox fleet', () => {
  let work: string;
  let lock: string;
  const hidden: string[] = [];

  /** Takes .debs out of the sandbox repository (the versions "left the archive"). */
  function hideFromRepo(match: (file: string) => boolean): string[] {
    const repo = join(sb.dir, 'repo');
    const away = join(sb.dir, 'repo-hidden');
    mkdirSync(away, { recursive: true });
    const files = readdirSync(repo).filter((f) => f.endsWith('.deb') && match(f));
    for (const f of files) {
      renameSync(join(repo, f), join(away, f));
      hidden.push(f);
    }
    return files;
  }

  function restoreRepo(): void {
    for (const f of hidden.splice(0)) renameSync(join(sb.dir, 'repo-hidden', f), join(sb.dir, 'repo', f));
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'criu-lock-rollback-'));
    lock = join(work, 'lock.yaml');
    await resetNode('node03');
    await resetNode('node04');
    const r = await cli(
      'generate',
      ...conn(),
      ...SYNTHETIC.flatMap((p) => ['--package', p]),
      '--with-deps',
      '-o',
      lock,
    );
    expect(r.code, r.err).toBe(0);
  });

  afterAll(async () => {
    if (sb.skip) return;
    restoreRepo();
    await resetNode('node03');
    await resetNode('node04');
  });

  it('apply records a transaction; rollback restores the node exactly although the old versions left the repository', async () => {
    const pre = await dpkgQuery('node03');
    const preIds = await buildIds('node03');
    expect(pinFile('node03')).toBeNull();

    const apply = await cli('apply', ...conn(), '-l', lock, '--limit', 'node03', '--yes', '--format', 'json');
    expect(apply.code, apply.out + apply.err).toBe(0);
    const host = (
      JSON.parse(apply.out) as {
        capture: boolean;
        hosts: Array<{ name: string; status: string; transaction?: string }>;
      }
    ).hosts[0]!;
    expect(host.status).toBe('changed');
    expect(host.transaction).toMatch(TXID);
    const applyTx = host.transaction!;
    const converged = await dpkgQuery('node03');
    expect(converged).not.toBe(pre);
    expect(await buildIds('node03')).not.toEqual(preIds);

    // The node's previous versions leave the archive: apt can no longer fetch them.
    expect(
      hideFromRepo((f) => /_2\.31-0ubuntu9\.9_|^libepoch0_1\.9-1_|^libtilde0_3\.0~rc1-1_/.test(f)),
    ).toHaveLength(4);
    const gone = await nodeExec('node03', [
      'sh',
      '-c',
      'cd /tmp && apt-get download -o APT::Sandbox::User=root libfleet1=2.31-0ubuntu9.9',
    ]);
    expect(gone.exitCode).not.toBe(0);

    const check = await cli('rollback', ...conn(), '--limit', 'node03', '--check');
    expect(check.code, check.out + check.err).toBe(0);
    expect(check.out).toContain(`would roll back node03: transaction ${applyTx}`);
    expect(check.out).toContain('libfleet1:amd64 2.31-0ubuntu9.14 → 2.31-0ubuntu9.9');
    expect(await dpkgQuery('node03')).toBe(converged);

    const rb = await cli('rollback', ...conn(), '--limit', 'node03', '--yes');
    expect(rb.code, rb.out + rb.err).toBe(0);
    expect(rb.out).toMatch(/rolled back\s+node03: transaction \S+ undone, verified/);
    expect(await dpkgQuery('node03')).toBe(pre);
    expect(await buildIds('node03')).toEqual(preIds);
    expect(pinFile('node03')).toBeNull();

    const h = await history('node03');
    expect(h.transactions.map((t) => [t.kind, t.status])).toEqual([
      ['rollback', 'applied'],
      ['apply', 'applied'],
    ]);
    expect(h.transactions[1]).toMatchObject({
      id: applyTx,
      rolledBack: true,
      rolledBackBy: h.transactions[0]!.id,
      lockDigest: (await loadLock(lock)).digest,
    });
    expect(h.transactions[0]!.rollbackOf).toBe(applyTx);
    expect(h.transactions[1]!.packages).toContainEqual({
      package: 'libfleet1:amd64',
      before: '2.31-0ubuntu9.9',
      after: '2.31-0ubuntu9.14',
      debSource: 'apt-download',
    });
    expect(h.diskBytes).toBeGreaterThan(0);
  });

  it('a rollback of the rollback re-applies; rolling that back again needs only the captured .debs', async () => {
    const pre = await dpkgQuery('node03');
    const re = await cli('rollback', ...conn(), '--limit', 'node03', '--yes');
    expect(re.code, re.out + re.err).toBe(0);
    const check = await cli('check', ...conn(), '-l', lock, '--limit', 'node03');
    expect(check.code, check.out).toBe(0);
    expect(pinFile('node03')).toBe(renderPins(await loadLock(lock)));

    // The 9.9 versions exist only in the first transaction now: the capture hard-links them from there.
    const h = await history('node03');
    expect(h.transactions[0]!.packages.find((p) => p.package === 'libfleet1:amd64')).toMatchObject({
      before: '2.31-0ubuntu9.9',
      debSource: 'transaction',
    });
    const back = await cli('rollback', ...conn(), '--limit', 'node03', '--yes', '--keep-transactions', '2');
    expect(back.code, back.out + back.err).toBe(0);
    expect(await dpkgQuery('node03')).toBe(pre);
    expect(pinFile('node03')).toBeNull();
    // Retention: only the newest two remain.
    expect(txDirs('node03')).toHaveLength(2);
    expect((await history('node03')).transactions).toHaveLength(2);
  });

  it('refuses a host changed by hand since the transaction and says what changed; --force rolls back anyway', async () => {
    const manual = await nodeExec('node03', ['apt-get', 'install', '-y', '-q', 'libtilde0=3.0-1']);
    expect(manual.exitCode, manual.stderr).toBe(0);
    const before = dpkgStatus('node03');
    const refused = await cli('rollback', ...conn(), '--limit', 'node03', '--yes');
    expect(refused.code).toBe(3);
    expect(refused.out).toMatch(/refused\s+node03: the host changed since transaction/);
    expect(refused.out).toContain('libtilde0:amd64: 3.0~rc1-1 after the transaction, now 3.0-1');
    expect(dpkgStatus('node03')).toBe(before);

    const forced = await cli('rollback', ...conn(), '--limit', 'node03', '--yes', '--force');
    expect(forced.code, forced.out + forced.err).toBe(0);
    expect(forced.out).toContain('forced past: libtilde0:amd64');
    const check = await cli('check', ...conn(), '-l', lock, '--limit', 'node03');
    expect(check.code, check.out).toBe(0);
  });

  it('a capture that fails leaves the host untouched', async () => {
    // node04's installed (newer) versions are not downloadable any more, and not in its apt cache;
    // and the transaction directory cannot be made (a plain file stands where it goes).
    expect(
      hideFromRepo((f) => /_2\.31-0ubuntu9\.16_|^libtilde0_3\.0-1_/.test(f)).length,
    ).toBeGreaterThanOrEqual(3);
    const status = dpkgStatus('node04');
    const blocker = join(sb.node('node04').root, TX_ROOT);
    mkdirSync(dirname(blocker), { recursive: true });
    writeFileSync(blocker, 'not a directory\n');
    try {
      const r = await cli('apply', ...conn(), '-l', lock, '--limit', 'node04', '--yes');
      expect(r.code).toBe(3);
      expect(r.out).toMatch(/node04\s+failed.*capture failed, nothing was changed/);
      expect(dpkgStatus('node04')).toBe(status);
      expect(pinFile('node04')).toBeNull();
    } finally {
      rmSync(blocker, { force: true });
    }
    expect(txDirs('node04')).toEqual([]);
  });

  it('a replaced version no source serves any more is rebuilt from the installed files, and rollback restores it', async () => {
    // The versions stay hidden (previous test): neither the apt cache nor apt-get download has them.
    const pre = await dpkgQuery('node04');
    const preIds = await buildIds('node04');
    const apply = await cli('apply', ...conn(), '-l', lock, '--limit', 'node04', '--yes');
    expect(apply.code, apply.out + apply.err).toBe(0);
    const tx = (await history('node04')).transactions[0]!;
    expect(tx.kind).toBe('apply');
    expect(tx.packages.filter((p) => p.before !== null).map((p) => p.debSource)).toContain('rebuilt');
    expect(await dpkgQuery('node04')).not.toBe(pre);

    const rb = await cli('rollback', ...conn(), '--limit', 'node04', '--yes');
    expect(rb.code, rb.out + rb.err).toBe(0);
    expect(await dpkgQuery('node04')).toBe(pre);
    expect(await buildIds('node04')).toEqual(preIds);
    expect(pinFile('node04')).toBeNull();
  });

  it('apply --no-capture says so in the recap and records nothing', async () => {
    const before = txDirs('node04');
    const r = await cli('apply', ...conn(), '-l', lock, '--limit', 'node04', '--yes', '--no-capture');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain('capture: off (--no-capture)');
    expect(r.out).not.toContain('tx=');
    expect(txDirs('node04')).toEqual(before);
    restoreRepo();
  });

  it('rejects a malformed --to before connecting (exit 1)', async () => {
    const r = await cli('rollback', ...conn(), '--limit', 'node03', '--to', '../../etc', '--yes');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is not a transaction id/);
  });
});
