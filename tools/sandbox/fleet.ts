import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { CriuLockError } from '../../src/errors.js';
import { checkOverlay, checkRoot, ensureBase, ensureBaseLists, ensureHostTools } from './base.js';
import { mapLimit, run, runOk } from './exec.js';
import {
  createNode,
  hostPubOf,
  knownHostsLine,
  nodeDirs,
  nodeHealthy,
  nodeMounted,
  sshdAlive,
  stopNode,
  type NodeSpec,
} from './node.js';
import { ensurePythonLayer, PYTHON_LAYER } from './python-layer.js';
import { ensureCriu, procsInNodeNamespaces } from './criu.js';
import { ensureRealLibc } from './real-libc.js';
import { ensureRepo } from './repo.js';
import { LIBC_DRIFT_SCENARIO, scenarioFor } from './scenarios.js';
import { fleetLimitError, nofileNeeded, raiseNofile, readMachineLimits } from './limits.js';
import {
  BASE_DIR,
  DEFAULT_NODES,
  MAX_NODES,
  nodeIndex,
  nodeName,
  nodePort,
  portBase,
  paths,
  readState,
  writeState,
  type NodeState,
  type Paths,
  type SandboxState,
} from './state.js';
import {
  killPids,
  killRootedUnder,
  mountsUnder,
  pidAlive,
  procsRootedUnder,
  procRoot,
  unmountUnder,
} from './system.js';

export type Log = (line: string) => void;

export interface UpOptions {
  nodes?: number;
  /** Re-create nodes that are already running too (fresh scenario state). */
  reset?: boolean;
  concurrency?: number;
  log?: Log;
  /** State dir; default CRIU_LOCK_SANDBOX_DIR or /var/lib/criu-lock-sandbox. */
  dir?: string;
  /** Every node with python3 (a layer over the base; see python-layer.ts), for Ansible. */
  python?: boolean;
  /** Real libc6 drift: `behind` nodes get the other real glibc build (fetched once, then cached). */
  libcDrift?: boolean;
  /** Fetch (once) and cache the real CRIU bundle too. */
  criu?: boolean;
  /**
   * Every node but the golden one in the `converged` scenario (no package drift): for measuring
   * what a converged fleet costs without first converging a thousand drifted nodes with apt.
   */
  converged?: boolean;
}

export interface CommonOptions {
  log?: Log;
  dir?: string;
}

export interface ResetOptions extends CommonOptions {
  /** Re-create the nodes with (true) or without (false) python3; default as they were. */
  python?: boolean;
}

const defaultLog: Log = (s) => process.stderr.write(`sandbox: ${s}\n`);

export function fleetSpecs(
  total: number,
  opts: {
    python?: boolean | undefined;
    libcDrift?: string | undefined;
    converged?: boolean | undefined;
  } = {},
): NodeSpec[] {
  return Array.from({ length: total }, (_, i) => {
    const scenario = opts.converged && i > 0 ? 'converged' : scenarioFor(i + 1);
    return {
      name: nodeName(i + 1, total),
      port: nodePort(i + 1),
      scenario,
      ...(opts.python ? { python: true } : {}),
      ...(opts.libcDrift !== undefined && scenario === LIBC_DRIFT_SCENARIO ? { libc: opts.libcDrift } : {}),
    };
  });
}

/** Checks that this machine can host the sandbox at all (root, overlayfs). */
export async function preflight(p: Paths = paths()): Promise<void> {
  checkRoot();
  mkdirSync(p.dir, { recursive: true });
  await checkOverlay(p.dir);
}

async function ensureClientKey(p: Paths): Promise<string> {
  if (!existsSync(p.key) || !existsSync(`${p.key}.pub`)) {
    rmSync(p.key, { force: true });
    rmSync(`${p.key}.pub`, { force: true });
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'criu-lock-sandbox', '-f', p.key]);
  }
  return readFileSync(`${p.key}.pub`, 'utf8').trim();
}

/** Ansible YAML inventory: group golden (node01) and group fleet (the rest). */
export function renderInventory(nodes: readonly NodeState[], key: string): string {
  const host = (n: NodeState): string =>
    [
      `        ${n.name}:`,
      `          ansible_host: 127.0.0.1`,
      `          ansible_port: ${n.port}`,
      `          ansible_user: root`,
      `          ansible_ssh_private_key_file: ${JSON.stringify(key)}`,
      `          sandbox_scenario: ${n.scenario}`,
    ].join('\n');
  const golden = nodes.filter((n) => n.scenario === 'golden');
  const fleet = nodes.filter((n) => n.scenario !== 'golden');
  const group = (name: string, hs: readonly NodeState[]): string =>
    hs.length ? `    ${name}:\n      hosts:\n${hs.map(host).join('\n')}` : `    ${name}:\n      hosts: {}`;
  return `# criu-lock sandbox inventory, written by \`npm run sandbox -- up\`; do not edit.\nall:\n  children:\n${group('golden', golden)}\n${group('fleet', fleet)}\n`;
}

function writeOutputs(p: Paths, nodes: NodeState[]): SandboxState {
  writeFileSync(p.knownHosts, nodes.map((n) => `${knownHostsLine(n.port, hostPubOf(p, n.name))}\n`).join(''));
  writeFileSync(p.inventory, renderInventory(nodes, p.key));
  const s: SandboxState = {
    nodes,
    inventory: p.inventory,
    key: p.key,
    knownHosts: p.knownHosts,
    repo: p.repo,
  };
  writeState(s, p);
  return s;
}

/** Names of node dirs that exist on disk or are mounted, whatever state.json says. */
function nodesOnDisk(p: Paths): string[] {
  const names = new Set<string>();
  if (existsSync(p.nodes)) for (const e of readdirSync(p.nodes)) if (nodeIndex(e) !== undefined) names.add(e);
  for (const m of mountsUnder(p.nodes)) {
    const name = m.slice(p.nodes.length + 1).split('/')[0];
    if (name && nodeIndex(name) !== undefined) names.add(name);
  }
  return [...names].sort();
}

/** Names of nodes that have mounts or processes (chrooted, or in a CRIU namespace) right now. */
function dirtyNodes(p: Paths): Set<string> {
  const out = new Set<string>();
  const nameOf = (path: string): string | undefined =>
    path.startsWith(`${p.nodes}/`) ? path.slice(p.nodes.length + 1).split('/')[0] : undefined;
  for (const m of mountsUnder(p.nodes)) {
    const n = nameOf(m);
    if (n) out.add(n);
  }
  for (const pid of procsRootedUnder(p.nodes)) {
    const n = nameOf(procRoot(pid) ?? '');
    if (n) out.add(n);
  }
  // Processes in a node's CRIU namespace read "/" as their root: clean every node then.
  if (procsInNodeNamespaces(p.nodes).length > 0) for (const n of nodesOnDisk(p)) out.add(n);
  return out;
}

/** Brings the fleet up; idempotent: healthy nodes from a previous `up` are kept as they are. */
export async function up(opts: UpOptions = {}): Promise<SandboxState> {
  const log = opts.log ?? defaultLog;
  const total = opts.nodes ?? DEFAULT_NODES;
  if (!Number.isInteger(total) || total < 1 || total > MAX_NODES) {
    throw new CriuLockError('usage', `--nodes must be an integer between 1 and ${MAX_NODES}, got ${total}`);
  }
  const p = paths(opts.dir);
  await preflight(p);
  const old = readState(p);
  const running = new Set((old?.nodes ?? []).filter((n) => sshdAlive(p, n)).map((n) => n.port));
  const why = fleetLimitError({ nodes: total, portBase: portBase(), running }, readMachineLimits());
  if (why) throw new CriuLockError('sandbox', why);
  const raised = await raiseNofile(nofileNeeded(total));
  if (raised) log(raised);
  await ensureHostTools(log);

  // The base first: real libc drift is "the libc6 build the base does not have".
  const baseBuilt = await ensureBase(log);
  const libc = opts.libcDrift ? await ensureRealLibc(log) : undefined;
  if (opts.criu) await ensureCriu(log);
  const repo = await ensureRepo(p, log);
  if (repo.rebuilt || baseBuilt) {
    // Running nodes see the old repo or base: take them all down first.
    for (const name of nodesOnDisk(p)) await stopNode(p, name);
  }
  await ensureBaseLists(repo.repo, repo.packagesSha256, log);
  if (opts.python) await ensurePythonLayer(log);
  const clientPub = await ensureClientKey(p);

  const specs = fleetSpecs(total, { python: opts.python, libcDrift: libc?.drift, converged: opts.converged });
  const wanted = new Set(specs.map((s) => s.name));
  for (const name of nodesOnDisk(p)) {
    if (wanted.has(name)) continue;
    await stopNode(p, name, old?.nodes.find((n) => n.name === name)?.sshdPid ?? 0);
    rmSync(nodeDirs(p, name).dir, { recursive: true, force: true });
  }

  const started = Date.now();
  let created = 0;
  // Nodes with something left to clean (mounts, processes); the others start without a scan each,
  // which at 1,000 nodes would read /proc and mountinfo a thousand times.
  const dirty = dirtyNodes(p);
  const prevByName = new Map((old?.nodes ?? []).map((n) => [n.name, n]));
  const nodes = await mapLimit(specs, opts.concurrency ?? 8, async (spec) => {
    const prev = prevByName.get(spec.name);
    if (prev && !opts.reset && nodeHealthy(p, prev, spec)) return prev;
    const clean = dirty.has(spec.name) || (prev !== undefined && pidAlive(prev.sshdPid));
    const { state } = await createNode(p, spec, clientPub, prev?.sshdPid ?? 0, { clean });
    created++;
    return state;
  });
  const s = writeOutputs(p, nodes);
  log(
    `${total} nodes up (${created} started, ${total - created} kept) in ${((Date.now() - started) / 1000).toFixed(1)}s; inventory ${p.inventory}`,
  );
  return s;
}

/** Restores nodes to their scenario: stop, unmount, wipe the upper dir, remount, reinstall, restart sshd. */
export async function reset(
  names: readonly string[] | 'all',
  opts: ResetOptions = {},
): Promise<SandboxState> {
  const log = opts.log ?? defaultLog;
  checkRoot();
  const p = paths(opts.dir);
  const s = readState(p);
  if (!s)
    throw new CriuLockError('sandbox', 'no sandbox is up (no state.json)', {
      hint: 'run `npm run sandbox -- up` first',
    });
  const targets = names === 'all' ? s.nodes.map((n) => n.name) : [...names];
  for (const t of targets) {
    if (!s.nodes.some((n) => n.name === t)) {
      throw new CriuLockError('usage', `no node named ${t} in the sandbox`, {
        hint: `nodes: ${s.nodes.map((n) => n.name).join(' ')}`,
      });
    }
  }
  const clientPub = readFileSync(`${p.key}.pub`, 'utf8').trim();
  if (opts.python) await ensurePythonLayer(log);
  const nodes = await mapLimit(s.nodes, 8, async (n) => {
    if (!targets.includes(n.name)) return n;
    const python = opts.python ?? n.python ?? false;
    const { state } = await createNode(
      p,
      {
        name: n.name,
        port: n.port,
        scenario: n.scenario,
        ...(python ? { python } : {}),
        ...(n.libc !== undefined ? { libc: n.libc } : {}),
      },
      clientPub,
      n.sshdPid,
    );
    log(`${n.name} reset to scenario ${n.scenario}${python ? ' (with python3)' : ''}`);
    return state;
  });
  return writeOutputs(p, nodes);
}

export interface DownResult {
  leftPids: number[];
  leftMounts: string[];
}

/**
 * Stops every sshd by pid, kills anything else chrooted into a node, unmounts everything under the
 * state dir (and any temporary mount in the base), then verifies nothing is left.
 */
export async function down(opts: CommonOptions = {}): Promise<DownResult> {
  const log = opts.log ?? defaultLog;
  checkRoot();
  const started = Date.now();
  const p = paths(opts.dir);
  const s = readState(p);
  const recorded = s?.nodes.map((n) => n.sshdPid).filter((x) => x > 0) ?? [];
  const names = [...new Set([...(s?.nodes.map((n) => n.name) ?? []), ...nodesOnDisk(p)])];
  // All at once, not node by node: one /proc scan, one TERM/KILL round for every process, then
  // the mounts in batches (a thousand nodes are 4,000 mounts).
  const ours = recorded.filter((pid) => (procRoot(pid) ?? '').startsWith(`${p.nodes}/`));
  await killPids([...new Set([...ours, ...procsRootedUnder(p.nodes), ...procsInNodeNamespaces(p.nodes)])]);
  // Anything else: stray processes chrooted anywhere under the state dir, mounts in the base.
  await killRootedUnder(p.nodes, procsInNodeNamespaces(p.nodes));
  await unmountBatches(mountsUnder(p.dir));
  await unmountUnder(p.dir);
  await unmountUnder(BASE_DIR);
  await unmountUnder(`${PYTHON_LAYER}.tmp`);
  const leftMounts = [...mountsUnder(p.dir), ...mountsUnder(BASE_DIR)];
  if (leftMounts.length === 0) rmSync(p.nodes, { recursive: true, force: true });
  else for (const name of names) rmSync(nodeDirs(p, name).dir, { recursive: true, force: true });

  const leftPids = [
    ...new Set([
      // A recorded pid that is alive but no longer chrooted into a node was reused by someone else.
      ...recorded.filter((pid) => pidAlive(pid) && (procRoot(pid) ?? '').startsWith(`${p.nodes}/`)),
      ...(await killRootedUnder(p.nodes, procsInNodeNamespaces(p.nodes))),
    ]),
  ];
  if (leftMounts.length === 0 && leftPids.length === 0) rmSync(p.state, { force: true });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  log(
    leftMounts.length || leftPids.length
      ? `down incomplete: mounts left ${leftMounts.join(' ') || '-'}; pids left ${leftPids.join(' ') || '-'}`
      : `down: ${names.length} nodes stopped in ${secs}s, nothing left mounted or running`,
  );
  return { leftPids, leftMounts };
}

/** umount(8) with many targets per call, newest mount first (children before parents). */
async function unmountBatches(mounts: readonly string[], batch = 200): Promise<void> {
  const order = [...mounts].reverse();
  for (let i = 0; i < order.length; i += batch) await run(['umount', ...order.slice(i, i + batch)]);
}

export interface NodeStatus {
  name: string;
  port: number;
  scenario: string;
  libc?: string;
  sshdPid: number;
  sshdAlive: boolean;
  mounted: boolean;
}

export function status(dir?: string): { dir: string; nodes: NodeStatus[] } {
  const p = paths(dir);
  const s = readState(p);
  return {
    dir: p.dir,
    nodes: (s?.nodes ?? []).map((n) => ({
      name: n.name,
      port: n.port,
      scenario: n.scenario,
      ...(n.libc !== undefined ? { libc: n.libc } : {}),
      sshdPid: n.sshdPid,
      sshdAlive: sshdAlive(p, n),
      mounted: nodeMounted(p, n.name),
    })),
  };
}
