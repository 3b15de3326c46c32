import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import ejs from 'ejs';
import type { Lockfile } from '../lock/lockfile.js';
import { assetPath } from '../assets.js';

export const PIN_FILE = '/etc/apt/preferences.d/criu-lock.pref';
/** ≥ 1000 lets apt downgrade to the pinned version (apt_preferences(5)). */
export const PIN_PRIORITY = 1001;

export interface PinEntry {
  package: string;
  version: string;
}

let compiled: ejs.TemplateFunction | undefined;

export function pinEntries(lock: Lockfile): PinEntry[] {
  return (
    Object.keys(lock.packages)
      .sort()
      // apt matches Architecture: all packages under the native arch, so `name:all` would pin nothing.
      .map((key) => ({
        package: key.endsWith(':all') ? key.slice(0, -4) : key,
        version: lock.packages[key]!.version,
      }))
  );
}

/** The pin file for a lock; pure apart from reading the template once. */
export function renderPins(lock: Lockfile, templateText?: string): string {
  const fn = templateText
    ? ejs.compile(templateText)
    : (compiled ??= ejs.compile(readFileSync(assetPath('templates/apt-preferences.ejs'), 'utf8')));
  return fn({ digest: lock.digest, pins: pinEntries(lock), priority: PIN_PRIORITY });
}

/** Parse a pin file back: which version each package is pinned to (ours or anyone's). */
export function parsePins(text: string): Map<string, { version: string; priority: number }> {
  const out = new Map<string, { version: string; priority: number }>();
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m?.[1]) fields.set(m[1].toLowerCase(), (m[2] ?? '').trim());
    }
    const pkg = fields.get('package');
    const pin = /^version\s+(\S+)$/.exec(fields.get('pin') ?? '');
    if (pkg && pin?.[1])
      out.set(pkg, { version: pin[1], priority: Number(fields.get('pin-priority') ?? '0') });
  }
  return out;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
