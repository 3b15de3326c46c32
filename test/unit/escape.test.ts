/**
 * Everything a host says that reaches a report is escaped for its format (issue 9): a hostile
 * host's words in plan.md cannot open links, images, HTML or new table cells, or mention people;
 * in text output they cannot move the cursor, recolour or forge a line.
 */
import { describe, expect, it } from 'vitest';
import type { CheckReport } from '../../src/fleet/host-result.js';
import type { PlanFile } from '../../src/plan/plan-file.js';
import { renderApply } from '../../src/report/apply-report.js';
import { renderCheck } from '../../src/report/check-report.js';
import { escapeMarkdown, escapeText } from '../../src/report/escape.js';
import { renderPlanMarkdown, renderPlanText } from '../../src/report/plan-report.js';
import { renderHistory, renderRollback, type HistoryHost } from '../../src/rollback/report.js';

const EVIL =
  'x\n| evil | cell |\n\u001b[2J\u001b[31m[click](https://evil.example) <img src=x onerror=alert(1)> @everyone `code` *bold* ~~gone~~ \u202eolleh';
const DIGEST = `sha256:${'a'.repeat(64)}`;

function hostilePlan(): PlanFile {
  return {
    planVersion: 1,
    lock: { path: 'criu-lock.yaml', digest: DIGEST },
    hosts: [
      {
        name: 'node-b',
        status: 'blocked',
        fingerprint: null,
        actions: [{ type: 'upgrade', package: 'libc6:amd64', from: '1.0|`x`', to: '2.0-1' }],
        blocked: [{ package: 'foo:amd64', version: '1.2-3', reason: 'version-unavailable', detail: EVIL }],
        notes: [{ type: 'extra-package', package: 'evil`pkg|x', version: EVIL }],
      },
      {
        name: 'node-c',
        status: 'failed',
        fingerprint: null,
        actions: [],
        blocked: [],
        notes: [],
        error: { code: 'host-output', message: EVIL, step: 'facts', hint: EVIL },
      },
    ],
  };
}

describe('escapeText', () => {
  it.each([
    [
      'plain /usr/lib/x86_64-linux-gnu/libc.so.6 2.31-0ubuntu9.14',
      'plain /usr/lib/x86_64-linux-gnu/libc.so.6 2.31-0ubuntu9.14',
    ],
    ['a\tb\nc\rd', 'a\\tb\\nc\\rd'],
    ['\u001b[31mred\u001b[0m', '\\e[31mred\\e[0m'],
    ['\u0000\u0007\u007f\u0085\u009b', '\\x00\\x07\\x7f\\x85\\x9b'],
    ['\u2028\u202e\u2066', '\\u2028\\u202e\\u2066'],
    ['ünïcödé 日本', 'ünïcödé 日本'],
  ])('%j → %j', (input, output) => {
    expect(escapeText(input)).toBe(output);
  });
});

describe('escapeMarkdown', () => {
  it('leaves ordinary words alone', () => {
    expect(
      escapeMarkdown(
        'no apt source of the node offers golden-extra; run plan --refresh if the sources changed',
      ),
    ).toBe('no apt source of the node offers golden-extra; run plan --refresh if the sources changed');
    expect(escapeMarkdown('3.0~rc1-1', { code: true })).toBe('`3.0~rc1-1`');
  });

  it('text: no markup, no HTML, no mentions, no line breaks survive', () => {
    const out = escapeMarkdown(EVIL);
    expect(out).not.toMatch(/\n/);
    expect(out).not.toMatch(/(^|[^\\])[[\]|*`_~]/);
    expect(out).not.toContain('<');
    expect(out).not.toContain('@');
    expect(out).not.toContain('\u001b');
    expect(out).toContain('&lt;img src=x onerror=alert(1)&gt; &#64;everyone');
  });

  it('code spans: a longer fence than any backtick run, pipes escaped in tables', () => {
    expect(escapeMarkdown('a`b', { code: true })).toBe('``a`b``');
    expect(escapeMarkdown('`a', { code: true })).toBe('`` `a ``');
    expect(escapeMarkdown('a|b', { code: true, table: true })).toBe('`a\\|b`');
    expect(escapeMarkdown('a\nb', { code: true })).toBe('`a\\nb`');
  });
});

describe('plan.md with a hostile host', () => {
  const md = renderPlanMarkdown(hostilePlan());
  const lines = md.split('\n');

  it('every table row keeps its cell count', () => {
    const rows = lines.filter((l) => l.startsWith('|'));
    const cells = (l: string): number => l.replace(/\\\|/g, '').split('|').length - 2;
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const r of rows) expect([4, 7]).toContain(cells(r));
  });

  it('no line was forged, and no link, image, HTML tag or mention is live', () => {
    expect(lines.filter((l) => l.includes('| evil | cell |'))).toEqual([]);
    expect(md).not.toMatch(/[^\\]\[click\]\(/);
    expect(md).not.toMatch(/<img/);
    expect(md).not.toMatch(/@everyone/);
    expect(md).not.toContain('\u001b');
    expect(md).not.toContain('\u202e');
  });

  it('the hostile words are still there, escaped, for a reviewer to see', () => {
    expect(md).toContain(
      '\\[click\\](https://evil.example) &lt;img src=x onerror=alert(1)&gt; &#64;everyone',
    );
    expect(md).toContain('| upgrade | `libc6:amd64` | `` 1.0\\|`x` `` | `2.0-1` |');
    // escapeText's `\n` is itself escaped (`\\n`), so it renders as the two characters \ n.
    expect(md).toContain('- ``evil`pkg|x`` x\\\\n\\| evil');
  });
});

describe('text output with a hostile host', () => {
  it('plan text: one line per item, no escape sequences', () => {
    const text = renderPlanText(hostilePlan());
    expect(text).not.toContain('\u001b');
    expect(text).not.toContain('\u202e');
    expect(text.split('\n').filter((l) => l.startsWith('| evil'))).toEqual([]);
    expect(text.split('\n')).toHaveLength(7);
    expect(text).toContain('failed      node-c: x\\n| evil | cell |\\n\\e[2J\\e[31m[click]');
  });

  it('plan text keeps our own colours', () => {
    expect(renderPlanText(hostilePlan(), true)).toContain('\u001b[31mblocked    \u001b[0m node-b');
  });

  it('check text and markdown', () => {
    const report: CheckReport = {
      lock: { path: 'criu-lock.yaml', digest: DIGEST },
      hosts: [
        { name: 'node-c', status: 'failed', error: { code: 'host-output', message: EVIL, step: 'facts' } },
      ],
    };
    const text = renderCheck(report, 'text');
    expect(text).not.toContain('\u001b');
    expect(text.split('\n')).toHaveLength(3);
    const md = renderCheck(report, 'markdown');
    expect(md).not.toMatch(/<img|@everyone/);
    expect(md).not.toContain('\u001b');
    expect(md.split('\n').filter((l) => l.startsWith('| node-c'))).toHaveLength(1);
  });

  it('apply recap', () => {
    const text = renderApply(
      {
        check: false,
        capture: true,
        hosts: [
          {
            name: 'node-c',
            status: 'failed',
            error: { code: 'apt', message: EVIL, step: 'apt', hint: EVIL },
            tasks: [],
            blocked: [],
          },
        ],
        notStarted: [],
      } as unknown as Parameters<typeof renderApply>[0],
      'text',
    );
    expect(text).not.toContain('\u001b');
    expect(text.split('\n')).toHaveLength(4);
  });
});

describe('history and rollback text with a hostile host', () => {
  // A transaction manifest is a file on the host: its ids, versions and paths are the host's words.
  const hosts = [
    {
      name: 'node-c',
      status: 'ok',
      diskBytes: 1024,
      transactions: [
        {
          tx: {
            id: 'tx\u001b[2J',
            createdAt: '2026-11-29T01:00:00Z',
            kind: 'apply',
            status: 'applied',
            lockDigest: 'sha256:' + 'ab'.repeat(32),
            rollbackOf: null,
            packages: [{ package: 'libc6:amd64', before: EVIL, after: '2.0\nforged line', deb: null }],
            pins: { path: '/etc/apt/preferences.d/criu-lock.pref', before: null, after: null },
          },
          rolledBackBy: null,
        },
      ],
      unreadable: [{ id: 'x', error: EVIL }],
    },
  ] as unknown as HistoryHost[];

  it('history text escapes manifests; JSON keeps them exact', () => {
    const text = renderHistory(hosts, 'text');
    expect(text).not.toContain('\u001b');
    expect(text).toContain('2.0\\nforged line');
    expect(text.split('\n')).toHaveLength(5);
    const json = JSON.parse(renderHistory(hosts, 'json')) as {
      hosts: Array<{ transactions: Array<{ id: string }> }>;
    };
    expect(json.hosts[0]?.transactions[0]?.id).toBe('tx\u001b[2J');
  });

  it('rollback text escapes a refusal reason and changes', () => {
    const text = renderRollback(
      [{ name: 'node-c', status: 'refused', target: 'tx1', reason: EVIL, changes: [EVIL] }],
      { format: 'text', check: false, color: false },
    );
    expect(text).not.toContain('\u001b');
    expect(text.split('\n')).toHaveLength(4);
  });
});
