import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { CHROOT_ENV } from './base.js';
import { run, runOk } from './exec.js';
import { procsInNodeNamespaces } from './criu.js';
import { debFileName } from './repo.js';
import { SCENARIOS, type ScenarioName } from './scenarios.js';
import { lowerDirs } from './python-layer.js';
import type { NodeState, Paths } from './state.js';
import {
  isMounted,
  killRootedUnder,
  mountsUnder,
  pidAlive,
  portOpen,
  procRoot,
  sleep,
  unmountUnder,
} from './system.js';

export interface NodeSpec {
  name: string;
  port: number;
  scenario: ScenarioName;
  /** Mount the python3 layer too (python-layer.ts): for driving the node with Ansible. */
  python?: boolean;
  /** Real libc6 build to install over the base's (see real-libc.ts). */
  libc?: string;
}

export interface NodeDirs {
  dir: string;
  upper: string;
  work: string;
  merged: string;
  hostKey: string;
}

export function nodeDirs(p: Paths, name: string): NodeDirs {
  const dir = join(p.nodes, name);
  return {
    dir,
    upper: join(dir, 'upper'),
    work: join(dir, 'work'),
    merged: join(dir, 'merged'),
    // Outside the upper dir, so a reset keeps the key and known_hosts stays valid.
    hostKey: join(p.hostKeys, name, 'ssh_host_ed25519_key'),
  };
}

const SSHD_CONF = `# written by the criu-lock sandbox
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile /run/sshd.pid
ListenAddress 127.0.0.1
`;

/** Is this node's sshd (by pid, chrooted into its merged dir) running? */
export function sshdAlive(p: Paths, n: Pick<NodeState, 'name' | 'sshdPid'>): boolean {
  return pidAlive(n.sshdPid) && procRoot(n.sshdPid) === nodeDirs(p, n.name).merged;
}

export function nodeMounted(p: Paths, name: string): boolean {
  return isMounted(nodeDirs(p, name).merged);
}

/** Stops every process inside the node and unmounts it. Returns what could not be cleaned. */
export async function stopNode(
  p: Paths,
  name: string,
  sshdPid = 0,
): Promise<{ pids: number[]; mounts: string[] }> {
  const d = nodeDirs(p, name);
  // Processes in the node's CRIU namespaces have pivoted into it: their root reads as "/".
  const extra = [
    ...(sshdPid > 0 && procRoot(sshdPid) === d.merged ? [sshdPid] : []),
    ...procsInNodeNamespaces(d.merged),
  ];
  const pids = await killRootedUnder(d.merged, extra);
  const mounts = await unmountUnder(d.dir);
  return { pids, mounts };
}

async function ensureHostKey(d: NodeDirs, name: string): Promise<string> {
  if (!existsSync(d.hostKey) || !existsSync(`${d.hostKey}.pub`)) {
    mkdirSync(join(d.hostKey, '..'), { recursive: true });
    rmSync(d.hostKey, { force: true });
    rmSync(`${d.hostKey}.pub`, { force: true });
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', d.hostKey]);
  }
  return readFileSync(`${d.hostKey}.pub`, 'utf8').trim();
}

/** The node's known_hosts line: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`. */
export function knownHostsLine(port: number, pub: string): string {
  const [type, key] = pub.split(/\s+/);
  return `[127.0.0.1]:${port} ${type} ${key}`;
}

async function mountNode(p: Paths, d: NodeDirs, python: boolean | undefined): Promise<void> {
  for (const s of [d.upper, d.work, d.merged]) mkdirSync(s, { recursive: true });
  const m = d.merged;
  await runOk([
    'mount',
    '--make-private',
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lowerDirs(python)},upperdir=${d.upper},workdir=${d.work}`,
    m,
  ]);
  await runOk([
    'mount',
    '--make-private',
    '-t',
    'proc',
    '-o',
    'nosuid,nodev,noexec',
    'proc',
    join(m, 'proc'),
  ]);
  // The base's /dev holds the minimal device nodes; ptys come from the node's own devpts.
  await runOk([
    'mount',
    '--make-private',
    '-t',
    'devpts',
    '-o',
    'newinstance,ptmxmode=0666,mode=0620,gid=5',
    'devpts',
    join(m, 'dev/pts'),
  ]);
  await runOk(['mount', '--make-private', '--bind', '-o', 'ro', p.repo, join(m, 'srv/repo')]);
}

function writeNodeFiles(d: NodeDirs, clientPub: string): void {
  const m = d.merged;
  copyFileSync(d.hostKey, join(m, 'etc/ssh/ssh_host_ed25519_key'));
  chmodSync(join(m, 'etc/ssh/ssh_host_ed25519_key'), 0o600);
  copyFileSync(`${d.hostKey}.pub`, join(m, 'etc/ssh/ssh_host_ed25519_key.pub'));
  writeFileSync(join(m, 'etc/ssh/sshd_config.d/criu-lock-sandbox.conf'), SSHD_CONF);
  mkdirSync(join(m, 'root/.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(m, 'root/.ssh/authorized_keys'), `${clientPub.trim()}\n`, { mode: 0o600 });
  mkdirSync(join(m, 'run/sshd'), { recursive: true, mode: 0o755 });
  rmSync(join(m, 'run/sshd.pid'), { force: true });
}

/** Installs the scenario's packages with one `dpkg -i` inside the node (no apt, no network). */
export async function applyScenario(
  p: Paths,
  d: NodeDirs,
  scenario: ScenarioName,
  libc?: string,
): Promise<void> {
  const debs: string[] = [];
  // Real libc drift: the other build of libc6 and libc-bin (lockstep), from the local repo.
  if (libc !== undefined)
    for (const pkg of ['libc6', 'libc-bin']) debs.push(join('/srv/repo', debFileName(pkg, libc, 'amd64')));
  const copied: string[] = [];
  for (const pkg of SCENARIOS[scenario]) {
    const arch = pkg.name === 'fleet-doc' ? 'all' : 'amd64';
    const file = debFileName(pkg.name, pkg.version, arch);
    if (pkg.local) {
      // Not in any repository: copy the local .deb in, install it, remove the copy.
      const inNode = join('/tmp', file);
      copyFileSync(join(p.debsLocal, file), join(d.merged, inNode));
      copied.push(join(d.merged, inNode));
      debs.push(inNode);
    } else {
      debs.push(join('/srv/repo', file));
    }
  }
  try {
    await runOk(['chroot', d.merged, 'dpkg', '-i', '--force-confdef', '--force-confold', ...debs], {
      env: CHROOT_ENV,
    });
  } finally {
    for (const f of copied) rmSync(f, { force: true });
  }
}

/** Starts the node's sshd (foreground mode, detached) and waits until it accepts connections. */
export async function startSshd(d: NodeDirs, port: number): Promise<number> {
  if (await portOpen(port)) {
    throw new CriuLockError('sandbox', `port ${port} on 127.0.0.1 is already in use`, {
      hint: 'stop what listens there (ss -ltnp) or run `npm run sandbox -- down`',
    });
  }
  const child = spawn(
    'chroot',
    [
      d.merged,
      '/usr/sbin/sshd',
      '-D',
      '-p',
      String(port),
      '-o',
      'ListenAddress=127.0.0.1',
      '-E',
      '/var/log/sshd.log',
    ],
    { detached: true, stdio: 'ignore', env: CHROOT_ENV },
  );
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new CriuLockError('sandbox', 'could not start sshd (chroot not found?)');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) break;
    if (await portOpen(port)) return pid;
    await sleep(20);
  }
  let log = '';
  try {
    log = readFileSync(join(d.merged, 'var/log/sshd.log'), 'utf8').trim().split('\n').slice(-2).join(' | ');
  } catch {
    // no log
  }
  throw new CriuLockError(
    'sandbox',
    `sshd of ${d.merged} did not come up on port ${port}${log ? `: ${log}` : ''}`,
    {
      hint: `see ${join(d.merged, 'var/log/sshd.log')}`,
    },
  );
}

/**
 * Brings a node up from nothing: cleans whatever a previous run left, wipes the overlay upper dir,
 * mounts, installs the scenario, starts sshd. Used by `up` for new nodes and by `reset`.
 */
export async function createNode(
  p: Paths,
  spec: NodeSpec,
  clientPub: string,
  oldPid = 0,
  /** `clean: false`: the caller knows nothing of the node is mounted or running (a fresh `up`). */
  opts: { clean?: boolean } = {},
): Promise<{ state: NodeState; hostPub: string }> {
  const d = nodeDirs(p, spec.name);
  const left = opts.clean === false ? { pids: [], mounts: [] } : await stopNode(p, spec.name, oldPid);
  if (left.pids.length || left.mounts.length) {
    throw new CriuLockError(
      'sandbox',
      `cannot clean ${spec.name}: pids ${left.pids.join(',') || '-'} mounts ${left.mounts.join(',') || '-'}`,
      {
        hint: 'run `npm run sandbox -- down` and check `findmnt` / `ps`',
      },
    );
  }
  rmSync(d.upper, { recursive: true, force: true });
  rmSync(d.work, { recursive: true, force: true });
  const hostPub = await ensureHostKey(d, spec.name);
  await mountNode(p, d, spec.python);
  writeNodeFiles(d, clientPub);
  await applyScenario(p, d, spec.scenario, spec.libc);
  const sshdPid = await startSshd(d, spec.port);
  return { state: { ...spec, root: d.merged, sshdPid }, hostPub };
}

/** True if a node from a previous `up` is still whole: mounted, sshd alive, same port. */
export function nodeHealthy(p: Paths, n: NodeState, spec: NodeSpec): boolean {
  const d = nodeDirs(p, n.name);
  return (
    n.port === spec.port &&
    n.scenario === spec.scenario &&
    Boolean(n.python) === Boolean(spec.python) &&
    n.libc === spec.libc &&
    n.root === d.merged &&
    sshdAlive(p, n) &&
    isMounted(d.merged) &&
    mountsUnder(d.dir).length >= 4 &&
    existsSync(d.hostKey)
  );
}

export function hostPubOf(p: Paths, name: string): string {
  return readFileSync(`${nodeDirs(p, name).hostKey}.pub`, 'utf8').trim();
}

/** Runs argv inside the node via chroot from the host side. */
export function chrootExec(root: string, argv: readonly string[]): ReturnType<typeof run> {
  return run(['chroot', root, ...argv], { env: CHROOT_ENV });
}
