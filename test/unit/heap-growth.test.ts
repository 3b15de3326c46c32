/**
 * src/bin/heap.ts: the command-line entry sets how far V8's heap grows past its live size
 * (decision 27). Checked on a real node process: V8's own trace (`--trace-gc-verbose`) prints the
 * factor each full collection sets the next limit with.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT } from '../../src/bin/heap.js';

let dir: string;
let heapModule: string;
let workload: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-heap-'));
  heapModule = join(dir, 'heap.mjs');
  const source = readFileSync(new URL('../../src/bin/heap.ts', import.meta.url), 'utf8');
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  writeFileSync(heapModule, js);
  // Three full collections with something alive, each followed by its limit line.
  workload = join(dir, 'workload.mjs');
  writeFileSync(
    workload,
    [
      'const keep = [];',
      'for (let r = 0; r < 3; r++) {',
      "  for (let i = 0; i < 20000; i++) keep.push({ i, s: 'x'.repeat(200) + i });",
      '  globalThis.gc();',
      '}',
      'console.log(keep.length);',
    ].join('\n'),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The factors V8 set its old-generation limits with, in a node run with `flags`. */
function limitFactors(flags: string[]): string[] {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--trace-gc-verbose', ...flags, '--import', heapModule, workload],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  expect(r.status, r.stderr).toBe(0);
  return [...r.stdout.matchAll(/\[HeapController\] Limit: .*\(([0-9.]+)\)$/gm)].map((m) => m[1]!);
}

describe('the heap growth of the command line (decision 27)', () => {
  it('every full collection sets the next limit at twice the live heap', () => {
    const factors = limitFactors([]);
    expect(factors.length).toBeGreaterThanOrEqual(3);
    expect(new Set(factors)).toEqual(new Set([(1 + HEAP_GROWING_PERCENT / 100).toFixed(1)]));
  });

  it('a --heap-growing-percent given to node itself wins', () => {
    const factors = limitFactors(['--heap-growing-percent=300']);
    expect(factors.length).toBeGreaterThanOrEqual(3);
    expect(new Set(factors)).toEqual(new Set(['4.0']));
  });
});
