/**
 * group_vars/ and host_vars/ beside the inventory, read as Ansible's host_group_vars plugin and
 * DataLoader.find_vars_files do: for a name, the first of NAME, NAME.yml, NAME.yaml, NAME.json that
 * exists; a directory is read recursively in lexical order (hidden files and `~` backups skipped,
 * only those extensions or none), later files replacing earlier keys. Whole-file vaults and inline
 * `!vault` values are decrypted with the --vault-password-file password, or skipped with a warning.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { decodeUtf8 } from '../input/utf8.js';
import nodePath from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type ScalarTag } from 'yaml';
import { CriuLockError, type SourceLocation } from '../errors.js';
import { pyyamlScalars, refuseBadAlias, yamlToJs } from '../input/yaml-source.js';
import type { LocatedValue } from './model.js';
import { decryptVault, isVaultText, VaultError } from './vault.js';

const EXTENSIONS = ['', '.yml', '.yaml', '.json'];

export interface VarsFilesContext {
  /** Password from --vault-password-file; without it vaulted files and values are skipped. */
  vaultPassword?: string | undefined;
  warnings: string[];
}

/** One name's variables (a group or host), merged over its files; empty when there are none. */
export async function loadVarsFor(
  baseDir: string,
  subdir: 'group_vars' | 'host_vars',
  name: string,
  ctx: VarsFilesContext,
): Promise<{ vars: Map<string, LocatedValue>; files: string[] }> {
  const vars = new Map<string, LocatedValue>();
  // A name with a path separator would read outside the directory.
  if (name.includes('/') || name === '.' || name === '..') return { vars, files: [] };
  const files = await findVarsFiles(nodePath.join(baseDir, subdir), name);
  for (const file of files) {
    const loaded = await loadVarsFile(file, ctx);
    for (const [k, v] of loaded) vars.set(k, v);
  }
  return { vars, files };
}

export async function findVarsFiles(dir: string, name: string): Promise<string[]> {
  for (const ext of EXTENSIONS) {
    const full = nodePath.join(dir, name + ext);
    const s = await stat(full).catch(() => undefined);
    if (!s) continue;
    if (s.isDirectory()) return dirVarsFiles(full, [`${s.dev}:${s.ino}`]);
    return [full];
  }
  return [];
}

/**
 * The vars files under `dir`, recursively. `path` holds the device:inode of every directory from
 * the top one down to `dir`: symlinks are followed (as Ansible does), so a link back up would
 * otherwise be walked forever, and two of them double the walk at every level.
 */
async function dirVarsFiles(dir: string, path: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const names = (await readdir(dir)).sort(pythonOrder);
  for (const n of names) {
    if (n.startsWith('.') || n.endsWith('~')) continue;
    const ext = nodePath.extname(n);
    const full = nodePath.join(dir, n);
    const s = await stat(full).catch(() => undefined);
    if (!s) continue;
    if (s.isDirectory() && ext === '') {
      const id = `${s.dev}:${s.ino}`;
      if (path.includes(id)) {
        throw new CriuLockError('inventory', 'this directory leads back to one above it (a symlink loop)', {
          location: { file: full },
          hint: 'remove the link, or point it at a directory outside group_vars/host_vars',
        });
      }
      found.push(...(await dirVarsFiles(full, [...path, id])));
    } else if (s.isFile() && (ext === '' || EXTENSIONS.includes(ext))) found.push(full);
  }
  return found;
}

/** Python sorts strings by code point; JS's default sort uses UTF-16 units. Same for BMP names. */
function pythonOrder(a: string, b: string): number {
  const ca = [...a].map((c) => c.codePointAt(0) ?? 0);
  const cb = [...b].map((c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    if (ca[i] !== cb[i]) return (ca[i] ?? 0) - (cb[i] ?? 0);
  }
  return ca.length - cb.length;
}

/** A marker for an inline `!vault` value that could not be decrypted. */
const VAULTED = Symbol('vaulted');

export async function loadVarsFile(file: string, ctx: VarsFilesContext): Promise<Map<string, LocatedValue>> {
  const bytes = await readFile(file).catch((e: Error) => {
    throw new CriuLockError('inventory', `cannot read ${file}: ${e.message}`, {
      location: { file },
      hint: 'check its permissions',
    });
  });
  let text = decodeUtf8(bytes, file, 'inventory');
  if (isVaultText(text)) {
    if (ctx.vaultPassword === undefined) {
      ctx.warnings.push(
        `${file} is vault-encrypted and no --vault-password-file was given; its variables are not used`,
      );
      return new Map();
    }
    text = decryptOrFail(text, ctx.vaultPassword, file);
  }
  return parseVarsText(text, file, ctx);
}

function decryptOrFail(text: string, password: string, file: string, line?: number): string {
  try {
    return decryptVault(text, password);
  } catch (e) {
    if (!(e instanceof VaultError)) throw e;
    throw new CriuLockError('inventory', `cannot decrypt ${file}: ${e.message}`, {
      location: line === undefined ? { file } : { file, line },
      hint: 'check --vault-password-file (the file holds the password on its first line)',
    });
  }
}

/** The top-level mapping of a vars file as located values; YAML 1.1 like PyYAML, JSON included. */
export function parseVarsText(text: string, file: string, ctx: VarsFilesContext): Map<string, LocatedValue> {
  const lineCounter = new LineCounter();
  // The yaml library turns what a tag's resolve throws into a syntax error of its own; the
  // decryption error is kept here to be reported as itself, at that error's position.
  let vaultError: CriuLockError | undefined;
  const vaultTag: ScalarTag = {
    tag: '!vault',
    resolve: (str: string): unknown => {
      if (ctx.vaultPassword === undefined) return VAULTED;
      try {
        return decryptOrFail(str, ctx.vaultPassword, file);
      } catch (e) {
        if (e instanceof CriuLockError) vaultError ??= e;
        throw e;
      }
    },
  };
  const doc: Document = parseDocument(text, {
    lineCounter,
    version: '1.1',
    uniqueKeys: false,
    prettyErrors: false,
    logLevel: 'error',
    customTags: (tags) => [...pyyamlScalars(tags), vaultTag, { ...vaultTag, tag: '!vault-encrypted' }],
  });
  const at = (offset: number): SourceLocation => ({ file, ...lineCounter.linePos(offset) });
  const firstError = doc.errors[0];
  if (firstError) {
    if (vaultError) {
      throw new CriuLockError(vaultError.code, vaultError.message, {
        location: at(firstError.pos[0]),
        ...(vaultError.hint === undefined ? {} : { hint: vaultError.hint }),
      });
    }
    throw new CriuLockError('inventory', `invalid YAML: ${firstError.message.split('\n')[0] ?? ''}`, {
      location: at(firstError.pos[0]),
      hint: 'fix the YAML syntax of this variables file',
    });
  }
  refuseBadAlias(
    doc,
    at,
    'inventory',
    'set the anchor (&name) before its alias (*name), outside the node that uses it',
  );
  const out = new Map<string, LocatedValue>();
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return out;
  if (!isMap(root)) {
    throw new CriuLockError('inventory', `${file} must be a mapping of variable names to values`, {
      location: { file, line: root.range ? lineCounter.linePos(root.range[0]).line : undefined },
      hint: 'write one "name: value" per line',
    });
  }
  for (const pair of root.items) {
    const keyNode = pair.key as { value?: unknown; range?: [number, number, number] } | null;
    const key = isScalar(keyNode) ? keyNode.value : undefined;
    const line = keyNode?.range ? lineCounter.linePos(keyNode.range[0]).line : undefined;
    const loc = line === undefined ? { file } : { file, line };
    if (typeof key !== 'string' || key === '') {
      throw new CriuLockError(
        'inventory',
        `variable name ${JSON.stringify(key) ?? String(key)} must be a string`,
        {
          location: loc,
          hint: 'quote names that YAML reads as numbers or booleans',
        },
      );
    }
    const value: unknown =
      pair.value === null
        ? null
        : yamlToJs(() => toJs(doc, pair.value), loc, 'inventory', 'use fewer aliases (*name) in this file');
    if (containsVaulted(value)) {
      ctx.warnings.push(
        `${file}:${line ?? '?'}: ${key} is vault-encrypted and no --vault-password-file was given; it is not used`,
      );
      continue;
    }
    out.set(key, { value, loc });
  }
  return out;
}

function toJs(doc: Document, node: unknown): unknown {
  return (node as { toJS(doc: Document): unknown }).toJS(doc);
}

function containsVaulted(v: unknown): boolean {
  if (v === VAULTED) return true;
  if (Array.isArray(v)) return v.some(containsVaulted);
  if (typeof v === 'object' && v !== null) return Object.values(v).some(containsVaulted);
  return false;
}
