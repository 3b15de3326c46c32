/** known_hosts files on disk: reading several (UserKnownHostsFile lists), appending one line safely. */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CriuLockError } from '../errors.js';
import { lookupHostKey, parseKnownHosts, type KnownHostEntry } from './known-hosts.js';
import { errMessage, isErrno } from './util.js';

export async function loadKnownHosts(
  files: readonly string[],
  note: (m: string) => void,
): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) continue;
      throw new CriuLockError('host-key', `cannot read known_hosts file ${file}: ${errMessage(e)}`, {
        hint: 'fix its permissions or pass another file with --known-hosts',
      });
    }
    const parsed = parseKnownHosts(text, file);
    for (const n of parsed.notes) note(n);
    all.push(...parsed.entries);
  }
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
