import { aptInstall } from './apt-install.js';
import { aptPins } from './apt-pins.js';
import { aptUpdate } from './apt-update.js';
import { capture } from './capture.js';
import { command } from './command.js';
import { storeUpload } from './store-upload.js';
import type { Module } from './types.js';
import { txRecord } from './tx-record.js';
import { verify } from './verify.js';

/** Every playbook module by name. A new module is one file and one line here. */
export const MODULES: ReadonlyMap<string, Module<unknown>> = new Map<string, Module<unknown>>(
  [capture, storeUpload, aptPins, aptUpdate, aptInstall, verify, txRecord, command].map((m) => [
    m.name,
    m as Module<unknown>,
  ]),
);
