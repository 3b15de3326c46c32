/**
 * Host patterns as inventories write them: `name`, `name:port`, `[v6addr]:port`, and ranges
 * `web[01:03]`, `db-[a:c]`, `[1:9:2]` (Ansible's `_expand_hostpattern` and `expand_hostname_range`).
 */
import { CriuLockError, type SourceLocation } from '../errors.js';

export interface HostPattern {
  names: string[];
  port: number | undefined;
}

const BRACKETED_HOSTPORT = /^\[(.+)\]:(\d+)$/;
// A host part without colons (ranges may contain them inside brackets), then `:port`.
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):(\d+)$/;
const PLAIN_HOST = /^[A-Za-z0-9_.\-[\]:]+$/;
const ASCII_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/**
 * Most names one pattern may expand to. Each range is capped too, but ranges multiply:
 * `h[1:2000]-[1:2000]` is four million names from 19 characters.
 */
export const MAX_PATTERN_HOSTS = 100_000;

/** Ansible's `_expand_hostpattern`: split an optional port, then expand `[x:y]` ranges. */
export function expandHostPattern(pattern: string, loc: SourceLocation): HostPattern {
  let host = pattern;
  let port: number | undefined;
  const m = BRACKETED_HOSTPORT.exec(pattern) ?? HOSTPORT.exec(pattern);
  // Like parse_address: only a recognisable host keeps its port split off; anything else is a name.
  if (m?.[1] !== undefined && m[2] !== undefined && PLAIN_HOST.test(m[1])) {
    host = m[1];
    port = Number(m[2]);
  }
  if (port === undefined && pattern.trim().endsWith(':')) {
    throw new CriuLockError(
      'inventory',
      `invalid host pattern "${pattern}": a trailing ":" must be followed by a port`,
      {
        location: loc,
        hint: 'write host:PORT, or remove the colon',
      },
    );
  }
  const names = host.includes('[') ? expandHostRange(host, loc) : [host];
  for (const name of names) {
    if (name.trim() === '---') {
      throw new CriuLockError('inventory', `invalid host pattern "${pattern}"`, {
        location: loc,
        hint: '"---" starts a YAML document: name the file .yaml so it is read as YAML',
      });
    }
  }
  return { names, port };
}

/**
 * Ansible's expand_hostname_range: the first `[begin:end(:step)]` is expanded (numeric with the
 * zero padding of `begin`, or single ASCII letters), then the rest recursively.
 */
export function expandHostRange(
  line: string,
  loc: SourceLocation,
  budget = { left: MAX_PATTERN_HOSTS, pattern: line },
): string[] {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  const bad = (why: string): CriuLockError =>
    new CriuLockError('inventory', `invalid host range in "${budget.pattern}": ${why}`, {
      location: loc,
      hint: 'ranges look like web[01:10], web[1:10:2] or db-[a:f]',
    });
  if (open < 0 || close < 0) throw bad('unbalanced brackets');
  const head = line.slice(0, open);
  const tail = line.slice(close + 1);
  const bounds = line.slice(open + 1, close).split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw bad('host range must be begin:end or begin:end:step');
  const beg = bounds[0] === '' ? '0' : (bounds[0] as string);
  const end = bounds[1] as string;
  const stepText = bounds[2] ?? '1';
  if (end === '') throw bad('host range must specify an end value');
  if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw bad('the step must be a positive integer');
  const step = Number(stepText);

  const seq: string[] = [];
  if (/^[A-Za-z]$/.test(beg) && /^[A-Za-z]$/.test(end)) {
    const from = ASCII_LETTERS.indexOf(beg);
    const to = ASCII_LETTERS.indexOf(end);
    if (from > to) throw bad('host range must have begin <= end');
    for (let i = from; i <= to; i += step) seq.push(ASCII_LETTERS[i] as string);
  } else if (/^\d+$/.test(beg) && /^\d+$/.test(end)) {
    const padded = beg.startsWith('0') && beg.length > 1;
    if (padded && beg.length !== end.length)
      throw bad('begin and end must have the same width when zero-padded');
    const from = Number(beg);
    const to = Number(end);
    // Ansible silently yields no hosts here; an empty range is always a typo, so say so.
    if (from > to) throw bad('host range must have begin <= end');
    if (to - from > 100_000 * step) throw bad('host range is too large');
    for (let i = from; i <= to; i += step) seq.push(padded ? String(i).padStart(beg.length, '0') : String(i));
  } else {
    throw bad('bounds must be both numbers or both single letters');
  }

  const out: string[] = [];
  for (const part of seq) {
    const name = head + part + tail;
    if (name.includes('[')) {
      for (const n of expandHostRange(name, loc, budget)) out.push(n);
      continue;
    }
    if (--budget.left < 0) throw bad(`the pattern names more than ${MAX_PATTERN_HOSTS} hosts`);
    out.push(name);
  }
  return out;
}
