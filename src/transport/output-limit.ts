import { CriuLockError } from '../errors.js';

/**
 * Cap on what one command may print (stdout and stderr together). A host decides how much it
 * prints; without a cap a hostile or broken one could make the controller buffer until it runs
 * out of memory. A full-scope facts probe prints ~2.1 KB per ELF file (a 1 KiB head in hex), so
 * 128 MiB covers hosts with 50,000 ELF files; nothing else criu-lock runs prints a tenth of that.
 */
export const DEFAULT_MAX_OUTPUT_BYTES = 128 * 1024 * 1024;

/** The transport stopped reading: the host fails, its partial output is not used. */
export class OutputLimitError extends CriuLockError {
  constructor(where: string, limit: number) {
    super('host-output', `${where}: a command printed more than ${limit} bytes; stopped reading it`, {
      hint: 'criu-lock caps what a host may print (the host may be tampered with, or a file list is enormous)',
    });
  }
}

/** Counts output bytes; `add` returns false once the limit is passed. */
export function outputBudget(limit: number = DEFAULT_MAX_OUTPUT_BYTES): {
  add(n: number): boolean;
  readonly limit: number;
} {
  if (!Number.isSafeInteger(limit) || limit <= 0) throw new Error(`invalid output limit ${limit}`);
  let used = 0;
  return {
    limit,
    add(n) {
      used += n;
      return used <= limit;
    },
  };
}
