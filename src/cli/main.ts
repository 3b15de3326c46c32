import { formatError } from '../errors.js';

export async function main(argv: string[]): Promise<number> {
  try {
    await Promise.resolve(argv);
    return 1;
  } catch (err) {
    process.stderr.write(formatError(err, argv.includes('--debug')) + '\n');
    return 1;
  }
}
