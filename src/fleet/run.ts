import { CriuLockError } from '../errors.js';

/** Batch sizes as Ansible's `serial`: "1,5,25%" — the last size repeats until hosts run out. */
export function parseSerial(spec: string | undefined, total: number): number[] {
  if (spec === undefined || spec.trim() === '') return total > 0 ? [total] : [];
  const sizes = spec.split(',').map((part) => {
    const s = part.trim();
    const m = /^(\d+)(%?)$/.exec(s);
    if (!m?.[1]) {
      throw new CriuLockError('usage', `invalid --serial value ${JSON.stringify(s)}`, {
        hint: 'use numbers or percentages, e.g. --serial 1,5,25%',
      });
    }
    const n = Number(m[1]);
    if (m[2] === '%') {
      if (n <= 0 || n > 100)
        throw new CriuLockError('usage', `--serial percentage must be 1-100%, got ${s}`, {
          hint: 'e.g. --serial 25%',
        });
      return Math.max(1, Math.floor((total * n) / 100));
    }
    if (n <= 0)
      throw new CriuLockError('usage', `--serial batch size must be positive, got ${s}`, {
        hint: 'e.g. --serial 1,5',
      });
    return n;
  });
  const batches: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, sizes[Math.min(i, sizes.length - 1)]!);
    batches.push(size);
    left -= size;
  }
  return batches;
}

export interface FleetOptions<R> {
  forks: number;
  serial?: string | undefined;
  /** Stop starting batches once this percentage of a batch's hosts failed (Ansible semantics: > P). */
  maxFailPercentage?: number | undefined;
  isFailure?: (result: R) => boolean;
  onResult?: (result: R, index: number) => void;
  /** Checked before each item starts: once true, no further item starts (an interrupt). */
  stop?: () => boolean;
}

export interface FleetRun<T, R> {
  results: Array<{ item: T; result: R }>;
  /** Items never started: a batch exceeded --max-fail-percentage, or `stop` said so. */
  skipped: T[];
}

/** Runs `work` for each item with at most `forks` at once, batch by batch. Work must not throw. */
export async function runFleet<T, R>(
  items: readonly T[],
  work: (item: T) => Promise<R>,
  opts: FleetOptions<R>,
): Promise<FleetRun<T, R>> {
  const forks = Math.max(1, opts.forks);
  const results: Array<{ item: T; result: R }> = [];
  const batches = parseSerial(opts.serial, items.length);
  let start = 0;
  for (const size of batches) {
    const batch = items.slice(start, start + size);
    start += size;
    const batchResults: R[] = new Array<R>(batch.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batch.length && !opts.stop?.()) {
        const i = next++;
        const r = await work(batch[i]!);
        batchResults[i] = r;
        opts.onResult?.(r, results.length + i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(forks, batch.length) }, worker));
    if (next < batch.length) {
      // Stopped: what ran is a result, the rest of this batch and every later one never started.
      batch.slice(0, next).forEach((item, i) => results.push({ item, result: batchResults[i]! }));
      return { results, skipped: [...batch.slice(next), ...items.slice(start)] };
    }
    batch.forEach((item, i) => results.push({ item, result: batchResults[i]! }));
    if (opts.maxFailPercentage !== undefined && opts.isFailure) {
      const failed = batchResults.filter(opts.isFailure).length;
      if ((failed * 100) / batch.length > opts.maxFailPercentage) {
        return { results, skipped: items.slice(start) };
      }
    }
  }
  return { results, skipped: [] };
}
