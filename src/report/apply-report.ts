import { errorText, type ApplyReport } from '../fleet/host-result.js';
import { escapeTextDeep } from './escape.js';
import { paint } from './style.js';

/** Ansible-style recap: one row per host, then the totals. */
export function renderApply(raw: ApplyReport, format: 'text' | 'json', color = false): string {
  if (format === 'json') return JSON.stringify({ applyVersion: 1, ...raw }, null, 2) + '\n';
  // Hosts' words (apt's and the shell's messages, versions) never reach the terminal raw.
  const report = escapeTextDeep(raw);
  const lines: string[] = [report.check ? 'RECAP (check mode: nothing was changed)' : 'RECAP'];
  const width = Math.max(
    4,
    ...report.hosts.map((h) => h.name.length),
    ...report.notStarted.map((n) => n.length),
  );
  for (const h of report.hosts) {
    const count = (s: string): number => h.tasks.filter((t) => t.status === s).length;
    const colour = h.status === 'ok' ? 'green' : h.status === 'changed' ? 'yellow' : 'red';
    let line = `${h.name.padEnd(width)}  ${paint(h.status.padEnd(11), colour, color)} ok=${count('ok')} changed=${count('changed')} skipped=${count('skipped')} failed=${count('failed')}`;
    if (h.transaction) line += `  tx=${h.transaction}`;
    if (h.status === 'failed') line += `  [${h.error.step}] ${errorText(h.error)}`;
    if (h.status === 'unreachable') line += `  ${errorText(h.error)}`;
    lines.push(line);
    for (const b of h.blocked)
      lines.push(
        `${' '.repeat(width)}    blocked ${b.package ?? ''}${b.version ? `=${b.version}` : ''} ${b.reason}: ${b.detail}`,
      );
  }
  for (const n of report.notStarted)
    lines.push(
      `${n.padEnd(width)}  ${paint('not started', 'red', color)} (${report.interrupted ? 'interrupted' : '--max-fail-percentage reached'})`,
    );
  if (!report.capture && !report.check)
    lines.push(
      'capture: off (--no-capture): no transaction was recorded, these changes cannot be rolled back',
    );
  const by = (s: string): number => report.hosts.filter((h) => h.status === s).length;
  lines.push(
    `${report.hosts.length + report.notStarted.length} host(s): ${by('ok')} ok, ${by('changed')} changed, ${by('blocked')} blocked, ${by('failed')} failed, ${by('unreachable')} unreachable${report.notStarted.length ? `, ${report.notStarted.length} not started` : ''}`,
  );
  return lines.join('\n') + '\n';
}
