/**
 * apply's and rollback's confirmation prompt on a real terminal (a pty made by python3's pty
 * module): only "yes" is a yes, and Ctrl-C or Ctrl-D at the prompt is a no, not an internal error.
 * Runs the built dist/ (npm test builds it first).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DEPS = join(import.meta.dirname, '../../dist/commands/deps.js');
const HAVE = existsSync(DEPS) && spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status === 0;

// Starts the prompt in a pty, waits for it, types `key`, and prints what the child printed.
const DRIVER = `
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp('node', ['node', '-e', sys.argv[1]])
out = b''
def read_until(done, seconds):
    global out
    end = time.time() + seconds
    while time.time() < end and not done(out):
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
read_until(lambda o: b'ok? ' in o, 20)
os.write(fd, sys.argv[2].encode())
read_until(lambda o: b'ANSWER' in o and o.rstrip().endswith(b'END'), 20)
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
`;

function answer(key: string): string {
  const program = `import(${JSON.stringify(DEPS)}).then(async (m) => { const r = await m.processIo().confirm('ok? '); console.log('ANSWER ' + String(r) + ' END'); })`;
  const r = spawnSync('python3', ['-c', DRIVER, program, key], { encoding: 'utf8', timeout: 60_000 });
  return /ANSWER (\w+) END/.exec(r.stdout)?.[1] ?? `no answer: ${r.stdout.slice(-300)}`;
}

describe.skipIf(!HAVE)('the confirmation prompt on a terminal', () => {
  it.each([
    ['yes\r', 'true'],
    ['no\r', 'false'],
    ['\x03', 'false'],
    ['\x04', 'false'],
  ])('%j answers %s', (key, want) => {
    expect(answer(key)).toBe(want);
  });
});
