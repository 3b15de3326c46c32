/**
 * Files and directories a command writes (`-o`): checked before any host is contacted, so a typo
 * in a path does not throw away a whole fleet's work at the end, and every failure is one input
 * error naming the path, not an internal one.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CriuLockError } from '../errors.js';

const reason = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such directory';
  if (err.code === 'ENOTDIR') return 'a part of the path is not a directory';
  return err.message;
};

/** `path` can be created or replaced: its directory exists, and it is not itself a directory. */
export async function checkOutputFile(path: string, flag: string): Promise<void> {
  const parent = dirname(resolve(path));
  const dir = await stat(parent).catch((e: unknown) => e as Error);
  if (dir instanceof Error || !dir.isDirectory()) {
    throw new CriuLockError(
      'usage',
      `cannot write ${path}: ${dir instanceof Error ? reason(dir) : `${parent} is not a directory`}`,
      { hint: `give ${flag} a path in an existing directory` },
    );
  }
  const self = await stat(path).catch(() => undefined);
  if (self?.isDirectory()) {
    throw new CriuLockError('usage', `cannot write ${path}: it is a directory`, {
      hint: `give ${flag} a file name`,
    });
  }
}

/** writeFile, with a failure as one error naming the path. */
export async function writeOutputFile(path: string, content: string, flag: string): Promise<void> {
  try {
    await writeFile(path, content);
  } catch (e) {
    throw new CriuLockError('usage', `cannot write ${path}: ${reason(e)}`, {
      hint: `give ${flag} a writable path`,
    });
  }
}

/**
 * `dir` and its missing parents, made one level at a time. Node's `mkdir(..., {recursive: true})`
 * never returns for a path under /proc (it retries the parent it cannot create, forever).
 */
export async function makeOutputDir(dir: string, flag: string): Promise<void> {
  const fail = (why: string): never => {
    throw new CriuLockError('usage', `cannot make directory ${dir}: ${why}`, {
      hint: `give ${flag} a directory path you can write`,
    });
  };
  const missing: string[] = [];
  let at = resolve(dir);
  for (;;) {
    const s = await stat(at).catch((e: unknown) => e as NodeJS.ErrnoException);
    if (!(s instanceof Error)) {
      if (!s.isDirectory()) fail(`${at} is not a directory`);
      break;
    }
    if (s.code !== 'ENOENT') fail(reason(s));
    missing.push(at);
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  for (const d of missing.reverse()) {
    await mkdir(d).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail(reason(e));
    });
  }
}
