/**
 * What `npm pack` ships: the product only (dist, playbooks, templates), never the dev tooling
 * (tools/: sandbox, bench, demo) nor sources and tests.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function packedFiles(): string[] {
  // --ignore-scripts: no `prepare` build here; `npm test` builds dist before the tests run.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [pack] = JSON.parse(out) as Array<{ files: Array<{ path: string }> }>;
  return pack!.files.map((f) => f.path);
}

describe('npm pack', () => {
  const files = packedFiles();

  it('ships only dist/, playbooks/, templates/ and the package metadata', () => {
    const outside = files.filter(
      (f) => !/^(dist|playbooks|templates)\//.test(f) && !/^(package\.json|README\.md|LICENSE)$/.test(f),
    );
    expect(outside).toEqual([]);
  });

  it('ships no sandbox or bench code', () => {
    expect(files.filter((f) => /(^|\/)(sandbox|bench|tools)(\/|\.|$)/.test(f))).toEqual([]);
  });

  it.runIf(existsSync(join(root, 'dist', 'bin', 'criu-lock.js')))(
    'ships the CLI, its playbook and templates',
    () => {
      expect(files).toEqual(
        expect.arrayContaining([
          'dist/bin/criu-lock.js',
          'dist/index.js',
          'playbooks/converge.yaml',
          'templates/plan.md.ejs',
          'templates/apt-preferences.ejs',
        ]),
      );
    },
  );
});
