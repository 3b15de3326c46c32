import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CriuLockError } from '../../src/errors.js';
import { parseSerial, runFleet } from '../../src/fleet/run.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('parseSerial', () => {
  it.each<[string | undefined, number, number[]]>([
    ['1,5,25%', 20, [1, 5, 5, 5, 4]],
    ['100%', 20, [20]],
    ['100%', 7, [7]],
    ['50%', 7, [3, 3, 1]],
    ['1%', 20, [1, ...Array<number>(19).fill(1)]],
    ['2', 5, [2, 2, 1]],
    ['1,2', 6, [1, 2, 2, 1]],
    ['10', 3, [3]],
    [' 1 , 2 ', 3, [1, 2]],
    [undefined, 4, [4]],
    ['', 4, [4]],
    [undefined, 0, []],
    ['1,5', 0, []],
  ])('%j on %i hosts → %j', (spec, total, expected) => {
    expect(parseSerial(spec, total)).toEqual(expected);
  });

  it.each([['0'], ['-1'], ['abc'], ['1,,2'], ['0%'], ['101%'], ['150%'], ['2.5'], ['1;5'], ['%']])(
    'rejects %j with a usage error',
    (spec) => {
      let err: unknown;
      try {
        parseSerial(spec, 10);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CriuLockError);
      expect((err as CriuLockError).code).toBe('usage');
      expect((err as CriuLockError).hint).toMatch(/--serial/);
    },
  );

  it('batches always cover every host exactly once, each batch non-empty', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: 1, max: 30 }).map(String),
            fc.integer({ min: 1, max: 100 }).map((n) => `${n}%`),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        fc.nat(200),
        (parts, total) => {
          const batches = parseSerial(parts.join(','), total);
          expect(batches.reduce((a, b) => a + b, 0)).toBe(total);
          expect(batches.every((b) => b >= 1)).toBe(true);
        },
      ),
    );
  });
});

describe('runFleet', () => {
  it.each([1, 3, 20])('runs at most forks=%i at once and keeps result order', async (forks) => {
    let running = 0;
    let peak = 0;
    const items = range(12);
    const run = await runFleet(
      items,
      async (i) => {
        running++;
        peak = Math.max(peak, running);
        // Later items finish first, so completion order differs from input order.
        await sleep(2 + ((12 - i) % 5) * 2);
        running--;
        return `r${i}`;
      },
      { forks },
    );
    expect(peak).toBe(Math.min(forks, items.length));
    expect(run.results).toEqual(items.map((i) => ({ item: i, result: `r${i}` })));
    expect(run.skipped).toEqual([]);
  });

  it('treats forks below 1 as 1', async () => {
    let running = 0;
    let peak = 0;
    await runFleet(
      range(4),
      async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(1);
        running--;
      },
      { forks: 0 },
    );
    expect(peak).toBe(1);
  });

  it('runs batches one after another (serial)', async () => {
    const log: string[] = [];
    await runFleet(
      range(5),
      async (i) => {
        log.push(`start ${i}`);
        await sleep(i === 0 ? 10 : 1);
        log.push(`end ${i}`);
      },
      { forks: 10, serial: '1,2' },
    );
    // Batch [0] ends before batch [1,2] starts; [1,2] end before [3,4] start.
    expect(log.indexOf('end 0')).toBeLessThan(log.indexOf('start 1'));
    expect(Math.max(log.indexOf('end 1'), log.indexOf('end 2'))).toBeLessThan(
      Math.min(log.indexOf('start 3'), log.indexOf('start 4')),
    );
  });

  it('calls onResult once per item with its index in the whole run', async () => {
    const seen: Array<[string, number]> = [];
    const items = ['a', 'b', 'c', 'd', 'e'];
    await runFleet(
      items,
      async (x) => {
        await sleep(x === 'b' ? 5 : 1);
        return x.toUpperCase();
      },
      { forks: 2, serial: '2', onResult: (r, i) => seen.push([r, i]) },
    );
    expect(seen).toHaveLength(5);
    expect([...seen].sort((a, b) => a[1] - b[1])).toEqual([
      ['A', 0],
      ['B', 1],
      ['C', 2],
      ['D', 3],
      ['E', 4],
    ]);
  });

  it('stops later batches once a batch fails more than max-fail-percentage', async () => {
    const started: number[] = [];
    const run = await runFleet(
      range(10),
      (i) => {
        started.push(i);
        return Promise.resolve(i === 3 ? 'failed' : 'ok');
      },
      { forks: 5, serial: '2', maxFailPercentage: 40, isFailure: (r) => r === 'failed' },
    );
    // Batches [0,1] ok, [2,3] 50% failed > 40% → stop.
    expect(started.sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    expect(run.results.map((r) => [r.item, r.result])).toEqual([
      [0, 'ok'],
      [1, 'ok'],
      [2, 'ok'],
      [3, 'failed'],
    ]);
    expect(run.skipped).toEqual([4, 5, 6, 7, 8, 9]);
  });

  it('continues when failures equal the percentage (Ansible: strictly more than P)', async () => {
    const run = await runFleet(range(6), (i) => Promise.resolve(i === 1 ? 'failed' : 'ok'), {
      forks: 2,
      serial: '2',
      maxFailPercentage: 50,
      isFailure: (r) => r === 'failed',
    });
    expect(run.results).toHaveLength(6);
    expect(run.skipped).toEqual([]);
  });

  it('max-fail-percentage 0 stops after the first batch with any failure', async () => {
    const run = await runFleet(range(6), (i) => Promise.resolve(i === 0 ? 'failed' : 'ok'), {
      forks: 1,
      serial: '3',
      maxFailPercentage: 0,
      isFailure: (r) => r === 'failed',
    });
    expect(run.results.map((r) => r.item)).toEqual([0, 1, 2]);
    expect(run.skipped).toEqual([3, 4, 5]);
  });

  it('without max-fail-percentage every batch runs even if all fail', async () => {
    const run = await runFleet(range(4), () => Promise.resolve('failed'), {
      forks: 1,
      serial: '1',
      isFailure: (r) => r === 'failed',
    });
    expect(run.results).toHaveLength(4);
    expect(run.skipped).toEqual([]);
  });

  it('handles an empty fleet', async () => {
    let calls = 0;
    const run = await runFleet([], () => Promise.resolve(calls++), { forks: 3, serial: '1,5,25%' });
    expect(run).toEqual({ results: [], skipped: [] });
    expect(calls).toBe(0);
  });
});
