/**
 * OpenSSH known_hosts, parsed and matched without touching the filesystem (sshd(8) "SSH_KNOWN_HOSTS
 * FILE FORMAT"). The SSH transport reads the file and asks `lookupHostKey`; keeping this pure lets
 * the unit tests pin OpenSSH's matching rules down line by line (known-hosts-store.ts reads files).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { globMatch } from '../pattern/glob.js';

export type HostPatterns =
  { kind: 'hashed'; salt: Buffer; hash: Buffer } | { kind: 'patterns'; patterns: string[] };

export interface KnownHostEntry {
  file: string;
  /** 1-based line number in `file`. */
  line: number;
  marker: 'revoked' | 'cert-authority' | null;
  hosts: HostPatterns;
  keyType: string;
  /** Base64 key blob exactly as written (OpenSSH wire format of the public key). */
  keyBlob: string;
}

export interface KnownHostsFile {
  entries: KnownHostEntry[];
  /** Lines we could not use, and features we do not support (e.g. @cert-authority). */
  notes: string[];
}

export type HostKeyLookup =
  | { status: 'match' }
  | { status: 'mismatch'; line: number; file: string; knownType: string }
  | { status: 'unknown' }
  | { status: 'revoked'; line: number; file: string };

export function parseKnownHosts(text: string, file: string): KnownHostsFile {
  const entries: KnownHostEntry[] = [];
  const notes: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/[ \t]+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else {
        notes.push(`${file}:${lineNo}: unknown marker ${m ?? ''}, line ignored`);
        continue;
      }
    }
    const [hostField, keyType, keyBlob] = fields;
    // As ssh(1): the blob must decode to a key of the type the line names, or the line is unusable.
    if (
      hostField === undefined ||
      keyType === undefined ||
      keyBlob === undefined ||
      !isBase64(keyBlob) ||
      keyTypeOfBlob(Buffer.from(keyBlob, 'base64')) !== keyType
    ) {
      notes.push(`${file}:${lineNo}: malformed known_hosts line, ignored`);
      continue;
    }
    const hosts = parseHostField(hostField);
    if (hosts === null) {
      notes.push(`${file}:${lineNo}: malformed hashed host name, line ignored`);
      continue;
    }
    if (marker === 'cert-authority') {
      notes.push(
        `${file}:${lineNo}: @cert-authority lines are not supported by criu-lock; host certificates are not accepted`,
      );
    }
    entries.push({ file, line: lineNo, marker, hosts, keyType, keyBlob });
  }
  return { entries, notes };
}

function parseHostField(field: string): HostPatterns | null {
  if (field.startsWith('|')) {
    // |1|base64(salt)|base64(HMAC-SHA1(salt, name)); only version 1 exists.
    const parts = field.split('|');
    if (parts.length !== 4 || parts[1] !== '1' || !isBase64(parts[2] ?? '') || !isBase64(parts[3] ?? ''))
      return null;
    const salt = Buffer.from(parts[2] ?? '', 'base64');
    const hash = Buffer.from(parts[3] ?? '', 'base64');
    if (salt.length !== 20 || hash.length !== 20) return null;
    return { kind: 'hashed', salt, hash };
  }
  return { kind: 'patterns', patterns: field.split(',').filter((p) => p !== '') };
}

function isBase64(s: string): boolean {
  return s.length > 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
}

/** The name OpenSSH looks up: `host` for port 22, `[host]:port` otherwise; lower-cased like ssh does. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/**
 * OpenSSH `match_pattern`: `*` any run, `?` one character, case-insensitive (names are lower-cased).
 * No regular expression: `*a*a*a*a*b` against a long name must not backtrack (see pattern/glob.ts).
 */
function matchPattern(name: string, pattern: string): boolean {
  return globMatch(pattern.toLowerCase(), name, { classes: false });
}

/**
 * OpenSSH `match_hostname`: a matching negated pattern vetoes the whole line even if another
 * pattern matches, so `*.example.com,!bad.example.com` excludes bad.example.com.
 */
function hostsMatch(hosts: HostPatterns, name: string): boolean {
  if (hosts.kind === 'hashed') {
    const mac = createHmac('sha1', hosts.salt).update(name).digest();
    return mac.length === hosts.hash.length && timingSafeEqual(mac, hosts.hash);
  }
  let matched = false;
  for (const p of hosts.patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(name, p.slice(1))) return false;
    } else if (matchPattern(name, p)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * Which lines a name can match: lines of plain names only (no `*`, `?` or `!`) under each name they
 * list, every other line (hashed, wildcards, negations) under every name.
 */
interface HostIndex {
  /** Entries indexed, so a grown array is indexed again. */
  size: number;
  byName: Map<string, number[]>;
  rest: number[];
  /** Answers so far: a connection looks its name up three times (one HMAC a hashed line each). */
  answers: Map<string, readonly KnownHostEntry[]>;
}

const indexes = new WeakMap<readonly KnownHostEntry[], HostIndex>();

function isPlainName(p: string): boolean {
  return !p.startsWith('!') && !p.includes('*') && !p.includes('?');
}

function hostIndex(entries: readonly KnownHostEntry[]): HostIndex {
  let index = indexes.get(entries);
  if (index?.size === entries.length) return index;
  index = { size: entries.length, byName: new Map(), rest: [], answers: new Map() };
  for (let i = 0; i < entries.length; i++) {
    const { hosts } = entries[i]!;
    if (hosts.kind !== 'patterns' || !hosts.patterns.every(isPlainName)) {
      index.rest.push(i);
      continue;
    }
    for (const p of hosts.patterns) {
      const name = p.toLowerCase();
      const list = index.byName.get(name);
      if (list === undefined) index.byName.set(name, [i]);
      else if (list[list.length - 1] !== i) list.push(i);
    }
  }
  indexes.set(entries, index);
  return index;
}

/**
 * The entries whose host field matches `name`, in file order. Through an index of the array, built
 * once: loadKnownHosts hands every connection of a run the same array while its files stay the
 * same, so a host no longer matches every line of a fleet-sized known_hosts, three times (issue 14:
 * O(N) a host, O(N²) a run). Each candidate is still matched by hostsMatch.
 */
function entriesFor(entries: readonly KnownHostEntry[], name: string): readonly KnownHostEntry[] {
  const { byName, rest, answers } = hostIndex(entries);
  const known = answers.get(name);
  if (known !== undefined) return known;
  const named = byName.get(name) ?? [];
  const out: KnownHostEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < named.length || j < rest.length) {
    const k = j >= rest.length || (i < named.length && named[i]! < rest[j]!) ? named[i++]! : rest[j++]!;
    const e = entries[k]!;
    if (hostsMatch(e.hosts, name)) out.push(e);
  }
  answers.set(name, out);
  return out;
}

function sameBlob(a: string, b: string): boolean {
  // Compare decoded bytes so padding or line-wrapping differences in the file cannot matter.
  return Buffer.from(a, 'base64').equals(Buffer.from(b, 'base64'));
}

/**
 * Decide what known_hosts says about the key a host presented. Precedence follows ssh: a revoked
 * key is refused even when also listed as known; a listed key matches; a listed host with a
 * different key is a mismatch. A host known only with keys of *another type* is also reported as a
 * mismatch (with `knownType`): the transport asks the server for the known types first, so getting
 * a different type means the known key is gone — OpenSSH's accept-new would add it, we refuse.
 * @cert-authority lines are ignored (see notes from `parseKnownHosts`).
 */
export function lookupHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: string | Buffer,
): HostKeyLookup {
  const blob = typeof keyBlob === 'string' ? keyBlob : keyBlob.toString('base64');
  const name = knownHostsName(host, port);
  const forHost = entriesFor(entries, name).filter((e) => e.marker !== 'cert-authority');

  const revoked = forHost.find((e) => e.marker === 'revoked' && sameBlob(e.keyBlob, blob));
  if (revoked) return { status: 'revoked', line: revoked.line, file: revoked.file };

  const known = forHost.filter((e) => e.marker === null);
  if (known.some((e) => e.keyType === keyType && sameBlob(e.keyBlob, blob))) return { status: 'match' };
  const other = known.find((e) => e.keyType === keyType) ?? known[0];
  if (other) return { status: 'mismatch', line: other.line, file: other.file, knownType: other.keyType };
  return { status: 'unknown' };
}

/** Key types known for a host, in file order, so the client can ask the server for those first. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types: string[] = [];
  for (const e of entriesFor(entries, name)) {
    if (e.marker === null && !types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/** @cert-authority lines whose patterns cover this host: worth telling the user why they did not help. */
export function certAuthorityFor(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
): KnownHostEntry[] {
  const name = knownHostsName(host, port);
  return entriesFor(entries, name).filter((e) => e.marker === 'cert-authority');
}

/**
 * One known_hosts line (no newline). Plain by default, as OpenSSH writes unless HashKnownHosts is
 * set; hashed lines use a fresh random salt.
 */
export function formatKnownHostsLine(
  host: string,
  port: number,
  keyType: string,
  blobBase64: string,
  hashed = false,
): string {
  const name = knownHostsName(host, port);
  if (!hashed) return `${name} ${keyType} ${blobBase64}`;
  const salt = randomBytes(20);
  const hash = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hash.toString('base64')} ${keyType} ${blobBase64}`;
}

/** `SHA256:` + unpadded base64 of the blob's SHA-256, as `ssh-keygen -l` prints it. */
export function sha256Fingerprint(blob: Buffer | string): string {
  const bytes = typeof blob === 'string' ? Buffer.from(blob, 'base64') : blob;
  return `SHA256:${createHash('sha256').update(bytes).digest('base64').replace(/=+$/, '')}`;
}

/** The key type name embedded at the start of an SSH public key blob (RFC 4253 §6.6). */
export function keyTypeOfBlob(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || blob.length < 4 + len) return null;
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** How OpenSSH names key types in its warnings ("The ED25519 key fingerprint is ..."). */
export function keyTypeLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519' || keyType.startsWith('ssh-ed25519')) return 'ED25519';
  if (keyType.startsWith('ecdsa-sha2-') || keyType.startsWith('sk-ecdsa')) return 'ECDSA';
  if (keyType === 'ssh-rsa' || keyType.startsWith('rsa-sha2-')) return 'RSA';
  if (keyType === 'ssh-dss') return 'DSA';
  return keyType.toUpperCase();
}
