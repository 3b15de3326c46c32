/** Where apply puts store .debs on a host for the one apt transaction; emptied afterwards. */
export const REMOTE_STORE_DIR = '/var/lib/criu-lock/store-upload';

/** A store .deb's path on the host, named by its sha256 (apt installs it from there). */
export function remoteDebPath(sha256: string): string {
  return `${REMOTE_STORE_DIR}/${sha256}.deb`;
}
