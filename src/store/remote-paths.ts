/**
 * Where store .debs live on a host during apply. A leaf module: apt's argv (src/apply/apt.ts) and
 * the upload both name these paths, and the upload itself depends on apt's environment.
 */
/** Where apply puts store .debs on a host for the one apt transaction; emptied afterwards. */
export const REMOTE_STORE_DIR = '/var/lib/criu-lock/store-upload';

export function remoteDebPath(sha256: string): string {
  return `${REMOTE_STORE_DIR}/${sha256}.deb`;
}
