/**
 * Scalar formatting for the files criu-lock writes. Hand-rolled instead of a generic YAML
 * emitter so output is byte-stable across library versions and fast for 5,000-package locks:
 * plain when the scalar reads back as the same string under YAML 1.2 core, double-quoted
 * (JSON escaping, valid YAML) otherwise.
 */
const PLAIN = /^[A-Za-z0-9_/][A-Za-z0-9_./+~:@-]*$/;
const CORE_NON_STRING =
  /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|true|True|TRUE|false|False|FALSE|null|Null|NULL|~)$/;

/** True when `s` may be written plain: YAML 1.2 core reads it back as this very string. */
export function isPlainString(s: string): boolean {
  return s !== '' && PLAIN.test(s) && !s.endsWith(':') && !CORE_NON_STRING.test(s);
}

export function yamlString(s: string): string {
  if (isPlainString(s)) return s;
  return JSON.stringify(s);
}

export function yamlScalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return yamlString(v);
  return String(v);
}
