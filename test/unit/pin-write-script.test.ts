/**
 * apt_pins' one command (PIN_WRITE_SCRIPT) run by a real shell through the local transport, its
 * state directory moved into a scratch directory: the old pin file is kept before the new one
 * replaces it, a missing one is recorded as missing, and when the copy cannot be made the pin file
 * is left exactly as it was.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STATE_DIR } from '../../src/apply/apt.js';
import { PIN_BACK_SCRIPT, PIN_WRITE_SCRIPT } from '../../src/apply/apt-job.js';
import { createLocalTransport } from '../../src/transport/local-transport.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'criu-lock-pin-write-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The script with its state directory at `state`; everything else as shipped. */
function write(state: string, pin: string, content: string) {
  const script = PIN_WRITE_SCRIPT.replaceAll(STATE_DIR, state);
  expect(script).not.toContain(STATE_DIR);
  return createLocalTransport('local').exec(['sh', '-c', script, 'criu-lock-pins-write', pin, '0644'], {
    stdin: content,
  });
}

describe('PIN_WRITE_SCRIPT', () => {
  it('keeps the old pin file, then replaces it atomically with mode 0644', async () => {
    const pin = join(dir, 'criu-lock.pref');
    writeFileSync(pin, 'old pins\n', { mode: 0o600 });
    const r = await write(join(dir, 'state'), pin, 'new pins\n');
    expect(r.exitCode).toBe(0);
    expect(readFileSync(pin, 'utf8')).toBe('new pins\n');
    expect(statSync(pin).mode & 0o7777).toBe(0o644);
    expect(readFileSync(join(dir, 'state', 'pins.prev'), 'utf8')).toBe('old pins\n');
    expect(existsSync(join(dir, 'state', 'pins.prev-absent'))).toBe(false);
  });

  it('records that there was no pin file before', async () => {
    const pin = join(dir, 'criu-lock.pref');
    const r = await write(join(dir, 'state'), pin, 'new pins\n');
    expect(r.exitCode).toBe(0);
    expect(readFileSync(pin, 'utf8')).toBe('new pins\n');
    expect(existsSync(join(dir, 'state', 'pins.prev-absent'))).toBe(true);
    expect(existsSync(join(dir, 'state', 'pins.prev'))).toBe(false);
  });

  it('writes nothing when the old file cannot be kept', async () => {
    const pin = join(dir, 'criu-lock.pref');
    writeFileSync(pin, 'old pins\n', { mode: 0o644 });
    // The state directory cannot be made: a file stands where it would be.
    const state = join(dir, 'state');
    writeFileSync(state, '');
    const r = await write(state, pin, 'new pins\n');
    expect(r.exitCode).not.toBe(0);
    expect(readFileSync(pin, 'utf8')).toBe('old pins\n');
    expect(statSync(pin).mode & 0o7777).toBe(0o644);
  });
});

describe('PIN_BACK_SCRIPT (rollback)', () => {
  const back = (state: string, pin: string, from?: string) =>
    createLocalTransport('local').exec([
      'sh',
      '-c',
      PIN_BACK_SCRIPT.replaceAll(STATE_DIR, state),
      'criu-lock-pins-back',
      pin,
      ...(from === undefined ? [] : [from]),
    ]);

  it('keeps the current pin file for the job, then puts the captured one in place', async () => {
    const pin = join(dir, 'criu-lock.pref');
    const from = join(dir, 'pins.before');
    writeFileSync(pin, 'pins the apply wrote\n');
    writeFileSync(from, 'pins before the apply\n');
    const r = await back(join(dir, 'state'), pin, from);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(pin, 'utf8')).toBe('pins before the apply\n');
    expect(readFileSync(join(dir, 'state', 'pins.prev'), 'utf8')).toBe('pins the apply wrote\n');
    expect(existsSync(`${pin}.criu-lock-tmp`)).toBe(false);
  });

  it('removes the pin file when there was none before, keeping it for the job', async () => {
    const pin = join(dir, 'criu-lock.pref');
    writeFileSync(pin, 'pins the apply wrote\n');
    const r = await back(join(dir, 'state'), pin);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(pin)).toBe(false);
    expect(readFileSync(join(dir, 'state', 'pins.prev'), 'utf8')).toBe('pins the apply wrote\n');
  });

  it('changes nothing when the captured file is missing', async () => {
    const pin = join(dir, 'criu-lock.pref');
    writeFileSync(pin, 'pins the apply wrote\n');
    const r = await back(join(dir, 'state'), pin, join(dir, 'gone'));
    expect(r.exitCode).not.toBe(0);
    expect(readFileSync(pin, 'utf8')).toBe('pins the apply wrote\n');
  });
});
