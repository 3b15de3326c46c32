import type { AptPolicy, HostFacts, InstalledPackage } from './types.js';

/** dpkg considers the package configured: installed, or only waiting on triggers. */
export function isConfiguredStatus(status: string): boolean {
  return status === 'installed' || status === 'triggers-pending' || status === 'triggers-awaited';
}

/** Configured and without dpkg's reinstall-required flag. */
export function isHealthy(p: Pick<InstalledPackage, 'status' | 'eflag'>): boolean {
  return isConfiguredStatus(p.status) && p.eflag === 'ok';
}

/** apt prints the native architecture without a qualifier and `all` packages under the native one. */
export function policyOf(facts: HostFacts, key: string): AptPolicy | undefined {
  const direct = facts.policies.get(key);
  if (direct) return direct;
  const [name, arch] = key.split(':');
  if (arch === 'all') return facts.policies.get(`${name}:${facts.platform.architecture}`);
  return undefined;
}
