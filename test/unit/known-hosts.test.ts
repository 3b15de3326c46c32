import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clearFileCache } from '../../src/transport/file-cache.js';
import { loadKnownHosts } from '../../src/transport/known-hosts-store.js';
import {
  certAuthorityFor,
  formatKnownHostsLine,
  keyTypeOfBlob,
  knownKeyTypes,
  lookupHostKey,
  parseKnownHosts,
  sha256Fingerprint,
} from '../../src/transport/known-hosts.js';

// Vectors produced by OpenSSH 9.2: `ssh-keygen -lf` and `ssh-keygen -H`.
const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAILJL5Twzd/qa3K8v1Z79GvyH8qiPrXSinqZ5CbWTvE8P';
const KEY_FP = 'SHA256:3+9n0rJQhfi/f6VN76K763xm66E8LRa21h0iagXLkt4';
const HASHED_127_2222 = '|1|tY1mAUcwiT4+1TFyfKb8PJXN4BM=|gUewi5Sv+tEgVpGP5/bltZOy3kQ=';
const HASHED_EXAMPLE_COM = '|1|2NkInkdEFKA1FfsXezgXWqkgDaQ=|idEH7TxqSTFTKIj/NHUHsgTrsjE=';

function fakeBlob(type: string, fill: number): string {
  const t = Buffer.from(type);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(t.length);
  const body = Buffer.alloc(36, fill);
  body.writeUInt32BE(32, 0);
  return Buffer.concat([head, t, body]).toString('base64');
}
const OTHER = fakeBlob('ssh-ed25519', 7);
const ECDSA = fakeBlob('ecdsa-sha2-nistp256', 9);

const lookup = (text: string, host: string, port: number, type = 'ssh-ed25519', blob = KEY) =>
  lookupHostKey(parseKnownHosts(text, 'kh').entries, host, port, type, blob);

describe('parseKnownHosts', () => {
  it('skips comments, blank lines and malformed lines, with notes for the latter', () => {
    const r = parseKnownHosts(
      `# comment\n\n   \nhost ssh-ed25519 ${KEY} comment words\nbroken-line\n@weird h t ${KEY}\n`,
      'f',
    );
    expect(r.entries).toHaveLength(1);
    expect(r.entries[0]).toMatchObject({
      file: 'f',
      line: 4,
      marker: null,
      keyType: 'ssh-ed25519',
      keyBlob: KEY,
    });
    expect(r.notes).toEqual([
      'f:5: malformed known_hosts line, ignored',
      'f:6: unknown marker @weird, line ignored',
    ]);
  });

  it('reports @cert-authority lines as unsupported and never matches them', () => {
    const text = `@cert-authority *.example.com ssh-ed25519 ${KEY}\n`;
    const r = parseKnownHosts(text, 'kh');
    expect(r.notes[0]).toMatch(/kh:1: @cert-authority lines are not supported/);
    expect(lookup(text, 'a.example.com', 22)).toEqual({ status: 'unknown' });
  });

  it('handles CRLF line endings', () => {
    expect(lookup(`host ssh-ed25519 ${KEY}\r\n`, 'host', 22)).toEqual({ status: 'match' });
  });
});

describe('lookupHostKey', () => {
  it.each([
    ['plain name, port 22', `node-a ssh-ed25519 ${KEY}`, 'node-a', 22],
    ['case-insensitive host', `Node-A ssh-ed25519 ${KEY}`, 'NODE-a', 22],
    ['[host]:port', `[127.0.0.1]:2222 ssh-ed25519 ${KEY}`, '127.0.0.1', 2222],
    ['one of several names', `a,[127.0.0.1]:2222,b ssh-ed25519 ${KEY}`, '127.0.0.1', 2222],
    ['wildcard *', `*.example.com ssh-ed25519 ${KEY}`, 'web1.example.com', 22],
    ['wildcard ?', `web?.example.com ssh-ed25519 ${KEY}`, 'web7.example.com', 22],
    ['wildcard in brackets', `[10.0.0.*]:2200 ssh-ed25519 ${KEY}`, '10.0.0.5', 2200],
    ['hashed [host]:port (ssh-keygen -H)', `${HASHED_127_2222} ssh-ed25519 ${KEY}`, '127.0.0.1', 2222],
    ['hashed host (ssh-keygen -H)', `${HASHED_EXAMPLE_COM} ssh-ed25519 ${KEY}`, 'example.com', 22],
    ['second line matches', `other ssh-ed25519 ${OTHER}\nnode-a ssh-ed25519 ${KEY}`, 'node-a', 22],
  ])('match: %s', (_name, text, host, port) => {
    expect(lookup(text, host, port)).toEqual({ status: 'match' });
  });

  it.each([
    ['other host', `node-b ssh-ed25519 ${KEY}`, 'node-a', 22],
    ['port 22 entry does not cover another port', `node-a ssh-ed25519 ${KEY}`, 'node-a', 2222],
    ['[host]:port entry does not cover port 22', `[node-a]:2222 ssh-ed25519 ${KEY}`, 'node-a', 22],
    ['[host]:22 is not how port 22 is written', `[node-a]:22 ssh-ed25519 ${KEY}`, 'node-a', 22],
    ['hashed for another port', `${HASHED_127_2222} ssh-ed25519 ${KEY}`, '127.0.0.1', 22],
    ['negation vetoes the line', `*.example.com,!bad.example.com ssh-ed25519 ${KEY}`, 'bad.example.com', 22],
    ['wildcard is anchored', `web?.example.com ssh-ed25519 ${KEY}`, 'web10.example.com', 22],
    ['dot is literal', `a.b ssh-ed25519 ${KEY}`, 'axb', 22],
    ['empty file', '', 'node-a', 22],
  ])('unknown: %s', (_name, text, host, port) => {
    expect(lookup(text, host, port)).toEqual({ status: 'unknown' });
  });

  it('same type, different key: mismatch pointing at the offending line', () => {
    const text = `# c\nnode-a ssh-ed25519 ${OTHER}\n`;
    expect(lookup(text, 'node-a', 22)).toEqual({
      status: 'mismatch',
      file: 'kh',
      line: 2,
      knownType: 'ssh-ed25519',
    });
  });

  it('a matching key wins over another listed key of the same type', () => {
    expect(lookup(`node-a ssh-ed25519 ${OTHER}\nnode-a ssh-ed25519 ${KEY}\n`, 'node-a', 22)).toEqual({
      status: 'match',
    });
  });

  it('host known only with another key type: mismatch with knownType', () => {
    expect(lookup(`node-a ecdsa-sha2-nistp256 ${ECDSA}\n`, 'node-a', 22)).toEqual({
      status: 'mismatch',
      file: 'kh',
      line: 1,
      knownType: 'ecdsa-sha2-nistp256',
    });
  });

  it('type is part of the identity: a blob under another type name is a malformed line (as ssh reads it)', () => {
    expect(lookup(`node-a ssh-rsa ${KEY}\n`, 'node-a', 22).status).toBe('unknown');
    expect(parseKnownHosts(`node-a ssh-rsa ${KEY}\n`, 'kh').notes).toEqual([
      'kh:1: malformed known_hosts line, ignored',
    ]);
  });

  it('@revoked wins even when the key is also listed as known', () => {
    const text = `node-a ssh-ed25519 ${KEY}\n@revoked * ssh-ed25519 ${KEY}\n`;
    expect(lookup(text, 'node-a', 22)).toEqual({ status: 'revoked', file: 'kh', line: 2 });
  });

  it('@revoked for a pattern that does not cover the host does not apply', () => {
    const text = `node-a ssh-ed25519 ${KEY}\n@revoked other ssh-ed25519 ${KEY}\n`;
    expect(lookup(text, 'node-a', 22)).toEqual({ status: 'match' });
  });

  it('a revoked other key does not affect a known good key', () => {
    const text = `node-a ssh-ed25519 ${KEY}\n@revoked * ssh-ed25519 ${OTHER}\n`;
    expect(lookup(text, 'node-a', 22)).toEqual({ status: 'match' });
  });

  it('accepts the key blob as a Buffer', () => {
    const entries = parseKnownHosts(`node-a ssh-ed25519 ${KEY}`, 'kh').entries;
    expect(lookupHostKey(entries, 'node-a', 22, 'ssh-ed25519', Buffer.from(KEY, 'base64'))).toEqual({
      status: 'match',
    });
  });
});

describe('knownKeyTypes', () => {
  it('lists the types known for a host in file order', () => {
    const entries = parseKnownHosts(
      `node-a ecdsa-sha2-nistp256 ${ECDSA}\nnode-b ssh-rsa ${KEY}\nnode-a ssh-ed25519 ${KEY}\n@revoked node-a ssh-rsa ${KEY}\n`,
      'kh',
    ).entries;
    expect(knownKeyTypes(entries, 'node-a', 22)).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
  });
});

describe('lookups through the index of an entries array', () => {
  const RSA = fakeBlob('ssh-rsa', 3);
  const text = [
    `node-a ssh-rsa ${RSA}`,
    `*.x,node-c ecdsa-sha2-nistp256 ${ECDSA}`,
    `Node-B,node-a,node-a ssh-ed25519 ${KEY}`,
    `node-c,!node-a ssh-ed25519 ${OTHER}`,
    `${HASHED_127_2222} ssh-ed25519 ${KEY}`,
    `@cert-authority node-a ssh-ed25519 ${OTHER}`,
    `@revoked node-b ssh-ed25519 ${OTHER}`,
  ].join('\n');

  it('answers every name of one array as a line-by-line match would, in file order, also after it grows', () => {
    const entries = parseKnownHosts(text, 'kh').entries;
    for (let round = 0; round < 2; round++) {
      expect(knownKeyTypes(entries, 'node-a', 22)).toEqual(['ssh-rsa', 'ssh-ed25519']);
      expect(knownKeyTypes(entries, 'NODE-b', 22)).toEqual(['ssh-ed25519']);
      expect(knownKeyTypes(entries, 'node-c', 22)).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
      expect(knownKeyTypes(entries, 'y.x', 22)).toEqual(['ecdsa-sha2-nistp256']);
      expect(knownKeyTypes(entries, '127.0.0.1', 2222)).toEqual(['ssh-ed25519']);
      expect(knownKeyTypes(entries, 'node-d', 22)).toEqual([]);
      expect(lookupHostKey(entries, 'node-a', 22, 'ssh-ed25519', KEY)).toEqual({ status: 'match' });
      expect(lookupHostKey(entries, 'node-a', 22, 'ssh-ed25519', OTHER)).toMatchObject({ line: 3 });
      expect(lookupHostKey(entries, 'node-b', 22, 'ssh-ed25519', OTHER)).toMatchObject({ status: 'revoked' });
      expect(lookupHostKey(entries, 'node-c', 22, 'ssh-rsa', RSA)).toMatchObject({
        status: 'mismatch',
        line: 2,
      });
      expect(certAuthorityFor(entries, 'node-a', 22).map((e) => e.line)).toEqual([6]);
      expect(certAuthorityFor(entries, 'node-b', 22)).toEqual([]);
    }
    entries.push(
      ...parseKnownHosts(`node-d ssh-rsa ${RSA}\nnode-a ecdsa-sha2-nistp256 ${ECDSA}`, 'more').entries,
    );
    expect(knownKeyTypes(entries, 'node-d', 22)).toEqual(['ssh-rsa']);
    expect(knownKeyTypes(entries, 'node-a', 22)).toEqual(['ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256']);
  });

  it('loadKnownHosts gives every connection the same array while the files stay the same', async () => {
    clearFileCache();
    const dir = mkdtempSync(join(tmpdir(), 'criu-lock-kh-'));
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    writeFileSync(a, `${text}\n`);
    writeFileSync(b, `node-z ssh-rsa ${RSA}\n`);
    const notes: string[] = [];
    const first = await loadKnownHosts([a, b], (n) => notes.push(n));
    expect(first.map((e) => e.file)).toEqual([...Array<string>(7).fill(a), b]);
    expect(await loadKnownHosts([a, b], (n) => notes.push(n))).toBe(first);
    // Another list of files, then a file that changed: new arrays, with the new line.
    expect((await loadKnownHosts([b], () => undefined)).map((e) => e.file)).toEqual([b]);
    appendFileSync(b, `node-y ssh-rsa ${RSA}\n`);
    const after = await loadKnownHosts([a, b], () => undefined);
    expect(after).not.toBe(first);
    expect(knownKeyTypes(after, 'node-y', 22)).toEqual(['ssh-rsa']);
    expect(notes).toEqual(
      [
        'a:6: @cert-authority lines are not supported by criu-lock; host certificates are not accepted',
        'a:6: @cert-authority lines are not supported by criu-lock; host certificates are not accepted',
      ].map((n) => n.replace(/^a:/, `${a}:`)),
    );
  });
});

describe('formatKnownHostsLine', () => {
  it('writes port 22 plain and other ports bracketed', () => {
    expect(formatKnownHostsLine('node-a', 22, 'ssh-ed25519', KEY)).toBe(`node-a ssh-ed25519 ${KEY}`);
    expect(formatKnownHostsLine('127.0.0.1', 2222, 'ssh-ed25519', KEY)).toBe(
      `[127.0.0.1]:2222 ssh-ed25519 ${KEY}`,
    );
  });

  it('round-trips through lookup, plain and hashed', () => {
    for (const hashed of [false, true]) {
      const line = formatKnownHostsLine('127.0.0.1', 2222, 'ssh-ed25519', KEY, hashed);
      expect(line.startsWith('|1|')).toBe(hashed);
      expect(lookup(line, '127.0.0.1', 2222)).toEqual({ status: 'match' });
      expect(lookup(line, '127.0.0.1', 22)).toEqual({ status: 'unknown' });
    }
  });
});

describe('fingerprints and blobs', () => {
  it('matches ssh-keygen -l', () => {
    expect(sha256Fingerprint(KEY)).toBe(KEY_FP);
    expect(sha256Fingerprint(Buffer.from(KEY, 'base64'))).toBe(KEY_FP);
  });

  it('reads the key type from the blob', () => {
    expect(keyTypeOfBlob(Buffer.from(KEY, 'base64'))).toBe('ssh-ed25519');
    expect(keyTypeOfBlob(Buffer.from(ECDSA, 'base64'))).toBe('ecdsa-sha2-nistp256');
    expect(keyTypeOfBlob(Buffer.from([0, 0]))).toBeNull();
  });
});
