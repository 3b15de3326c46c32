import type { TxManifest } from './manifest.js';

/**
 * What apply hands the capture and tx_record modules for one host. The capture module fills in
 * `manifest` (and the disk figures); apply reads them back for the recap.
 */
export interface TransactionContext {
  id: string;
  /** Transactions kept per host (--keep-transactions). */
  keep: number;
  now: Date;
  manifest?: TxManifest;
  /** Bytes of this transaction's directory, and of every transaction on the host after pruning. */
  bytes?: number;
  diskBytes?: number;
  kept?: number;
}
