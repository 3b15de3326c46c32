/**
 * OpenSSH client configuration (ssh_config(5)): the `ssh-config` package tokenizes the file (quotes,
 * `=` separators, Host/Match sections); evaluation follows OpenSSH's readconf.c, which the package's
 * own `compute` does not (it runs `Match exec`, has no Include, and its `?` matches zero characters).
 *
 * `loadSshConfig` reads a file and its Includes; `resolveSshConfig` is pure: for one host name (what
 * ssh would receive on its command line) it returns the first value of each keyword criu-lock uses,
 * with the file:line it came from. `ssh -G` is the reference (test/unit/ssh-config-diff.test.ts).
 */
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import nodePath from 'node:path';
import SSHConfig, { LineType, type Line } from 'ssh-config';
import { CriuLockError } from '../errors.js';
import { compileGlob } from '../pattern/glob.js';

export type SshConfigEntry =
  | { kind: 'host'; patterns: string[]; file: string; line: number }
  | { kind: 'match'; criteria: string[]; file: string; line: number }
  | { kind: 'option'; keyword: string; args: string[]; file: string; line: number }
  | { kind: 'include'; patterns: string[]; files: SshConfigFile[]; file: string; line: number };

export interface SshConfigFile {
  file: string;
  entries: SshConfigEntry[];
}

export interface Setting<T> {
  value: T;
  /** `FILE:LINE` of the line that set it. */
  origin: string;
}

/** What the config says for one host; only the keywords criu-lock honours. */
export interface SshConfigResult {
  hostName?: Setting<string>;
  user?: Setting<string>;
  port?: Setting<number>;
  /** Every IdentityFile line that applied, in order (cumulative, as in OpenSSH), unexpanded. */
  identityFiles: Setting<string>[];
  identitiesOnly?: Setting<boolean>;
  /** Raw ProxyJump value; `none` disables it. */
  proxyJump?: Setting<string>;
  proxyCommand?: Setting<string>;
  userKnownHostsFiles?: Setting<string[]>;
  strictHostKeyChecking?: Setting<'strict' | 'accept-new' | 'off' | 'ask'>;
  connectTimeoutSeconds?: Setting<number>;
  serverAliveIntervalSeconds?: Setting<number>;
  /** Match blocks that could apply to this host; criu-lock does not evaluate them. */
  unsupportedMatch: string[];
}

export interface LoadSshConfigOptions {
  homeDir?: string;
  /** Relative Include paths are under ~/.ssh for user files (/etc/ssh for the system file). */
  includeBase?: string;
  /**
   * The file was named (--ssh-config), so a missing one is an error, as `ssh -F FILE` makes it.
   * The default ~/.ssh/config may be absent.
   */
  required?: boolean;
}

const MAX_INCLUDE_DEPTH = 16;

/** Reads `path` and every file it Includes. A missing top-level file is an empty config, unless required. */
export async function loadSshConfig(path: string, opts: LoadSshConfigOptions = {}): Promise<SshConfigFile> {
  const home = opts.homeDir ?? os.homedir();
  const base = opts.includeBase ?? nodePath.join(home, '.ssh');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing && !opts.required) return { file: path, entries: [] };
    throw new CriuLockError(
      'usage',
      missing
        ? 'cannot read ssh config: no such file'
        : (e as NodeJS.ErrnoException).code === 'EISDIR'
          ? 'cannot read ssh config: it is a directory'
          : `cannot read ssh config: ${(e as Error).message}`,
      {
        location: { file: path },
        hint: missing
          ? 'pass an existing file with --ssh-config, or --ssh-config none to read none'
          : 'fix its permissions, pass another file with --ssh-config, or --ssh-config none',
      },
    );
  }
  return parseWithIncludes(text, path, home, base, 0);
}

async function parseWithIncludes(
  text: string,
  file: string,
  home: string,
  base: string,
  depth: number,
): Promise<SshConfigFile> {
  const entries = parseSshConfigText(text, file);
  for (const e of entries) {
    if (e.kind !== 'include') continue;
    if (depth >= MAX_INCLUDE_DEPTH) {
      throw new CriuLockError('usage', 'too many nested Include directives in the ssh config', {
        location: { file: e.file, line: e.line },
        hint: 'an Include probably includes itself',
      });
    }
    for (const pattern of e.patterns) {
      const expanded = expandTilde(pattern, home);
      const abs = nodePath.isAbsolute(expanded) ? expanded : nodePath.join(base, expanded);
      for (const f of await globPath(abs)) {
        const t = await readFile(f, 'utf8').catch(() => undefined);
        // OpenSSH skips Include patterns that match nothing or cannot be read.
        if (t !== undefined) e.files.push(await parseWithIncludes(t, f, home, base, depth + 1));
      }
    }
  }
  return { file, entries };
}

/** The file's lines as entries; Include entries carry their patterns until `loadSshConfig` reads them. */
export function parseSshConfigText(text: string, file: string): SshConfigEntry[] {
  let parsed: SSHConfig;
  try {
    parsed = SSHConfig.parse(text);
  } catch (e) {
    throw new CriuLockError('usage', `cannot parse ssh config ${file}: ${(e as Error).message}`, {
      location: { file },
      hint: 'check the quoting in that file, or pass --ssh-config none',
    });
  }
  const out: SshConfigEntry[] = [];
  let newlines = 0;
  const count = (s: string): number => (s.match(/\n/g) ?? []).length;
  const walk = (lines: readonly Line[]): void => {
    for (const l of lines) {
      newlines += count(l.before);
      if (l.type === LineType.DIRECTIVE) {
        const line = newlines + 1;
        const args = valueArgs(l);
        const keyword = l.param.toLowerCase();
        if (keyword === 'host') out.push({ kind: 'host', patterns: args, file, line });
        else if (keyword === 'match') out.push({ kind: 'match', criteria: args, file, line });
        else if (keyword === 'include') {
          out.push({ kind: 'include', patterns: args, files: [], file, line });
        } else out.push({ kind: 'option', keyword, args, file, line });
        newlines += count(l.after);
        if ('config' in l) walk(l.config);
      } else {
        newlines += count(l.after);
      }
    }
  };
  walk(parsed);
  return out;
}

/**
 * A directive's arguments. The ssh-config package strips the quotes of a quoted value (and says
 * so); an unquoted one is split as OpenSSH's argv_split does: at blanks, with `\\`, `\"`, `\'` and
 * `\ ` as escapes. A quoted path with spaces is one file, not three.
 */
function valueArgs(l: { value: string | { val: string; quoted?: boolean }[]; quoted?: boolean }): string[] {
  const v = l.value;
  // The package returns one unquoted word, or several words as a list; a lone string with a bare
  // blank in it was quoted, even where it does not say so (`Host "web 3"`).
  if (typeof v === 'string') return l.quoted || /(?:^|[^\\])[ \t]/.test(v) ? [v] : splitArgs(v);
  return v.flatMap((x) => (x.quoted ? [x.val] : splitArgs(x.val)));
}

function splitArgs(s: string): string[] {
  const out: string[] = [];
  let arg: string | undefined;
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    const next = s[i + 1];
    if (c === '\\' && (next === '\\' || next === '"' || next === "'" || (quote === '' && next === ' '))) {
      arg = (arg ?? '') + next;
      i++;
    } else if (quote === '' && (c === ' ' || c === '\t')) {
      if (arg !== undefined) out.push(arg);
      arg = undefined;
    } else if (quote === '' && (c === '"' || c === "'")) {
      quote = c;
      arg ??= '';
    } else if (quote !== '' && c === quote) quote = '';
    else arg = (arg ?? '') + c;
  }
  if (arg !== undefined) out.push(arg);
  return out;
}

/** OpenSSH match_pattern: `*` and `?` (exactly one character), case-sensitive. */
export function matchSshPattern(name: string, pattern: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(name);
}

/** A Host line: a matching negated pattern vetoes the line; otherwise any positive match applies it. */
export function hostLineMatches(patterns: readonly string[], host: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchSshPattern(host, p.slice(1))) return false;
    } else if (matchSshPattern(host, p)) matched = true;
  }
  return matched;
}

/** ssh_config(5) for `host` (the name given to ssh, before HostName): first obtained value wins. */
export function resolveSshConfig(config: SshConfigFile, host: string): SshConfigResult {
  const r: SshConfigResult = { identityFiles: [], unsupportedMatch: [] };
  // ProxyJump and ProxyCommand compete: whichever comes first disables the other.
  const visit = (file: SshConfigFile, startActive: boolean, neverMatch: boolean): void => {
    let active = startActive;
    for (const e of file.entries) {
      const at = `${e.file}:${e.line}`;
      switch (e.kind) {
        case 'host':
          active = !neverMatch && hostLineMatches(e.patterns, host);
          break;
        case 'match': {
          const m = neverMatch ? 'no' : evaluateMatch(e.criteria, host);
          if (m !== 'no') r.unsupportedMatch.push(`${at}: Match ${e.criteria.join(' ')}`);
          // Not evaluated: its settings are not applied, and the host is told so.
          active = false;
          break;
        }
        case 'include':
          for (const f of e.files) visit(f, active, neverMatch || !active);
          break;
        case 'option':
          if (active) applyOption(r, e.keyword, e.args, at);
          break;
        default: {
          const never: never = e;
          throw new Error(`unknown ssh config entry ${JSON.stringify(never)}`);
        }
      }
    }
  };
  visit(config, true, false);
  return r;
}

/** Whether a Match line could apply: criteria we can decide are checked, the rest make it "maybe". */
function evaluateMatch(criteria: readonly string[], host: string): 'yes' | 'no' | 'maybe' {
  let result: 'yes' | 'maybe' = 'yes';
  for (let i = 0; i < criteria.length; i++) {
    let c = (criteria[i] ?? '').toLowerCase();
    const negate = c.startsWith('!');
    if (negate) c = c.slice(1);
    if (c === 'all' || c === 'canonical' || c === 'final') {
      if (negate && c === 'all') return 'no';
      if (c !== 'all') result = 'maybe';
      continue;
    }
    const arg = criteria[++i] ?? '';
    if (c === 'host' || c === 'originalhost') {
      // OpenSSH matches Match host and originalhost without regard to case (Host lines with it).
      const h = host.toLowerCase();
      const pats = arg.toLowerCase().split(',');
      const ok =
        pats.some((p) => !p.startsWith('!') && matchSshPattern(h, p)) &&
        !pats.some((p) => p.startsWith('!') && matchSshPattern(h, p.slice(1)));
      // `host` matches after HostName substitution, which may differ: only a match is certain.
      if (c === 'originalhost' && ok === negate) return 'no';
      if (c === 'host' && ok === negate) result = 'maybe';
    } else {
      result = 'maybe';
    }
  }
  return result;
}

function applyOption(r: SshConfigResult, keyword: string, args: string[], at: string): void {
  const first = args[0];
  if (first === undefined) return;
  const set = <K extends keyof SshConfigResult>(key: K, value: NonNullable<SshConfigResult[K]>): void => {
    if (r[key] === undefined) r[key] = value;
  };
  switch (keyword) {
    case 'hostname':
      set('hostName', { value: first, origin: at });
      break;
    case 'user':
      set('user', { value: first, origin: at });
      break;
    case 'port': {
      const n = /^\d+$/.test(first) ? Number(first) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 65535) {
        throw new CriuLockError('usage', `bad Port "${first}" in the ssh config`, {
          location: locationOf(at),
          hint: 'use a number from 1 to 65535',
        });
      }
      set('port', { value: n, origin: at });
      break;
    }
    case 'identityfile':
      r.identityFiles.push({ value: first, origin: at });
      break;
    case 'identitiesonly':
      set('identitiesOnly', { value: yesNo(first, at), origin: at });
      break;
    case 'proxyjump':
      if (r.proxyCommand === undefined) set('proxyJump', { value: first, origin: at });
      break;
    case 'proxycommand':
      if (r.proxyJump === undefined) set('proxyCommand', { value: args.join(' '), origin: at });
      break;
    case 'userknownhostsfile':
      set('userKnownHostsFiles', { value: args, origin: at });
      break;
    case 'stricthostkeychecking': {
      const v = first.toLowerCase();
      const mapped =
        v === 'yes' || v === 'true'
          ? 'strict'
          : v === 'accept-new'
            ? 'accept-new'
            : v === 'no' || v === 'off' || v === 'false'
              ? 'off'
              : v === 'ask'
                ? 'ask'
                : undefined;
      if (mapped === undefined) {
        throw new CriuLockError('usage', `bad StrictHostKeyChecking "${first}" in the ssh config`, {
          location: locationOf(at),
          hint: 'use yes, accept-new, no or ask',
        });
      }
      set('strictHostKeyChecking', { value: mapped, origin: at });
      break;
    }
    case 'connecttimeout':
      set('connectTimeoutSeconds', { value: seconds(first, at, 'ConnectTimeout'), origin: at });
      break;
    case 'serveraliveinterval':
      set('serverAliveIntervalSeconds', { value: seconds(first, at, 'ServerAliveInterval'), origin: at });
      break;
    default:
      break;
  }
}

function locationOf(at: string): { file: string; line?: number } {
  const m = /^(.*):(\d+)$/.exec(at);
  return m ? { file: m[1] as string, line: Number(m[2]) } : { file: at };
}

function yesNo(v: string, at: string): boolean {
  const s = v.toLowerCase();
  if (s === 'yes' || s === 'true') return true;
  if (s === 'no' || s === 'false') return false;
  throw new CriuLockError('usage', `expected yes or no, found "${v}" in the ssh config`, {
    location: locationOf(at),
    hint: 'use yes or no',
  });
}

/** ssh_config time format: a number of seconds, or with units (30s, 1m, 1h30m). */
function seconds(v: string, at: string, keyword: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const m = /^(?:\d+[sSmMhHdDwW]?)+$/.test(v) ? v.match(/\d+[sSmMhHdDwW]?/g) : null;
  if (!m) {
    throw new CriuLockError('usage', `bad ${keyword} "${v}" in the ssh config`, {
      location: locationOf(at),
      hint: 'use seconds, e.g. 10 or 1m30s',
    });
  }
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  return m.reduce((sum, part) => {
    const u = part.slice(-1).toLowerCase();
    return /\d/.test(u) ? sum + Number(part) : sum + Number(part.slice(0, -1)) * (unit[u] ?? 1);
  }, 0);
}

export function expandTilde(p: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return nodePath.join(home, p.slice(2));
  return p;
}

export interface TokenContext {
  /** %h: the remote host name after HostName. */
  host: string;
  /** %n: the name given to ssh. */
  originalHost: string;
  port: number;
  user: string;
  localUser: string;
  homeDir: string;
}

/**
 * ssh_config TOKENS for IdentityFile and UserKnownHostsFile: %% %h %n %p %r %u %d %i %l %L, `~`,
 * and ENVIRONMENT VARIABLES (`${HOME}`).
 * Returns undefined for a token criu-lock does not know, so the caller can say which.
 */
export function expandTokens(
  value: string,
  ctx: TokenContext,
  env: NodeJS.ProcessEnv = process.env,
): { value: string } | { unknown: string } {
  let unknown: string | undefined;
  const out = value.replace(/%(.)|\$\{([^}]*)\}/g, (all, t: string | undefined, name: string | undefined) => {
    if (t === undefined) {
      // ${VAR}, as ssh_config(5) expands it in IdentityFile and UserKnownHostsFile; unset is an error there.
      const v = name === undefined ? undefined : env[name];
      if (v === undefined) unknown ??= `${all} (not set)`;
      return v ?? all;
    }
    switch (t) {
      case '%':
        return '%';
      case 'h':
        // OpenSSH lowercases the host name it connects to before expanding %h.
        return ctx.host.toLowerCase();
      case 'n':
        return ctx.originalHost;
      case 'p':
        return String(ctx.port);
      case 'r':
        return ctx.user;
      case 'u':
        return ctx.localUser;
      case 'd':
        return ctx.homeDir;
      case 'i':
        return String(process.getuid?.() ?? 0);
      case 'l':
        return os.hostname();
      case 'L':
        return os.hostname().split('.')[0] ?? '';
      default:
        unknown ??= all;
        return all;
    }
  });
  if (unknown !== undefined) return { unknown };
  return { value: expandTilde(out, ctx.homeDir) };
}

/** Glob with `*`, `?` in any component (no hidden files unless asked for), sorted like glob(3). */
export async function globPath(pattern: string): Promise<string[]> {
  if (!/[*?[]/.test(pattern)) return [pattern];
  const parts = pattern.split('/');
  let current = [parts[0] === '' ? '/' : (parts[0] as string)];
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    const next: string[] = [];
    for (const dir of current) {
      if (!/[*?[]/.test(part)) {
        next.push(nodePath.join(dir, part));
        continue;
      }
      const match = compileGlob(part);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const n of names.sort()) {
        if (n.startsWith('.') && !part.startsWith('.')) continue;
        // glob(3), as OpenSSH's Include uses: `[0-9]` classes too, unlike Host patterns.
        if (match(n)) next.push(nodePath.join(dir, n));
      }
    }
    current = next;
  }
  return current;
}
