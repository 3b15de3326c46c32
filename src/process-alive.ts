/**
 * Whether process `pid` is alive on this machine: a temporary file or directory a run of
 * criu-lock still writes is not another run's to clean up (vendor's store, export's staging).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, as another user's.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
