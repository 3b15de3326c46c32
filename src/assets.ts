import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

// dist/assets.js and src/assets.ts both sit one level below the package root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Absolute path of a file shipped with the package (templates/, playbooks/). */
export function assetPath(relative: string): string {
  return join(ROOT, relative);
}
