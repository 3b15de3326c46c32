import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// The stat-reading cache (src/facts/stat-cache.ts) of this run only, never the user's, and never
// an earlier run's: a directory named after the pid met a dead run's readings once the pid came
// round again, and tests that count what a first run reads then failed. Removed when the run ends.
const cacheDir = mkdtempSync(join(tmpdir(), 'criu-lock-test-cache-'));
process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));

export default defineConfig({
  test: {
    testTimeout: 60_000,
    env: { CRIU_LOCK_CACHE_DIR: cacheDir },
    hookTimeout: 300_000,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-result.json' },
    // e2e files share one fleet and change it; 2 cores gain little from parallel files anyway.
    fileParallelism: false,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/ssh/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // One fleet per run, brought up before and torn down after the e2e files.
          globalSetup: ['./test/e2e/global-setup.ts'],
        },
      },
    ],
  },
});
