// Library entry: what other tools (and tests) may import.
export * from './errors.js';
export * from './shell/quote.js';
export type * from './transport/types.js';
export type * from './transport/ssh-options.js';
export type * from './inventory/types.js';
