/**
 * A local transport that keeps every command's answer, to see what crossed the wire; `env` is
 * added to every command (a test's DPKG_ADMINDIR, a PATH with wrappers).
 */
import { createLocalTransport } from '../../src/transport/local-transport.js';
import type { CommandResult, Transport } from '../../src/transport/types.js';

export function recordingTransport(
  name: string,
  env: Record<string, string> = {},
): { t: Transport; answers: CommandResult[] } {
  const inner = createLocalTransport(name);
  const answers: CommandResult[] = [];
  return {
    answers,
    t: {
      host: inner.host,
      async exec(argv, opts) {
        const own = Object.keys(env).length > 0;
        const r = await inner.exec(argv, own ? { ...opts, env: { ...env, ...opts?.env } } : opts);
        answers.push(r);
        return r;
      },
      putFile: (p, c, o) => inner.putFile(p, c, o),
      close: () => inner.close(),
    },
  };
}
