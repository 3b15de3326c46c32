import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/commands/context.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs criu-lock in-process with a recording Io (no terminal), as a user would from a pipe. */
export async function runCli(...argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false };
  const code = await main(argv, io);
  return { code, out, err };
}
