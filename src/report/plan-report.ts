import { readFileSync } from 'node:fs';
import ejs from 'ejs';
import { assetPath } from '../assets.js';
import type { HostPlan, PackageAction, PlanFile, WritePinsAction } from '../plan/plan-file.js';
import { errorText } from '../fleet/host-error.js';
import { escapeMarkdown, escapeTextDeep } from './escape.js';
import { paint } from './style.js';

type Counts = Record<PackageAction['type'], number>;

function countActions(h: HostPlan): Counts {
  const n: Counts = { install: 0, upgrade: 0, downgrade: 0, reinstall: 0 };
  for (const a of h.actions) if (a.type !== 'write-pins') n[a.type]++;
  return n;
}

export function planSummary(plan: PlanFile): string {
  const by = (s: HostPlan['status']): number => plan.hosts.filter((h) => h.status === s).length;
  return `${plan.hosts.length} host(s): ${by('ok')} ok, ${by('changes')} with changes, ${by('blocked')} blocked, ${by('unreachable')} unreachable, ${by('failed')} failed`;
}

let markdownTemplate: ejs.TemplateFunction | undefined;

const MARKDOWN_HELPERS = {
  md: (s: string): string => escapeMarkdown(s),
  code: (s: string): string => escapeMarkdown(s, { code: true }),
  cell: (s: string): string => escapeMarkdown(s, { code: true, table: true }),
};

export function renderPlanMarkdown(plan: PlanFile): string {
  markdownTemplate ??= ejs.compile(readFileSync(assetPath('templates/plan.md.ejs'), 'utf8'));
  const hosts = plan.hosts.map((h) => ({
    ...h,
    // The template shows the error as one line, as the text output does.
    error: h.error ? errorText(h.error) : undefined,
    n: countActions(h),
    packageActions: h.actions.filter((a): a is PackageAction => a.type !== 'write-pins'),
    pins: h.actions.find((a): a is WritePinsAction => a.type === 'write-pins'),
  }));
  return markdownTemplate({ plan, hosts, counts: planSummary(plan), ...MARKDOWN_HELPERS });
}

const SIGN: Record<PackageAction['type'], string> = {
  install: '+',
  upgrade: '↑',
  downgrade: '↓',
  reinstall: '~',
};

/** Text for a terminal: reads like a diff, one host after another. */
export function renderPlanText(raw: PlanFile, color = false): string {
  // Hosts' words (versions, paths, apt's and the shell's messages) never reach the terminal raw.
  const plan = escapeTextDeep(raw);
  const lines: string[] = [];
  for (const h of plan.hosts) {
    const colour = h.status === 'ok' ? 'green' : h.status === 'changes' ? 'yellow' : 'red';
    lines.push(
      `${paint(h.status.padEnd(11), colour, color)} ${h.name}${h.error ? `: ${errorText(h.error)}` : ''}`,
    );
    for (const a of h.actions) {
      if (a.type === 'write-pins') lines.push(`    ${paint('~', 'cyan', color)} pins      ${a.path}`);
      else
        lines.push(
          `    ${paint(SIGN[a.type], a.type === 'install' ? 'green' : 'yellow', color)} ${a.type.padEnd(9)} ${a.package} ${a.from ?? '(none)'} → ${a.to}${a.source === 'store' ? ' (store)' : ''}`,
        );
    }
    for (const x of h.aptExtra ?? []) {
      lines.push(
        `    ${paint(SIGN[x.action], 'yellow', color)} ${x.action.padEnd(9)} ${x.package} ${x.from ?? '(none)'} → ${x.to}  (apt adds it: not in the lock)`,
      );
    }
    for (const b of h.blocked) {
      lines.push(
        `    ${paint('!', 'red', color)} blocked   ${b.package ? `${b.package}${b.version ? `=${b.version}` : ''} ` : ''}${b.reason}: ${b.detail}`,
      );
    }
    if (h.notes.length > 0)
      lines.push(
        `    ${h.notes.length} package(s) not in the lock, kept: ${h.notes
          .slice(0, 5)
          .map((n) => n.package)
          .join(', ')}${h.notes.length > 5 ? ', …' : ''}`,
      );
  }
  lines.push(planSummary(plan));
  return lines.join('\n') + '\n';
}

export function renderPlan(plan: PlanFile, format: 'text' | 'markdown' | 'json', color = false): string {
  switch (format) {
    case 'json':
      return JSON.stringify(plan, null, 2) + '\n';
    case 'markdown':
      return renderPlanMarkdown(plan);
    case 'text':
      return renderPlanText(plan, color);
    default: {
      const never: never = format;
      throw new Error(`unknown format ${String(never)}`);
    }
  }
}
