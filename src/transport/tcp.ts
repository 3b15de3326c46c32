/**
 * The TCP connections criu-lock opens for ssh2 (decision 25): TCP_NODELAY from the first packet,
 * and the connect timeout shared with the handshake.
 */
import { connect as tcpConnect, type Socket } from 'node:net';

/**
 * The TCP connection to a host, with TCP_NODELAY from the first packet. Without it every round
 * trip waits on the peer's delayed ACK (40 ms on Linux): the handshake and each command are
 * several small packets (channel open, exec, data, EOF), and Nagle holds one back while the one
 * before is unacknowledged. OpenSSH sets it for interactive sessions only; a plan or an apply is a
 * handshake and up to a dozen commands per host. Errors are the socket's own (ECONNREFUSED...),
 * and a timeout is ssh2's, so connectError and the retry rules read them as before. Used for a
 * target's connection (ssh-transport.ts) and a first bastion's (bastions.ts); a later hop and a
 * target behind a bastion travel inside such a connection.
 */
export function openTcp(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host, port });
    sock.setNoDelay(true);
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            sock.destroy();
            reject(
              Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }),
            );
          }, timeoutMs)
        : undefined;
    const failed = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.once('error', failed);
    sock.once('connect', () => {
      clearTimeout(timer);
      // From here on ssh2 handles the socket's errors; until it listens (node-ssh may yield first)
      // an error must not go unheard (an unhandled 'error' would end the process).
      sock.removeListener('error', failed);
      sock.on('error', () => undefined);
      resolve(sock);
    });
  });
}

/**
 * ConnectTimeout covers the TCP connect and the handshake together, as when ssh2 connects: what
 * `timeoutMs` leaves for the handshake of a connection whose TCP connect began at `started`
 * (0: no timeout).
 */
export function handshakeTimeoutMs(timeoutMs: number, started: number): number {
  return timeoutMs > 0 ? Math.max(1, timeoutMs - (Date.now() - started)) : 0;
}
