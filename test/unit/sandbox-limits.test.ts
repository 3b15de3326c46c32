/** The sandbox at scale: node names, and the one-line reasons a machine cannot host a fleet. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fleetLimitError,
  listeningPorts,
  MEMORY_RESERVE_MIB,
  NODE_MEMORY_MIB,
  nofileNeeded,
  type MachineLimits,
} from '../../tools/sandbox/limits.js';
import { nodeIndex, nodeName } from '../../tools/sandbox/state.js';

describe('node names', () => {
  it.each([
    [1, 5, 'node01'],
    [5, 5, 'node05'],
    [7, 99, 'node07'],
    [7, 100, 'node007'],
    [999, 999, 'node999'],
    [1, 1000, 'node0001'],
    [1000, 1000, 'node1000'],
    [42, 5000, 'node0042'],
  ])('index %i of %i is %s, and reads back', (i, total, name) => {
    expect(nodeName(i, total)).toBe(name);
    expect(nodeIndex(name)).toBe(i);
  });
});

const machine = (over: Partial<MachineLimits> = {}): MachineLimits => ({
  ephemeralLow: 32768,
  memAvailableMiB: 22_000,
  nofileSoft: 1024,
  nofileHard: 4096,
  listening: new Set(),
  ...over,
});

describe('fleet limits', () => {
  it('1,000 nodes from 26201 fit on a 23 GiB machine', () => {
    expect(fleetLimitError({ nodes: 1000, portBase: 26200, running: new Set() }, machine())).toBeUndefined();
  });

  it('ports reaching the ephemeral range are refused with the range in one line', () => {
    const e = fleetLimitError({ nodes: 5000, portBase: 28200, running: new Set() }, machine());
    expect(e).toBe(
      "5000 nodes need ports 28201-33200, which reach the kernel's ephemeral range (from 32768); lower CRIU_LOCK_SANDBOX_PORT_BASE or --nodes",
    );
  });

  it('ports in use are refused unless they are our own running nodes', () => {
    const listening = new Set([26203, 26210]);
    expect(
      fleetLimitError({ nodes: 20, portBase: 26200, running: new Set() }, machine({ listening })),
    ).toMatch(/^2 of ports 26201-26220 are already in use \(26203, 26210\)/);
    expect(
      fleetLimitError({ nodes: 20, portBase: 26200, running: listening }, machine({ listening })),
    ).toBeUndefined();
  });

  it('memory: new nodes times the per-node cost plus the reserve', () => {
    const need = 1000 * NODE_MEMORY_MIB + MEMORY_RESERVE_MIB;
    expect(
      fleetLimitError(
        { nodes: 1000, portBase: 26200, running: new Set() },
        machine({ memAvailableMiB: need - 1 }),
      ),
    ).toMatch(/^1000 more nodes need about \d+ MiB of memory .* available$/);
    expect(
      fleetLimitError(
        { nodes: 1000, portBase: 26200, running: new Set() },
        machine({ memAvailableMiB: need }),
      ),
    ).toBeUndefined();
  });

  it('a controller for N hosts gets room for a socket per host', () => {
    expect(nofileNeeded(5)).toBe(4096);
    expect(nofileNeeded(5000)).toBeGreaterThan(5000 + 1024);
  });

  it('reads listening ports from /proc/net/tcp format', () => {
    const dir = mkdtempSync(join(tmpdir(), 'limits-'));
    const f = join(dir, 'tcp');
    writeFileSync(
      f,
      [
        '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
        '   0: 0100007F:6659 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
        '   1: 0100007F:6659 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1',
        '   2: 0100007F:665A 0100007F:D2F1 01 00000000:00000000 00:00000000 00000000     0        0 3 1',
      ].join('\n'),
    );
    expect([...listeningPorts([f])]).toEqual([0x6659]);
  });
});
