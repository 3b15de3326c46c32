/**
 * What rollback capture adds to apply: `apply` against `apply --no-capture` on the sandbox fleet
 * (the fleet named by CRIU_LOCK_SANDBOX_DIR, already up), paired and alternating, each run on a
 * freshly reset (drifted) fleet. Prints medians, the ratio and the disk the transactions take.
 *
 *   npm run build && npm run build:tools && node dist-tools/tools/bench/capture-cost.js [--runs R]   # as root
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reset } from '../sandbox/fleet.js';
import { paths, readState } from '../sandbox/state.js';
import { PRODUCT_BIN } from '../paths.js';
import { median, spawnTimed } from './measure.js';

async function main(argv: readonly string[]): Promise<number> {
  const runsArg = argv.indexOf('--runs');
  const runs = runsArg >= 0 ? Number(argv[runsArg + 1]) : 3;
  const p = paths();
  const state = readState(p);
  if (!state) throw new Error(`no sandbox fleet in ${p.dir}: npm run sandbox -- up`);
  const bin = PRODUCT_BIN;
  const conn = ['-i', state.inventory, '--known-hosts', state.knownHosts];
  const work = mkdtempSync(join(tmpdir(), 'criu-lock-capture-bench-'));
  const lock = join(work, 'lock.yaml');
  const quiet = { log: () => undefined, dir: p.dir };
  const names = state.nodes.map((n) => n.name);
  await reset(names, quiet);
  const gen = await spawnTimed([process.execPath, bin, 'generate', ...conn, '-o', lock]);
  if (gen.exitCode !== 0) throw new Error(`generate failed: ${gen.stderr}`);
  const times: Record<'capture' | 'noCapture', number[]> = { capture: [], noCapture: [] };
  let disk: Array<{ host: string; bytes: number }> = [];
  for (let i = 0; i < runs; i++) {
    for (const mode of ['noCapture', 'capture'] as const) {
      await reset(names, quiet);
      const r = await spawnTimed([
        process.execPath,
        bin,
        'apply',
        ...conn,
        '-l',
        lock,
        '--yes',
        '--skip-unavailable',
        ...(mode === 'noCapture' ? ['--no-capture'] : []),
      ]);
      // 3: the "missing" node stays blocked by design (its golden-only package is in no repository).
      if (r.exitCode !== 0 && r.exitCode !== 3)
        throw new Error(`apply (${mode}) exit ${r.exitCode}: ${r.stderr || r.stdout}`);
      times[mode].push(r.wallS);
      process.stderr.write(`run ${i + 1}/${runs} ${mode}: ${r.wallS.toFixed(2)} s\n`);
      if (mode === 'capture') {
        const h = await spawnTimed([process.execPath, bin, 'history', ...conn, '--format', 'json']);
        const j = JSON.parse(h.stdout) as { hosts: Array<{ name: string; diskBytes?: number }> };
        disk = j.hosts.map((x) => ({ host: x.name, bytes: x.diskBytes ?? 0 }));
      }
    }
  }
  await reset(names, quiet);
  const withCapture = median(times.capture);
  const without = median(times.noCapture);
  const out = {
    nodes: names.length,
    runs,
    applyS: withCapture,
    applyNoCaptureS: without,
    ratio: withCapture / without,
    captureRunsS: times.capture,
    noCaptureRunsS: times.noCapture,
    transactionBytesPerHost: disk,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (c) => (process.exitCode = c),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
