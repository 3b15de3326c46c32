/**
 * OpenSSH's host key policy for one endpoint: what known_hosts says about the key a server
 * presented, and whether to accept, record (accept-new) or refuse it, with OpenSSH's wording.
 */
import { CriuLockError } from '../errors.js';
import type { SshEndpoint } from './endpoint.js';
import type { HostKeyChecking } from './ssh-options.js';
import {
  certAuthorityFor,
  keyTypeLabel,
  keyTypeOfBlob,
  knownHostsName,
  lookupHostKey,
  sha256Fingerprint,
  type KnownHostEntry,
} from './known-hosts.js';

// Prefer the key types known_hosts has for a host, as OpenSSH does, so a host with several keys
// presents the one we can verify.
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;
export type HostKeyAlgorithm = (typeof HOST_KEY_ALGORITHMS)[number];

export function hostKeyAlgorithmsFor(knownTypes: readonly string[]): HostKeyAlgorithm[] {
  const preferred: HostKeyAlgorithm[] = [];
  for (const t of knownTypes) {
    const algs: readonly HostKeyAlgorithm[] =
      t === 'ssh-rsa'
        ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
        : HOST_KEY_ALGORITHMS.filter((a) => a === t);
    for (const a of algs) if (!preferred.includes(a)) preferred.push(a);
  }
  return [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

/** Printed on every run with `--host-key-checking off`, so nobody forgets it is on. */
export function hostKeyCheckingWarning(mode: HostKeyChecking): string | undefined {
  return mode === 'off'
    ? '--host-key-checking off: host keys are not verified, so anyone on the network path can pose as a host and receive root commands; use strict or accept-new'
    : undefined;
}

export type HostKeyDecision =
  | { kind: 'accept' }
  | { kind: 'accept-new'; type: string; blob: string }
  | { kind: 'refuse'; error: CriuLockError };

export function verifyHostKey(
  key: Buffer,
  ep: SshEndpoint,
  known: readonly KnownHostEntry[],
): HostKeyDecision {
  // ssh2 hands the verifier the raw public key blob (wire format), since we set no hostHash.
  if (ep.hostKeyChecking === 'off') return { kind: 'accept' };
  const name = ep.label;
  const type = keyTypeOfBlob(key);
  const hostPort = `${ep.address}:${ep.port}`;
  if (type === null) {
    return {
      kind: 'refuse',
      error: new CriuLockError('host-key', `${name} (${hostPort}) presented an unreadable host key`),
    };
  }
  const blob = key.toString('base64');
  const fp = sha256Fingerprint(key);
  const label = keyTypeLabel(type);
  const file = ep.knownHostsFiles[0] ?? '~/.ssh/known_hosts';
  const khName = knownHostsName(ep.address, ep.port);
  const lookup = lookupHostKey(known, ep.address, ep.port, type, blob);
  const caNote = certAuthorityFor(known, ep.address, ep.port).length
    ? ` (known_hosts has a @cert-authority line for this host; criu-lock does not support host certificates)`
    : '';
  switch (lookup.status) {
    case 'match':
      return { kind: 'accept' };
    case 'revoked':
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): the ${label} host key ${fp} is marked as revoked in ${lookup.file}:${lookup.line}; refusing to connect`,
          {
            hint: 'a revoked key must not be trusted: find out why it was revoked and give the host a new key',
          },
        ),
      };
    case 'mismatch': {
      const what =
        lookup.knownType === type
          ? `The ${label} key fingerprint is ${fp}; Offending ${label} key in ${lookup.file}:${lookup.line}`
          : `The host sent a ${label} key (${fp}) but only a ${keyTypeLabel(lookup.knownType)} key is known, in ${lookup.file}:${lookup.line}`;
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! ${what}`,
          {
            hint:
              'someone could be eavesdropping on you right now (man-in-the-middle attack), or the host key has just been changed. ' +
              `If the change is expected, remove the old key with: ssh-keygen -f ${lookup.file} -R '${khName}'${caNote}`,
          },
        ),
      };
    }
    case 'unknown':
      if (ep.hostKeyChecking === 'accept-new') return { kind: 'accept-new', type, blob };
      return {
        kind: 'refuse',
        error: new CriuLockError(
          'host-key',
          `${name} (${hostPort}): host key is not known (${label} key fingerprint ${fp}) and host key checking is strict`,
          {
            hint: `check the fingerprint, then add it with ssh-keyscan -p ${ep.port} ${ep.address} >> ${file}, or use --host-key-checking accept-new${caNote}`,
          },
        ),
      };
    default: {
      const never: never = lookup;
      throw new Error(`unhandled host key lookup ${JSON.stringify(never)}`);
    }
  }
}
