#!/usr/bin/env node
// First: V8's heap growth is set before the work begins (src/bin/heap.ts).
import './heap.js';
import { main } from '../cli/main.js';
import { writeStatsFileFromEnv } from '../transport/stats.js';

// A reader that stops early (`criu-lock history | head -1`): the rest of stdout is dropped, and the
// command still ends as it would have (an apply is not cut short by its pipe).
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  });
process.exitCode = await main(process.argv.slice(2));
// CRIU_LOCK_STATS_FILE: SSH channel byte counters for the bench (src/transport/stats.ts).
writeStatsFileFromEnv();
