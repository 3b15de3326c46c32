import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // The stat-reading cache (src/facts/stat-cache.ts) of this run only, never the user's.
    env: { CRIU_LOCK_CACHE_DIR: join(tmpdir(), `criu-lock-test-cache-${process.pid}`) },
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
