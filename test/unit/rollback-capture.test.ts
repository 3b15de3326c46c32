import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import { MODULES } from '../../src/apply/modules/registry.js';
import type { ModuleContext } from '../../src/apply/modules/types.js';
import type { HostPlan } from '../../src/plan/plan-file.js';
import { PIN_FILE, renderPins, sha256Hex } from '../../src/plan/pins.js';
import type { TransactionContext } from '../../src/rollback/apply-transaction.js';
import {
  CAPTURE_MARK,
  captureTransaction,
  FINISH_SCRIPT,
  parseRetention,
  PRUNE_SCRIPT,
} from '../../src/rollback/host.js';
import { PROBE_VERSION } from '../../src/facts/probe-script.js';
import { elfAnswer, FAKE_CLOCK } from '../helpers/fake-fleet.js';
import { parseManifest } from '../../src/rollback/manifest.js';
import type { CommandResult, ExecOptions, PutFileOptions, Transport } from '../../src/transport/types.js';
import { makeLock } from './core-fixtures.js';

/** A transport that answers scripts by a marker in their text and records every call. */
class ScriptedTransport implements Transport {
  readonly host = 'node-b';
  readonly execs: Array<{ argv: string[]; stdin: string }> = [];
  readonly puts: Array<{ path: string; content: string }> = [];
  constructor(private readonly answers: Array<[marker: string, reply: Partial<CommandResult>]>) {}
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    const stdin = opts.stdin?.toString() ?? '';
    this.execs.push({ argv: [...argv], stdin });
    const text = `${argv.join(' ')}\n${stdin}`;
    const r = this.answers.find(([m]) => text.includes(m))?.[1] ?? {};
    return Promise.resolve({
      command: argv.join(' '),
      exitCode: 0,
      stdout: '',
      stderr: '',
      durationMs: 1,
      timedOut: false,
      ...r,
    });
  }
  putFile(path: string, content: string | Buffer, _opts: PutFileOptions = {}): Promise<CommandResult> {
    this.puts.push({ path, content: content.toString() });
    return Promise.resolve({
      command: `put ${path}`,
      exitCode: 0,
      stdout: '',
      stderr: '',
      durationMs: 1,
      timedOut: false,
    });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const LOCK = makeLock({
  packages: {
    'libfleet1:amd64': { version: '2.31-0ubuntu9.14' },
    'libtilde0:amd64': { version: '3.0~rc2-1' },
  },
});
const PINS = renderPins(LOCK);
const PLAN: HostPlan = {
  name: 'node-b',
  status: 'changes',
  fingerprint: `sha256:${'0'.repeat(64)}`,
  actions: [
    { type: 'write-pins', path: PIN_FILE, sha256: sha256Hex(PINS) },
    { type: 'upgrade', package: 'libfleet1:amd64', from: '2.31-0ubuntu9.9', to: '2.31-0ubuntu9.14' },
    { type: 'install', package: 'libtilde0:amd64', from: null, to: '3.0~rc2-1' },
  ],
  blocked: [],
  notes: [],
};
const SHA = 'c'.repeat(64);
const TXID = '20261129T011731Z-dbccbc';
const CURRENT = [
  '=== versions',
  'libfleet1:amd64\t2.31-0ubuntu9.9\tii ',
  '=== auto',
  'libfleet1',
  '=== pins',
  '=== arch',
  'amd64',
  '',
].join('\n');
/** The answer of the state read and capture in one script: the state, then the capture's output. */
const withState = (capture: string, state = CURRENT): [string, Partial<CommandResult>] => [
  CAPTURE_MARK,
  { stdout: `${state}=== capture\n${capture}` },
];

function ctx(t: Transport, tx: TransactionContext | undefined, checkMode = false): ModuleContext {
  return {
    host: 'node-b',
    transport: t,
    lock: LOCK,
    plan: PLAN,
    pins: PINS,
    checkMode,
    changedBy: new Set(),
    verbose: () => undefined,
    transaction: tx,
  };
}

const capture = MODULES.get('capture')!;

const hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex');
const BUILD_ID = 'ff1510db0abb615f60e4d6bbef7e3d52b9ab63e5';
/** The build-ID probe at the end of the capture script: libfleet1's one ELF file. */
const PROBE = [
  '=== probe',
  `@@probe ${PROBE_VERSION}`,
  '@@os-release',
  'ID=ubuntu',
  '@@arch',
  'amd64',
  '@@foreign',
  '@@dpkg',
  ['libfleet1', 'amd64', '2.31-0ubuntu9.9', 'install', 'installed', 'ok', 'same', '', '', ''].join('\t'),
  '@@files',
  `T\t${FAKE_CLOCK}`,
  [
    'F',
    hex('libfleet1:amd64'),
    hex('/usr/lib/x86_64-linux-gnu/libfleet.so.1'),
    'elf',
    '14480',
    '0644',
    '77',
    '1:2:3',
    elfAnswer(BUILD_ID),
  ].join('\t'),
  '@@end',
  '',
].join('\n');

describe('capture module', () => {
  it('records versions, the .deb, marks and the absent pin file, then reports the transaction', async () => {
    const t = new ScriptedTransport([
      withState(
        `ok\tlibfleet1:amd64\tapt-download\t${SHA}\t${SHA}\tlibfleet1 2.31-0ubuntu9.9 amd64 \n${PROBE}`,
      ),
      ['criu-lock-tx-finish', { stdout: 'txdu\t12\nkept\t1\ndu\t12\n' }],
    ]);
    const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
    const r = await capture.run(ctx(t, tx), undefined);
    expect(r.status, r.message).toBe('changed');
    expect(r.message).toMatch(new RegExp(`^transaction ${TXID}: 2 package\\(s\\) captured \\(12 KiB\\)`));
    const put = { content: t.execs.find((e) => e.argv[3] === 'criu-lock-tx-finish')!.stdin };
    const m = parseManifest(put.content);
    expect(m.ok).toBe(true);
    if (!m.ok) return;
    expect(m.manifest.packages).toEqual([
      {
        package: 'libfleet1:amd64',
        before: '2.31-0ubuntu9.9',
        after: '2.31-0ubuntu9.14',
        auto: true,
        deb: { file: 'libfleet1_2.31-0ubuntu9.9_amd64.deb', sha256: SHA, source: 'apt-download' },
      },
      { package: 'libtilde0:amd64', before: null, after: '3.0~rc2-1', auto: null, deb: null },
    ]);
    expect(m.manifest.pins).toEqual({ path: PIN_FILE, before: null, after: sha256Hex(PINS) });
    expect(m.manifest).toMatchObject({ status: 'captured', kind: 'apply', lockDigest: LOCK.digest });
    expect(m.manifest.files).toEqual([
      { path: '/usr/lib/x86_64-linux-gnu/libfleet.so.1', package: 'libfleet1:amd64', buildId: BUILD_ID },
    ]);
    expect(tx.manifest?.id).toBe(TXID);
    expect(tx).toMatchObject({ bytes: 12 * 1024, diskBytes: 12 * 1024, kept: 1 });
    // Only the installed version is fetched; the package being newly installed has nothing to capture.
    const whole = t.execs.find((e) => e.stdin.includes(CAPTURE_MARK))!.stdin;
    // The state read asks dpkg about every package the plan changes; the capture part only fetches.
    expect(whole.slice(0, whole.indexOf(CAPTURE_MARK))).toContain('libtilde0:amd64');
    const script = whole.slice(whole.indexOf(CAPTURE_MARK));
    expect(script).toContain('apt-cache show libfleet1:amd64=2.31-0ubuntu9.9 2>/dev/null');
    expect(script).toContain('reuse libfleet1_2.31-0ubuntu9.9_amd64.deb');
    expect(script).not.toContain('libtilde0');
    // The build-IDs are read by the same script: the probe for the captured packages' files.
    expect(script).toContain(`E\t${hex('libfleet1:amd64')}`);
    // Two round trips: the state with the capture (debs and build-IDs), the manifest with retention.
    expect(t.execs.map((e) => e.argv[3] ?? e.argv.join(' '))).toEqual(['sh -s', 'criu-lock-tx-finish']);
    // The capture part runs only if dpkg still has the versions the plan saw.
    expect(whole).toContain(
      `if [ "$got" != 'libfleet1:amd64\t2.31-0ubuntu9.9' ]; then printf '=== moved\\n'; exit 0; fi`,
    );
    expect(t.puts).toEqual([]);
    expect(t.execs.at(-1)!.stdin).toBe(put.content);
  });

  it.each([
    [
      'apt cannot fetch it',
      `fail\tlibfleet1:amd64\tE: Failed to fetch file:/srv/repo/libfleet1_2.31-0ubuntu9.9_amd64.deb  File not found\n`,
      /libfleet1:amd64=2\.31-0ubuntu9\.9: E: Failed to fetch/,
    ],
    [
      'the .deb is another package',
      `ok\tlibfleet1:amd64\tapt-download\t${SHA}\t\tlibfleet1 2.31-0ubuntu9.16 amd64 \n`,
      /the \.deb says libfleet1 2\.31-0ubuntu9\.16 amd64/,
    ],
    [
      'the sha256 differs from the apt lists',
      `ok\tlibfleet1:amd64\tapt-download\t${SHA}\t${'d'.repeat(64)}\tlibfleet1 2.31-0ubuntu9.9 amd64 \n`,
      /differs from the apt lists/,
    ],
    [
      "the script says the hash is the lists' but gives no hash from the lists",
      `ok\tlibfleet1:amd64\tapt-download\t${SHA}\t\t=\n`,
      /libfleet1:amd64=2\.31-0ubuntu9\.9: the \.deb's fields were not read/,
    ],
    [
      'the script says nothing',
      '',
      /libfleet1:amd64=2\.31-0ubuntu9\.9: no \.deb from the apt cache or apt-get download/,
    ],
  ])(
    'fails before any change when %s, and removes the partial transaction',
    async (_why, stdout, message) => {
      const t = new ScriptedTransport([withState(stdout)]);
      const tx: TransactionContext = { id: TXID, keep: 5, now: new Date() };
      await expect(capture.run(ctx(t, tx), undefined)).rejects.toThrow(message);
      await expect(capture.run(ctx(t, tx), undefined)).rejects.toThrow(/capture failed, nothing was changed/);
      expect(t.execs.at(-1)!.argv).toEqual(['rm', '-rf', '--', `/var/lib/criu-lock/tx/${TXID}`]);
      expect(t.puts).toEqual([]);
      expect(tx.manifest).toBeUndefined();
    },
  );

  it('says the host is probably out of space when the captured .deb is empty, and removes the transaction', async () => {
    const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    const t = new ScriptedTransport([
      withState(
        `ok\tlibfleet1:amd64\tapt-download\t${EMPTY}\t${SHA}\tlibfleet1 2.31-0ubuntu9.9 amd64 \n${PROBE}`,
      ),
    ]);
    const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
    const err = await capture.run(ctx(t, tx), undefined).catch((e: unknown) => e as CriuLockError);
    expect(err).toBeInstanceOf(CriuLockError);
    expect((err as CriuLockError).message).toBe(
      'node-b: capture failed, nothing was changed: libfleet1:amd64=2.31-0ubuntu9.9: the captured .deb is empty',
    );
    expect((err as CriuLockError).hint).toMatch(
      /^\/var\/lib\/criu-lock\/tx on the host is probably out of space/,
    );
    expect(t.execs.map((e) => e.argv.join(' ')).at(-1)).toBe(`rm -rf -- /var/lib/criu-lock/tx/${TXID}`);
  });

  it('takes "=" for the fields when the hash is the apt lists\' for the package and version; the script reads them only otherwise', async () => {
    const t = new ScriptedTransport([
      withState(`ok\tlibfleet1:amd64\tapt-download\t${SHA}\t${SHA}\t=\n${PROBE}`),
      ['criu-lock-tx-finish', { stdout: 'txdu\t12\nkept\t1\ndu\t12\n' }],
    ]);
    const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
    const r = await capture.run(ctx(t, tx), undefined);
    expect(r.status, r.message).toBe('changed');
    expect(tx.manifest?.packages[0]?.deb).toEqual({
      file: 'libfleet1_2.31-0ubuntu9.9_amd64.deb',
      sha256: SHA,
      source: 'apt-download',
    });
  });

  describe('when the host moved since the plan', () => {
    // dpkg now has 9.8 where the plan saw 9.9 (someone ran apt on the host in between).
    const MOVED = CURRENT.replace('2.31-0ubuntu9.9', '2.31-0ubuntu9.8');
    const OK_98 = `ok\tlibfleet1:amd64\tapt-download\t${SHA}\t${SHA}\t=\n${PROBE.replace('2.31-0ubuntu9.9', '2.31-0ubuntu9.8')}`;
    const manifestOf = (t: ScriptedTransport) => {
      const m = parseManifest(t.execs.find((e) => e.argv[3] === 'criu-lock-tx-finish')!.stdin);
      if (!m.ok) throw new Error(m.error);
      return m.manifest;
    };

    it('the script stops before the capture (the guard), and the capture runs again for what the host has', async () => {
      const t = new ScriptedTransport([
        ['=== versions', { stdout: `${MOVED}=== moved\n` }],
        [CAPTURE_MARK, { stdout: OK_98 }],
        ['criu-lock-tx-finish', { stdout: 'txdu\t12\nkept\t1\ndu\t12\n' }],
      ]);
      const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
      const r = await capture.run(ctx(t, tx), undefined);
      expect(r.status, r.message).toBe('changed');
      expect(t.execs.map((e) => e.argv[3] ?? e.argv.join(' '))).toEqual([
        'sh -s',
        'sh -s',
        'criu-lock-tx-finish',
      ]);
      // The second script is the capture alone, of the version dpkg has now.
      expect(t.execs[1]!.stdin.startsWith(CAPTURE_MARK)).toBe(true);
      expect(t.execs[1]!.stdin).toContain('reuse libfleet1_2.31-0ubuntu9.8_amd64.deb');
      expect(manifestOf(t).packages[0]).toMatchObject({ before: '2.31-0ubuntu9.8', auto: true });
    });

    it('fails before anything is made when dpkg holds a package half-way (it would be recorded as absent)', async () => {
      const HALF = CURRENT.replace('2.31-0ubuntu9.9\tii ', '2.31-0ubuntu9.14\tiU ');
      const t = new ScriptedTransport([['=== versions', { stdout: `${HALF}=== moved\n` }]]);
      const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
      await expect(capture.run(ctx(t, tx), undefined)).rejects.toThrow(
        'node-b: capture failed, nothing was changed: dpkg holds libfleet1:amd64 (iU 2.31-0ubuntu9.14) half-way (not installed and not absent)',
      );
      expect(t.execs.map((e) => e.argv.join(' '))).toEqual(['sh -s']);
    });

    it('a capture part the guard let through is removed when the state read says otherwise, then redone', async () => {
      const t = new ScriptedTransport([
        ['=== versions', { stdout: `${MOVED}=== capture\n${OK_98.replace(/9\.8/g, '9.9')}` }],
        [CAPTURE_MARK, { stdout: OK_98 }],
        ['criu-lock-tx-finish', { stdout: 'txdu\t12\nkept\t1\ndu\t12\n' }],
      ]);
      const tx: TransactionContext = { id: TXID, keep: 5, now: new Date('2026-11-29T01:17:31Z') };
      await capture.run(ctx(t, tx), undefined);
      expect(t.execs.map((e) => e.argv.join(' '))[1]).toBe(`rm -rf -- /var/lib/criu-lock/tx/${TXID}`);
      expect(manifestOf(t).packages[0]).toMatchObject({ before: '2.31-0ubuntu9.8' });
    });

    it('the guard, run by a real sh over stand-ins for dpkg-query, apt-mark and dpkg, tells the two apart', async () => {
      const t = new ScriptedTransport([['=== versions', { stdout: `${CURRENT}=== moved\n` }]]);
      const tx: TransactionContext = { id: TXID, keep: 5, now: new Date() };
      await capture.run(ctx(t, tx), undefined).catch(() => undefined);
      const whole = t.execs[0]!.stdin;
      // Up to the capture part: the state read and the guard, then a stand-in for the capture.
      const head = `${whole.slice(0, whole.indexOf(CAPTURE_MARK))}echo CAPTURED\n`;
      const bin = mkdtempSync(join(tmpdir(), 'criu-lock-guard-'));
      try {
        const stub = (name: string, body: string): void => {
          writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
        };
        stub('apt-mark', 'echo libfleet1');
        stub('dpkg', 'echo amd64');
        const run = (dpkgSays: string): string => {
          stub('dpkg-query', `printf '${dpkgSays}'`);
          return execFileSync('sh', ['-s'], {
            input: head,
            encoding: 'utf8',
            env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
          });
        };
        // As planned (libtilde0 not installed; config-files only counts as not installed).
        expect(run('libfleet1:amd64\\t2.31-0ubuntu9.9\\tii \\nlibtilde0:amd64\\t3.0~rc1-1\\trc \\n')).toMatch(
          /\n=== capture\nCAPTURED\n$/,
        );
        // Moved: another version, held but installed, or a package the plan saw absent now there.
        for (const moved of [
          'libfleet1:amd64\\t2.31-0ubuntu9.8\\tii \\n',
          'libfleet1:amd64\\t2.31-0ubuntu9.9\\tiU \\n',
          'libfleet1:amd64\\t2.31-0ubuntu9.9\\tii \\nlibtilde0:amd64\\t3.0~rc1-1\\tii \\n',
          '',
        ])
          expect(run(moved)).toMatch(/\n=== moved\n$/);
        expect(run('libfleet1:amd64\\t2.31-0ubuntu9.9\\thi \\n')).toMatch(/\n=== capture\nCAPTURED\n$/);
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    });
  });

  it('rebuilds a version no source has any more from the installed files, or fails naming both reasons', async () => {
    const answers: Array<[string, Partial<CommandResult>]> = [
      ['=== versions', { stdout: CURRENT }],
      [
        CAPTURE_MARK,
        { stdout: `fail\tlibfleet1:amd64\tE: Failed to fetch libfleet1_2.31-0ubuntu9.9_amd64.deb\n${PROBE}` },
      ],
      ['criu-lock-tx-finish', { stdout: 'txdu\t8\n' }],
    ];
    const t = new ScriptedTransport(answers);
    const asked: string[] = [];
    const bytes = Buffer.from('!<arch>\nrebuilt');
    const tx: TransactionContext = { id: TXID, keep: 5, now: new Date() };
    const c = ctx(t, tx);
    const run = (rebuild: Parameters<typeof captureTransaction>[1]['rebuild']) =>
      captureTransaction(
        t,
        {
          id: TXID,
          host: 'node-b',
          kind: 'apply',
          lockDigest: null,
          rollbackOf: null,
          packages: [{ package: 'libfleet1:amd64', before: '2.31-0ubuntu9.9', after: '2.31-0ubuntu9.14' }],
          pinPath: PIN_FILE,
          pinsAfter: null,
          now: new Date(),
          rebuild,
        },
        { versions: new Map(), auto: new Set(), pinSha256: null },
      );
    const ok = await run((_t, p) => {
      asked.push(`${p.name}:${p.arch}=${p.version}`);
      return Promise.resolve({ bytes, sha256: 'e'.repeat(64) });
    });
    expect(asked).toEqual(['libfleet1:amd64=2.31-0ubuntu9.9']);
    expect(ok.manifest.packages[0]!.deb).toEqual({
      file: 'libfleet1_2.31-0ubuntu9.9_amd64.deb',
      sha256: 'e'.repeat(64),
      source: 'rebuilt',
    });
    expect(t.puts.find((p) => p.path.endsWith('/debs/libfleet1_2.31-0ubuntu9.9_amd64.deb'))?.content).toBe(
      bytes.toString(),
    );
    expect(c.transaction).toBe(tx);
    await expect(run(() => Promise.reject(new Error('/etc/fleet.conf was edited')))).rejects.toThrow(
      /libfleet1:amd64=2\.31-0ubuntu9\.9: E: Failed to fetch .*; rebuilding it from the installed files failed too: \/etc\/fleet\.conf was edited/,
    );
    expect(t.execs.at(-1)!.argv).toEqual(['rm', '-rf', '--', `/var/lib/criu-lock/tx/${TXID}`]);
  });

  it('is skipped with --no-capture and in check mode, touching nothing', async () => {
    const t = new ScriptedTransport([]);
    expect(await capture.run(ctx(t, undefined), undefined)).toEqual({
      status: 'skipped',
      message: 'capture off (--no-capture): this apply cannot be rolled back',
    });
    expect((await capture.run(ctx(t, { id: TXID, keep: 5, now: new Date() }, true), undefined)).status).toBe(
      'skipped',
    );
    expect(t.execs).toEqual([]);
  });
});

describe('the manifest and retention scripts (run by a real sh)', () => {
  const ids = ['20261129T011731Z-aaaaaa', '20261130T000000Z-bbbbbb', '20261201T120000Z-cccccc'];
  const setup = (): string => {
    const root = mkdtempSync(join(tmpdir(), 'criu-lock-tx-'));
    for (const id of ids) {
      mkdirSync(join(root, id, 'debs'), { recursive: true });
      writeFileSync(join(root, id, 'debs', 'a.deb'), 'x'.repeat(5000));
    }
    // Not transactions: never counted, never deleted.
    mkdirSync(join(root, 'notes'));
    writeFileSync(join(root, '20261101T000000Z-dddddd'), 'a file, not a directory');
    return root;
  };
  const sh = (script: string, args: string[], stdin = '') =>
    execFileSync('sh', ['-c', script, 'test', ...args], {
      input: stdin,
      env: { LC_ALL: 'C', PATH: process.env.PATH },
    }).toString();

  it('writes the manifest, measures the transaction and keeps the newest N', () => {
    const root = setup();
    try {
      const dir = join(root, ids[2]!);
      const out = sh(FINISH_SCRIPT, [dir, root, '2'], '{"manifest": 1}\n');
      expect(readFileSync(join(dir, 'manifest.json'), 'utf8')).toBe('{"manifest": 1}\n');
      expect(statSync(join(dir, 'manifest.json')).mode & 0o777).toBe(0o644);
      expect(readdirSync(root).sort()).toEqual(['20261101T000000Z-dddddd', ids[1], ids[2], 'notes']);
      const r = parseRetention(out);
      expect(r).toMatchObject({ pruned: [ids[0]], count: 2 });
      expect(r.diskBytes).toBeGreaterThan(0);
      expect(Number(/^txdu\t(\d+)$/m.exec(out)?.[1])).toBeGreaterThan(0);
      // Without retention (a rollback prunes after its verify): only the manifest and the size.
      expect(parseRetention(sh(FINISH_SCRIPT, [dir, root, '-1'], '{}\n')).pruned).toEqual([]);
      expect(readdirSync(root)).toHaveLength(4);
      expect(parseRetention(sh(PRUNE_SCRIPT, [root, '0']))).toMatchObject({
        pruned: [ids[1], ids[2]],
        count: 0,
      });
      expect(readdirSync(root).sort()).toEqual(['20261101T000000Z-dddddd', 'notes']);
      expect(parseRetention(sh(PRUNE_SCRIPT, [root, '5']))).toMatchObject({ pruned: [], count: 0 });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('fails with exit 3, leaving no temporary file, when the manifest cannot be written', () => {
    const root = setup();
    try {
      expect(() => sh(FINISH_SCRIPT, [join(root, 'absent'), root, '5'], '{}')).toThrow(
        expect.objectContaining({ status: 3 }) as Error,
      );
      expect(readdirSync(root)).toHaveLength(5);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
