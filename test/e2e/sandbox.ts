/**
 * Test-side helpers for the sandbox fleet that test/e2e/global-setup.ts brings up once per run.
 * Tests that need real nodes do:
 *
 *   const sb = useSandbox();
 *   describe.skipIf(sb.skip)('...', () => { ... sb.state() ... });
 */
import { inject } from 'vitest';
import { run, type CommandResult } from '../../tools/sandbox/exec.js';
import { reset } from '../../tools/sandbox/fleet.js';
import { chrootExec } from '../../tools/sandbox/node.js';
import { paths, readState, type NodeState, type SandboxState } from '../../tools/sandbox/state.js';

export type SandboxProvided = { dir: string; state: SandboxState } | { skip: string };
export type CriuProvided = { ok: true } | { skip: string };

declare module 'vitest' {
  export interface ProvidedContext {
    sandbox: SandboxProvided;
    criu: CriuProvided;
  }
}

/** Why the real-CRIU tests are skipped (sandbox or CRIU unavailable), or false. */
export function criuSkip(): string | false {
  const sb = useSandbox();
  if (sb.skip) return sb.skip;
  try {
    const c = inject('criu') as CriuProvided | undefined;
    if (!c) return 'test/e2e/global-setup.ts provided no CRIU status';
    return 'skip' in c ? c.skip : false;
  } catch {
    return 'vitest inject("criu") unavailable';
  }
}

export interface SandboxHandle {
  /** Why sandbox tests are skipped, or false when the fleet is up (for `describe.skipIf`). */
  skip: string | false;
  dir: string;
  /** The current state.json (re-read, since `reset` changes sshd pids). Throws when skipped. */
  state(): SandboxState;
  node(name: string): NodeState;
}

function provided(): SandboxProvided {
  try {
    return (
      inject('sandbox') ?? { skip: 'test/e2e/global-setup.ts is not wired into vitest.config.ts globalSetup' }
    );
  } catch {
    return { skip: 'vitest inject("sandbox") unavailable' };
  }
}

export function useSandbox(): SandboxHandle {
  const pv = provided();
  const dir = 'dir' in pv ? pv.dir : paths().dir;
  const state = (): SandboxState => {
    if ('skip' in pv) throw new Error(`sandbox skipped: ${pv.skip}`);
    return readState(paths(dir)) ?? pv.state;
  };
  return {
    skip: 'skip' in pv ? pv.skip : false,
    dir,
    state,
    node(name) {
      const n = state().nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no sandbox node ${name}`);
      return n;
    },
  };
}

function resolveNode(node: string | NodeState): NodeState {
  return typeof node === 'string' ? useSandbox().node(node) : node;
}

/** Runs argv inside the node with chroot from the host side (no SSH). */
export function nodeExec(node: string | NodeState, argv: readonly string[]): Promise<CommandResult> {
  return chrootExec(resolveNode(node).root, argv);
}

/** Runs argv in the node over real SSH with the sandbox key and strict host key checking. */
export function sshExec(
  node: string | NodeState,
  remoteCommand: string,
  opts: { knownHosts?: string } = {},
): Promise<CommandResult> {
  const n = resolveNode(node);
  const s = useSandbox().state();
  return run(
    [
      'ssh',
      '-i',
      s.key,
      '-o',
      `UserKnownHostsFile=${opts.knownHosts ?? s.knownHosts}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=10',
      '-p',
      String(n.port),
      'root@127.0.0.1',
      remoteCommand,
    ],
    { timeoutMs: 30_000 },
  );
}

/** Restores one node to its scenario (fresh overlay, same host key). */
export async function resetNode(name: string): Promise<NodeState> {
  const s = await reset([name], { dir: useSandbox().dir, log: () => undefined });
  const n = s.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no sandbox node ${name}`);
  return n;
}

/** GNU build-ID of an ELF file, read with readelf -n (a path on the host, or inside `node`). */
export async function readelfBuildId(
  node: string | NodeState | null,
  path: string,
): Promise<string | undefined> {
  const file = node === null ? path : `${resolveNode(node).root}${path}`;
  const r = await run(['readelf', '-n', file]);
  if (r.exitCode !== 0) throw new Error(`readelf -n ${file}: ${r.stderr.trim()}`);
  return /Build ID:\s*([0-9a-f]+)/.exec(r.stdout)?.[1];
}

/** `dpkg-query -W` output as package → version (arch qualifiers dropped). */
export function parseDpkgQuery(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [pkg, ver] = line.split('\t');
    if (pkg && ver) m.set(pkg.replace(/:.*$/, ''), ver);
  }
  return m;
}
