/**
 * The transport's byte counters (src/transport/stats.ts) against a real OpenSSH server: what a
 * command prints is counted as received, the command line and stdin as sent, and the env var makes
 * the CLI's bin write them as JSON.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ConnectionSettings } from '../../src/inventory/types.js';
import {
  connectSsh,
  resetTransportStats,
  STATS_FILE_ENV,
  transportStats,
  writeStatsFileFromEnv,
} from '../../src/transport/index.js';
import { useSshd } from '../helpers/sshd.js';
import { inlineStdin } from '../../src/transport/channel-pool.js';

const fx = useSshd('criu-lock-stats-test-');

beforeEach(() => resetTransportStats());

const conn = (): ConnectionSettings => fx.conn();

const opts = {
  knownHostsFile: '',
  hostKeyChecking: 'strict' as const,
  connectTimeoutMs: 5_000,
  agentSocket: '',
};

describe('transport byte counters', () => {
  it('count stdout and stderr as received, command and stdin as sent, each host once', async () => {
    const t = await connectSsh(conn(), { ...opts, knownHostsFile: fx.knownHosts }, { name: 'a' });
    const t2 = await connectSsh(conn(), { ...opts, knownHostsFile: fx.knownHosts }, { name: 'b' });
    try {
      expect(transportStats()).toEqual({ bytesReceived: 0, bytesSent: 0, hosts: 2 });
      const big = await t.exec(['sh', '-c', 'head -c 100000 /dev/zero; printf 12345 >&2']);
      expect(big.stdout.length).toBe(100_000);
      expect(transportStats().bytesReceived).toBe(100_005);
      const before = transportStats().bytesSent;
      const r = await t2.exec(['wc', '-c'], { stdin: 'x'.repeat(777) });
      expect(r.stdout.trim()).toBe('777');
      const s = transportStats();
      // Small text input travels in the command line (inlineStdin): what was sent is that line.
      expect(s.bytesSent - before).toBe(inlineStdin(r.command, 'x'.repeat(777))!.length);
      expect(s.bytesSent - before).toBeGreaterThan(r.command.length + 777);
      const bytes = Buffer.alloc(777, 1);
      const b = await t2.exec(['wc', '-c'], { stdin: bytes });
      expect(transportStats().bytesSent - s.bytesSent).toBe(b.command.length + 777);
      expect(s.bytesReceived).toBe(100_005 + Buffer.byteLength(r.stdout));
      expect(s.hosts).toBe(2);
    } finally {
      await t.close();
      await t2.close();
    }
  });

  it('are written as JSON to the file named by the env var, and not without it', async () => {
    const t = await connectSsh(conn(), { ...opts, knownHostsFile: fx.knownHosts }, { name: 'a' });
    try {
      await t.exec(['printf', 'abc']);
    } finally {
      await t.close();
    }
    const file = join(fx.work, 'stats.json');
    expect(writeStatsFileFromEnv({})).toBeUndefined();
    expect(writeStatsFileFromEnv({ [STATS_FILE_ENV]: file })).toBe(file);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      bytesReceived: 3,
      bytesSent: 'printf abc'.length,
      hosts: 1,
    });
  });
});
