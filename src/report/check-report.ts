import type { Finding } from '../check/compare.js';
import { errorText, type CheckReport } from '../fleet/host-result.js';
import { escapeMarkdown, escapeTextDeep } from './escape.js';
import { paint } from './style.js';

function describe(f: Finding): string {
  switch (f.type) {
    case 'platform-mismatch':
      return `platform ${f.field} is ${JSON.stringify(f.actual)}, the lock has ${JSON.stringify(f.expected)}`;
    case 'package-missing':
      return `not installed (lock: ${f.expected})`;
    case 'version-mismatch':
      return `version ${f.actual}, lock ${f.expected}`;
    case 'package-broken':
      return `dpkg state ${f.detail}`;
    case 'file':
      return `would fail: ${f.criu}`;
    default: {
      const never: never = f;
      return String(never);
    }
  }
}

function group(findings: readonly Finding[]): Map<string, Finding[]> {
  const out = new Map<string, Finding[]>();
  for (const f of findings) {
    const key = f.type === 'platform-mismatch' ? '(platform)' : (f.package ?? '(unmanaged files)');
    const list = out.get(key) ?? [];
    list.push(f);
    out.set(key, list);
  }
  return out;
}

function summary(report: CheckReport): string {
  const count = (s: string): number => report.hosts.filter((h) => h.status === s).length;
  return `${report.hosts.length} host(s): ${count('ok')} ok, ${count('drift')} drift, ${count('unreachable')} unreachable, ${count('failed')} failed`;
}

export function renderCheck(raw: CheckReport, format: 'text' | 'markdown' | 'json', color = false): string {
  if (format === 'json') return JSON.stringify({ checkVersion: 1, ...raw }, null, 2) + '\n';
  const lines: string[] = [];
  if (format === 'markdown') {
    const md = (s: string): string => escapeMarkdown(s);
    const code = (s: string): string => escapeMarkdown(s, { code: true });
    const report = raw;
    lines.push(
      `## criu-lock check`,
      '',
      `${report.kind === 'checkpoint' ? 'Checkpoint' : 'Lock'} ${code(report.lock.path)} (${report.lock.digest})`,
      '',
      '| host | status | findings |',
      '| --- | --- | --- |',
    );
    for (const h of report.hosts) {
      lines.push(
        `| ${md(h.name)} | ${h.status} | ${'findings' in h ? h.findings.length : md(errorText(h.error))} |`,
      );
    }
    for (const h of report.hosts) {
      if (h.status !== 'drift') continue;
      lines.push('', `### ${md(h.name)}`, '');
      for (const [pkg, fs] of group(h.findings)) {
        lines.push(`- ${code(pkg)}`);
        for (const f of fs) lines.push(`  - ${md(describe(f))}`);
      }
    }
    lines.push('', summary(report));
    return lines.join('\n') + '\n';
  }
  // Text: hosts' words (paths, versions, errors) never reach the terminal raw.
  const report = escapeTextDeep(raw);
  for (const h of report.hosts) {
    switch (h.status) {
      case 'ok':
        lines.push(
          `${paint('ok', 'green', color)}          ${h.name}: ${report.kind === 'checkpoint' ? 'the checkpoint would restore here' : 'matches the lock'}`,
        );
        break;
      case 'drift':
        // Only file findings are what CRIU itself rejects; a version or dpkg-state finding alone is
        // the lock being stricter than CRIU (docs/checkpoints.md says why).
        lines.push(
          `${paint('drift', 'yellow', color)}       ${h.name}: ${h.findings.length} difference(s) — ${h.findings.some((f) => f.type === 'file') ? 'a CRIU restore here would fail' : 'not at the lock (CRIU compares only files)'}`,
        );
        for (const [pkg, fs] of group(h.findings)) {
          lines.push(`    ${pkg}`);
          for (const f of fs) lines.push(`      ${describe(f)}`);
        }
        break;
      case 'unreachable':
      case 'failed':
        lines.push(
          `${paint(h.status, 'red', color)}${' '.repeat(12 - h.status.length)}${h.name}: ${errorText(h.error)}`,
        );
        break;
      default: {
        const never: never = h;
        lines.push(String(never));
      }
    }
  }
  lines.push(summary(report));
  return lines.join('\n') + '\n';
}
