import { CriuLockError } from '../errors.js';
import { isSudoPasswordRequired } from '../transport/local-transport.js';
import type { Transport } from '../transport/types.js';
import { parseProbeOutput, resolvePending } from './parse.js';
import { renderProbeScript, renderRangeScript, type ProbeRequest } from './probe-script.js';
import type { HostFacts } from './types.js';

export interface GatherOptions {
  timeoutMs?: number;
}

/**
 * Facts of one host in one round trip (plus a rare second one when an ELF file keeps its
 * notes past the head the probe sends). Throws CriuLockError; the fleet runner turns that
 * into a per-host failure.
 */
export async function gatherFacts(t: Transport, req: ProbeRequest, opts: GatherOptions = {}): Promise<HostFacts> {
  const script = renderProbeScript(req);
  const res = await t.exec(['sh', '-s'], { stdin: script, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  if (res.timedOut) throw new CriuLockError('ssh', `${t.host}: gathering facts timed out after ${res.durationMs} ms`);
  if (isSudoPasswordRequired(res)) {
    throw new CriuLockError('become', `${t.host}: sudo asks for a password (become needs passwordless sudo)`, {
      hint: 'allow the user NOPASSWD sudo on this host, or connect as root (ansible_user: root)',
    });
  }
  const { facts, pending } = parseProbeOutput(t.host, res.stdout);
  const incomplete = facts.problems.find((p) => p.type === 'probe');
  if (incomplete) {
    const why = res.stderr.trim().split('\n').slice(-2).join(' ') || `exit code ${res.exitCode}`;
    throw new CriuLockError('ssh', `${t.host}: the facts probe failed: ${why}`, {
      hint: 'the target needs sh, dpkg, apt and perl-base; with a non-root user set ansible_become',
    });
  }
  let todo = pending;
  // Two more round trips at most: a note table points at notes, nothing deeper.
  for (let round = 0; round < 2 && todo.length > 0; round++) {
    const requests = todo.flatMap((p) => p.ranges.map((r) => ({ path: p.openPath, ...r })));
    const out = await t.exec(['sh', '-s'], { stdin: renderRangeScript(requests) });
    const lines = out.stdout.split('\n');
    let i = 0;
    for (const p of todo) {
      for (const r of p.ranges) {
        const line = lines[i++] ?? '';
        const hex = line.split('\t')[1] ?? '';
        p.chunks.push({ offset: r.offset, bytes: Buffer.from(hex, 'hex') });
      }
    }
    todo = resolvePending(todo);
  }
  for (const p of todo) p.fact.buildId = null;
  return facts;
}
