/**
 * The built command as a shell runs it (npm test builds dist/ before the tests): a reader that
 * stops early does not turn into a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '../../dist/bin/criu-lock.js');

describe('dist/bin/criu-lock.js', () => {
  it.skipIf(!existsSync(BIN))(
    'ends quietly, with its own exit code, when stdout is closed early (| head -1)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'criu-lock-bin-'));
      const hosts = Array.from({ length: 20_000 }, (_, i) => `    h${i}: {ansible_host: 127.0.0.1}`);
      writeFileSync(join(dir, 'inv.yaml'), ['all:', '  hosts:', ...hosts, ''].join('\n'));
      const r = spawnSync(
        'bash',
        ['-c', `node ${BIN} inventory -i ${join(dir, 'inv.yaml')} | head -1; exit "\${PIPESTATUS[0]}"`],
        { encoding: 'utf8' },
      );
      expect(r.stdout).toMatch(/^HOST +ADDRESS/);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
  );
});
