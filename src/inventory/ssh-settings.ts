/**
 * The OpenSSH side of a host's connection settings, after its inventory variables, as Ansible's ssh
 * connection gets them: ssh receives ansible_host (or the inventory name) and `-o` options only for
 * what the inventory sets (User, Port, IdentityFile, ansible_ssh_common_args/extra_args); everything
 * else comes from the ssh config, looked up for that name. Pure: the config is already loaded.
 */
import os from 'node:os';
import { CriuLockError } from '../errors.js';
import { MAX_TIMER_MS } from '../transport/util.js';
import {
  expandTokens,
  resolveSshConfig,
  type Setting,
  type SshConfigFile,
  type SshConfigResult,
} from '../transport/ssh-config.js';
import { shlexSplit } from './shlex.js';
import type { ConnectionOrigins, ConnectionSettings, JumpHost } from './types.js';

export interface SshSettingsContext {
  config?: SshConfigFile | undefined;
  homeDir: string;
  localUser: string;
  /** Per-host remarks (unsupported Match/ProxyCommand, unknown tokens); summarized by the caller. */
  warn: (host: string, message: string) => void;
}

/** ProxyJump given to ssh on the command line by ansible_ssh_common_args / ansible_ssh_extra_args. */
export interface ArgsProxy {
  proxyJump?: Setting<string>;
  proxyCommand?: Setting<string>;
  /** Arguments criu-lock does not use, for the warning. */
  ignored: string[];
}

/** `-J X`, `-JX`, `-o ProxyJump=X`, `-oProxyJump X`, `-o "ProxyJump X"`; first one wins, as in ssh. */
export function parseSshArgs(text: string, variable: string): ArgsProxy {
  let tokens: string[];
  try {
    tokens = shlexSplit(text);
  } catch (e) {
    throw new CriuLockError(
      'inventory',
      `${variable} cannot be split into arguments: ${(e as Error).message}`,
      {
        hint: 'close the quote',
      },
    );
  }
  const out: ArgsProxy = { ignored: [] };
  const origin = variable;
  const option = (kv: string): boolean => {
    const m = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$/.exec(kv);
    if (!m) return false;
    const key = (m[1] ?? '').toLowerCase();
    const value = (m[2] ?? '').trim();
    if (key === 'proxyjump') {
      if (out.proxyJump === undefined && out.proxyCommand === undefined) out.proxyJump = { value, origin };
      return true;
    }
    if (key === 'proxycommand') {
      if (out.proxyJump === undefined && out.proxyCommand === undefined) out.proxyCommand = { value, origin };
      return true;
    }
    return false;
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t === '-J' || t === '-o') {
      const next = tokens[i + 1];
      if (next === undefined) {
        out.ignored.push(t);
        continue;
      }
      i++;
      if (t === '-J') {
        if (out.proxyJump === undefined && out.proxyCommand === undefined)
          out.proxyJump = { value: next, origin };
      } else if (!option(next)) out.ignored.push(`-o ${next}`);
    } else if (t.startsWith('-J')) {
      if (out.proxyJump === undefined && out.proxyCommand === undefined)
        out.proxyJump = { value: t.slice(2), origin };
    } else if (t.startsWith('-o')) {
      if (!option(t.slice(2))) out.ignored.push(t);
    } else {
      out.ignored.push(t);
    }
  }
  return out;
}

/** `[user@]host[:port]` hops separated by commas; `ssh://user@host:port` too. */
export function parseJumpSpec(spec: string): { user?: string; host: string; port?: number; spec: string }[] {
  return spec.split(',').map((raw) => {
    const s = raw.trim().replace(/^ssh:\/\//, '');
    const at = s.lastIndexOf('@');
    const user = at >= 0 ? s.slice(0, at) : undefined;
    let rest = at >= 0 ? s.slice(at + 1) : s;
    let port: number | undefined;
    const v6 = /^\[(.+)\](?::(\d+))?$/.exec(rest);
    if (v6) {
      rest = v6[1] as string;
      if (v6[2] !== undefined) port = Number(v6[2]);
    } else {
      const m = /^([^:]+):(\d+)$/.exec(rest);
      if (m) {
        rest = m[1] as string;
        port = Number(m[2]);
      }
    }
    if (
      !(v6 ? /^[0-9A-Fa-f:.%]+$/ : /^[A-Za-z0-9_.%-]+$/).test(rest) ||
      rest.startsWith('-') ||
      (port !== undefined && (port < 1 || port > 65535)) ||
      user === ''
    ) {
      throw new CriuLockError('inventory', `bad ProxyJump hop "${raw.trim()}"`, {
        hint: 'hops look like [user@]host[:port], separated by commas',
      });
    }
    return { user, host: rest, port, spec: raw.trim() };
  });
}

/**
 * Adds the ssh config (and ProxyJump from ssh args) to inventory-resolved settings. `fromInventory`
 * says which of address/port/user/privateKeyFile the inventory set (those win, as `-o` options do).
 */
export function applySshSettings(
  name: string,
  conn: ConnectionSettings,
  inventoryOrigins: ConnectionOrigins,
  fromInventory: { address: boolean; port: boolean; user: boolean },
  args: ArgsProxy,
  ctx: SshSettingsContext,
): { connection: ConnectionSettings; origins: ConnectionOrigins } {
  if (conn.kind !== 'ssh') return { connection: conn, origins: inventoryOrigins };
  const target = conn.address;
  const cfg: SshConfigResult = ctx.config
    ? resolveSshConfig(ctx.config, target)
    : { identityFiles: [], unsupportedMatch: [] };
  const origins = { ...inventoryOrigins };
  const out: ConnectionSettings = { ...conn };

  for (const m of cfg.unsupportedMatch) {
    ctx.warn(name, `ssh config ${m}: Match blocks are not supported; its settings are not applied`);
  }

  if (cfg.hostName) {
    const host = cfg.hostName.value.replace(/%(.)/g, (all, t: string) =>
      t === 'h' ? target : t === '%' ? '%' : all,
    );
    out.address = host;
    origins.address = `ssh config ${cfg.hostName.origin} (HostName)`;
  }
  if (!fromInventory.port && cfg.port) {
    out.port = cfg.port.value;
    origins.port = `ssh config ${cfg.port.origin} (Port)`;
  }
  if (!fromInventory.user && cfg.user) {
    out.user = cfg.user.value;
    origins.user = `ssh config ${cfg.user.origin} (User)`;
  }
  const tokens = {
    host: out.address,
    originalHost: target,
    port: out.port,
    user: out.user,
    localUser: ctx.localUser,
    homeDir: ctx.homeDir,
  };
  const expand = (s: Setting<string>, keyword: string): string | undefined => {
    const r = expandTokens(s.value, tokens);
    if ('unknown' in r) {
      ctx.warn(
        name,
        `ssh config ${s.origin}: ${keyword} uses ${r.unknown}, which criu-lock does not expand; that ${keyword} is not used`,
      );
      return undefined;
    }
    return r.value;
  };
  const identityFiles = cfg.identityFiles
    .map((f) => expand(f, 'IdentityFile'))
    .filter((f): f is string => f !== undefined);
  if (identityFiles.length > 0) {
    out.identityFiles = identityFiles;
    origins.identityFiles = `ssh config ${cfg.identityFiles.map((f) => f.origin).join(', ')} (IdentityFile)`;
  }
  if (cfg.identitiesOnly) {
    out.identitiesOnly = cfg.identitiesOnly.value;
    origins.identitiesOnly = `ssh config ${cfg.identitiesOnly.origin} (IdentitiesOnly)`;
  }
  if (cfg.userKnownHostsFiles) {
    // `none`: no user file at all, only the global ones (an empty list, not the default).
    const none = isNone(cfg.userKnownHostsFiles.value);
    const files = none
      ? []
      : cfg.userKnownHostsFiles.value
          .map((f) =>
            expand({ value: f, origin: cfg.userKnownHostsFiles?.origin ?? '' }, 'UserKnownHostsFile'),
          )
          .filter((f): f is string => f !== undefined);
    if (none || files.length > 0) {
      out.knownHostsFiles = files;
      origins.knownHostsFiles = `ssh config ${cfg.userKnownHostsFiles.origin} (UserKnownHostsFile)`;
    }
  }
  if (cfg.strictHostKeyChecking) {
    const v = cfg.strictHostKeyChecking.value;
    // `ask` needs a terminal prompt; without one OpenSSH refuses unknown keys, as strict does.
    out.hostKeyChecking = v === 'ask' ? 'strict' : v;
    if (v === 'off') {
      ctx.warn(
        name,
        `ssh config ${cfg.strictHostKeyChecking.origin} sets StrictHostKeyChecking no: host keys are not checked (--host-key-checking strict overrides it)`,
      );
    }
    origins.hostKeyChecking = `ssh config ${cfg.strictHostKeyChecking.origin} (StrictHostKeyChecking ${v})`;
  }
  if (cfg.connectTimeoutSeconds) {
    // 0 is OpenSSH's "no timeout" (and, being set, it keeps a later block's value out).
    out.connectTimeoutMs =
      cfg.connectTimeoutSeconds.value > 0 ? cfg.connectTimeoutSeconds.value * 1000 : MAX_TIMER_MS;
    origins.connectTimeout = `ssh config ${cfg.connectTimeoutSeconds.origin} (ConnectTimeout)`;
  }
  if (cfg.serverAliveIntervalSeconds) {
    out.serverAliveIntervalMs = cfg.serverAliveIntervalSeconds.value * 1000;
    origins.serverAliveInterval = `ssh config ${cfg.serverAliveIntervalSeconds.origin} (ServerAliveInterval)`;
  }

  // Command-line options (from the inventory's ssh args) come before the config: first one wins.
  const proxyJump = args.proxyJump ?? (args.proxyCommand ? undefined : cfg.proxyJump);
  const proxyCommand = args.proxyCommand ?? (args.proxyJump ? undefined : cfg.proxyCommand);
  const where = (s: Setting<string>): string =>
    /\(ansible_ssh_(common|extra)_args\)$/.test(s.origin) ? s.origin : `ssh config ${s.origin}`;
  if (proxyJump && proxyJump.value.toLowerCase() !== 'none') {
    out.proxyJump = parseJumpSpec(proxyJump.value).map((hop) => resolveJump(hop, ctx, name));
    origins.proxyJump = `${where(proxyJump)} (ProxyJump ${proxyJump.value})`;
  } else if (proxyCommand && proxyCommand.value.toLowerCase() !== 'none') {
    const msg = `${where(proxyCommand)} sets ProxyCommand, which criu-lock does not support`;
    ctx.warn(name, `${msg}; the host is not connected (use ProxyJump instead)`);
    out.unsupported = `${msg}: connecting directly could reach another machine; use ProxyJump instead`;
  }
  return { connection: out, origins };
}

/** A hop's own settings come from the ssh config for its name, as `ssh -J` does for each hop. */
function resolveJump(
  hop: { user?: string | undefined; host: string; port?: number | undefined; spec: string },
  ctx: SshSettingsContext,
  name: string,
): JumpHost {
  const cfg: SshConfigResult = ctx.config
    ? resolveSshConfig(ctx.config, hop.host)
    : { identityFiles: [], unsupportedMatch: [] };
  const address = cfg.hostName
    ? cfg.hostName.value.replace(/%(.)/g, (all, t: string) => (t === 'h' ? hop.host : t === '%' ? '%' : all))
    : hop.host;
  const port = hop.port ?? cfg.port?.value ?? 22;
  const user = hop.user ?? cfg.user?.value ?? ctx.localUser;
  const tokens = {
    host: address,
    originalHost: hop.host,
    port,
    user,
    localUser: ctx.localUser,
    homeDir: ctx.homeDir,
  };
  const expandAll = (values: string[], keyword: string): string[] =>
    values.flatMap((v) => {
      const r = expandTokens(v, tokens);
      if ('unknown' in r) {
        ctx.warn(
          name,
          `ProxyJump hop ${hop.spec}: ${keyword} uses ${r.unknown}, which criu-lock does not expand; ignored`,
        );
        return [];
      }
      return [r.value];
    });
  if (cfg.proxyJump && cfg.proxyJump.value !== 'none') {
    ctx.warn(
      name,
      `ProxyJump hop ${hop.spec} has its own ProxyJump (ssh config ${cfg.proxyJump.origin}); list every hop in one ProxyJump instead`,
    );
  }
  const shk = cfg.strictHostKeyChecking?.value;
  const hopNone = cfg.userKnownHostsFiles !== undefined && isNone(cfg.userKnownHostsFiles.value);
  const knownHostsFiles =
    cfg.userKnownHostsFiles && !hopNone ? expandAll(cfg.userKnownHostsFiles.value, 'UserKnownHostsFile') : [];
  return {
    spec: hop.spec,
    address,
    port,
    user,
    identityFiles: expandAll(
      cfg.identityFiles.map((f) => f.value),
      'IdentityFile',
    ),
    identitiesOnly: cfg.identitiesOnly?.value ?? false,
    knownHostsFiles: hopNone ? [] : knownHostsFiles.length > 0 ? knownHostsFiles : undefined,
    hostKeyChecking: shk === undefined ? undefined : shk === 'ask' ? 'strict' : shk,
  };
}

let cachedLocalUser: string | undefined;

/**
 * The controller's user name, read once per process: os.userInfo() costs ~20 µs (a getpwuid), which
 * was most of the time to load a 20,000-host inventory when asked per host.
 */
export function localUserName(): string {
  if (cachedLocalUser !== undefined) return cachedLocalUser;
  try {
    cachedLocalUser = os.userInfo().username;
  } catch {
    cachedLocalUser = 'root';
  }
  return cachedLocalUser;
}

/** `UserKnownHostsFile none` (any case): no user known_hosts file. */
function isNone(values: readonly string[]): boolean {
  return values.length === 1 && values[0]!.toLowerCase() === 'none';
}
