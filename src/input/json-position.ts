/**
 * Where a JSON syntax error is, as a line: from the position JSON.parse names, or, when Node's
 * message names none (some errors on Node 20), from the yaml library's parse of the same text
 * (JSON is YAML), which usually finds the spot.
 */
import { parseDocument } from 'yaml';

export function jsonErrorLine(text: string, err: unknown): number | undefined {
  const m = /position (\d+)/.exec((err as Error).message);
  const offset = m ? Number(m[1]) : parseDocument(text, { schema: 'json' }).errors[0]?.pos[0];
  return offset === undefined ? undefined : text.slice(0, offset).split('\n').length;
}
