import { aptInstall } from './apt-install.js';
import { aptPins } from './apt-pins.js';
import { aptUpdate } from './apt-update.js';
import { command } from './command.js';
import { storeUpload } from './store-upload.js';
import type { Module } from './types.js';
import { verify } from './verify.js';

/** Every playbook module by name. A new module is one file and one line here. */
export const MODULES: ReadonlyMap<string, Module<unknown>> = new Map<string, Module<unknown>>(
  [aptPins, aptUpdate, aptInstall, verify, command, storeUpload].map((m) => [m.name, m as Module<unknown>]),
);
