/**
 * Where the tools find the product: the repository root (the nearest directory above this file
 * whose package.json is criu-lock's), whether they run from tools/ (vitest) or dist-tools/ (node).
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'criu-lock')
      return dir;
    if (dirname(dir) === dir) throw new Error(`criu-lock's package.json not found above ${start}`);
  }
}

export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

/** The CLI as users install it (`npm run build`). */
export const PRODUCT_BIN = join(REPO_ROOT, 'dist', 'bin', 'criu-lock.js');

/** The module at `metaUrl` is the script node was started with (not imported by a test or another tool). */
export function isMainModule(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return metaUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}
