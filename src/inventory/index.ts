export type { ConnectionSettings, Inventory, InventoryGroup, InventoryHost } from './types.js';
export {
  buildInventory,
  detectInventoryFormat,
  inventoryFromText,
  loadInventory,
  parseAnsibleBoolean,
  parseInventoryText,
  resolveConnection,
  type BuildOptions,
  type ConnectionWarning,
  type InventoryFormat,
  type ResolveOptions,
} from './load.js';
export { findGolden, globToRegExp, selectHosts, splitHostPattern } from './limit.js';
export { expandHostPattern, expandHostRange } from './host-pattern.js';
export { parseIniInventory } from './ini-inventory.js';
export type { LocatedValue, ParsedInventory } from './model.js';
export { parseIniValue } from './python-literal.js';
export { shlexSplit } from './shlex.js';
export { parseYamlInventory } from './yaml-inventory.js';
