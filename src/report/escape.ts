/**
 * One escaping helper per output format, for everything a host says that reaches a report
 * (package names and versions from dpkg, file paths, apt's and the shell's messages). JSON needs
 * none: JSON.stringify escapes by construction.
 */

// C0 controls, DEL, C1 controls, the Unicode line/paragraph separators, the bidirectional
// marks, overrides and isolates (which can make a terminal or a review show text in another order),
// and the invisible ones (zero-width space and joiners, word joiner, BOM), which hide in a name.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;
const NAMED: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u001b': '\\e' };

/**
 * Text for a terminal or a log: control characters become visible escapes (`\t`, `\n`, `\e`,
 * `\x7f`, `\u202e`), so a host cannot move the cursor, recolour, clear the screen or forge a line.
 */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const cp = c.codePointAt(0)!;
    return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** Every string in a value (plans, check and apply reports) through escapeText, for text output. */
export function escapeTextDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeText(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => escapeTextDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = escapeTextDeep(v);
    return out as T;
  }
  return value;
}

/**
 * GitHub-flavoured Markdown (plan.md, check --format markdown), for text in a paragraph, list
 * item or table cell: nothing a host says can open a link, an image, emphasis, a code span, an
 * HTML tag, a new table cell or a new line, or @-mention someone. `inline: 'code'` gives a code
 * span instead (a fence longer than any run of backticks in the text); in a table, `|` inside it
 * is escaped too, as GFM splits cells before it reads code spans.
 */
export function escapeMarkdown(s: string, opts: { code?: boolean; table?: boolean } = {}): string {
  const text = escapeText(s);
  if (opts.code) {
    const body = opts.table ? text.replace(/\|/g, '\\|') : text;
    // A loop, not Math.max(...runs): a host's name of 130,000 backtick runs overflowed the stack.
    let longest = 0;
    for (const run of body.matchAll(/`+/g)) longest = Math.max(longest, run[0].length);
    const fence = '`'.repeat(longest + 1);
    const pad = body.startsWith('`') || body.endsWith('`') || body === '' ? ' ' : '';
    return `${fence}${pad}${body}${pad}${fence}`;
  }
  return text
    .replace(/[\\`*_[\]|~]/g, '\\$&')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/@/g, '&#64;');
}
