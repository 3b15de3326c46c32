/**
 * apt's real transaction, as `apt-get -s` (LC_ALL=C) prints it, and what it means for a plan.
 * Pure: the simulation's stdout and the host's facts in, the plan's extra packages and
 * `would-remove` blocks out. The I/O half is src/facts/simulate.ts.
 */
import { CriuLockError } from '../errors.js';
import { compareVersions, isValidVersion } from '../debian/version.js';
import { isValidArchitecture, isValidPackageName } from '../debian/names.js';
import type { InstalledPackage } from '../facts/types.js';
import type { Lockfile } from '../lock/lockfile.js';
import type { AptExtra, Blocked, HostPlan, PackageAction } from './plan-file.js';

/** One line of apt's simulated transaction. `arch` is absent only on Remv lines for native packages. */
export type AptOp =
  | { op: 'inst'; name: string; arch: string; from: string | null; to: string }
  | { op: 'remv'; name: string; arch: string | undefined; version: string }
  | { op: 'conf'; name: string; arch: string; version: string };

// apt-get -s (apt's pkgSimulate) prints, untranslated under LC_ALL=C:
//   Inst NAME[:ARCH] [OLD] (NEW RELEASE... [ARCH]) [BROKEN...]
//   Conf NAME[:ARCH] (VERSION RELEASE... [ARCH])
//   Remv NAME[:ARCH] [VERSION] [BROKEN...]
// RELEASE may contain spaces; the last bracket inside the parentheses is the architecture.
const INST = /^Inst (\S+)(?: \[(\S+)\])? \((\S+) (?:[^()]* )?\[([a-z0-9-]+)\]\)(?: \[[^\]]*\])?$/;
const CONF = /^Conf (\S+) \((\S+) (?:[^()]* )?\[([a-z0-9-]+)\]\)$/;
const REMV = /^Remv (\S+) \[(\S+)\](?: \[[^\]]*\])?$/;
const OP_LINE = /^(Inst|Conf|Remv|Purg) /;

function splitName(raw: string, line: string): { name: string; arch: string | undefined } {
  const [name = '', arch, extra] = raw.split(':');
  if (
    extra !== undefined ||
    !isValidPackageName(name) ||
    (arch !== undefined && !isValidArchitecture(arch))
  ) {
    throw badLine(line, `invalid package name ${JSON.stringify(raw)}`);
  }
  return { name, arch };
}

function version(v: string, line: string): string {
  if (!isValidVersion(v)) throw badLine(line, `invalid version ${JSON.stringify(v)}`);
  return v;
}

function badLine(line: string, why: string): CriuLockError {
  return new CriuLockError(
    'input',
    `unexpected line in apt-get -s output (${why}): ${JSON.stringify(line.slice(0, 200))}`,
    {
      hint: 'criu-lock parses apt-get -s under LC_ALL=C; a modified apt or an apt hook printing such lines makes the host fail, never guess',
    },
  );
}

/**
 * Parses the Inst/Conf/Remv lines of `apt-get -s`. Other lines (progress, summaries) are ignored;
 * a line that starts like an operation but does not have its exact shape, a purge, an invalid name
 * or version, throws, so the host fails instead of being planned on a guess.
 */
export function parseAptSimulation(stdout: string): AptOp[] {
  const ops: AptOp[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const kind = OP_LINE.exec(line)?.[1];
    if (!kind) continue;
    if (kind === 'Inst') {
      const m = INST.exec(line);
      if (!m?.[1] || !m[3] || !m[4]) throw badLine(line, 'not an Inst line');
      const { name, arch } = splitName(m[1], line);
      if (arch !== undefined && arch !== m[4]) throw badLine(line, `architecture ${arch} vs [${m[4]}]`);
      ops.push({
        op: 'inst',
        name,
        arch: m[4],
        from: m[2] === undefined ? null : version(m[2], line),
        to: version(m[3], line),
      });
    } else if (kind === 'Conf') {
      const m = CONF.exec(line);
      if (!m?.[1] || !m[2] || !m[3]) throw badLine(line, 'not a Conf line');
      const { name } = splitName(m[1], line);
      ops.push({ op: 'conf', name, arch: m[3], version: version(m[2], line) });
    } else if (kind === 'Remv') {
      const m = REMV.exec(line);
      if (!m?.[1] || !m[2]) throw badLine(line, 'not a Remv line');
      const { name, arch } = splitName(m[1], line);
      ops.push({ op: 'remv', name, arch, version: version(m[2], line) });
    } else {
      throw badLine(line, 'apt would purge a package');
    }
  }
  return ops;
}

/** Facts the transaction is judged against: what dpkg has installed, and the native architecture. */
export interface TransactionContext {
  packages: ReadonlyMap<string, InstalledPackage>;
  nativeArch: string;
}

function keyOf(name: string, arch: string | undefined, ctx: TransactionContext): string {
  if (arch !== undefined) return `${name}:${arch}`;
  // Remv prints native and Architecture: all packages without a qualifier.
  for (const a of [ctx.nativeArch, 'all']) if (ctx.packages.has(`${name}:${a}`)) return `${name}:${a}`;
  return `${name}:${ctx.nativeArch}`;
}

function cmpKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface Relation {
  name: string;
  op?: string;
  version?: string;
}

/** `a (>= 1), b | c (= 2)` → groups of alternatives. Arch qualifiers (`:any`) are dropped. */
export function parseRelations(field: string): Relation[][] {
  const groups: Relation[][] = [];
  for (const group of field.split(',')) {
    const alts: Relation[] = [];
    for (const alt of group.split('|')) {
      const m =
        /^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?/.exec(
          alt,
        );
      if (m?.[1]) alts.push({ name: m[1], ...(m[2] && m[3] ? { op: m[2], version: m[3] } : {}) });
    }
    if (alts.length > 0) groups.push(alts);
  }
  return groups;
}

function satisfies(v: string, r: Relation): boolean {
  if (!r.op || !r.version || !isValidVersion(r.version)) return true;
  const c = compareVersions(v, r.version);
  switch (r.op) {
    case '=':
      return c === 0;
    case '>=':
    case '>':
      return c >= 0;
    case '<=':
    case '<':
      return c <= 0;
    case '>>':
      return c > 0;
    case '<<':
      return c < 0;
    default:
      return true;
  }
}

/** Why apt removes `victim`: which requested (locked) version breaks one of its dependencies. */
function whyRemoved(victim: InstalledPackage | undefined, requested: readonly PackageAction[]): string {
  if (victim) {
    const byName = new Map(requested.map((a) => [a.package.split(':')[0]!, a]));
    for (const group of parseRelations(`${victim.preDepends},${victim.depends}`)) {
      for (const rel of group) {
        const a = byName.get(rel.name);
        if (a && !satisfies(a.to, rel)) {
          return `it depends on ${rel.name} (${rel.op} ${rel.version}), and the lock needs ${a.package} ${a.to}`;
        }
      }
    }
  }
  const what = requested.map((a) => `${a.package} ${a.to}`).join(', ');
  return `apt resolves the locked version(s) ${what} only by removing it (a Conflicts or Breaks of the new version)`;
}

/**
 * Folds apt's simulated transaction into a host's plan: every package apt would install, upgrade,
 * downgrade or reinstall beyond the plan's own actions becomes an `aptExtra` entry, and every
 * removal blocks the host (`would-remove`, naming the package and the locked version that forces
 * it). A locked package that apt would move to another version than the plan's is an error: it
 * cannot happen with exact `name:arch=version` requests, so it means the simulation is not what
 * the plan asked for.
 */
export function applyTransaction(
  plan: HostPlan,
  ops: readonly AptOp[],
  lock: Lockfile,
  ctx: TransactionContext,
): HostPlan {
  const requested = plan.actions.filter((a): a is PackageAction => a.type !== 'write-pins');
  const byKey = new Map(requested.map((a) => [a.package, a]));
  const extra: AptExtra[] = [];
  const blocked: Blocked[] = [];
  for (const op of ops) {
    if (op.op === 'conf') continue;
    const key = keyOf(op.name, op.arch, ctx);
    if (op.op === 'remv') {
      const locked = lock.packages[key];
      blocked.push({
        package: key,
        version: op.version,
        reason: 'would-remove',
        detail: `apt would remove ${key} ${op.version}${locked ? ' (a locked package)' : ''}: ${whyRemoved(ctx.packages.get(key), requested)}; criu-lock never removes packages`,
      });
      continue;
    }
    const mine = byKey.get(key);
    if (mine) {
      if (compareVersions(mine.to, op.to) !== 0) {
        throw new CriuLockError(
          'input',
          `apt-get -s would install ${key} ${op.to}, the plan asked for ${mine.to}`,
          {
            hint: 'the simulation does not match the requested versions; check the host for apt hooks or configuration',
          },
        );
      }
      continue;
    }
    const c = op.from === null ? null : compareVersions(op.from, op.to);
    const action: AptExtra['action'] =
      c === null ? 'install' : c < 0 ? 'upgrade' : c > 0 ? 'downgrade' : 'reinstall';
    extra.push({ action, package: key, from: op.from, to: op.to });
  }
  extra.sort((a, b) => cmpKeys(a.package, b.package));
  blocked.sort((a, b) => cmpKeys(a.package ?? '', b.package ?? ''));
  const out: HostPlan = { ...plan, blocked: [...plan.blocked, ...blocked] };
  if (extra.length > 0) out.aptExtra = extra;
  else delete out.aptExtra;
  if (out.blocked.length > 0 && out.status === 'changes') out.status = 'blocked';
  return out;
}
