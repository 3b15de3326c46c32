/**
 * How far V8 lets the heap grow past what the last full collection left alive (decision 27).
 * Imported first by the command-line entry, so it applies from the first full collection on.
 *
 * V8 picks that factor itself from how fast it collects against how fast the program allocates,
 * up to 4 on a machine with this much memory. A long run of many hosts (an apply of 1,000)
 * produces garbage that outlives the young generation, and the heap may grow to four times what
 * is alive before anything is freed. A fixed factor of 2 keeps the peak near twice the live heap.
 * A `--heap-growing-percent` given to node itself wins.
 */
import { setFlagsFromString } from 'node:v8';

/** Percent the old generation may grow past its live size before the next full collection. */
export const HEAP_GROWING_PERCENT = 100;

if (
  !process.execArgv.some(
    (a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'),
  )
)
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
