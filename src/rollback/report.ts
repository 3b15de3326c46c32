import { errorText, type HostFailure } from '../fleet/host-error.js';
import { escapeTextDeep } from '../report/escape.js';
import { paint } from '../report/style.js';
import { formatBytes } from './host.js';
import type { HistoryEntry } from './planner.js';

export type HistoryHost =
  | {
      name: string;
      status: 'ok';
      diskBytes: number;
      transactions: HistoryEntry[];
      unreadable: Array<{ id: string; error: string }>;
    }
  | HostFailure;

const v = (s: string | null): string => s ?? '(absent)';

export function renderHistory(raw: readonly HistoryHost[], format: 'text' | 'json', color = false): string {
  const hosts = format === 'json' ? raw : escapeTextDeep(raw);
  if (format === 'json') {
    return `${JSON.stringify(
      {
        historyVersion: 1,
        hosts: hosts.map((h) =>
          h.status !== 'ok'
            ? h
            : {
                name: h.name,
                status: h.status,
                diskBytes: h.diskBytes,
                transactions: h.transactions.map((e) => ({
                  id: e.tx.id,
                  time: e.tx.createdAt,
                  kind: e.tx.kind,
                  status: e.tx.status,
                  lockDigest: e.tx.lockDigest,
                  rollbackOf: e.tx.rollbackOf,
                  rolledBack: e.rolledBackBy !== null,
                  rolledBackBy: e.rolledBackBy,
                  packages: e.tx.packages.map((p) => ({
                    package: p.package,
                    before: p.before,
                    after: p.after,
                    debSource: p.deb?.source ?? null,
                  })),
                  pins: e.tx.pins,
                })),
                unreadable: h.unreadable,
              },
        ),
      },
      null,
      2,
    )}\n`;
  }
  // Text: what the host's transaction manifests say (ids, versions, paths) never reaches the terminal raw.
  const lines: string[] = [];
  for (const h of hosts) {
    if (h.status !== 'ok') {
      lines.push(`${h.name}  ${paint(h.status, 'red', color)}  ${errorText(h.error)}`);
      continue;
    }
    lines.push(`${h.name}  ${h.transactions.length} transaction(s), ${formatBytes(h.diskBytes)}`);
    for (const e of h.transactions) {
      const tx = e.tx;
      const what =
        tx.kind === 'rollback'
          ? `rollback of ${tx.rollbackOf ?? '?'}`
          : `apply lock ${tx.lockDigest ? tx.lockDigest.replace(/^sha256:/, '').slice(0, 12) : '?'}`;
      const state = e.rolledBackBy
        ? paint(`rolled back by ${e.rolledBackBy}`, 'yellow', color)
        : tx.status === 'applied'
          ? 'applied'
          : paint('captured, not completed', 'red', color);
      lines.push(`  ${tx.id}  ${tx.createdAt.replace(/\.\d+Z$/, 'Z')}  ${what}  ${state}`);
      for (const p of tx.packages) lines.push(`      ${p.package}  ${v(p.before)} → ${v(p.after)}`);
      if (tx.pins.before !== tx.pins.after)
        lines.push(
          `      ${tx.pins.path}  ${tx.pins.before ? 'present' : '(absent)'} → ${tx.pins.after ? 'written' : '(absent)'}`,
        );
    }
    for (const u of h.unreadable) lines.push(`  ${u.id}  ${paint('unreadable', 'red', color)}: ${u.error}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : 'no hosts\n';
}

export interface RollbackSummary {
  install: Array<{ package: string; from: string | null; to: string }>;
  remove: Array<{ package: string; from: string | null }>;
  pins: 'restore' | 'remove' | 'keep';
  /** What had changed since the transaction (rolled back anyway with --force). */
  forced: string[];
}

export type RollbackHostResult =
  | { name: string; status: 'ok'; target: string; message: string }
  | { name: string; status: 'would-roll-back'; target: string; summary: RollbackSummary }
  | {
      name: string;
      status: 'rolled-back';
      target: string;
      transaction: string;
      diskBytes: number;
      summary: RollbackSummary;
    }
  | {
      name: string;
      status: 'refused';
      target: string;
      reason: string;
      changes: string[];
      /** What to do instead; default: --force rolls back anyway. */
      remedy?: string;
    }
  | (HostFailure & { target: string | null });

function summaryLines(s: RollbackSummary): string[] {
  return [
    ...s.forced.map((f) => `    ! forced past: ${f}`),
    ...s.install.map((i) => `    ← install   ${i.package} ${v(i.from)} → ${i.to} (captured .deb)`),
    ...s.remove.map((r) => `    - remove    ${r.package} ${v(r.from)} (the transaction installed it)`),
    ...(s.pins === 'keep'
      ? []
      : [`    ~ pins      ${s.pins === 'remove' ? 'remove (absent before)' : 'restore the captured file'}`]),
  ];
}

export function renderRollback(
  raw: readonly RollbackHostResult[],
  opts: { format: 'text' | 'json'; check: boolean; color: boolean },
): string {
  if (opts.format === 'json')
    return `${JSON.stringify({ rollbackVersion: 1, check: opts.check, hosts: raw }, null, 2)}\n`;
  // Text: hosts' words (manifests, versions, errors) never reach the terminal raw.
  const results = escapeTextDeep(raw);
  const lines: string[] = [];
  for (const r of results) {
    switch (r.status) {
      case 'ok':
        lines.push(`${paint('ok', 'green', opts.color).padEnd(16)}${r.name}: ${r.message}`);
        break;
      case 'would-roll-back':
        lines.push(
          `${paint('would roll back', 'yellow', opts.color)} ${r.name}: transaction ${r.target}`,
          ...summaryLines(r.summary),
        );
        break;
      case 'rolled-back':
        lines.push(
          `${paint('rolled back', 'yellow', opts.color).padEnd(16)}${r.name}: transaction ${r.target} undone, verified; recorded as ${r.transaction} (transactions take ${formatBytes(r.diskBytes)})`,
          ...summaryLines(r.summary),
        );
        break;
      case 'refused':
        lines.push(
          `${paint('refused', 'red', opts.color).padEnd(16)}${r.name}: ${r.reason}; nothing was changed (${r.remedy ?? '--force rolls back anyway'})`,
          ...r.changes.map((c) => `    changed: ${c}`),
        );
        break;
      case 'failed':
        lines.push(
          `${paint('failed', 'red', opts.color).padEnd(16)}${r.name}: [${r.error.step}] ${errorText(r.error)}`,
        );
        break;
      case 'unreachable':
        lines.push(`${paint('unreachable', 'red', opts.color).padEnd(16)}${r.name}: ${errorText(r.error)}`);
        break;
      default: {
        const never: never = r;
        return never;
      }
    }
  }
  const by = (s: RollbackHostResult['status']): number => results.filter((r) => r.status === s).length;
  lines.push(
    opts.check
      ? `${results.length} host(s): ${by('would-roll-back')} would roll back, ${by('ok')} ok, ${by('refused')} refused, ${by('failed')} failed, ${by('unreachable')} unreachable (check mode: nothing was changed)`
      : `${results.length} host(s): ${by('rolled-back')} rolled back, ${by('ok')} ok, ${by('refused')} refused, ${by('failed')} failed, ${by('unreachable')} unreachable`,
  );
  return `${lines.join('\n')}\n`;
}
