/**
 * The exported project's node-side script against criu-lock's own core, on this machine's real
 * files: its CRIU build-ID walk (perl) must agree with src/elf/build-id.ts, and its verdicts
 * (move / reinstall / file / platform) with what the lock says. Needs sh, perl and dpkg, as the
 * nodes do; skipped elsewhere.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { readBuildIdFromFile } from '../../src/elf/local-file.js';
import { debFileName, renderAnsibleProject } from '../../src/export/ansible.js';
import { renderStateScript } from '../../src/export/state-script.js';
import type { FileEntry, Lockfile } from '../../src/lock/lockfile.js';
import { renderPins } from '../../src/plan/pins.js';
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

function runScript(lock: Lockfile, mode: string): { code: number; lines: string[] } {
  const file = join(dir, `state-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, renderStateScript(lock));
  const r = spawnSync('sh', [file, mode], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, lines: r.stdout.split('\n').filter(Boolean) };
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

describe.skipIf(!usable)('export ansible: the node-side state script on real files', () => {
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
    expect(runScript(lock, 'plan')).toEqual({ code: 0, lines: [`move\t${key}\t0.0.1-1`] });
    expect(runScript(lock, 'verify')).toEqual({ code: 1, lines: [`move\t${key}\t0.0.1-1`] });
    const other = runScript(localLock(files, { id: 'otheros' }), 'plan');
    expect(other.code).toBe(1);
    expect(other.lines[0]).toMatch(/^platform\tid\totheros\t/);
  });
});

describe('export ansible: the project', () => {
  const lock = makeLock({
    packages: {
      'libc6:amd64': { version: '2.36-9+deb12u4' },
      'tzdata:all': { version: '2024a-0+deb12u1' },
    },
  });
  const pins = renderPins(lock);

  it('holds the pin file criu-lock renders, byte for byte, and valid YAML everywhere', () => {
    const files = renderAnsibleProject(lock, pins, { serial: '1,25%', maxFailPercentage: 10 });
    const byPath = new Map(files.map((f) => [f.path, f]));
    expect(byPath.get('roles/criu_lock/files/criu-lock.pref')?.content).toBe(pins);
    expect(byPath.get('roles/criu_lock/files/criu-lock-state.sh')?.mode).toBe(0o755);
    for (const f of files.filter((x) => x.path.endsWith('.yml')))
      expect((): unknown => parse(f.content), f.path).not.toThrow();
    const play = parse(byPath.get('site.yml')!.content) as Array<Record<string, unknown>>;
    expect(play[0]).toMatchObject({
      serial: [1, '25%'],
      max_fail_percentage: 10,
      become: true,
      roles: ['criu_lock'],
    });
    const vars = parse(byPath.get('roles/criu_lock/vars/main.yml')!.content) as Record<string, unknown>;
    expect(vars.criu_lock_apt_argv).toEqual(
      expect.arrayContaining(['apt-get', 'install', '--allow-downgrades', '--no-remove']),
    );
    expect(vars.criu_lock_digest).toBe(lock.digest);
  });

  it('leaves serial and max_fail_percentage out unless asked', () => {
    const play = parse(renderAnsibleProject(lock, pins).find((f) => f.path === 'site.yml')!.content) as Array<
      Record<string, unknown>
    >;
    expect(play[0]).not.toHaveProperty('serial');
    expect(play[0]).not.toHaveProperty('max_fail_percentage');
  });

  it('names vendored .debs as the Debian archive does (epoch colon as %3a)', () => {
    expect(debFileName('libc6:amd64', '2.36-9+deb12u4')).toBe('libc6_2.36-9+deb12u4_amd64.deb');
    expect(debFileName('foo:all', '1:2.0-1')).toBe('foo_1%3a2.0-1_all.deb');
    const files = renderAnsibleProject(lock, pins, {
      debs: new Map([['libc6:amd64=2.36-9+deb12u4', 'libc6_2.36-9+deb12u4_amd64.deb']]),
    });
    const vars = parse(files.find((f) => f.path.endsWith('vars/main.yml'))!.content) as Record<
      string,
      unknown
    >;
    expect(vars.criu_lock_debs).toEqual({ 'libc6:amd64=2.36-9+deb12u4': 'libc6_2.36-9+deb12u4_amd64.deb' });
    expect(files.find((f) => f.path.endsWith('tasks/main.yml'))!.content).toContain('src: debs/');
  });
});
