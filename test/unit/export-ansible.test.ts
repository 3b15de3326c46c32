/**
 * The exported project's node-side script against criu-lock's own core, on this machine's real
 * files: its CRIU build-ID walk (perl) must agree with src/elf/build-id.ts, and its verdicts
 * (move / reinstall / file / platform) with what the lock says. Needs sh, perl and dpkg, as the
 * nodes do; skipped elsewhere, except under CI=true, where it fails instead. Then the project's
 * files, and the `export ansible` command on disk.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { readBuildIdFromFile } from '../../src/elf/local-file.js';
import { main } from '../../src/cli/main.js';
import { EXPORT_MARKER } from '../../src/commands/export.js';
import { CriuLockError } from '../../src/errors.js';
import { debFileName, NODE_DEB_DIR, renderAnsibleProject } from '../../src/export/ansible.js';
import { renderStateScript } from '../../src/export/state-script.js';
import { parseSerial } from '../../src/fleet/run.js';
import { serializeLock, type FileEntry, type Lockfile } from '../../src/lock/lockfile.js';
import { renderPins } from '../../src/plan/pins.js';
import { serializeManifest, type Manifest } from '../../src/store/manifest.js';
import { recordingIo } from '../helpers/fake-fleet.js';
import { makeLock } from './core-fixtures.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const usable = has('perl') && has('dpkg-query') && existsSync(LIBDIR);
const dir = mkdtempSync(join(tmpdir(), 'criu-lock-export-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function osRelease(): Record<string, string> {
  const out: Record<string, string> = {};
  const text = execFileSync('sh', ['-c', 'cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release'], {
    encoding: 'utf8',
  });
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/** Real ELF files of this machine with the build-IDs criu-lock's core computes for them. */
async function realFiles(limit: number): Promise<Record<string, FileEntry>> {
  const files: Record<string, FileEntry> = {};
  let elf = 0;
  for (const name of readdirSync(LIBDIR).sort()) {
    const path = join(LIBDIR, name);
    const st = lstatSync(path);
    if (!st.isFile()) continue;
    const r = await readBuildIdFromFile(path);
    if (r.kind === 'not-elf' || r.kind === 'need-bytes') continue;
    files[path] = {
      size: st.size,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      ...(r.kind === 'build-id' ? { buildId: r.buildId } : {}),
    };
    if (++elf >= limit) break;
  }
  return files;
}

function runScript(
  lock: Lockfile,
  mode: string,
  store?: ReadonlyMap<string, string>,
  env?: NodeJS.ProcessEnv,
): { code: number; lines: string[] } {
  const file = join(dir, `state-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, renderStateScript(lock, { store }));
  const r = spawnSync('sh', [file, mode], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: env ?? process.env,
  });
  const lines = r.stdout.split('\n').filter(Boolean);
  // The script's last line is always "end" when it ran to its end (the play checks it).
  if (r.status === 0) expect(lines.at(-1)).toBe('end');
  return { code: r.status ?? -1, lines: lines.at(-1) === 'end' ? lines.slice(0, -1) : lines };
}

function localLock(files: Record<string, FileEntry>, over: { version?: string; id?: string } = {}): Lockfile {
  const os = osRelease();
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const [key, version] = execFileSync(
    'dpkg-query',
    ['-W', '-f', '${Package}:${Architecture}\t${Version}', 'dpkg'],
    { encoding: 'utf8' },
  ).split('\t') as [string, string];
  return makeLock({
    platform: {
      id: over.id ?? os.ID!,
      versionId: os.VERSION_ID!,
      codename: os.VERSION_CODENAME ?? '',
      architecture: arch,
    },
    packages: { [key]: { version: over.version ?? version } },
    unmanaged: files,
    scope: { kind: 'processes', pids: [1] },
  });
}

describe.skipIf(!usable && process.env.CI !== 'true')(
  'export ansible: the node-side state script on real files',
  () => {
    it('agrees with criu-lock on every build-ID and version: a matching host prints nothing and exits 0', async () => {
      const files = await realFiles(300);
      expect(Object.values(files).filter((f) => f.buildId).length).toBeGreaterThan(50);
      const lock = localLock(files);
      expect(runScript(lock, 'verify')).toEqual({ code: 0, lines: [] });
      expect(runScript(lock, 'plan')).toEqual({ code: 0, lines: [] });
    });

    it('reports a different build-ID, size and mode as CRIU would, and fails verify', async () => {
      const files = await realFiles(40);
      const [a, b, c] = Object.keys(files).filter((p) => files[p]!.buildId);
      files[a!] = { ...files[a!]!, buildId: '00'.repeat(20) };
      files[b!] = { ...files[b!]!, size: files[b!]!.size + 1 };
      files[c!] = { ...files[c!]!, mode: files[c!]!.mode === '0644' ? '0755' : '0644' };
      files['/nonexistent/criu-lock-test.so'] = { size: 1, mode: '0644' };
      const r = runScript(localLock(files), 'verify');
      expect(r.code).toBe(1);
      expect(r.lines.sort()).toEqual(
        [
          `file\t-\t${a}\tbuild-id`,
          `file\t-\t${b}\tsize`,
          `file\t-\t${c}\tmode`,
          'file\t-\t/nonexistent/criu-lock-test.so\tmissing',
        ].sort(),
      );
    });

    it('asks apt to move a package at another version (plan), and refuses another platform', async () => {
      const files = await realFiles(3);
      const lock = localLock(files, { version: '0.0.1-1' });
      const key = Object.keys(lock.packages)[0]!;
      const move = `move\t${key}\t0.0.1-1\t${key}=0.0.1-1`;
      expect(runScript(lock, 'plan')).toEqual({ code: 0, lines: [move] });
      expect(runScript(lock, 'verify')).toEqual({ code: 1, lines: [move] });
      const other = runScript(localLock(files, { id: 'otheros' }), 'plan');
      expect(other.code).toBe(1);
      expect(other.lines[0]).toMatch(/^platform\tid\totheros\t/);
    });

    it("installs a vendored .deb by path only when the node's apt sources lack the version", async () => {
      const lock = localLock(await realFiles(3), { version: '0.0.1-1' });
      const key = Object.keys(lock.packages)[0]!;
      const path = `${NODE_DEB_DIR}/${debFileName(key, '0.0.1-1')}`;
      const store = new Map([[key, path]]);
      // An apt-cache whose policy offers 0.0.1-1 from a source, then one that only knows dpkg's status.
      const fake = (sources: string): NodeJS.ProcessEnv => {
        const bin = mkdtempSync(join(dir, 'bin-'));
        const policy = [
          `${key.split(':')[0]}:`,
          '  Installed: 1.0',
          '  Candidate: 0.0.1-1',
          '  Version table:',
          '     0.0.1-1 1001',
          sources,
          ' *** 1.0 100',
          '        100 /var/lib/dpkg/status',
        ];
        writeFileSync(
          join(bin, 'apt-cache'),
          `#!/bin/sh\n[ "$1" = policy ] || exit 1\ncat <<'EOF'\n${policy.join('\n')}\nEOF\n`,
          { mode: 0o755 },
        );
        return { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
      };
      const offered = runScript(
        lock,
        'plan',
        store,
        fake('        500 http://mirror.invalid/debian stable/main amd64 Packages'),
      );
      expect(offered.lines).toEqual([`move\t${key}\t0.0.1-1\t${key}=0.0.1-1`]);
      const lacking = runScript(lock, 'plan', store, fake('        100 /var/lib/dpkg/status'));
      expect(lacking.lines).toEqual([`move\t${key}\t0.0.1-1\t${path}`]);
      expect(runScript(lock, 'plan').lines).toEqual([`move\t${key}\t0.0.1-1\t${key}=0.0.1-1`]);
    });
  },
);

describe('export ansible: the project', () => {
  const lock = makeLock({
    packages: {
      'libc6:amd64': { version: '2.36-9+deb12u4' },
      'tzdata:all': { version: '2024a-0+deb12u1' },
    },
  });
  const pins = renderPins(lock);
  const text = (f: { content: string | Buffer } | undefined): string => String(f?.content);

  it('holds the pin file criu-lock renders, byte for byte, and valid YAML everywhere', () => {
    const files = renderAnsibleProject(lock, pins, { serial: '1,25%', maxFailPercentage: 10 });
    const byPath = new Map(files.map((f) => [f.path, f]));
    expect(byPath.get('roles/criu_lock/files/criu-lock.pref')?.content).toBe(pins);
    expect(byPath.get('roles/criu_lock/files/criu-lock-state.sh')?.mode).toBe(0o755);
    expect(text(byPath.get('ansible.cfg'))).toMatch(/^roles_path = \.\/roles$/m);
    for (const f of files.filter((x) => x.path.endsWith('.yml')))
      expect((): unknown => parse(text(f)), f.path).not.toThrow();
    const play = parse(text(byPath.get('site.yml'))) as Array<Record<string, unknown>>;
    expect(play).toHaveLength(1);
    expect(play[0]).toMatchObject({
      serial: [1, '25%'],
      max_fail_percentage: 10,
      become: true,
      gather_facts: false,
      roles: ['criu_lock'],
    });
    const vars = parse(text(byPath.get('roles/criu_lock/vars/main.yml'))) as Record<string, unknown>;
    const argv = vars.criu_lock_apt_argv as string[];
    expect(argv).toEqual(expect.arrayContaining(['apt-get', 'install', '--allow-downgrades', '--no-remove']));
    expect(argv).not.toContain('-s');
    expect(argv.filter((a) => a === '--no-remove')).toHaveLength(1);
    expect(vars.criu_lock_digest).toBe(lock.digest);
    expect(vars.criu_lock_debs).toEqual({});
    const tasks = parse(text(byPath.get('roles/criu_lock/tasks/main.yml'))) as Array<Record<string, unknown>>;
    const block = tasks.find((t) => 'block' in t)!;
    // apt runs inside the block whose rescue puts the pin file back.
    expect(JSON.stringify(block.block)).toContain('criu_lock_apt_argv');
    expect(JSON.stringify(block.rescue)).toContain('criu_lock_old_pins.content | b64decode');
    expect(tasks.at(-1)!['ansible.builtin.script']).toBe('criu-lock-state.sh verify');
  });

  it('leaves serial and max_fail_percentage out unless asked; a single serial stays a list', () => {
    const play = (o: Parameters<typeof renderAnsibleProject>[2]): Record<string, unknown> =>
      (
        parse(text(renderAnsibleProject(lock, pins, o).find((f) => f.path === 'site.yml'))) as Array<
          Record<string, unknown>
        >
      )[0]!;
    expect(play({})).not.toHaveProperty('serial');
    expect(play({})).not.toHaveProperty('max_fail_percentage');
    expect(play({ serial: '30%', maxFailPercentage: 0 })).toMatchObject({
      serial: ['30%'],
      max_fail_percentage: 0,
    });
  });

  it('writes --serial as apply reads it: numbers normalised, a size no fleet reaches as 100%', () => {
    const site = (serial: string): string =>
      text(renderAnsibleProject(lock, pins, { serial }).find((f) => f.path === 'site.yml'));
    // YAML 1.1 (Ansible's) reads [010] as octal 8; apply's parseSerial reads 10.
    expect(site('010,05%')).toContain('  serial: [10, "5%"]\n');
    expect(parseSerial('010', 30)).toEqual([10, 10, 10]);
    // Ansible counts up to a batch size one host at a time: 99999999999999999999 never ended.
    // apply takes every host left for it, as Ansible does for 100%.
    expect(site('1,99999999999999999999')).toContain('  serial: [1, "100%"]\n');
    expect(site('1,1000001')).toContain('  serial: [1, "100%"]\n');
    expect(site('1,1000000')).toContain('  serial: [1, 1000000]\n');
    expect(parseSerial('1,99999999999999999999', 50)).toEqual(parseSerial('1,100%', 50));
    const readme = text(
      renderAnsibleProject(lock, pins, { serial: '010' }).find((f) => f.path === 'README.md'),
    );
    expect(readme).toContain('`serial: 10`');
  });

  it.each([
    ['\u2028', 'U+2028'],
    ['\u2029', 'U+2029'],
    ['\u0085', 'U+0085'],
    ['\v', 'vertical tab'],
    ['\f', 'form feed'],
    ['\x1c', 'x1c'],
    ['\x1d', 'x1d'],
    ['\x1e', 'x1e'],
    ['\t', 'tab'],
    ['\n', 'newline'],
  ])('refuses a lock path holding %j (%s): Ansible would split the line there', (ch) => {
    const odd = makeLock({
      packages: { 'libc6:amd64': { version: '2.36-9+deb12u4' } },
      unmanaged: { [`/opt/a${ch}b.so`]: { size: 1, mode: '0644' } },
    });
    const err = ((): unknown => {
      try {
        renderAnsibleProject(odd, pins);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(CriuLockError);
    expect((err as CriuLockError).code).toBe('input');
    expect((err as CriuLockError).message).toContain('cannot export this lock');
  });

  it('a state script cut short anywhere fails instead of exiting 0 with nothing to do', () => {
    const script = renderStateScript(
      makeLock({
        packages: { 'libc6:amd64': { version: '2.36-9+deb12u4' } },
        unmanaged: { '/opt/a.so': { size: 1, mode: '0644' } },
      }),
    );
    // Only the shebang line can be cut without an error (sh then has nothing to run).
    const first = script.indexOf('\n') + 1;
    expect(script.slice(first, first + 2)).toBe('{\n');
    const end = script.lastIndexOf('}');
    // Where a full disk cuts a file, and a spread of points in between.
    const cuts = new Set([first + 1, first + 2, end - 1, end]);
    for (const at of ['<<', 'P\tlibc6', 'F\t-\t/opt', '__CRIU_LOCK_EXPECTED__\nsh', 'perl -', 'exit('])
      cuts.add(script.indexOf(at) + 2);
    for (let i = 1; i < 60; i++) cuts.add(first + 1 + Math.floor(((end - first) * i) / 60));
    const file = join(dir, 'cut.sh');
    for (const at of [...cuts].sort((a, b) => a - b)) {
      writeFileSync(file, script.slice(0, at));
      const r = spawnSync('sh', [file, 'plan'], { encoding: 'utf8' });
      expect({ at, ok: r.status === 0, out: r.stdout }).toMatchObject({ at, ok: false, out: '' });
    }
    writeFileSync(file, script.slice(0, end + 1));
    expect(spawnSync('sh', ['-n', file]).status).toBe(0);
    // No mode is no run either (a cut after the group's last line would have been one).
    expect(spawnSync('sh', [file]).status).toBe(64);
  });

  it('the play fails a host whose script printed no final "end" (an empty or shebang-only copy exits 0)', () => {
    const file = join(dir, 'empty.sh');
    writeFileSync(file, '#!/bin/sh\n');
    const r = spawnSync('sh', [file, 'plan'], { encoding: 'utf8' });
    expect([r.status, r.stdout]).toEqual([0, '']);
    const lock = makeLock({ packages: { 'libc6:amd64': { version: '2.36-9+deb12u4' } } });
    const tasks = renderAnsibleProject(lock, renderPins(lock), {}).find((f) =>
      f.path.endsWith('tasks/main.yml'),
    )!;
    const text = tasks.content.toString();
    for (const reg of ['criu_lock_before', 'criu_lock_after'])
      expect(text).toContain(
        `failed_when: ${reg}.rc != 0 or (${reg}.stdout_lines | last | default('')) != 'end'`,
      );
  });

  it('names vendored .debs as the Debian archive does and gives their sha256 to the host check', () => {
    expect(debFileName('libc6:amd64', '2.36-9+deb12u4')).toBe('libc6_2.36-9+deb12u4_amd64.deb');
    expect(debFileName('foo:all', '1:2.0-1')).toBe('foo_1%3a2.0-1_all.deb');
    const sha = 'ab'.repeat(32);
    const files = renderAnsibleProject(lock, pins, {
      debs: new Map([['libc6:amd64', { file: 'libc6_2.36-9+deb12u4_amd64.deb', sha256: sha }]]),
    });
    const vars = parse(text(files.find((f) => f.path.endsWith('vars/main.yml')))) as Record<string, unknown>;
    expect(vars.criu_lock_debs).toEqual({ 'libc6_2.36-9+deb12u4_amd64.deb': sha });
    expect(text(files.find((f) => f.path.endsWith('criu-lock-state.sh')))).toContain(
      `S\tlibc6:amd64\t${NODE_DEB_DIR}/libc6_2.36-9+deb12u4_amd64.deb\n`,
    );
  });
});

describe('criu-lock export ansible', () => {
  let work: string;
  let lockPath: string;
  const lock = makeLock({
    packages: {
      'libc6:amd64': { version: '2.36-9+deb12u4' },
      'tzdata:all': { version: '2024a-0+deb12u1' },
    },
  });

  beforeEach(() => {
    work = mkdtempSync(join(dir, 'cmd-'));
    lockPath = join(work, 'criu-lock.yaml');
    writeFileSync(lockPath, serializeLock(lock));
  });

  const run = async (...args: string[]): Promise<{ code: number; err: string }> => {
    const io = recordingIo();
    const code = await main(['export', 'ansible', '-l', lockPath, ...args], io);
    return { code, err: io.stderr };
  };

  /** A package store beside the lock: libc6 at the locked version, tzdata at another one. */
  function writeStore(): { sha: string; bytes: Buffer } {
    const store = join(work, 'criu-lock.debs');
    mkdirSync(store);
    const bytes = Buffer.from('!<arch>\ndebian-binary   fake deb for the export test\n');
    const sha = createHash('sha256').update(bytes).digest('hex');
    const other = Buffer.from('another fake deb');
    const otherSha = createHash('sha256').update(other).digest('hex');
    writeFileSync(join(store, `${sha}.deb`), bytes);
    writeFileSync(join(store, `${otherSha}.deb`), other);
    const manifest: Manifest = {
      storeVersion: 1,
      packages: {
        'libc6:amd64': {
          version: '2.36-9+deb12u4',
          architecture: 'amd64',
          sha256: sha,
          size: bytes.length,
          origin: 'golden-cache',
        },
        'tzdata:all': {
          version: '2023c-5',
          architecture: 'all',
          sha256: otherSha,
          size: other.length,
          origin: 'golden-apt',
        },
      },
    };
    writeFileSync(join(store, 'manifest.yaml'), serializeManifest(manifest));
    return { sha, bytes };
  }

  const list = (root: string, rel = ''): string[] =>
    readdirSync(join(root, rel), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? list(root, join(rel, e.name)) : [join(rel, e.name)],
    );

  it('writes the project: pins as renderPins, the state script executable, a marker, exit 0', async () => {
    const out = join(work, 'out');
    const r = await run('-o', out, '--serial', '1,25%', '--max-fail-percentage', '20');
    expect(r).toMatchObject({ code: 0 });
    expect(r.err).toContain(`ansible-playbook -i INVENTORY ${out}/site.yml`);
    expect(readFileSync(join(out, 'roles/criu_lock/files/criu-lock.pref'), 'utf8')).toBe(renderPins(lock));
    expect(statSync(join(out, 'roles/criu_lock/files/criu-lock-state.sh')).mode & 0o777).toBe(0o755);
    expect(
      (parse(readFileSync(join(out, 'site.yml'), 'utf8')) as Array<Record<string, unknown>>)[0],
    ).toMatchObject({
      serial: [1, '25%'],
      max_fail_percentage: 20,
    });
    const marker = JSON.parse(readFileSync(join(out, EXPORT_MARKER), 'utf8')) as {
      files: string[];
      lockDigest: string;
    };
    expect(marker.lockDigest).toBe(lock.digest);
    expect(marker.files.sort()).toEqual(
      list(out)
        .filter((f) => f !== EXPORT_MARKER)
        .sort(),
    );
    expect(existsSync(join(out, 'roles/criu_lock/files/debs'))).toBe(false);
  });

  it("includes the store's .debs at the locked versions, sha256-checked, and refuses a corrupt one", async () => {
    const { sha, bytes } = writeStore();
    const out = join(work, 'out');
    const r = await run('-o', out);
    expect(r.code).toBe(0);
    expect(r.err).toContain(
      'the package store holds tzdata:all=2023c-5, the lock 2024a-0+deb12u1: not exported',
    );
    const debs = readdirSync(join(out, 'roles/criu_lock/files/debs'));
    expect(debs).toEqual(['libc6_2.36-9+deb12u4_amd64.deb']);
    expect(readFileSync(join(out, 'roles/criu_lock/files/debs', debs[0]!))).toEqual(bytes);
    const vars = parse(readFileSync(join(out, 'roles/criu_lock/vars/main.yml'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(vars.criu_lock_debs).toEqual({ 'libc6_2.36-9+deb12u4_amd64.deb': sha });

    // One flipped byte in the store: the export stops, exit 1, and names the file.
    const corrupt = Buffer.from(bytes);
    corrupt[0] = corrupt[0]! ^ 1;
    writeFileSync(join(work, 'criu-lock.debs', `${sha}.deb`), corrupt);
    const bad = await run('-o', join(work, 'out2'));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('does not match its manifest');
    expect(bad.err).toContain('criu-lock vendor --verify');
    expect(existsSync(join(work, 'out2'))).toBe(false);
  });

  it('refuses a non-empty directory that is not an export, and says how', async () => {
    const out = join(work, 'mine');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'keep me');
    const r = await run('-o', out);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${out} is not empty and has no ${EXPORT_MARKER}`);
    expect(r.err).toMatch(/hint: give -o a new or empty directory, or remove .*mine first/);
    expect(list(out)).toEqual(['notes.txt']);
    writeFileSync(join(out, EXPORT_MARKER), JSON.stringify({ export: 'ansible', files: ['../escape'] }));
    expect((await run('-o', out)).err).toContain(`has a ${EXPORT_MARKER} this criu-lock did not write`);
  });

  it('updates an earlier export in place: stale files go, files it did not write stay', async () => {
    writeStore();
    const out = join(work, 'out');
    expect((await run('-o', out)).code).toBe(0);
    writeFileSync(join(out, 'inventory.yaml'), 'all: {}\n');
    rmSync(join(work, 'criu-lock.debs'), { recursive: true });
    const newer = makeLock({ packages: { 'libc6:amd64': { version: '2.36-9+deb12u7' } } });
    writeFileSync(lockPath, serializeLock(newer));
    expect((await run('-o', out, '--serial', '2')).code).toBe(0);
    expect(existsSync(join(out, 'roles/criu_lock/files/debs'))).toBe(false);
    expect(readFileSync(join(out, 'inventory.yaml'), 'utf8')).toBe('all: {}\n');
    expect(readFileSync(join(out, 'roles/criu_lock/files/criu-lock.pref'), 'utf8')).toBe(renderPins(newer));
  });

  it('checks --serial and --max-fail-percentage as apply does, and needs -o', async () => {
    const out = join(work, 'out');
    expect(await run('-o', out, '--serial', '0')).toMatchObject({ code: 1 });
    expect((await run('-o', out, '--serial', 'x')).err).toContain('invalid --serial value');
    expect((await run('-o', out, '--max-fail-percentage', '101')).err).toContain('between 0 and 100');
    expect((await run()).err).toContain('Missing required argument: output');
    expect(existsSync(out)).toBe(false);
    const io = recordingIo();
    expect(await main(['export', 'salt', '-o', out], io)).toBe(1);
  });
});
