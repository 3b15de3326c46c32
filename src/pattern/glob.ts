/**
 * Shell-style globs without regular expressions, for Ansible host patterns (`fnmatch`: `*`, `?`,
 * `[seq]`, `[!seq]`, case-sensitive) and OpenSSH known_hosts patterns (`*` and `?` only).
 *
 * A glob turned into a backtracking RegExp (`.*a.*a.*a.*b`) takes time exponential in the number
 * of stars against a long name; a pattern and a name are both inputs criu-lock does not control.
 * Here every token but `*` matches exactly one character, so the classic greedy walk that returns
 * to the last `*` on a mismatch is correct and takes at most O(pattern × name) steps.
 */
type Token =
  | { kind: 'star' }
  | { kind: 'any' }
  | { kind: 'char'; ch: string }
  | { kind: 'class'; negate: boolean; items: Array<[string, string]> };

export interface GlobOptions {
  /** Understand `[seq]` / `[!seq]` (fnmatch); OpenSSH patterns have no classes. Default true. */
  classes?: boolean;
}

function parse(pattern: string, classes: boolean): Token[] {
  const chars = Array.from(pattern);
  const out: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') {
      if (out[out.length - 1]?.kind !== 'star') out.push({ kind: 'star' }); // `**` is `*`
    } else if (c === '?') out.push({ kind: 'any' });
    else if (c === '[' && classes) {
      // fnmatch.translate: `[!` negates, a `]` right after `[` or `[!` is literal, no `]` → literal `[`.
      let j = i + 1;
      const negate = chars[j] === '!';
      if (negate) j++;
      const start = j;
      if (chars[j] === ']') j++;
      while (j < chars.length && chars[j] !== ']') j++;
      if (j >= chars.length) {
        out.push({ kind: 'char', ch: c });
        continue;
      }
      const body = chars.slice(start, j);
      const items: Array<[string, string]> = [];
      for (let k = 0; k < body.length; k++) {
        const lo = body[k]!;
        const hi = body[k + 2];
        if (body[k + 1] === '-' && hi !== undefined) {
          items.push([lo, hi]);
          k += 2;
        } else items.push([lo, lo]);
      }
      out.push({ kind: 'class', negate, items });
      i = j;
    } else out.push({ kind: 'char', ch: c });
  }
  return out;
}

function matchesOne(t: Exclude<Token, { kind: 'star' }>, ch: string): boolean {
  switch (t.kind) {
    case 'any':
      return true;
    case 'char':
      return t.ch === ch;
    case 'class': {
      const cp = ch.codePointAt(0)!;
      const hit = t.items.some(([lo, hi]) => lo.codePointAt(0)! <= cp && cp <= hi.codePointAt(0)!);
      return hit !== t.negate;
    }
    default: {
      const never: never = t;
      return never;
    }
  }
}

/** A matcher for `pattern`: the whole name must match. */
export function compileGlob(pattern: string, opts: GlobOptions = {}): (name: string) => boolean {
  const tokens = parse(pattern, opts.classes ?? true);
  return (name) => {
    const s = Array.from(name);
    let t = 0;
    let i = 0;
    let starT = -1;
    let starI = 0;
    while (i < s.length) {
      const tok = tokens[t];
      if (tok !== undefined && tok.kind === 'star') {
        starT = t++;
        starI = i;
      } else if (tok !== undefined && matchesOne(tok, s[i]!)) {
        t++;
        i++;
      } else if (starT >= 0) {
        // Let the last star take one more character and retry from there.
        t = starT + 1;
        i = ++starI;
      } else return false;
    }
    while (tokens[t]?.kind === 'star') t++;
    return t === tokens.length;
  };
}

export function globMatch(pattern: string, name: string, opts: GlobOptions = {}): boolean {
  return compileGlob(pattern, opts)(name);
}
