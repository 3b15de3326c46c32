/**
 * The package store on the sandbox fleet (real sshd, dpkg, apt): vendor the golden node's exact
 * .debs, then let "the archive move on" (every node's repository rebuilt without the golden's
 * versions) and converge the fleet from the store alone. Also --rebuild (identical ELF files on
 * another node, edited conffile refused), --archive against a snapshot-style repository served
 * over HTTP on loopback by this test, and a tampered store file refused on the host.
 */
import {
  createReadStream,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCli } from '../helpers/run-cli.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { run, runOk } from '../../tools/sandbox/exec.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { paths } from '../../tools/sandbox/state.js';
import { nodeExec, parseDpkgQuery, readelfBuildId, useSandbox } from './sandbox.js';

const sb = useSandbox();
const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const ELF = [
  `${LIBDIR}/libfleet.so.1`,
  `${LIBDIR}/libepoch.so.0`,
  `${LIBDIR}/libtilde.so.0`,
  `${LIBDIR}/libgoldenextra.so.1`,
  '/usr/bin/fleet-tool',
];
/** The golden node's versions of the repository packages: the ones "the archive" drops. */
const GOLDEN_REPO_DEBS = [
  'libfleet1_2.31-0ubuntu9.14_amd64.deb',
  'fleet-bin_2.31-0ubuntu9.14_amd64.deb',
  'libepoch0_1.0-1_amd64.deb',
  'libtilde0_3.0~rc2-1_amd64.deb',
];
const WANT = new Map([
  ['libfleet1', '2.31-0ubuntu9.14'],
  ['fleet-bin', '2.31-0ubuntu9.14'],
  ['libepoch0', '1:1.0-1'],
  ['libtilde0', '3.0~rc2-1'],
  ['golden-extra', '1.0-1'],
]);
const PACKAGES = [
  '--package',
  'fleet-bin',
  '--package',
  'libepoch0',
  '--package',
  'libtilde0',
  '--package',
  'golden-extra',
  '--with-deps',
];

function conn(): string[] {
  const s = sb.state();
  return ['-i', s.inventory, '--known-hosts', s.knownHosts];
}

async function versions(node: string): Promise<Map<string, string>> {
  return parseDpkgQuery(
    (await nodeExec(node, ['dpkg-query', '-W', '-f', '${Package}\t${Version}\n'])).stdout,
  );
}

function manifest(dir: string): {
  packages: Record<string, { version: string; sha256: string; size: number; origin: string }>;
} {
  return parse(readFileSync(join(dir, 'manifest.yaml'), 'utf8')) as ReturnType<typeof manifest>;
}

/** Every node's apt source now serves a repository without the golden node's versions. */
async function archiveMovesOn(work: string): Promise<string> {
  const moved = join(work, 'repo-moved');
  mkdirSync(moved, { recursive: true });
  const repo = paths(sb.dir).repo;
  for (const f of readdirSync(repo))
    if (f.endsWith('.deb') && !GOLDEN_REPO_DEBS.includes(f)) copyFileSync(join(repo, f), join(moved, f));
  writeFileSync(
    join(moved, 'Packages'),
    (await runOk(['apt-ftparchive', 'packages', '.'], { cwd: moved })).stdout,
  );
  const label = [
    '-o',
    'APT::FTPArchive::Release::Origin=criu-lock-sandbox',
    '-o',
    'APT::FTPArchive::Release::Label=criu-lock-sandbox',
  ];
  writeFileSync(
    join(moved, 'Release'),
    (await runOk(['apt-ftparchive', ...label, 'release', '.'], { cwd: moved })).stdout,
  );
  for (const n of sb.state().nodes) {
    await runOk(['mount', '--bind', '-o', 'ro', moved, join(n.root, 'srv/repo')]);
    await runOk(['chroot', n.root, 'apt-get', 'update', '-q'], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    });
  }
  return moved;
}

/** A dated snapshot-style repository (dists/ + pool/) with the golden's versions, served on loopback. */
async function serveSnapshot(work: string): Promise<{ server: Server; url: string }> {
  const root = join(work, 'snapshot');
  const stamp = 'archive/debian/20261128T000000Z';
  const base = join(root, stamp);
  const pool = join(base, 'pool/main/s');
  mkdirSync(pool, { recursive: true });
  for (const f of GOLDEN_REPO_DEBS) copyFileSync(join(paths(sb.dir).repo, f), join(pool, f));
  const bin = join(base, 'dists/bookworm/main/binary-amd64');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'Packages'),
    (await runOk(['apt-ftparchive', 'packages', 'pool'], { cwd: base })).stdout,
  );
  const rel = await runOk(
    [
      'apt-ftparchive',
      '-o',
      'APT::FTPArchive::Release::Suite=bookworm',
      '-o',
      'APT::FTPArchive::Release::Codename=bookworm',
      'release',
      '.',
    ],
    {
      cwd: join(base, 'dists/bookworm'),
    },
  );
  writeFileSync(join(base, 'dists/bookworm/Release'), rel.stdout);
  const server = createServer((req, res) => {
    const p = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
    const file = join(root, p);
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}/${stamp}/` };
}

describe.skipIf(sb.skip)('package store on the sandbox fleet', () => {
  let work: string;
  let lock: string;
  let store: string;
  let snapshot: { server: Server; url: string } | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'criu-lock-store-'));
    lock = join(work, 'criu-lock.yaml');
    store = join(work, 'criu-lock.debs');
    await reset(
      sb.state().nodes.map((n) => n.name),
      { dir: sb.dir, log: () => undefined },
    );
  });

  afterAll(async () => {
    snapshot?.server.close();
    // reset unmounts the moved repository and restores every scenario for any later file.
    if (!sb.skip)
      await reset(
        sb.state().nodes.map((n) => n.name),
        { dir: sb.dir, log: () => undefined },
      );
  });

  it('generate --vendor --rebuild stores every locked package, verified, in a deterministic manifest', async () => {
    const started = Date.now();
    const r = await runCli('generate', ...conn(), ...PACKAGES, '-o', lock, '--vendor', '--rebuild');
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.err).toBe(0);
    const m = manifest(store);
    expect(Object.keys(m.packages).sort()).toEqual([
      'fleet-bin:amd64',
      'golden-extra:amd64',
      'libepoch0:amd64',
      'libfleet1:amd64',
      'libtilde0:amd64',
    ]);
    const lockText = readFileSync(lock, 'utf8');
    for (const [key, e] of Object.entries(m.packages)) {
      expect(e.version).toBe(WANT.get(key.split(':')[0]!));
      const bytes = readFileSync(join(store, `${e.sha256}.deb`));
      expect(bytes.length).toBe(e.size);
      if (key === 'golden-extra:amd64') expect(e.origin).toBe('rebuilt');
      else {
        // The archive's own bytes: the sha256 the lock recorded from the golden node's apt lists.
        expect(e.origin).toBe('golden-apt');
        expect(lockText).toContain(e.sha256);
      }
    }
    const before = readFileSync(join(store, 'manifest.yaml'), 'utf8');
    const again = await runCli('vendor', ...conn(), '-l', lock, '--rebuild');
    expect(again.code, again.err).toBe(0);
    expect(readFileSync(join(store, 'manifest.yaml'), 'utf8')).toBe(before);
    expect(readFileSync(lock, 'utf8')).toBe(lockText);
    process.stderr.write(`[e2e] generate --vendor --rebuild (5 packages) took ${seconds.toFixed(2)} s\n`);
  });

  it('vendor --verify passes the store, then catches a tampered file (exit 1)', async () => {
    expect((await runCli('vendor', ...conn(), '-l', lock, '--verify')).code).toBe(0);
    const bad = join(work, 'tampered.debs');
    cpSync(store, bad, { recursive: true });
    const e = manifest(bad).packages['libtilde0:amd64']!;
    const file = join(bad, `${e.sha256}.deb`);
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    writeFileSync(file, bytes);
    const r = await runCli('vendor', ...conn(), '-l', lock, '--store', bad, '--verify');
    expect(r.code).toBe(1);
    expect(r.out).toContain('libtilde0:amd64');
    expect(r.out).toContain('tampered');
  });

  it('the archive moved on: plan shows store actions instead of blocked hosts', async () => {
    await archiveMovesOn(work);
    const out = join(work, 'plan.json');
    const r = await runCli('plan', ...conn(), '-l', lock, '-o', out, '--format', 'json');
    expect(r.code, r.err).toBe(0);
    const plan = JSON.parse(readFileSync(out, 'utf8')) as PlanFile;
    const host = (n: string) => plan.hosts.find((h) => h.name === n)!;
    for (const n of ['node03', 'node04', 'node05']) {
      expect(host(n).status, JSON.stringify(host(n).blocked)).toBe('changes');
      for (const a of host(n).actions) {
        if (a.type === 'write-pins') continue;
        expect(a.source).toBe('store');
        expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
      }
    }
    const acts = (n: string) =>
      Object.fromEntries(
        host(n).actions.flatMap((a) => (a.type === 'write-pins' ? [] : [[a.package, a.type]])),
      );
    expect(acts('node03')).toEqual({
      'fleet-bin:amd64': 'upgrade',
      'libfleet1:amd64': 'upgrade',
      'libepoch0:amd64': 'upgrade',
      'libtilde0:amd64': 'upgrade',
    });
    expect(acts('node04')).toEqual({
      'fleet-bin:amd64': 'downgrade',
      'libfleet1:amd64': 'downgrade',
      'libtilde0:amd64': 'downgrade',
    });
    expect(acts('node05')).toMatchObject({
      'golden-extra:amd64': 'install',
      'fleet-bin:amd64': 'install',
      'libtilde0:amd64': 'install',
    });
    // Without the store the same fleet is blocked: the store is what makes these hosts convergeable.
    const empty = join(work, 'no-store');
    mkdirSync(empty);
    writeFileSync(join(empty, 'manifest.yaml'), 'storeVersion: 1\npackages: {}\n');
    const blocked = JSON.parse(
      (await runCli('plan', ...conn(), '-l', lock, '--store', empty, '--format', 'json')).out,
    ) as PlanFile;
    expect(blocked.hosts.find((h) => h.name === 'node03')!.status).toBe('blocked');
    const text = await runCli('plan', ...conn(), '-l', lock, '--limit', 'node04');
    expect(text.out).toMatch(/downgrade libfleet1:amd64 2\.31-0ubuntu9\.16 → 2\.31-0ubuntu9\.14 \(store\)/);
    const md = await runCli('plan', ...conn(), '-l', lock, '--limit', 'node04', '--format', 'markdown');
    expect(md.out).toMatch(
      /\| downgrade \| `libfleet1:amd64` \| `2\.31-0ubuntu9\.16` \| `2\.31-0ubuntu9\.14` \| store \|/,
    );
  });

  it('a tampered store file is refused before it is sent: nothing installed, no pins, no upload left', async () => {
    const bad = join(work, 'tampered-apply.debs');
    cpSync(store, bad, { recursive: true });
    const e = manifest(bad).packages['libfleet1:amd64']!;
    const file = join(bad, `${e.sha256}.deb`);
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    writeFileSync(file, bytes);
    const before = await versions('node03');
    const status = readFileSync(join(sb.node('node03').root, 'var/lib/dpkg/status'));
    const r = await runCli('apply', ...conn(), '-l', lock, '--store', bad, '--yes', '--limit', 'node03');
    expect(r.code).toBe(3);
    expect(r.out + r.err).toContain(
      `package store file ${file} does not hash to its name (tampered or corrupt); nothing was sent`,
    );
    expect(await versions('node03')).toEqual(before);
    expect(readFileSync(join(sb.node('node03').root, 'var/lib/dpkg/status'))).toEqual(status);
    expect(existsSync(join(sb.node('node03').root, 'etc/apt/preferences.d/criu-lock.pref'))).toBe(false);
    expect(existsSync(join(sb.node('node03').root, 'var/lib/criu-lock/store-upload'))).toBe(false);
  });

  it('apply converges upgrade, downgrade, epoch, ~ and golden-only nodes from the store; build-IDs equal the golden node', async () => {
    const started = Date.now();
    const r = await runCli('apply', ...conn(), '-l', lock, join(work, 'plan.json'));
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.out + r.err).toBe(0);
    for (const n of ['node02', 'node03', 'node04', 'node05']) {
      const v = await versions(n);
      for (const [pkg, want] of WANT) expect(v.get(pkg), `${n} ${pkg}`).toBe(want);
      for (const f of ELF)
        expect(await readelfBuildId(n, f), `${n} ${f}`).toBe(await readelfBuildId('node01', f));
      expect(existsSync(join(sb.node(n).root, 'var/lib/criu-lock/store-upload'))).toBe(false);
    }
    // The rebuilt golden-only library is byte-identical to the golden node's.
    const sum = async (n: string) =>
      (await nodeExec(n, ['sha256sum', `${LIBDIR}/libgoldenextra.so.1`])).stdout.split(' ')[0];
    expect(await sum('node05')).toBe(await sum('node01'));
    const check = await runCli('check', ...conn(), '-l', lock);
    expect(check.code, check.out).toBe(0);
    process.stderr.write(
      `[e2e] apply from the store (3 drifted nodes + 1 ok) took ${seconds.toFixed(2)} s\n`,
    );
  });

  it('a second apply is a no-op: every host ok, nothing uploaded', async () => {
    const r = await runCli('apply', ...conn(), '-l', lock, '--yes', '--format', 'json');
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as {
      hosts: { name: string; status: string; tasks: { module: string; status: string }[] }[];
    };
    for (const h of report.hosts) {
      expect(h.status, h.name).toBe('ok');
      expect(h.tasks.find((t) => t.module === 'store_upload')?.status).toBe('ok');
    }
  });

  it('--archive fetches the locked versions from a snapshot repository over HTTP, through a private apt setup', async () => {
    snapshot = await serveSnapshot(work);
    const dir = join(work, 'from-archive.debs');
    const sources = (
      await nodeExec('node01', ['sh', '-c', 'cat /etc/apt/sources.list.d/* ; ls /var/lib/apt/lists'])
    ).stdout;
    const r = await runCli('vendor', ...conn(), '-l', lock, '--store', dir, '--archive', snapshot.url, '-v');
    // golden-extra was never in any archive and --rebuild was not given: reported, exit 3.
    expect(r.code, r.err).toBe(3);
    expect(r.err).toMatch(/unprovidable golden-extra:amd64=1\.0-1; tried:/);
    expect(r.err).toContain(`archive ${snapshot.url}: `);
    const m = manifest(dir);
    for (const k of ['fleet-bin:amd64', 'libepoch0:amd64', 'libfleet1:amd64', 'libtilde0:amd64']) {
      expect(m.packages[k]?.origin, k).toBe(`archive ${snapshot.url}`);
      expect(m.packages[k]?.sha256).toBe(manifest(store).packages[k]?.sha256);
    }
    expect(m.packages['golden-extra:amd64']).toBeUndefined();
    // The golden node's own apt configuration is unchanged, and no temporary directory is left.
    expect(
      (await nodeExec('node01', ['sh', '-c', 'cat /etc/apt/sources.list.d/* ; ls /var/lib/apt/lists']))
        .stdout,
    ).toBe(sources);
    expect(
      (await nodeExec('node01', ['sh', '-c', 'ls /var/tmp | grep criu-lock || true'])).stdout.trim(),
    ).toBe('');
  });

  it('--rebuild refuses a golden node whose conffile was edited, with the file named', async () => {
    const conf = join(work, 'adduser.yaml');
    expect((await runCli('generate', ...conn(), '--package', 'adduser', '-o', conf)).code).toBe(0);
    const dir = join(work, 'adduser.debs');
    const ok = await runCli('vendor', ...conn(), '-l', conf, '--store', dir, '--rebuild');
    expect(ok.code, ok.err).toBe(0);
    expect(manifest(dir).packages['adduser:all']?.origin).toBe('rebuilt');
    await nodeExec('node01', ['sh', '-c', 'echo "# local edit" >> /etc/adduser.conf']);
    rmSync(dir, { recursive: true });
    const r = await runCli('vendor', ...conn(), '-l', conf, '--store', dir, '--rebuild');
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/conffile \/etc\/adduser\.conf was edited on node01/);
    expect(manifest(dir).packages['adduser:all']).toBeUndefined();
    const left = await run([
      'sh',
      '-c',
      `ls ${join(sb.node('node01').root, 'var/tmp')} | grep criu-lock || true`,
    ]);
    expect(left.stdout.trim()).toBe('');
  });
});
