/** known_hosts files on disk: reading several (UserKnownHostsFile lists), appending one line safely. */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CriuLockError } from '../errors.js';
import { lookupHostKey, parseKnownHosts, type KnownHostEntry, type KnownHostsFile } from './known-hosts.js';
import { readParsed } from './file-cache.js';
import { errMessage, isErrno } from './util.js';

/** OpenSSH's default GlobalKnownHostsFile: read (never written) after the user's files. */
export const GLOBAL_KNOWN_HOSTS_FILES: readonly string[] = [
  '/etc/ssh/ssh_known_hosts',
  '/etc/ssh/ssh_known_hosts2',
];

/**
 * The user's known_hosts files, then the global ones, parsed into one list (entries keep their
 * file and line, so a refusal names where the offending key is). A missing file is empty. An
 * unreadable user file is an error (strict checking could not be honoured); an unreadable global
 * file is a note, as ssh(1) goes on without it. Ignored lines (@cert-authority, malformed) are notes.
 */
/**
 * The last list handed out, with the parsed files it joins: while every file parses to the same
 * (cached) result, each connection gets that very array, and lookups its index (known-hosts.ts).
 */
let last: { parsed: KnownHostsFile[]; all: readonly KnownHostEntry[] } | undefined;

export async function loadKnownHosts(
  files: readonly string[],
  note: (m: string) => void,
  globalFiles: readonly string[] = [],
): Promise<readonly KnownHostEntry[]> {
  const read: KnownHostsFile[] = [];
  const user = new Set(files);
  for (const file of [...files, ...globalFiles.filter((f) => !user.has(f))]) {
    let parsed: KnownHostsFile;
    try {
      // Read and parsed once per run while the file stays the same (file-cache.ts).
      parsed = await readParsed(file, 'known_hosts', (data) => parseKnownHosts(data.toString('utf8'), file));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) continue;
      if (!user.has(file)) {
        note(`${file}: cannot read this global known_hosts file (${errMessage(e)}); its keys are not used`);
        continue;
      }
      throw new CriuLockError('host-key', `cannot read known_hosts file ${file}: ${errMessage(e)}`, {
        hint: 'fix its permissions or pass another file with --known-hosts',
      });
    }
    for (const n of parsed.notes) note(n);
    read.push(parsed);
  }
  if (last?.parsed.length === read.length && last.parsed.every((p, i) => p === read[i])) return last.all;
  const all = read.flatMap((p) => p.entries);
  last = { parsed: read, all };
  return all;
}

// Appends from concurrent connections in this process are chained per file, and each re-reads the
// file first, so two connections learning the same host add one line. A single O_APPEND write per
// line keeps other processes' appends from interleaving with ours.
const appendQueues = new Map<string, Promise<unknown>>();

export function appendKnownHost(
  file: string,
  line: string,
  host: string,
  port: number,
  key: { type: string; blob: string },
): Promise<boolean> {
  const previous = appendQueues.get(file) ?? Promise.resolve();
  const next = previous
    .catch(() => undefined)
    .then(async () => {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw e;
      }
      const current = parseKnownHosts(text, file).entries;
      if (lookupHostKey(current, host, port, key.type, key.blob).status !== 'unknown') return false;
      const sep = text === '' || text.endsWith('\n') ? '' : '\n';
      await appendFile(file, `${sep}${line}\n`, { mode: 0o600, flag: 'a' });
      return true;
    });
  appendQueues.set(file, next);
  return next;
}
