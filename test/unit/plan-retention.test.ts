/**
 * Issue 14: a fleet's plan must not keep what each host printed. V8 cuts substrings of 13 or more
 * characters (split, slice, regex captures) as views of the string they come from, so one package
 * key or detail in a plan, or facts kept across the simulation's round trip, would keep a host's
 * whole probe output (~1.6 MiB on 750 locked ELF files) alive. Each probe output here carries
 * 48 MiB of padding: retaining it shows as 48 MiB of live heap after a full GC, far above the
 * few MiB a test run's heap wanders, so the assertions do not depend on timing or on the machine.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parseProbeOutput } from '../../src/facts/parse.js';
import { planWithTransaction } from '../../src/facts/simulate.js';
import type { HostPlan } from '../../src/plan/plan-file.js';
import type { CommandResult, ExecOptions, Transport } from '../../src/transport/types.js';
import { makeLock } from './core-fixtures.js';
import { FOCAL_PROBE_HEAD } from '../helpers/probe-output.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PADDING = 48 * 1024 * 1024;
/** Live heap growth allowed: a quarter of one host's padding. */
const SLACK = PADDING / 4;

function liveHeap(): number {
  // V8 keeps the last regex subject (RegExp.lastMatch) alive: one string per process, not per host.
  /x/.exec('x');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const LONG = 'libfleet-common-runtime1';
const EXTRA = 'fleet-documentation-extra';
const LOCK = makeLock({ packages: { [`${LONG}:amd64`]: { version: '2.31-0ubuntu9.14' } } });

/**
 * A probe answer of a focal host: the locked package one version ahead (a downgrade apt can do),
 * an extra package (a note), and `broken` makes the locked package half-configured (blocked).
 * Names and versions are 13+ characters so V8 slices them out of the answer.
 */
function probeOutput(broken: boolean): string {
  const dpkg = (name: string, version: string, status: string): string =>
    [name, 'amd64', version, 'install', status, 'ok', 'same', '', 'libc6 (>= 2.31-0ubuntu9)', ''].join('\t');
  return [
    ...FOCAL_PROBE_HEAD,
    `#${'x'.repeat(PADDING)}`,
    '@@arch',
    'amd64',
    '@@dpkg',
    dpkg(LONG, '2.31-0ubuntu9.16', broken ? 'half-configured' : 'installed'),
    dpkg(EXTRA, '1.0-1+fleet-build3', 'installed'),
    '@@policy',
    `${LONG}:`,
    '  Installed: 2.31-0ubuntu9.16',
    '  Candidate: 2.31-0ubuntu9.16',
    ' *** 2.31-0ubuntu9.16 100',
    '        100 /var/lib/dpkg/status',
    '     2.31-0ubuntu9.14 500',
    '        500 http://deb.example/ubuntu focal-updates/main amd64 Packages',
    '@@end',
    '',
  ].join('\n');
}

/** apt-get -s output removing the extra package and pulling in a new one, as apt prints them. */
const SIMULATION = [
  `Remv ${EXTRA} [1.0-1+fleet-build3]`,
  `Inst ${LONG} [2.31-0ubuntu9.16] (2.31-0ubuntu9.14 focal-updates:ubuntu [amd64])`,
  'Inst libfleet-plugins-extra0 (2.31-0ubuntu9.14 focal-updates:ubuntu [amd64])',
  '',
].join('\n');

/** Answers apt-get -s; `during` is the live heap measured while the simulation runs on the host. */
class SimHost implements Transport {
  during: number | undefined;
  constructor(readonly host: string) {}
  async exec(argv: readonly string[], _opts?: ExecOptions): Promise<CommandResult> {
    // As a real host answers: later, once the caller's stack has unwound.
    await new Promise((resolve) => setImmediate(resolve));
    this.during = liveHeap();
    return {
      command: argv.join(' '),
      exitCode: 0,
      stdout: SIMULATION,
      stderr: '',
      durationMs: 1,
      timedOut: false,
    };
  }
  putFile(): Promise<CommandResult> {
    throw new Error('planning writes nothing');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Parses a fresh probe answer and plans from it; nothing here outlives the call but the plan. */
function planFrom(t: Transport, broken: boolean): Promise<HostPlan> {
  return planWithTransaction(t, LOCK, parseProbeOutput(t.host, probeOutput(broken)).facts, 'PINS\n');
}

describe('a plan holds nothing of what the host printed (issue 14)', () => {
  it('keeps no probe output across the simulation, nor in the plans of a fleet', async () => {
    const before = liveHeap();
    const a = new SimHost('node-a');
    const simulated = await planFrom(a, false);
    const blocked = await planFrom(new SimHost('node-b'), true);
    const after = liveHeap();

    // The plans are the ones the output describes: a note, a would-remove block, an apt extra...
    expect(simulated.status).toBe('blocked');
    expect(simulated.notes).toEqual([
      { type: 'extra-package', package: `${EXTRA}:amd64`, version: '1.0-1+fleet-build3' },
    ]);
    expect(simulated.blocked.map((b) => b.reason)).toEqual(['would-remove']);
    expect(simulated.aptExtra).toEqual([
      { action: 'install', package: 'libfleet-plugins-extra0:amd64', from: null, to: '2.31-0ubuntu9.14' },
    ]);
    // ...and a broken package, not simulated.
    expect(blocked.blocked.map((b) => b.reason)).toEqual(['broken-dpkg-state']);
    expect(blocked.blocked[0]!.detail).toContain('half-configured');

    // The simulation ran with the facts already dropped, and the two plans keep no output.
    expect(a.during).toBeDefined();
    expect(a.during! - before).toBeLessThan(SLACK);
    expect(after - before).toBeLessThan(SLACK);
  });
});
