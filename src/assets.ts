import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * The package root: the nearest directory above this file that holds templates/ and
 * playbooks/. That is one level up from dist/assets.js and src/assets.ts, and two from
 * dist-tools/src/assets.js (the dev tools' own build of the sources).
 */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'templates')) && existsSync(join(dir, 'playbooks'))) return dir;
    if (dirname(dir) === dir) return join(here, '..');
  }
}

const ROOT = packageRoot();

/** Absolute path of a file shipped with the package (templates/, playbooks/). */
export function assetPath(relative: string): string {
  return join(ROOT, relative);
}
