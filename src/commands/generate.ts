import { CriuLockError } from '../errors.js';
import { gatherFacts } from '../facts/gather.js';
import type { HostFacts } from '../facts/types.js';
import { findGolden } from '../inventory/limit.js';
import { buildLock, selectForScope, type GenerateScope } from '../lock/build-lock.js';
import { errorText, isHostFailure } from '../fleet/host-error.js';
import type { Transport } from '../transport/types.js';
import { errLine, type CommandDeps, type CommonOptions } from './context.js';
import { checkOutputFile, writeLockOutput } from './output-path.js';
import { prepareRun } from './prepare.js';
import { packageRefProblem } from '../debian/schemas.js';

export interface GenerateOptions extends CommonOptions {
  golden?: string | undefined;
  output: string;
  packages: string[];
  withDeps: boolean;
  pids: number[];
}

export function scopeOf(opts: Pick<GenerateOptions, 'packages' | 'withDeps' | 'pids'>): GenerateScope {
  if (opts.pids.length > 0 && opts.packages.length > 0) {
    throw new CriuLockError('usage', '--pid and --package cannot be combined', {
      hint: 'lock either what processes map (--pid) or named packages (--package)',
    });
  }
  if (opts.withDeps && opts.packages.length === 0) {
    throw new CriuLockError('usage', '--with-deps needs at least one --package', {
      hint: 'e.g. criu-lock generate --package libc6 --with-deps',
    });
  }
  for (const p of opts.packages) {
    if (packageRefProblem(p) !== undefined) {
      throw new CriuLockError('usage', `invalid package name ${JSON.stringify(p)}`, {
        hint: 'Debian package names are lowercase: a-z 0-9 + - . (optionally :arch)',
      });
    }
  }
  for (const pid of opts.pids) {
    if (!Number.isInteger(pid) || pid <= 0)
      throw new CriuLockError('usage', `invalid --pid ${Number.isNaN(pid) ? '(not a number)' : pid}`, {
        hint: 'pass a positive process ID',
      });
  }
  if (opts.pids.length > 0) return { kind: 'processes', pids: opts.pids };
  if (opts.packages.length > 0) return { kind: 'packages', packages: opts.packages, withDeps: opts.withDeps };
  return { kind: 'all' };
}

/**
 * The keys a scope locks, or none when the selection fails: that failure (a package not installed,
 * a process gone) is an input error buildLock reports after the host work, not a host failure.
 */
function lockedKeys(facts: HostFacts, scope: GenerateScope, host: string): string[] {
  try {
    return selectForScope(facts, scope, host).packages.map((p) => p.pkg.key);
  } catch (err) {
    if (err instanceof CriuLockError) return [];
    throw err;
  }
}

/**
 * Facts of the golden node for a scope, in as few round trips as the scope allows: what to read
 * is decided here, what to lock by `selectForScope` (the same switch buildLock uses).
 */
async function goldenFacts(t: Transport, scope: GenerateScope, host: string): Promise<HostFacts> {
  let facts: HostFacts;
  switch (scope.kind) {
    case 'all':
      facts = await gatherFacts(t, { elfOf: 'all' });
      break;
    case 'packages': {
      // The package list first: files are read only of the packages the lock will hold.
      const base = await gatherFacts(t, {});
      const chosen = lockedKeys(base, scope, host);
      facts = chosen.length > 0 ? await gatherFacts(t, { elfOf: chosen }) : base;
      break;
    }
    case 'processes':
      facts = await gatherFacts(t, { pids: scope.pids });
      break;
    default: {
      const never: never = scope;
      throw new Error(String(never));
    }
  }
  // A second, cheap round trip: the .deb checksums of exactly the installed versions locked.
  const wanted = lockedKeys(facts, scope, host).map((k) => `${k}=${facts.packages.get(k)?.version ?? ''}`);
  if (wanted.length > 0) {
    const sha = await gatherFacts(t, { shaFor: [...new Set(wanted)] });
    for (const [k, v] of sha.debSha256) facts.debSha256.set(k, v);
  }
  return facts;
}

export async function runGenerate(opts: GenerateOptions, deps: CommandDeps): Promise<number> {
  const { io } = deps;
  const scope = scopeOf(opts);
  if (opts.output !== '-') await checkOutputFile(opts.output, '-o');
  const run = await prepareRun(opts, deps, { select: (inv) => [findGolden(inv, opts.golden)] });
  const golden = run.hosts[0]!;
  const result = await run.withHost(golden, async (t) => goldenFacts(t, scope, golden.name), 'gather facts');
  if (isHostFailure(result)) {
    errLine(io, `error: golden node ${golden.name} ${result.status}: ${errorText(result.error)}`);
    return 3;
  }
  const now = deps.clock.now();
  const { lock, warnings } = buildLock(result, scope, {
    host: golden.name,
    generatedAt: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  });
  return writeLockOutput(io, { lock, warnings, golden: golden.name, output: opts.output, what: '' });
}
