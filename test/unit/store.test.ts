import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installArgv } from '../../src/apply/modules/apt-install.js';
import { storeUpload } from '../../src/apply/modules/store-upload.js';
import type { ModuleContext } from '../../src/apply/modules/types.js';
import { CriuLockError } from '../../src/errors.js';
import type { HostPlan, PackageAction } from '../../src/plan/plan-file.js';
import { renderPins, sha256Hex } from '../../src/plan/pins.js';
import { planHost, type StoreIndex } from '../../src/plan/planner.js';
import { renderPlanMarkdown, renderPlanText } from '../../src/report/plan-report.js';
import {
  debPath,
  parseManifest,
  serializeManifest,
  storeDir,
  storeIndexFor,
  type Manifest,
} from '../../src/store/manifest.js';
import {
  REMOTE_STORE_DIR,
  remoteDebPath,
  UPLOAD_CHECK_SCRIPT,
  uploadStoreFiles,
} from '../../src/store/upload.js';
import { createLocalTransport } from '../../src/transport/local-transport.js';
import { aptDebName, parseArchive, verifyStore } from '../../src/store/vendor.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from '../../src/transport/types.js';
import { caught } from '../helpers/caught.js';
import { makeFacts, makeLock, pv } from './core-fixtures.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const MANIFEST: Manifest = {
  storeVersion: 1,
  packages: {
    'zlib1g:amd64': {
      version: '1:1.2.13.dfsg-1',
      architecture: 'amd64',
      sha256: 'b'.repeat(64),
      size: 90_000,
      origin: 'archive http://snapshot.example/debian/20240101T000000Z/',
    },
    'libc6:amd64': {
      version: '2.31-0ubuntu9.14',
      architecture: 'amd64',
      sha256: 'a'.repeat(64),
      size: 2_800_000,
      origin: 'golden-apt',
    },
    'golden-extra:amd64': {
      version: '1.0-1',
      architecture: 'amd64',
      sha256: 'c'.repeat(64),
      size: 2404,
      origin: 'rebuilt',
    },
  },
};

describe('manifest', () => {
  it('is deterministic: sorted keys, fixed layout, reads back equal', () => {
    const text = serializeManifest(MANIFEST);
    const reordered: Manifest = {
      storeVersion: 1,
      packages: Object.fromEntries(Object.entries(MANIFEST.packages).reverse()),
    };
    expect(serializeManifest(reordered)).toBe(text);
    expect(text.split('\n').filter((l) => /^ {2}\S/.test(l))).toEqual([
      '  golden-extra:amd64:',
      '  libc6:amd64:',
      '  zlib1g:amd64:',
    ]);
    expect(parseManifest(text, 'm.yaml')).toEqual(MANIFEST);
  });

  it('rejects a bad entry with file:line', () => {
    const text = serializeManifest(MANIFEST).replace(`sha256: ${'a'.repeat(64)}`, 'sha256: nothex');
    const line = text.split('\n').findIndex((l) => l.includes('nothex')) + 1;
    const err = (() => {
      try {
        parseManifest(text, 'm.yaml');
      } catch (e) {
        return e as CriuLockError;
      }
      throw new Error('no error');
    })();
    expect(err).toBeInstanceOf(CriuLockError);
    expect(err.message).toMatch(/^packages\.libc6:amd64\.sha256: must be 64 lowercase hex digits/);
    expect(err.location).toEqual({ file: 'm.yaml', line });
  });

  it('rejects an unknown storeVersion and unknown keys', () => {
    expect(() => parseManifest('storeVersion: 2\npackages: {}\n', 'm.yaml')).toThrow(
      /unsupported storeVersion 2/,
    );
    expect(() =>
      parseManifest(
        serializeManifest(MANIFEST).replace('    size: 2404', '    size: 2404\n    extra: 1'),
        'm.yaml',
      ),
    ).toThrow(/extra|unrecognized/i);
  });

  it('defaults to criu-lock.debs beside the lockfile; plan ignores a missing default store, not a missing --store', () => {
    expect(storeDir('locks/criu-lock.yaml')).toBe('locks/criu-lock.debs');
    expect(storeDir('locks/criu-lock.yaml', '/srv/debs')).toBe('/srv/debs');
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-store-unit-'));
    const lock = makeLock({});
    expect(storeIndexFor(lock, join(dir, 'criu-lock.yaml'))).toBeUndefined();
    expect(() => storeIndexFor(lock, join(dir, 'criu-lock.yaml'), join(dir, 'nope'))).toThrow(
      /no such directory/,
    );
  });

  it("refuses a store whose entry claims the archive's bytes under a locked version but not the lock's sha256", () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-store-unit-'));
    const store = join(dir, 'criu-lock.debs');
    mkdirSync(store);
    writeFileSync(join(store, 'manifest.yaml'), serializeManifest(MANIFEST));
    const lockAt = (sha256: string, version = '2.31-0ubuntu9.14') =>
      makeLock({ packages: { 'libc6:amd64': { version, sha256 } } });
    const lockfile = join(dir, 'criu-lock.yaml');
    expect(storeIndexFor(lockAt('a'.repeat(64)), lockfile)?.get('libc6:amd64')?.sha256).toBe('a'.repeat(64));
    const err = caught(() => storeIndexFor(lockAt('d'.repeat(64)), lockfile));
    expect(err).toBeInstanceOf(CriuLockError);
    expect(err.message).toMatch(
      /^package store .*: libc6:amd64=2\.31-0ubuntu9\.14: its sha256 aaaaaaaaaaaa… is not the lock's dddddddddddd… \(origin golden-apt\)$/,
    );
    expect(err.location?.file).toBe(join(store, 'manifest.yaml'));
    // Another version, or a rebuilt entry (its own bytes by design), is not compared.
    expect(storeIndexFor(lockAt('d'.repeat(64), '2.31-0ubuntu9.9'), lockfile)).toBeDefined();
    expect(
      storeIndexFor(
        makeLock({ packages: { 'golden-extra:amd64': { version: '1.0-1', sha256: 'd'.repeat(64) } } }),
        lockfile,
      ),
    ).toBeDefined();
  });

  it('reads the manifest only from a regular file, and --store only as a directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-store-unit-'));
    const lockfile = join(dir, 'criu-lock.yaml');
    const lock = makeLock({});
    const store = join(dir, 'criu-lock.debs');
    mkdirSync(store);
    execFileSync('mkfifo', [join(store, 'manifest.yaml')]);
    expect(() => storeIndexFor(lock, lockfile)).toThrow(
      /manifest .*manifest\.yaml is not a regular file \(a device, FIFO or socket\)/,
    );
    writeFileSync(join(dir, 'afile'), 'x');
    expect(() => storeIndexFor(lock, lockfile, join(dir, 'afile'))).toThrow(/afile is not a directory/);
    const other = join(dir, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'manifest.yaml'), 'apiVersion: v1\nkind: ConfigMap\n');
    expect(() => storeIndexFor(lock, lockfile, other)).toThrow(
      /is not a criu-lock package store manifest \(it has no storeVersion\)/,
    );
  });
});

describe('--archive and apt file names', () => {
  const debian = { id: 'debian', versionId: '12', codename: 'bookworm', architecture: 'amd64' };
  const ubuntu = { id: 'ubuntu', versionId: '20.04', codename: 'focal', architecture: 'amd64' };

  it('defaults suites and components to the lock platform', () => {
    expect(parseArchive('http://snap.example/debian/20240101T000000Z/', debian)).toEqual({
      url: 'http://snap.example/debian/20240101T000000Z/',
      suites: ['bookworm', 'bookworm-updates'],
      components: ['main'],
    });
    expect(parseArchive('https://mirror.example/ubuntu/', ubuntu).suites).toEqual([
      'focal',
      'focal-updates',
      'focal-security',
    ]);
    expect(parseArchive('http://x.example/repo/ ./', debian)).toEqual({
      url: 'http://x.example/repo/',
      suites: ['./'],
      components: [],
    });
    expect(parseArchive('http://x.example/ubuntu focal-security main universe', ubuntu).components).toEqual([
      'main',
      'universe',
    ]);
  });

  it.each(["http://x/'; rm -rf /", 'ftp://x/', 'x', "http://x/ bookworm 'main'", 'http://x/] evil'])(
    'rejects %s',
    (v) => {
      expect(() => parseArchive(v, debian)).toThrow(CriuLockError);
    },
  );

  it('names downloads as apt does (epoch colon as %3a)', () => {
    expect(aptDebName('libepoch0:amd64', '1:1.0-1')).toBe('libepoch0_1%3a1.0-1_amd64.deb');
    expect(aptDebName('tzdata:all', '2024a-0+deb12u1')).toBe('tzdata_2024a-0+deb12u1_all.deb');
  });
});

describe('planHost with a package store', () => {
  const lock = makeLock({ packages: { 'foo:amd64': { version: '1.0-1' } } });
  const pins = renderPins(lock);
  const facts = (available: string[]) =>
    makeFacts({
      pinSha256: sha256Hex(pins),
      packages: { 'foo:amd64': '2.0-1' },
      policies: { 'foo:amd64': [pv('2.0-1', 100, { installed: true }), ...available.map((v) => pv(v))] },
    });
  const store: StoreIndex = new Map([['foo:amd64', { version: '1.0-1', sha256: 'd'.repeat(64) }]]);

  it('a version the sources lack but the store holds is an ordinary action from the store', () => {
    const p = planHost(lock, facts([]), pins, store);
    expect(p.status).toBe('changes');
    expect(p.actions).toEqual([
      {
        type: 'downgrade',
        package: 'foo:amd64',
        from: '2.0-1',
        to: '1.0-1',
        source: 'store',
        sha256: 'd'.repeat(64),
      },
    ]);
  });

  it("the node's own sources win when they offer the version: a node never sees two files under one version", () => {
    expect(planHost(lock, facts(['1.0-1']), pins, store).actions).toEqual([
      { type: 'downgrade', package: 'foo:amd64', from: '2.0-1', to: '1.0-1' },
    ]);
  });

  it('a store holding another version does not help, and the detail says the store was asked', () => {
    const other: StoreIndex = new Map([['foo:amd64', { version: '1.0-2', sha256: 'd'.repeat(64) }]]);
    const p = planHost(lock, facts([]), pins, other);
    expect(p.status).toBe('blocked');
    expect(p.blocked[0]).toMatchObject({ reason: 'version-unavailable', package: 'foo:amd64' });
    expect(p.blocked[0]!.detail).toMatch(/the package store does not hold it either/);
    expect(planHost(lock, facts([]), pins).blocked[0]!.detail).not.toMatch(/store/);
  });

  it('text and Markdown show where the package comes from', () => {
    const plan = {
      planVersion: 1 as const,
      lock: { path: 'criu-lock.yaml', digest: lock.digest },
      hosts: [planHost(lock, facts([]), pins, store)],
    };
    expect(renderPlanText(plan)).toContain('↓ downgrade foo:amd64 2.0-1 → 1.0-1 (store)');
    expect(renderPlanMarkdown(plan)).toContain('| downgrade | `foo:amd64` | `2.0-1` | `1.0-1` | store |');
  });
});

describe('apt_install with store packages', () => {
  it('installs the uploaded .debs in the same single transaction', () => {
    const actions: PackageAction[] = [
      { type: 'upgrade', package: 'libc-bin:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' },
      {
        type: 'upgrade',
        package: 'libc6:amd64',
        from: '2.31-0ubuntu9.9',
        to: '2.31-0ubuntu9.14',
        source: 'store',
        sha256: 'a'.repeat(64),
      },
    ];
    const argv = installArgv(actions, { lockTimeout: 5, simulate: false });
    expect(argv.filter((a) => a === 'install')).toHaveLength(1);
    expect(argv.slice(-2)).toEqual([
      'libc-bin:amd64=2.31-0ubuntu9.14',
      `${REMOTE_STORE_DIR}/${'a'.repeat(64)}.deb`,
    ]);
  });
});

/** A host with a file system of sha256 sums, answering the store's scripts; `corrupt` flips uploads. */
class StoreHost implements Transport {
  readonly host = 'node-b';
  readonly files = new Map<string, string>();
  /** What dpkg-deb says of each file: by default what the test's one action installs. */
  readonly fields = new Map<string, string>();
  readonly log: string[] = [];
  constructor(private readonly corrupt = false) {}

  private res(stdout = '', exitCode = 0): Promise<CommandResult> {
    return Promise.resolve({ command: '', exitCode, stdout, stderr: '', durationMs: 1, timedOut: false });
  }

  exec(argv: readonly string[], _opts?: ExecOptions): Promise<CommandResult> {
    const script = argv[2] ?? '';
    const args = argv.slice(4);
    if (script === UPLOAD_CHECK_SCRIPT) {
      this.log.push('check');
      return this.res(
        args
          .flatMap((f) =>
            this.files.has(f)
              ? [
                  `${this.files.get(f)}  ${f}\n`,
                  `F\t${f}\t${this.fields.get(f) ?? 'golden-extra\t1.0-1\tamd64'}\n`,
                ]
              : [],
          )
          .join(''),
      );
    }
    if (script.includes('sha256sum')) {
      this.log.push('sha256sum');
      return this.res(
        args.flatMap((f) => (this.files.has(f) ? [`${this.files.get(f)}  ${f}\n`] : [])).join(''),
      );
    }
    if (script.includes('rm -f')) {
      this.log.push(`rm ${args.length - 1}`);
      for (const f of args.slice(1)) this.files.delete(f);
      return this.res();
    }
    this.log.push(script.split(' ')[0] ?? '?');
    return this.res();
  }

  putFile(path: string, content: string | Buffer, _opts?: PutFileOptions): Promise<CommandResult> {
    this.log.push(`put ${path}`);
    this.files.set(path, this.corrupt ? sha(`${content.toString()}!`) : sha(content));
    return this.res();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('store upload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'criu-lock-upload-'));
  const deb = Buffer.from('!<arch>\nnot really a deb, but bytes with a sha256\n');
  const debSha = sha(deb);
  writeFileSync(debPath(dir, debSha), deb);
  const actions: PackageAction[] = [
    {
      type: 'install',
      package: 'golden-extra:amd64',
      from: null,
      to: '1.0-1',
      source: 'store',
      sha256: debSha,
    },
  ];

  it('uploads only what the host lacks, checked on the host', async () => {
    const t = new StoreHost();
    expect(await uploadStoreFiles(t, dir, actions)).toEqual({
      ok: true,
      files: 1,
      bytes: deb.length,
      reused: 0,
    });
    expect(t.log).toEqual(['umask', 'sha256sum', `put ${remoteDebPath(debSha)}`, 'check']);
    t.log.length = 0;
    expect(await uploadStoreFiles(t, dir, actions)).toEqual({ ok: true, files: 1, bytes: 0, reused: 1 });
    expect(t.log.some((l) => l.startsWith('put'))).toBe(false);
  });

  it('refuses a file whose sha256 on the host is not the planned one, and removes the upload', async () => {
    const t = new StoreHost(true);
    const r = await uploadStoreFiles(t, dir, actions);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatch(
      /^refused: the uploaded \.deb for golden-extra:amd64=1\.0-1 does not have the sha256 the plan names/,
    );
    expect(t.files.size).toBe(0);
  });

  it("refuses a .deb whose control fields are not the action's package, version and architecture", async () => {
    const t = new StoreHost();
    t.fields.set(remoteDebPath(debSha), 'apt-utils\t2.6.1\tamd64');
    const r = await uploadStoreFiles(t, dir, actions);
    expect(r).toEqual({
      ok: false,
      error:
        "refused: the package store's .deb for golden-extra:amd64=1.0-1 says it is apt-utils 2.6.1 amd64 (package version architecture); nothing was installed",
    });
    expect(t.files.size).toBe(0);
  });

  it('sends nothing when the local store file is not what its name says, or not a regular file', async () => {
    const other = mkdtempSync(join(tmpdir(), 'criu-lock-upload-'));
    writeFileSync(join(other, 'secret'), 'controller secret');
    symlinkSync(join(other, 'secret'), debPath(other, debSha));
    const t = new StoreHost();
    const r = await uploadStoreFiles(t, other, actions);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.error).toMatch(/does not hash to its name \(tampered or corrupt\); nothing was sent$/);
    expect(t.log.some((l) => l.startsWith('put'))).toBe(false);
    rmSync(debPath(other, debSha));
    execFileSync('mkfifo', [debPath(other, debSha)]);
    const fifo = await uploadStoreFiles(new StoreHost(), other, actions);
    expect(fifo.ok).toBe(false);
    if (!fifo.ok) expect(fifo.error).toMatch(/is not a regular file/);
  });

  it('UPLOAD_CHECK_SCRIPT prints sha256 and control fields of a real .deb through a real shell', async () => {
    const work = mkdtempSync(join(tmpdir(), 'criu-lock-upload-sh-'));
    mkdirSync(join(work, 'pkg', 'DEBIAN'), { recursive: true });
    writeFileSync(
      join(work, 'pkg', 'DEBIAN', 'control'),
      'Package: zz-upload\nVersion: 1:2.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n',
    );
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', join(work, 'pkg'), join(work, 'a.deb')], {
      stdio: 'ignore',
    });
    writeFileSync(join(work, 'b.deb'), 'not a deb');
    const r = await createLocalTransport('local').exec([
      'sh',
      '-c',
      UPLOAD_CHECK_SCRIPT,
      'sh',
      join(work, 'a.deb'),
      join(work, 'b.deb'),
      join(work, 'missing.deb'),
    ]);
    expect(r.stdout).toBe(
      `${sha(readFileSync(join(work, 'a.deb')))}  ${join(work, 'a.deb')}\nF\t${join(work, 'a.deb')}\tzz-upload\t1:2.0-1\tall\n` +
        `${sha('not a deb')}  ${join(work, 'b.deb')}\nF\t${join(work, 'b.deb')}\t\n`,
    );
  });

  it('store_upload changes nothing in check mode and nothing on a host without store actions', async () => {
    const t = new StoreHost();
    const plan: HostPlan = {
      name: 'node-b',
      status: 'changes',
      fingerprint: null,
      actions,
      blocked: [],
      notes: [],
    };
    const ctx = (p: HostPlan, checkMode: boolean): ModuleContext => ({
      host: 'node-b',
      transport: t,
      lock: makeLock(),
      plan: p,
      pins: '',
      storeDir: dir,
      checkMode,
      changedBy: new Set(),
      verbose: () => undefined,
    });
    expect((await storeUpload.run(ctx(plan, true), undefined)).status).toBe('skipped');
    expect((await storeUpload.run(ctx({ ...plan, actions: [] }, false), undefined)).status).toBe('ok');
    expect(t.log).toEqual([]);
    expect((await storeUpload.run(ctx(plan, false), undefined)).status).toBe('changed');
  });
});

describe('vendor --verify', () => {
  it('checks every file against its name and size, and the manifest against the lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-verify-'));
    const a = Buffer.from('deb a');
    const b = Buffer.from('deb b');
    writeFileSync(debPath(dir, sha(a)), a);
    writeFileSync(debPath(dir, sha(b)), b);
    const lock = makeLock({
      packages: {
        'a:amd64': { version: '1.0-1', sha256: sha(a) },
        'b:amd64': { version: '2.0-1' },
        'c:amd64': { version: '3.0-1' },
      },
    });
    const m: Manifest = {
      storeVersion: 1,
      packages: {
        'a:amd64': {
          version: '1.0-1',
          architecture: 'amd64',
          sha256: sha(a),
          size: a.length,
          origin: 'golden-apt',
        },
        'b:amd64': {
          version: '2.0-1',
          architecture: 'amd64',
          sha256: sha(b),
          size: b.length,
          origin: 'rebuilt',
        },
      },
    };
    expect(verifyStore(lock, dir, m)).toEqual([{ key: 'c:amd64', problem: 'not in the store' }]);
    writeFileSync(debPath(dir, sha(b)), Buffer.from('deb B'));
    const problems = verifyStore(lock, dir, m);
    expect(problems).toContainEqual({
      key: 'b:amd64',
      problem: `${debPath(dir, sha(b))} does not hash to its name (tampered or corrupt)`,
    });
    const wrongVersion = makeLock({ packages: { 'a:amd64': { version: '1.0-2' } } });
    expect(
      verifyStore(wrongVersion, dir, { storeVersion: 1, packages: { 'a:amd64': m.packages['a:amd64']! } }),
    ).toEqual([{ key: 'a:amd64', problem: 'the store holds 1.0-1, the lock needs 1.0-2' }]);
    expect(readFileSync(debPath(dir, sha(a)))).toEqual(a);
  });
});
