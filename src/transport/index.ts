export type { CommandResult, ExecOptions, PutFileOptions, Transport } from './types.js';
export type { HostKeyChecking, SshOptions } from './ssh-options.js';
export {
  certAuthorityFor,
  formatKnownHostsLine,
  keyTypeLabel,
  keyTypeOfBlob,
  knownHostsName,
  knownKeyTypes,
  lookupHostKey,
  parseKnownHosts,
  sha256Fingerprint,
} from './known-hosts.js';
export type { HostKeyLookup, HostPatterns, KnownHostEntry, KnownHostsFile } from './known-hosts.js';
export {
  buildArgv,
  createLocalTransport,
  formatMode,
  isSudoPasswordRequired,
  putFileArgv,
  PUT_FILE_SCRIPT,
} from './local-transport.js';
export type { LocalTransportOptions } from './local-transport.js';
export { connectSsh } from './ssh-transport.js';
export type { ConnectSshExtras } from './ssh-transport.js';
export { openTransport } from './open.js';
export { resetTransportStats, STATS_FILE_ENV, transportStats, writeStatsFileFromEnv } from './stats.js';
export type { TransportStats } from './stats.js';
