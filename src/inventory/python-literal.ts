/**
 * Python's `ast.literal_eval` for INI inventory values: Ansible hands every INI value to it and keeps
 * the text when it is not a literal.
 */

/**
 * Ansible gives INI values to Python's ast.literal_eval and keeps the text when that fails:
 * `22` is a number, `True` a boolean, `'22'` or "'x y'" a string, `yes`/`true` stay strings.
 */
export function parseIniValue(raw: string): unknown {
  const parsed = literalEval(raw);
  return parsed.ok ? parsed.value : raw;
}

type Eval = { ok: true; value: unknown } | { ok: false };
type Token =
  { t: 'num'; v: number } | { t: 'str'; v: string } | { t: 'name'; v: string } | { t: 'op'; v: string };

class NotALiteral extends Error {}
/** Thrown for most INI values (an address is not a Python literal): one instance, no stack capture per value. */
const NOT_A_LITERAL = new NotALiteral();

const NUMBER = new RegExp(
  '^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+' +
    '|(?:(?:\\d(?:_?\\d)*)?\\.\\d(?:_?\\d)*|\\d(?:_?\\d)*\\.)(?:[eE][+-]?\\d(?:_?\\d)*)?' +
    '|\\d(?:_?\\d)*[eE][+-]?\\d(?:_?\\d)*' +
    '|[1-9](?:_?\\d)*|0(?:_?0)*)',
);
const STRING_START = /^([rRbBuU]|[rR][bB]|[bB][rR])?('''|"""|'|")/;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let s = src;
  for (;;) {
    s = s.replace(/^[ \t\f\r\n]+/, '');
    if (s === '' || s.startsWith('#')) return out;
    const str = STRING_START.exec(s);
    if (str) {
      const prefix = (str[1] ?? '').toLowerCase();
      const quote = str[2] as string;
      let i = str[0].length;
      let body = '';
      for (;;) {
        if (i >= s.length) throw NOT_A_LITERAL;
        if (s.startsWith(quote, i)) break;
        const c = s[i] as string;
        if (c === '\\') {
          if (i + 1 >= s.length) throw NOT_A_LITERAL;
          body += s.slice(i, i + 2);
          i += 2;
        } else {
          if (c === '\n' && quote.length === 1) throw NOT_A_LITERAL;
          body += c;
          i++;
        }
      }
      out.push({ t: 'str', v: prefix.includes('r') ? body : unescapePython(body) });
      s = s.slice(i + quote.length);
      continue;
    }
    const num = NUMBER.exec(s);
    if (num && /^[0-9.]/.test(s)) {
      const text = num[0];
      // `0755`, `1j`, `12abc`: not a plain Python number literal.
      if (/^[A-Za-z0-9_.]/.test(s.slice(text.length))) throw NOT_A_LITERAL;
      const clean = text.replace(/_/g, '');
      const value = /^0[oO]/.test(clean)
        ? parseInt(clean.slice(2), 8)
        : /^0[bB]/.test(clean)
          ? parseInt(clean.slice(2), 2)
          : Number(clean);
      if (
        !Number.isFinite(value) ||
        (Number.isInteger(value) && !/[.eE]/.test(clean) && !Number.isSafeInteger(value))
      ) {
        throw NOT_A_LITERAL;
      }
      out.push({ t: 'num', v: value });
      s = s.slice(text.length);
      continue;
    }
    const name = /^[A-Za-z_]\w*/.exec(s);
    if (name) {
      out.push({ t: 'name', v: name[0] });
      s = s.slice(name[0].length);
      continue;
    }
    const op = s[0] as string;
    if (!'[](){},:+-'.includes(op)) throw NOT_A_LITERAL;
    out.push({ t: 'op', v: op });
    s = s.slice(1);
  }
}

function unescapePython(body: string): string {
  return body.replace(
    /\\(\n|[\\'"abfnrtv]|[0-7]{1,3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|x|u|U|.)/gs,
    (all, e: string) => {
      const simple: Record<string, string> = {
        '\n': '',
        '\\': '\\',
        "'": "'",
        '"': '"',
        a: '\x07',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
        v: '\v',
      };
      const s = simple[e];
      if (s !== undefined) return s;
      if (/^[0-7]/.test(e)) return String.fromCodePoint(parseInt(e, 8));
      if (/^[xuU][0-9a-fA-F]+$/.test(e)) {
        const cp = parseInt(e.slice(1), 16);
        if (cp > 0x10ffff) throw NOT_A_LITERAL;
        return String.fromCodePoint(cp);
      }
      if (e === 'x' || e === 'u' || e === 'U' || e.startsWith('N{')) throw NOT_A_LITERAL;
      return all;
    },
  );
}

function literalEval(src: string): Eval {
  try {
    const tokens = tokenize(src.replace(/^[ \t]+/, ''));
    let pos = 0;
    const peek = (): Token | undefined => tokens[pos];
    const isOp = (v: string): boolean => {
      const t = peek();
      return t?.t === 'op' && t.v === v;
    };
    const expectOp = (v: string): void => {
      if (!isOp(v)) throw NOT_A_LITERAL;
      pos++;
    };

    const value = (): unknown => {
      const t = peek();
      if (!t) throw NOT_A_LITERAL;
      pos++;
      switch (t.t) {
        case 'num':
          return t.v;
        case 'str': {
          let s = t.v;
          while (peek()?.t === 'str') s += (tokens[pos++] as { v: string }).v;
          return s;
        }
        case 'name':
          if (t.v === 'True') return true;
          if (t.v === 'False') return false;
          if (t.v === 'None') return null;
          throw NOT_A_LITERAL;
        case 'op': {
          if (t.v === '-' || t.v === '+') {
            const n = peek();
            if (n?.t !== 'num') throw NOT_A_LITERAL;
            pos++;
            return t.v === '-' ? -n.v : n.v;
          }
          if (t.v === '[') return sequence(']').items;
          if (t.v === '(') {
            const { items, trailingComma } = sequence(')');
            return items.length === 1 && !trailingComma ? items[0] : items;
          }
          if (t.v === '{') return braces();
          throw NOT_A_LITERAL;
        }
      }
    };

    const sequence = (close: string): { items: unknown[]; trailingComma: boolean } => {
      const items: unknown[] = [];
      let trailingComma = false;
      while (!isOp(close)) {
        items.push(value());
        trailingComma = false;
        if (isOp(',')) {
          pos++;
          trailingComma = true;
        } else if (!isOp(close)) throw NOT_A_LITERAL;
      }
      pos++;
      return { items, trailingComma };
    };

    const braces = (): unknown => {
      if (isOp('}')) {
        pos++;
        return {};
      }
      const first = value();
      if (!isOp(':')) {
        // A set: no JSON equivalent, an array keeps its members.
        const items = [first];
        while (isOp(',')) {
          pos++;
          if (isOp('}')) break;
          items.push(value());
        }
        expectOp('}');
        return items;
      }
      const obj: Record<string, unknown> = {};
      let key = first;
      for (;;) {
        expectOp(':');
        if (typeof key === 'object' && key !== null) throw NOT_A_LITERAL;
        obj[String(key)] = value();
        if (isOp(',')) pos++;
        if (isOp('}')) {
          pos++;
          return obj;
        }
        key = value();
      }
    };

    const first = value();
    if (pos === tokens.length) return { ok: true, value: first };
    // `1, 2` is a tuple in Python's eval mode.
    const items = [first];
    while (isOp(',')) {
      pos++;
      if (pos === tokens.length) break;
      items.push(value());
    }
    if (pos !== tokens.length) return { ok: false };
    return { ok: true, value: items };
  } catch (err) {
    if (err instanceof NotALiteral) return { ok: false };
    throw err;
  }
}
