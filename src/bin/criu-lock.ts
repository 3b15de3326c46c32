#!/usr/bin/env node
// First: V8's heap growth is set before the work begins (src/bin/heap.ts).
import './heap.js';
import { main } from '../cli/main.js';
import { writeStatsFileFromEnv } from '../transport/stats.js';

process.exitCode = await main(process.argv.slice(2));
// CRIU_LOCK_STATS_FILE: SSH channel byte counters for the bench (src/transport/stats.ts).
writeStatsFileFromEnv();
