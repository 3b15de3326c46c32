/**
 * A flat copy of `s` that shares no memory with the string it was cut from. V8 keeps a substring
 * of 13 or more characters (split, slice, regex captures) as a view of its parent, so a key cut
 * from a host's whole command output keeps that output alive (issue 14), and compares through a
 * runtime call. Shorter strings are never views or ropes in V8: they are returned as they are.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}
