/**
 * The TCP connection criu-lock opens for ssh2 (src/transport/tcp.ts openTcp): TCP_NODELAY
 * is set before the first packet, and the socket's own errors reach the caller as they would have
 * through ssh2 (connectError reads their codes).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { openTcp } from '../../src/transport/tcp.js';

/** Node keeps setNoDelay's value on the socket under this symbol (applied when the handle exists). */
function noDelayOf(sock: Socket): unknown {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'kSetNoDelay');
  return sym === undefined ? undefined : (sock as unknown as Record<symbol, unknown>)[sym];
}

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

const listen = (): Promise<number> =>
  new Promise((resolve) => {
    server = createServer((s) => s.end());
    server.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port));
  });

describe('openTcp', () => {
  it('connects with TCP_NODELAY set', async () => {
    const port = await listen();
    const sock = await openTcp('127.0.0.1', port, 5_000);
    try {
      expect(sock.remotePort).toBe(port);
      expect(noDelayOf(sock)).toBe(true);
    } finally {
      sock.destroy();
    }
  });

  it('rejects with the socket error (ECONNREFUSED) when nothing listens', async () => {
    const port = await listen();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await expect(openTcp('127.0.0.1', port, 5_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
