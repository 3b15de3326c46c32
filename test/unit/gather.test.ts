import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatherFacts } from '../../src/facts/gather.js';
import { HEAD_BYTES } from '../../src/facts/probe-script.js';
import { createLocalTransport } from '../../src/transport/local-transport.js';
import { LOST_HINT, LOST_TEXT } from '../../src/transport/outcome.js';
import type { CommandResult, Transport } from '../../src/transport/types.js';
import { caughtAsync } from '../helpers/caught.js';

/** A little-endian ELF64 whose program headers and build-ID note lie past the probe's head. */
function farNotesElf(buildId: Buffer, phoff: number, noteOff: number): Buffer {
  const note = Buffer.alloc(16 + buildId.length);
  note.writeUInt32LE(4, 0); // namesz "GNU\0"
  note.writeUInt32LE(buildId.length, 4);
  note.writeUInt32LE(3, 8); // NT_GNU_BUILD_ID
  note.write('GNU\0', 12, 'latin1');
  buildId.copy(note, 16);
  const file = Buffer.alloc(noteOff + note.length + 64);
  file.write('\x7fELF', 0, 'latin1');
  file[4] = 2; // ELFCLASS64
  file[5] = 1; // little endian
  file[6] = 1;
  file.writeUInt16LE(3, 16); // ET_DYN
  file.writeUInt16LE(62, 18); // x86-64
  file.writeUInt32LE(1, 20);
  file.writeBigUInt64LE(BigInt(phoff), 32);
  file.writeUInt16LE(64, 52);
  file.writeUInt16LE(56, 54);
  file.writeUInt16LE(1, 56); // one program header
  file.writeUInt32LE(4, phoff); // PT_NOTE
  file.writeBigUInt64LE(BigInt(noteOff), phoff + 8);
  file.writeBigUInt64LE(BigInt(note.length), phoff + 32); // p_filesz
  file.writeBigUInt64LE(BigInt(note.length), phoff + 40);
  file.writeBigUInt64LE(4n, phoff + 48);
  note.copy(file, noteOff);
  return file;
}

describe('gatherFacts', () => {
  it('fetches exactly the missing ranges when notes lie past the head, then gets the build-ID', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-gather-'));
    const path = join(dir, 'far notes.so'); // a space, to prove the path survives the range script
    const id = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex');
    writeFileSync(path, farNotesElf(id, HEAD_BYTES + 512, HEAD_BYTES * 3));
    const t = createLocalTransport('local');
    const facts = await gatherFacts(t, { paths: [path, join(dir, 'missing')] });
    expect(facts.files.get(path)).toMatchObject({ kind: 'elf', buildId: id.toString('hex'), mode: '0644' });
    expect(facts.files.get(join(dir, 'missing'))?.kind).toBe('missing');
    await t.close();
  });

  it('reads this machine: platform, dpkg packages, and the build-ID of /usr/bin/ls', async () => {
    const t = createLocalTransport('local');
    const facts = await gatherFacts(t, { paths: ['/usr/bin/ls'] });
    expect(facts.platform.id).toBe('debian');
    expect(facts.packages.get('coreutils:amd64')?.status).toBe('installed');
    expect(facts.files.get('/usr/bin/ls')?.buildId).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe('a probe that did not finish', () => {
  const answer = (r: Partial<CommandResult>): Transport => ({
    host: 'node-x',
    exec: () =>
      Promise.resolve({
        command: 'sh -s',
        exitCode: null,
        stdout: '',
        stderr: '',
        durationMs: 5,
        timedOut: false,
        ...r,
      }),
    putFile: () => Promise.reject(new Error('not used')),
    close: () => Promise.resolve(),
  });

  it('lost by the connection: says so, with the lost-command hint rather than a missing-tools one', async () => {
    const err = await caughtAsync(gatherFacts(answer({ stdout: '@@probe 6\n' }), {}));
    expect(err.message).toBe(`node-x: the facts probe failed: ${LOST_TEXT}`);
    expect(err.hint).toBe(LOST_HINT);
  });

  it('exited early: the hint names what the target needs', async () => {
    const err = await caughtAsync(
      gatherFacts(answer({ exitCode: 127, stderr: 'sh: perl: not found\n' }), {}),
    );
    expect(err.message).toBe('node-x: the facts probe failed: sh: perl: not found');
    expect(err.hint).toMatch(/^the target needs sh, dpkg, apt and perl-base/);
  });
});
