/**
 * What logging in to one endpoint needs, shared by targets (node-ssh) and bastions (ssh2 Client):
 * host key verification against known_hosts with the endpoint's policy, key recording for
 * accept-new once the server proved it holds the key, and the authentication sequence.
 * A Login serves one connection attempt: the authentication sequence and the host key state are
 * its own, so a retry (connect-retry.ts) prepares a new one.
 */
import type { AuthHandlerMiddleware, ConnectConfig } from 'ssh2';
import type { CriuLockError } from '../errors.js';
import { ConnectAttemptError, isTransientConnectError } from './connect-retry.js';
import { endpointWhere, type SshEndpoint } from './endpoint.js';
import { hostKeyAlgorithmsFor, verifyHostKey } from './host-key-policy.js';
import { appendKnownHost, loadKnownHosts } from './known-hosts-store.js';
import { formatKnownHostsLine, keyTypeLabel, knownHostsName, knownKeyTypes } from './known-hosts.js';
import { connectError, planAuth } from './ssh-auth.js';
import { errMessage } from './util.js';

export interface Login {
  config: ConnectConfig;
  /**
   * A failed connection attempt: the error to report (the host key refusal if there was one), and
   * whether another attempt may succeed (never after a refusal).
   */
  failure(e: unknown): ConnectAttemptError;
  /** After a successful login: record a key learned with accept-new. */
  afterLogin(): Promise<void>;
}

export async function prepareLogin(
  ep: SshEndpoint,
  agentSocket: string | undefined,
  note: (m: string) => void,
): Promise<Login> {
  const known =
    ep.hostKeyChecking === 'off'
      ? []
      : await loadKnownHosts(ep.knownHostsFiles, note, ep.globalKnownHostsFiles);
  const auth = await planAuth(ep, agentSocket);
  let refusal: CriuLockError | undefined;
  let newKey: { type: string; blob: string } | undefined;
  const hostVerifier = (key: Buffer): boolean => {
    const decision = verifyHostKey(key, ep, known);
    if (decision.kind === 'refuse') {
      refusal = decision.error;
      return false;
    }
    if (decision.kind === 'accept-new') newKey = { type: decision.type, blob: decision.blob };
    return true;
  };
  let attempt = 0;
  const authHandler: AuthHandlerMiddleware = (_methodsLeft, _partial, next) => {
    const a = auth.attempts[attempt++];
    // ssh2 ends authentication on `false`; its type definitions omit that value.
    if (a === undefined) return next(false as never);
    if (a.type === 'agent') return next({ type: 'agent', username: ep.user, agent: a.agent });
    return next({ type: 'publickey', username: ep.user, key: a.key });
  };
  const where = endpointWhere(ep);
  return {
    config: {
      host: ep.address,
      port: ep.port,
      username: ep.user,
      readyTimeout: ep.connectTimeoutMs,
      keepaliveInterval: ep.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      authHandler,
      hostVerifier,
      algorithms: { serverHostKey: hostKeyAlgorithmsFor(knownKeyTypes(known, ep.address, ep.port)) },
    },
    failure: (e) =>
      refusal
        ? new ConnectAttemptError(refusal, false)
        : new ConnectAttemptError(
            connectError(e, ep.role === 'bastion' ? `${where} (${ep.label})` : where, auth.tried),
            isTransientConnectError(e),
          ),
    afterLogin: async () => {
      if (!newKey) return;
      // Only now: ssh2 checks the server's signature after the verifier ran, so a key is recorded
      // once the host proved it holds it (OpenSSH records before user auth; we record after).
      const file = ep.knownHostsFiles[0];
      if (file === undefined) return;
      const line = formatKnownHostsLine(ep.address, ep.port, newKey.type, newKey.blob);
      try {
        const added = await appendKnownHost(file, line, ep.address, ep.port, newKey);
        if (added) {
          note(
            `Permanently added '${knownHostsName(ep.address, ep.port)}' (${keyTypeLabel(newKey.type)}) to the list of known hosts (${file}).`,
          );
        }
      } catch (e) {
        note(`Failed to add the host to the list of known hosts (${file}): ${errMessage(e)}`);
      }
    },
  };
}
