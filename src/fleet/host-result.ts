/**
 * One shape for "what happened on a host", shared by plan, check and apply. Each command has its
 * own success cases (plan: ok/changes/blocked, check: ok/drift, apply: ok/changed/blocked); the
 * two failure cases (unreachable, failed) and their structured error are the same everywhere.
 */
import type { Finding } from '../check/compare.js';
import type { TaskStatus } from '../apply/modules/types.js';
import type { Blocked } from '../plan/plan-file.js';
import type { HostFailure } from './host-error.js';

export type { FailureStatus, HostError, HostErrorCode, HostFailure } from './host-error.js';
export { errorText, hostError, hostFailure, isHostFailure } from './host-error.js';

/**
 * A command's result for one host: its own success cases, or a failure. `Extra` is what the
 * command keeps on every case (apply keeps the task records even when a task failed).
 */
export type HostResult<Done extends { name: string; status: string }, Extra = unknown> = (
  Done | HostFailure
) &
  Extra;

export interface LockRef {
  path: string;
  digest: string;
}

/** check: what differs from the lock, per host. */
export type HostCheck = HostResult<
  { name: string; status: 'ok'; findings: [] } | { name: string; status: 'drift'; findings: Finding[] }
>;

export interface CheckReport {
  /** What the hosts were checked against: a lockfile (default) or a CRIU checkpoint directory. */
  kind?: 'lock' | 'checkpoint';
  lock: LockRef;
  hosts: HostCheck[];
}

export interface TaskRecord {
  name: string;
  module: string;
  status: TaskStatus;
  message: string;
  durationMs: number;
}

/** apply: what the playbook did to one host; task records are kept on failures too. */
export type HostOutcome = HostResult<
  { name: string; status: 'ok' | 'changed' | 'blocked' },
  {
    tasks: TaskRecord[];
    blocked: Blocked[];
    /** The rollback transaction recorded before the change. */ transaction?: string;
  }
>;

export interface ApplyReport {
  lock: LockRef;
  check: boolean;
  /** false: --no-capture, nothing recorded for rollback. */
  capture: boolean;
  hosts: HostOutcome[];
  /** Hosts not started: a batch failed more than --max-fail-percentage, or the run was interrupted. */
  notStarted: string[];
  /** Ctrl-C (or SIGTERM) stopped new hosts from starting. */
  interrupted?: boolean;
}
