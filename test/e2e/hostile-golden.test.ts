/**
 * A hostile golden node (issue 9, "Hostile hosts and inputs"): a process maps a file whose name
 * holds a tab and a newline. The documented rule (docs/security.md): such a file is locked under
 * its exact name, read through /proc/PID/map_files, never through a path taken from a record.
 * Decoy files sit at the names a naive reader would derive (the maps line's `\012` spelling, the
 * name cut at the tab); none of their bytes may reach the lock.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLock } from '../../src/lock/lockfile.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { runCli } from '../helpers/run-cli.js';
import { readelfBuildId, useSandbox } from './sandbox.js';

const sb = useSandbox();
const conn = (): string[] => ['-i', sb.state().inventory, '--known-hosts', sb.state().knownHosts];

const DIR = '/opt/hostile';
/** The mapped executable: a tab and a newline in its name. */
const MAPPED = `${DIR}/fleet\ttool\nrun`;
/** What /proc/PID/maps shows for it (a newline is written as \012): a decoy with other bytes. */
const AS_MAPS_SHOWS = `${DIR}/fleet\ttool\\012run`;
/** The name cut at the tab, as a tab-separated reader would take it: another decoy. */
const CUT_AT_TAB = `${DIR}/fleet`;

describe.skipIf(sb.skip)('a hostile golden node', () => {
  let work: string;

  beforeAll(async () => {
    await reset(['node01'], { dir: sb.dir, log: () => undefined });
    work = mkdtempSync(join(tmpdir(), 'criu-lock-e2e-hostile-'));
  });

  afterAll(async () => {
    if (sb.skip) return;
    rmSync(work, { recursive: true, force: true });
    await reset(['node01'], { dir: sb.dir, log: () => undefined });
  });

  it('generate --pid locks a mapped file named with a tab and a newline under its exact name, from the mapping itself', async () => {
    const root = sb.node('node01').root;
    mkdirSync(join(root, DIR), { recursive: true });
    copyFileSync(join(root, 'usr/bin/fleet-tool'), join(root, MAPPED));
    // An ELF file the process does not map, so its build-ID can only reach the lock through a decoy.
    const decoy = join(root, 'usr/bin/dpkg');
    copyFileSync(decoy, join(root, AS_MAPS_SHOWS));
    copyFileSync(decoy, join(root, CUT_AT_TAB));
    const mappedId = await readelfBuildId('node01', '/usr/bin/fleet-tool');
    const decoyId = await readelfBuildId('node01', '/usr/bin/dpkg');
    expect(mappedId).toBeDefined();
    expect(decoyId).toBeDefined();
    expect(decoyId).not.toBe(mappedId);

    const child = spawn('chroot', [root, MAPPED, 'sleep'], { stdio: 'ignore' });
    const lockFile = join(work, 'hostile.yaml');
    try {
      await new Promise((r) => setTimeout(r, 300));
      const maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8');
      expect(maps).toContain('fleet\ttool\\012run'); // the kernel's ambiguous spelling
      const r = await runCli('generate', ...conn(), '--pid', String(child.pid), '-o', lockFile);
      expect(r.code, r.err).toBe(0);
      // Not deleted, not under /proc: no warning about it.
      expect(r.err).not.toMatch(/fleet\\ttool/);
    } finally {
      child.kill('SIGKILL');
    }

    const text = readFileSync(lockFile, 'utf8');
    // Written as an escaped double-quoted YAML string: one line, no raw tab or newline.
    expect(text).toContain('"/opt/hostile/fleet\\ttool\\nrun"');
    const lock = parseLock(text, lockFile);
    const unmanaged = lock.unmanaged ?? {};
    const st = statSync(join(root, MAPPED));
    expect(unmanaged[MAPPED]).toEqual({
      size: st.size,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      buildId: mappedId,
    });
    expect(Object.keys(unmanaged)).not.toContain(AS_MAPS_SHOWS);
    expect(Object.keys(unmanaged)).not.toContain(CUT_AT_TAB);
    // No byte of a decoy reached the lock: its build-ID appears nowhere.
    expect(text).not.toContain(decoyId!);

    // The name round-trips: check finds the file under that exact name on the golden node.
    const check = await runCli('check', ...conn(), '-l', lockFile, '--limit', 'node01');
    expect(check.code, check.out + check.err).toBe(0);
    expect(check.out).toMatch(/node01: matches the lock/);
  });
});
