/**
 * Throughput of `compareVersions` on strings, the form versions arrive in from dpkg-query and
 * lockfiles. Pairs mimic what lock planning compares: the same package on two hosts, so most pairs
 * share a long prefix and differ late (security updates, backports, epochs now and then).
 */
import { compareVersions } from '../../src/debian/version.js';

const PAIRS = 10_000;
const TARGET_MS = 1_000;
const WARMUP_MS = 300;

// Deterministic PRNG (mulberry32) so runs are comparable across machines and commits.
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error('pick from empty list');
  return item;
}

function realisticVersion(rand: () => number): string {
  const int = (n: number): number => Math.floor(rand() * n);
  const upstream = pick(rand, [
    () => `${int(4)}.${int(40)}`,
    () => `${int(6)}.${int(20)}.${int(30)}`,
    () => `${int(3)}.${int(10)}.${int(20)}+dfsg`,
    () => `${int(10)}.${int(5)}~rc${int(4)}`,
    () => `${int(2)}.${int(3)}.0+git20${10 + int(15)}0${1 + int(9)}${10 + int(18)}`,
    () => `5.15.0`,
  ])();
  const revision = pick(rand, [
    () => '',
    () => `-${1 + int(5)}`,
    () => `-0ubuntu${int(10)}`,
    () => `-0ubuntu${int(10)}.${int(20)}`,
    () => `-${int(3)}ubuntu0.22.04.${int(9)}`,
    () => `-${int(3)}+deb12u${int(5)}`,
    () => `-${100 + int(20)}.${100 + int(30)}`,
  ])();
  const epoch = rand() < 0.1 ? `${1 + int(2)}:` : '';
  return `${epoch}${upstream}${revision}`;
}

/** A variant of `v` that differs late, the way two hosts' versions of one package do. */
function nearby(rand: () => number, v: string): string {
  const digits = [...v.matchAll(/\d+/g)];
  const last = digits[digits.length - 1 - Math.floor(rand() * Math.min(2, digits.length))];
  if (last?.index === undefined || rand() < 0.15) return v;
  const bumped = String(Math.max(0, Number(last[0]) + Math.floor(rand() * 5) - 2));
  return v.slice(0, last.index) + bumped + v.slice(last.index + last[0].length);
}

export function benchVersionComparisons(): { comparisonsPerSecond: number; pairs: number } {
  const rand = prng(0x5eed);
  const left: string[] = [];
  const right: string[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const a = realisticVersion(rand);
    left.push(a);
    right.push(rand() < 0.8 ? nearby(rand, a) : realisticVersion(rand));
  }

  // Warm up for a fixed time, not a fixed count, so the JIT has settled (optimized
  // compareVersions and the loop itself) before the clock starts, even on a slow machine.
  let sink = 0;
  const warmUntil = performance.now() + WARMUP_MS;
  while (performance.now() < warmUntil) {
    for (let i = 0; i < PAIRS; i++) sink += compareVersions(left[i] ?? '0', right[i] ?? '0');
  }

  let comparisons = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < PAIRS; i++) sink += compareVersions(left[i] ?? '0', right[i] ?? '0');
    comparisons += PAIRS;
    elapsed = performance.now() - start;
  } while (elapsed < TARGET_MS);

  // Using the sum keeps the loop from being optimized away; it can never actually be NaN.
  if (Number.isNaN(sink)) throw new Error('unreachable');
  return { comparisonsPerSecond: Math.round((comparisons / elapsed) * 1000), pairs: PAIRS };
}
