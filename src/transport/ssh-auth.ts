/**
 * Client authentication as OpenSSH does it by default: the ssh-agent (SSH_AUTH_SOCK) and the
 * identity files, never a password prompt. IdentitiesOnly limits the agent to keys matching the
 * identity files. A passphrase-protected key without an agent is a clear per-host error naming the
 * key, not a vague "authentication failed".
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { IdentityCallback, ParsedKey } from 'ssh2';
import { CriuLockError } from '../errors.js';
import { endpointWhere, type SshEndpoint } from './endpoint.js';
import { readParsed } from './file-cache.js';
import { errMessage, exists } from './util.js';

export type AuthAttempt =
  { type: 'agent'; agent: string | ssh2.BaseAgent } | { type: 'publickey'; key: ParsedKey; file: string };

export interface AuthPlan {
  attempts: AuthAttempt[];
  /** What was tried, for the "authentication failed" message. */
  tried: string[];
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function isEncryptedKeyError(message: string): boolean {
  return /encrypted|passphrase/i.test(message);
}

/** An agent that offers only the keys whose public half is in `allowed` (IdentitiesOnly). */
class FilteredAgent extends ssh2.OpenSSHAgent {
  constructor(
    socket: string,
    private readonly allowed: readonly Buffer[],
  ) {
    super(socket);
  }

  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    super.getIdentities((err, keys) => {
      if (err || !keys) return cb(err, keys);
      cb(
        undefined,
        keys.filter((k) => {
          const blob = 'getPublicSSH' in k ? k.getPublicSSH() : undefined;
          return blob !== undefined && this.allowed.some((a) => a.equals(blob));
        }),
      );
    });
  }
}

function publicBlob(data: Buffer): Buffer | undefined {
  const parsed = ssh2.utils.parseKey(data) as ParsedKey | ParsedKey[] | Error;
  if (parsed instanceof Error) return undefined;
  const first: ParsedKey | undefined = Array.isArray(parsed) ? parsed[0] : parsed;
  return first?.getPublicSSH();
}

/** An identity file, parsed once per run while it stays the same (file-cache.ts). */
interface Identity {
  /** The key, or why it cannot be used without a passphrase or at all. */
  parsed: ParsedKey | Error;
  blob: Buffer | undefined;
}

function readIdentity(file: string): Promise<Identity> {
  return readParsed(file, 'identity', (data) => {
    const parsed = ssh2.utils.parseKey(data) as ParsedKey | ParsedKey[] | Error;
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    return {
      parsed: key ?? new Error('no key in the file'),
      blob: key instanceof Error || key === undefined ? undefined : key.getPublicSSH(),
    };
  });
}

async function publicBlobOf(file: string, id: Identity): Promise<Buffer | undefined> {
  if (id.blob) return id.blob;
  // An encrypted key's public half is in FILE.pub, as OpenSSH looks for it.
  return readParsed(`${file}.pub`, 'public key', publicBlob).catch(() => undefined);
}

export async function planAuth(ep: SshEndpoint, agentSocket: string | undefined): Promise<AuthPlan> {
  const attempts: AuthAttempt[] = [];
  const tried: string[] = [];
  const agent = agentSocket ?? process.env.SSH_AUTH_SOCK;
  const hasAgent = agent !== undefined && agent !== '' && (await exists(agent));
  const encrypted: string[] = [];
  const allowedBlobs: Buffer[] = [];

  const addKey = async (file: string, id: Identity): Promise<void> => {
    const blob = await publicBlobOf(file, id);
    if (blob) allowedBlobs.push(blob);
    const parsed = id.parsed;
    if (parsed instanceof Error) {
      if (isEncryptedKeyError(parsed.message)) {
        encrypted.push(file);
        tried.push(`${file} (passphrase-protected${hasAgent ? ', left to the agent' : ''})`);
      } else {
        tried.push(`${file} (unusable: ${parsed.message})`);
      }
      return;
    }
    attempts.push({ type: 'publickey', key: parsed, file });
    tried.push(file);
  };

  const explicit = ep.identityFiles;
  for (const file of explicit) {
    let id: Identity;
    try {
      id = await readIdentity(file);
    } catch (e) {
      // OpenSSH warns and goes on when a configured identity is missing; a key the inventory
      // names explicitly (the first) is an error, as before.
      if (file === explicit[0]) {
        throw new CriuLockError(
          'ssh',
          `cannot read private key ${file} for ${endpointWhere(ep)}: ${errMessage(e)}`,
          {
            hint: 'check ansible_ssh_private_key_file in the inventory, or IdentityFile in the ssh config',
          },
        );
      }
      tried.push(`${file} (missing)`);
      continue;
    }
    await addKey(file, id);
  }
  const agentAttempt = (): void => {
    if (!hasAgent) return;
    if (ep.identitiesOnly) {
      attempts.push({ type: 'agent', agent: new FilteredAgent(agent, allowedBlobs) });
      tried.push('ssh-agent (only keys matching the identity files: IdentitiesOnly)');
    } else {
      attempts.push({ type: 'agent', agent });
      tried.push('ssh-agent');
    }
  };
  if (explicit.length > 0) {
    // Explicit keys first (like `ssh -i`), then the agent; default identities are not used.
    agentAttempt();
  } else {
    agentAttempt();
    for (const base of DEFAULT_IDENTITIES) {
      const file = join(homedir(), '.ssh', base);
      const id = await readIdentity(file).catch(() => undefined);
      if (id !== undefined) await addKey(file, id);
    }
  }
  if (attempts.length === 0 && encrypted.length > 0) {
    const keys = encrypted.join(', ');
    throw new CriuLockError(
      'ssh',
      `cannot log in to ${endpointWhere(ep)}: private key ${keys} is passphrase-protected and no ssh-agent is available (SSH_AUTH_SOCK ${agent ? 'points to no socket' : 'is not set'})`,
      {
        hint: `criu-lock never asks for passphrases: start an agent and add the key (eval "$(ssh-agent)"; ssh-add ${encrypted[0] ?? ''}), then run criu-lock from that shell`,
      },
    );
  }
  return { attempts, tried };
}

export function connectError(e: unknown, where: string, tried: readonly string[]): CriuLockError {
  const err = e as { code?: unknown; level?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : undefined;
  const level = typeof err.level === 'string' ? err.level : undefined;
  const msg = errMessage(e);
  const opts = { cause: e };
  if (code === 'ECONNREFUSED') {
    return new CriuLockError('ssh', `cannot connect to ${where}: connection refused`, {
      ...opts,
      hint: 'is sshd running on the host and listening on that port? check ansible_host/ansible_port',
    });
  }
  // node-ssh rejects with this message and code ETIMEDOUT when the connection closed before it was
  // ready, although nothing timed out (a timeout comes first, as ssh2's 'client-timeout' error).
  const closedBeforeReady = msg === 'No response from server';
  if (!closedBeforeReady && (level === 'client-timeout' || code === 'ETIMEDOUT')) {
    return new CriuLockError('ssh', `cannot connect to ${where}: timed out`, {
      ...opts,
      hint: 'check that the address is right and reachable (firewall?), or raise --connect-timeout',
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new CriuLockError('ssh', `cannot connect to ${where}: host name does not resolve`, {
      ...opts,
      hint: 'check ansible_host in the inventory (or HostName in the ssh config)',
    });
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new CriuLockError('ssh', `cannot connect to ${where}: no route to host`, {
      ...opts,
      hint: 'check the address and the network path to the host',
    });
  }
  if (level === 'client-authentication') {
    const t = tried.length ? tried.join(', ') : 'nothing (no identity file, no ssh-agent)';
    return new CriuLockError('ssh', `cannot log in to ${where}: authentication failed (tried ${t})`, {
      ...opts,
      hint: "add your public key to the user's ~/.ssh/authorized_keys on the host, load the key into ssh-agent, or set ansible_ssh_private_key_file",
    });
  }
  if (/open failed|administratively prohibited|Connect failed/i.test(msg)) {
    return new CriuLockError('ssh', `cannot connect to ${where} through the bastion: ${msg}`, {
      ...opts,
      hint: 'the bastion could not reach the host: check the address as the bastion sees it, and AllowTcpForwarding on the bastion',
    });
  }
  // "Connection lost before handshake": ssh2's words for a close before the banner, what sshd's
  // MaxStartups does to connections beyond its limit.
  if (code === 'ECONNRESET' || /closed|no response|lost before handshake/i.test(msg)) {
    return new CriuLockError('ssh', `cannot connect to ${where}: connection closed by the host (${msg})`, {
      ...opts,
      hint: 'the host may not run an SSH server on that port, refuses this client, or had too many connections in the handshake at once (sshd MaxStartups; check its sshd log, or lower --forks)',
    });
  }
  return new CriuLockError('ssh', `cannot connect to ${where}: ${msg}`, {
    ...opts,
    hint: 're-run with --debug for details',
  });
}
