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
export {
  expandHostPattern,
  parseIniInventory,
  parseIniValue,
  type ParsedInventory,
} from './ini-inventory.js';
export { parseYamlInventory } from './yaml-inventory.js';
