import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { download, policyVersions, privateApt } from './debian-fetch.js';
import { run, runOk, type CommandResult } from './exec.js';
import { BASE_DIR } from './state.js';
import { pidAlive, sleep } from './system.js';

/**
 * Real CRIU for the sandbox: Debian trixie's CRIU 4.1.1 (bookworm's 3.17 fails `criu check` on
 * current kernels), unpacked with the libraries it links with and run through the bundled loader,
 * so nothing is installed on the machine. Cached beside the sandbox base.
 */
export const CRIU_UPSTREAM = '4.1.1';
const MARKER = '.criu-lock-criu-complete';
/** Where the bundle appears inside a node's private mount namespace. */
export const BUNDLE_IN_NODE = '/run/criu-lock/criu';

export function criuCacheDir(): string {
  return process.env.CRIU_LOCK_CRIU_DIR ?? join(dirname(BASE_DIR), `criu-${CRIU_UPSTREAM}`);
}

export interface CriuBundle {
  dir: string;
  version: string;
}

/** argv that runs the bundled criu, for a bundle visible at `at`. */
export function criuArgv(at: string, args: readonly string[]): string[] {
  return [join(at, 'lib/ld-linux-x86-64.so.2'), '--library-path', join(at, 'lib'), join(at, 'criu'), ...args];
}

export function cachedCriu(): CriuBundle | undefined {
  const dir = criuCacheDir();
  const marker = join(dir, MARKER);
  if (!existsSync(marker)) return undefined;
  return { dir, version: readFileSync(marker, 'utf8').trim().split(' ')[0] ?? CRIU_UPSTREAM };
}

/** Fetches (once) and returns the CRIU bundle. Needs the network only the first time. */
export async function ensureCriu(log: (s: string) => void): Promise<CriuBundle> {
  const have = cachedCriu();
  if (have) return have;
  const dir = criuCacheDir();
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // trixie from the machine's bookworm mirror: the same archive serves every suite.
  const apt = await privateApt(join(tmp, 'apt'), [{ lookup: 'bookworm', suite: 'trixie' }], log);
  const criu = (await policyVersions(apt, 'criu')).find((v) => v.version.startsWith(`${CRIU_UPSTREAM}-`));
  if (!criu) {
    throw new CriuLockError('sandbox', `trixie serves no criu ${CRIU_UPSTREAM}`, {
      hint: 'the sandbox is written against CRIU 4.1.1; see docs/sandbox.md',
    });
  }
  const deps = await runOk([
    'apt-cache',
    ...apt.opts,
    'depends',
    '--recurse',
    '--no-recommends',
    '--no-suggests',
    '--no-conflicts',
    '--no-breaks',
    '--no-replaces',
    '--no-enhances',
    `criu=${criu.version}`,
  ]);
  const pkgs = [
    ...new Set(deps.stdout.split('\n').filter((l) => /^[a-z0-9][a-z0-9+.-]+$/.test(l) && l !== 'criu')),
  ].sort();
  log(`fetching criu ${criu.version} and ${pkgs.length} libraries from trixie`);
  const debs = await download(apt, [`criu=${criu.version}`, ...pkgs]);
  const x = join(tmp, 'x');
  for (const deb of debs) await runOk(['dpkg-deb', '-x', deb, x]);
  const out = join(tmp, 'bundle');
  mkdirSync(join(out, 'lib'), { recursive: true });
  copyFileSync(join(x, 'usr/sbin/criu'), join(out, 'criu'));
  for (const libdir of ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']) {
    const d = join(x, libdir);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (!/\.so(\.|$)/.test(f)) continue;
      const src = join(d, f);
      const st = lstatSync(src);
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), join(out, 'lib', f));
      else if (st.isFile()) copyFileSync(src, join(out, 'lib', f));
    }
  }
  const probe = await run(criuArgv(out, ['--version']));
  if (probe.exitCode !== 0 || !probe.stdout.includes(CRIU_UPSTREAM)) {
    throw new CriuLockError(
      'sandbox',
      `the CRIU bundle does not run: ${(probe.stderr || probe.stdout).trim().split('\n')[0] ?? ''}`,
      {
        hint: `a library is missing from the bundle; see ${tmp}`,
      },
    );
  }
  writeFileSync(join(out, MARKER), `${criu.version} ${pkgs.join(',')}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(out, dir);
  rmSync(tmp, { recursive: true, force: true });
  log(`criu ${criu.version} cached in ${dir}`);
  return { dir, version: criu.version };
}

/**
 * Runs as `sh -c NS_SCRIPT sh ROOT BUNDLE MODE ARGV...` inside `unshare --mount --fork`: makes
 * every mount private, bind-mounts the node's root onto itself, puts the bundle under a tmpfs /run,
 * pivot_root into the node, then a fresh /proc, a tmpfs /dev with null and a new-instance devpts.
 * The tmpfs source names the node, so `down` finds processes living in such namespaces. MODE
 * `spawn` closes every descriptor above 2 and starts a new session with perl-base's POSIX module
 * (every node has it; util-linux's setsid would fork a new pid): CRIU refuses descriptors from
 * outside the node and a tree whose root is no session leader.
 */
export const NS_SCRIPT = String.raw`set -e
ROOT=$1; BUNDLE=$2; MODE=$3; shift 3
mount --make-rprivate /
mount --bind "$ROOT" "$ROOT"
mount -t tmpfs -o mode=0755,nosuid,nodev "criu-lock:$ROOT" "$ROOT/run"
mkdir -p "$ROOT/run/criu-lock/criu" "$ROOT/run/criu-lock/oldroot"
mount --bind -o ro "$BUNDLE" "$ROOT/run/criu-lock/criu"
cd "$ROOT"
pivot_root . run/criu-lock/oldroot
cd /
mount -t proc -o nosuid,nodev,noexec proc /proc
umount -l /run/criu-lock/oldroot
rmdir /run/criu-lock/oldroot
mount -t tmpfs -o mode=0755,nosuid "criu-lock-dev:$ROOT" /dev
mknod -m 666 /dev/null c 1 3
mkdir /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
if [ "$MODE" = spawn ]; then
  exec </dev/null >/dev/null 2>&1
  exec perl -MPOSIX -e 'POSIX::close($_) for 3 .. 1023; POSIX::setsid(); exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n"' -- "$@"
fi
exec "$@"
`;

function nsArgv(root: string, bundle: string, mode: 'run' | 'spawn', argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--fork', 'sh', '-c', NS_SCRIPT, 'sh', root, bundle, mode, ...argv];
}

function mountNs(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Is `pid` a process living in a node namespace made by NS_SCRIPT (it sees the bundle)? */
export function inNodeNamespace(pid: number): boolean {
  return mountNs(pid) !== mountNs('self') && existsSync(`/proc/${pid}/root${BUNDLE_IN_NODE}/criu`);
}

/**
 * CRIU_FAULT=130 is CRIU's FI_NO_BREAKPOINTS: after the parasite's sigreturn CRIU stops the task
 * by stepping syscalls with PTRACE_SYSCALL instead of a hardware breakpoint. On some virtual
 * machines (here: Firecracker with Linux 6.18) the debug-register breakpoint never fires, and
 * every dump and restore hangs in wait4 after "Daemon PID exited trapping". The stepping path is
 * CRIU's own (its CI runs it); it changes nothing in the images or in what a restore checks.
 */
export const CRIU_ENV = { CRIU_FAULT: '130' } as const;

export interface CriuRunOptions {
  /** Run in the mount namespace of this process (dump it from where it runs), not a fresh one. */
  enterPid?: number;
  timeoutMs?: number;
}

/** Runs the bundled criu inside node `root` (a fresh private namespace, or the one of `enterPid`). */
export async function runCriu(
  root: string,
  args: readonly string[],
  opts: CriuRunOptions = {},
): Promise<CommandResult> {
  const bundle = cachedCriu();
  if (!bundle) {
    throw new CriuLockError('sandbox', 'CRIU is not fetched yet', {
      hint: 'run `npm run sandbox -- up --criu` once (needs the network)',
    });
  }
  const argv =
    opts.enterPid !== undefined
      ? ['nsenter', '-t', String(opts.enterPid), '-m', '--', ...criuArgv(BUNDLE_IN_NODE, args)]
      : nsArgv(root, bundle.dir, 'run', criuArgv(BUNDLE_IN_NODE, args));
  return run(argv, { timeoutMs: opts.timeoutMs ?? 120_000, env: { ...process.env, ...CRIU_ENV } });
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

/**
 * Starts argv inside node `root` in a private mount namespace CRIU can dump (no outside
 * descriptors, its own session), detached. Resolves with its pid once it runs argv.
 */
export async function spawnInNode(
  root: string,
  argv: readonly string[],
  timeoutMs = 10_000,
): Promise<number> {
  const bundle = cachedCriu();
  if (!bundle) {
    throw new CriuLockError('sandbox', 'CRIU is not fetched yet', {
      hint: 'run `npm run sandbox -- up --criu` once (needs the network)',
    });
  }
  const child = spawn(
    nsArgv(root, bundle.dir, 'spawn', argv)[0] ?? 'unshare',
    nsArgv(root, bundle.dir, 'spawn', argv).slice(1),
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  child.unref();
  const outer = child.pid;
  if (outer === undefined) throw new CriuLockError('sandbox', 'could not start unshare');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const c of childrenOf(outer)) {
      const cl = cmdline(c);
      if (cl.length === argv.length && cl.every((a, i) => a === argv[i])) return c;
    }
    if (!pidAlive(outer)) break;
    await sleep(20);
  }
  throw new CriuLockError('sandbox', `${argv.join(' ')} did not start in ${root}`, {
    hint: 'run `npm run sandbox -- criu NODE check` to see whether the namespace can be built',
  });
}

/** Waits until no process has this pid (a failed restore keeps it a moment). */
export async function waitPidFree(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await sleep(25);
  }
  return !existsSync(`/proc/${pid}`);
}

/** Processes living in a node namespace of a node whose root is at or below `prefix` (for down/reset). */
export function procsInNodeNamespaces(prefix: string): number[] {
  const self = mountNs('self');
  const p = prefix.replace(/\/+$/, '');
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const ns = mountNs(Number(e));
    if (ns === undefined || ns === self) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/${e}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    // mountinfo: "... - tmpfs criu-lock:/var/lib/.../nodes/node01/merged rw,..."
    for (const m of info.matchAll(/ - tmpfs criu-lock:(\S+) /g)) {
      const root = (m[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) =>
        String.fromCharCode(parseInt(o, 8)),
      );
      if (root === p || root.startsWith(`${p}/`)) {
        out.push(Number(e));
        break;
      }
    }
  }
  return out;
}

/** CRIU's error lines from a log or stderr ("Error (criu/files-reg.c:2153): File ... has bad build-ID"). */
export function criuErrors(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /Error \([^)]*\): (.*)$/.exec(line);
    if (m?.[1]) out.push(m[1].trim());
  }
  return out;
}

/** CRIU prints a few harmless errors in a sandbox (no tun device, RLIMIT_NOFILE); not the restore's cause. */
export function isNoise(line: string): boolean {
  return /Unable to create tun|Can't setup RLIMIT_NOFILE/.test(line);
}
