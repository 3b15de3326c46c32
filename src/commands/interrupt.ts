import { errLine, type Io } from './context.js';

/**
 * Ctrl-C (SIGINT) or SIGTERM during apply or rollback: the first stops new hosts from starting,
 * lets the hosts in progress finish (their apt transactions run detached on the hosts anyway) and
 * ends with the recap; a second stops at once, as the signal would have.
 */
export function onInterrupt(io: Io): { stopped: () => boolean; dispose: () => void } {
  let stopped = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (!stopped) {
      stopped = true;
      errLine(
        io,
        `${signal}: no further host will start; the hosts in progress run to their end (their playbook or rollback) and the recap follows (${signal} again to stop at once)`,
      );
      return;
    }
    dispose();
    errLine(
      io,
      `${signal}: stopping now; apt transactions already started go on on their hosts, and the next apply or rollback waits for them and reports how they ended`,
    );
    process.kill(process.pid, signal);
  };
  const dispose = (): void => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { stopped: () => stopped, dispose };
}
