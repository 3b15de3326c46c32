import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScenarioName } from './scenarios.js';

/** Where the sandbox keeps everything that belongs to one fleet. */
export function stateDir(): string {
  return process.env.CRIU_LOCK_SANDBOX_DIR ?? '/var/lib/criu-lock-sandbox';
}

/**
 * The debootstrapped base, shared by every state dir and kept between runs.
 * CRIU_LOCK_SANDBOX_BASE gives a second fleet whose repository differs a base of its own: the base's
 * apt lists describe one repository, and a lower dir must not change under mounted overlays.
 */
export const BASE_DIR = process.env.CRIU_LOCK_SANDBOX_BASE ?? '/var/cache/criu-lock/base-bookworm';
/** Written last by a successful base build; without it the base is rebuilt. */
export const BASE_MARKER = '.criu-lock-base-complete';
/** Inside the base: sha256 of the repo's Packages file the base's apt lists were made from. */
export const BASE_REPO_STAMP = 'var/lib/criu-lock/repo-packages.sha256';
export const FIRST_PORT = 22200;
export const DEFAULT_NODES = 5;
/** The largest fleet `up` accepts; what this machine can really host is checked by limits.ts. */
export const MAX_NODES = 5000;

export interface NodeState {
  name: string;
  port: number;
  scenario: ScenarioName;
  /** The merged overlay directory: the node's root. */
  root: string;
  sshdPid: number;
  /** Has the python3 layer (for Ansible); absent: the plain, Python-free base. */
  python?: boolean;
  /** Real libc6 build installed over the base's (libc drift), when `up --libc-drift` chose this node. */
  libc?: string;
}

export interface SandboxState {
  nodes: NodeState[];
  inventory: string;
  key: string;
  knownHosts: string;
  repo: string;
}

export interface Paths {
  dir: string;
  state: string;
  inventory: string;
  key: string;
  knownHosts: string;
  repo: string;
  debsLocal: string;
  build: string;
  nodes: string;
  hostKeys: string;
}

export function paths(dir = stateDir()): Paths {
  return {
    dir,
    state: join(dir, 'state.json'),
    inventory: join(dir, 'inventory.yaml'),
    key: join(dir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    repo: join(dir, 'repo'),
    debsLocal: join(dir, 'debs-local'),
    build: join(dir, 'build'),
    nodes: join(dir, 'nodes'),
    hostKeys: join(dir, 'host-keys'),
  };
}

/** `node01`…, 3 digits from 100 nodes, 4 from 1,000: as wide as the largest index, at least 2. */
export function nodeName(index: number, total: number): string {
  return `node${String(index).padStart(Math.max(2, String(total).length), '0')}`;
}

/** CRIU_LOCK_SANDBOX_PORT_BASE lets a second fleet (benchmarks, a developer's) run beside the tests'. */
export function nodePort(index: number): number {
  return portBase() + index;
}

/** Node N listens on portBase() + N. */
export function portBase(): number {
  const base = Number(process.env.CRIU_LOCK_SANDBOX_PORT_BASE ?? FIRST_PORT);
  return Number.isInteger(base) && base > 0 && base < 65000 ? base : FIRST_PORT;
}

/** Index of a node from its name (`node07` → 7), or undefined. */
export function nodeIndex(name: string): number | undefined {
  const m = /^node(\d+)$/.exec(name);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export function readState(p: Paths = paths()): SandboxState | undefined {
  if (!existsSync(p.state)) return undefined;
  try {
    return JSON.parse(readFileSync(p.state, 'utf8')) as SandboxState;
  } catch {
    return undefined;
  }
}

export function writeState(s: SandboxState, p: Paths = paths()): void {
  const tmp = `${p.state}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, p.state);
}
