/**
 * Files and directories a command writes (`-o`): checked before any host is contacted, so a typo
 * in a path does not throw away a whole fleet's work at the end, and every failure is one input
 * error naming the path, not an internal one.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readlink, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CriuLockError } from '../errors.js';
import { lockTextOrProblem, type Lockfile } from '../lock/lockfile.js';
import { errLine, type Io } from './context.js';

const reason = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such directory';
  if (err.code === 'ENOTDIR') return 'a part of the path is not a directory';
  if (err.code === 'ENOSPC') return 'no space left on the device';
  if (err.code === 'EFBIG') return 'the file is too large for this system';
  if (err.code === 'EDQUOT') return 'disk quota exceeded';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'EROFS') return 'read-only file system';
  if (err.code === 'EISDIR') return 'it is a directory';
  if (err.code === 'ELOOP') return 'too many levels of symbolic links';
  return err.message;
};

/** The reason of a failed file operation, in words (for errors that name the path themselves). */
export const fileErrorReason = reason;

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

/** The file a path names once its symbolic links are followed; the path itself when it is none. */
async function linkTarget(path: string): Promise<string> {
  let at = resolve(path);
  for (let hops = 0; ; hops++) {
    const l = await lstat(at).catch(() => undefined);
    if (!l?.isSymbolicLink()) return at;
    if (hops >= 40) throw Object.assign(new Error('ELOOP'), { code: 'ELOOP' });
    at = resolve(dirname(at), await readlink(at));
  }
}

/**
 * Replaces `path` with `content` or leaves it as it was: a new temporary file beside the real
 * target (exclusive create), written and synced, then renamed over it. A full disk used to leave a
 * truncated plan or lockfile where the old one was. A symbolic link the user made stays one (its
 * target is replaced), and a replaced file keeps its mode; a failure is one error naming the path.
 */
export async function writeOutputFile(path: string, content: string, flag: string): Promise<void> {
  let tmp: string | undefined;
  try {
    // A device, a FIFO or a terminal (-o /dev/null, -o /dev/stdout into a pipe) is written to, as
    // a shell redirection would: replacing it would put a plain file where /dev/null was.
    const existing = await stat(path).catch(() => undefined);
    if (existing && !existing.isFile() && !existing.isDirectory()) {
      await writeFile(path, content);
      return;
    }
    const target = await linkTarget(path);
    const old = await stat(target).catch(() => undefined);
    const name = join(
      dirname(target),
      `.${basename(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`,
    );
    await writeNewFile(name, content, old?.isFile() ? old.mode & 0o7777 : undefined);
    tmp = name;
    await rename(tmp, target);
  } catch (e) {
    if (tmp !== undefined) await unlink(tmp).catch(() => undefined);
    throw new CriuLockError('usage', `cannot write ${path}: ${reason(e)}`, {
      hint: `give ${flag} a writable path`,
    });
  }
}

/**
 * A new file (exclusive create: nothing already there, file or link, is written through) with
 * `content`, synced; with `mode` when given, else the process's default. A write that fails
 * removes what it made.
 */
export async function writeNewFile(path: string, content: string | Buffer, mode?: number): Promise<void> {
  const fh = await open(path, 'wx', mode === undefined ? 0o666 : 0o600);
  try {
    await fh.writeFile(content);
    if (mode !== undefined) await fh.chmod(mode);
    await fh.sync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw e;
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
    // A link to nothing is not a directory to make: mkdir would fail on the link (EEXIST).
    if (s.code === 'ENOENT' && (await lstat(at).catch(() => undefined))?.isSymbolicLink())
      fail(`${at} is a symbolic link to something that does not exist`);
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

/**
 * generate's last step (also for --checkpoint): the warnings, the lock read back as the loader will
 * read it (a golden node's answer no lockfile may hold is exit 3, nothing written), then stdout
 * (`-o -`) or the file and one summary line naming `what` was locked. Returns the exit code.
 */
export async function writeLockOutput(
  io: Io,
  o: { lock: Lockfile; warnings: readonly string[]; golden: string; output: string; what: string },
): Promise<0 | 3> {
  for (const w of o.warnings) errLine(io, `warning: ${w}`);
  const checked = lockTextOrProblem(o.lock);
  if ('problem' in checked) {
    errLine(io, `error: golden node ${o.golden} answered what no lockfile may hold: ${checked.problem}`);
    return 3;
  }
  if (o.output === '-') {
    io.out(checked.text);
    return 0;
  }
  await writeOutputFile(o.output, checked.text, '-o');
  const { lock } = o;
  const files = Object.values(lock.packages).reduce((n, p) => n + Object.keys(p.files ?? {}).length, 0);
  io.err(
    `wrote ${o.output}: ${Object.keys(lock.packages).length} package(s), ${files} file(s)` +
      `${lock.unmanaged ? `, ${Object.keys(lock.unmanaged).length} unmanaged file(s)` : ''}${o.what} from ${o.golden} (${lock.digest})\n`,
  );
  return 0;
}
