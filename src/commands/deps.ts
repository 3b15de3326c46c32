import { createInterface } from 'node:readline/promises';
import type { Clock, CommandDeps, Io } from './context.js';

/** stdout/stderr/stdin of this process. */
export function processIo(): Io {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    isTTY: Boolean(process.stdout.isTTY && process.stdin.isTTY),
    status: process.stderr.isTTY ? (line) => void process.stderr.write(`\r\u001b[K${line}`) : undefined,
    // Ctrl-C or Ctrl-D at the prompt is a "no" (readline aborted the question, which ended as an
    // internal error).
    confirm: (question) =>
      new Promise<boolean>((resolve) => {
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        rl.on('SIGINT', () => rl.close());
        rl.on('close', () => resolve(false));
        rl.question(question).then(
          (answer) => {
            resolve(answer.trim() === 'yes');
            rl.close();
          },
          () => resolve(false),
        );
      }),
  };
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => Number(process.hrtime.bigint()) / 1e6,
};

/**
 * The real dependencies, wired once by the CLI. The inventory loader and the SSH stack are loaded
 * on first use, so `--help` and usage errors load neither.
 */
export function realDeps(
  io: Io = processIo(),
  overrides: Partial<Omit<CommandDeps, 'io'>> = {},
): CommandDeps {
  return {
    io,
    clock: systemClock,
    loadInventory: async (path, opts) => (await import('../inventory/load.js')).loadInventory(path, opts),
    openTransport: async (host, ssh, extras) =>
      (await import('../transport/open.js')).openTransport(host, ssh, extras),
    ...overrides,
  };
}
