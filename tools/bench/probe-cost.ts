/**
 * What the facts probe of `plan` costs each node: bytes it prints and node CPU seconds, for
 * (a) every file read and `apt-cache policy` of every locked package (what plan asked before probe
 * format 3), (b) the current format on a first run (no cached readings; policy filtered on the
 * node) and (c) a later run with the readings (a) and (b) leave (only changed files read). Since
 * format 6 a read file costs its build-ID on the wire, not its 1 KiB head.
 * Runs the exact scripts criu-lock renders, through the system ssh, against a sandbox fleet.
 *
 *   CRIU_LOCK_SANDBOX_DIR=... node dist-tools/tools/bench/probe-cost.js --lock LOCK [--runs N] [--repeat R]
 *
 * Node CPU is the probe's children's user+sys as the node's own `sh` reports it (`times`). With
 * `--repeat R` each sample runs the script R times in one ssh session and reports the mean per
 * probe (`times` counts 10 ms ticks; one probe is a few of them). The later run sends what the
 * run before leaves: the file readings and, from format 5, the dpkg-state reading.
 */
import { parseArgs } from 'node:util';
import { lockedPaths } from '../../src/check/compare.js';
import { parseProbeOutput } from '../../src/facts/parse.js';
import { PROBE_VERSION, renderProbeScript, type ProbeRequest } from '../../src/facts/probe-script.js';
import { dpkgKnown } from '../../src/facts/gather.js';
import { reusableDpkgReading, reusableReadings } from '../../src/facts/stat-cache.js';
import { loadLock } from '../../src/lock/lockfile.js';
import { PIN_FILE } from '../../src/plan/pins.js';
import { paths, readState } from '../sandbox/state.js';
import { sshArgv } from './baseline.js';
import { spawnTimed } from './measure.js';

interface Sample {
  bytes: number;
  nodeCpuS: number;
  wallS: number;
}

/** `times` prints the shell's, then its children's user and system time: "0m0.12s 0m0.03s". */
function childCpu(stderr: string): number {
  const lines = stderr.trim().split('\n');
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines.at(-1) ?? '');
  if (!m) throw new Error(`no \`times\` line in the probe's stderr: ${stderr.slice(-200)}`);
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lock: { type: 'string' },
      runs: { type: 'string', default: '3' },
      repeat: { type: 'string', default: '1' },
      node: { type: 'string', multiple: true },
      help: { type: 'boolean', default: false },
    },
  });
  const usage =
    'usage: probe-cost --lock LOCK [--runs N] [--repeat R] [--node NAME]...  (CRIU_LOCK_SANDBOX_DIR: the fleet)';
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.lock) throw new Error(usage);
  const runs = Number(values.runs);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(usage);
  const p = paths();
  const state = readState(p);
  if (!state) throw new Error(`no sandbox fleet in ${p.dir}`);
  const lock = await loadLock(values.lock);
  const keys = Object.keys(lock.packages).sort();
  const base: ProbeRequest = { paths: lockedPaths(lock), pinFile: PIN_FILE };
  const setup = { key: state.key, knownHosts: state.knownHosts, forks: 1 };

  const run = async (target: { name: string; port: number }, req: ProbeRequest) => {
    const probe = renderProbeScript(req);
    // R runs in one session: the script in a file, run R times; the answer of the first is kept.
    const script =
      repeat === 1
        ? `${probe}times >&2\n`
        : [
            'f=$(mktemp)',
            `cat > "$f" <<'__CRIU_LOCK_BENCH__'`,
            probe.trimEnd(),
            '__CRIU_LOCK_BENCH__',
            'sh "$f"',
            `i=1; while [ $i -lt ${repeat} ]; do sh "$f" >/dev/null; i=$((i+1)); done`,
            'rm -f "$f"',
            'times >&2',
            '',
          ].join('\n');
    const r = await spawnTimed(sshArgv(setup, target, 'sh -s'), { input: script, timeoutMs: 300_000 });
    if (r.exitCode !== 0)
      throw new Error(`${target.name}: probe exited ${r.exitCode}: ${r.stderr.slice(-300)}`);
    return {
      stdout: r.stdout,
      sample: {
        bytes: Buffer.byteLength(r.stdout),
        nodeCpuS: childCpu(r.stderr) / repeat,
        wallS: r.wallS / repeat,
      },
    };
  };

  const rows: Record<'all' | 'first' | 'cached', Sample[]> = { all: [], first: [], cached: [] };
  const nodes = values.node ? state.nodes.filter((n) => values.node!.includes(n.name)) : state.nodes;
  if (nodes.length === 0) throw new Error(`no such node: ${values.node?.join(', ')}`);
  for (const node of nodes) {
    const target = { name: node.name, port: node.port };
    const filtered: ProbeRequest = {
      ...base,
      policyUnless: keys.map((k) => [k, lock.packages[k]!.version] as const),
    };
    for (let i = 0; i < runs; i++) {
      rows.all.push((await run(target, { ...base, policyFor: keys })).sample);
      const first = await run(target, filtered);
      rows.first.push(first.sample);
      const parsed = parseProbeOutput(node.name, first.stdout);
      const readings = reusableReadings(parsed.facts, parsed.stats, parsed.clock);
      const known = new Map([...readings].map(([path, r]) => [path, r.stat]));
      const dpkg = reusableDpkgReading(parsed.dpkg);
      rows.cached.push(
        (await run(target, { ...filtered, known, ...(dpkg ? { dpkgKnown: dpkgKnown(dpkg, filtered) } : {}) }))
          .sample,
      );
    }
  }
  const label = {
    all: 'every file, policy of every locked package (as before format 3)',
    first: `format ${PROBE_VERSION}, first run (no readings; policy filtered on the node)`,
    cached: `format ${PROBE_VERSION}, later run (readings of the run before)`,
  };
  console.log(
    `probe cost per node: ${nodes.length} nodes × ${runs} runs × ${repeat} in a session, lock ${keys.length} packages / ${base.paths!.length} paths`,
  );
  console.log('| probe | KiB printed (median) | node CPU s (mean; 10 ms ticks) | wall s (median) |');
  console.log('|---|---|---|---|');
  for (const k of ['all', 'first', 'cached'] as const) {
    const xs = rows[k];
    console.log(
      `| ${label[k]} | ${(median(xs.map((x) => x.bytes)) / 1024).toFixed(1)} | ${mean(xs.map((x) => x.nodeCpuS)).toFixed(3)} | ${median(xs.map((x) => x.wallS)).toFixed(3)} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
