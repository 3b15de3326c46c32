/**
 * The planner as it was before it was made fast (commit 7e6ffdd): written for clarity, three
 * passes over the lock (fingerprint, compareHost, actions). Kept only as the oracle of the
 * differential test in planner-fast.test.ts; the product uses src/plan/planner.ts.
 */
import { createHash } from 'node:crypto';
import { compareVersions } from '../../src/debian/version.js';
import { compareHost, comparePlatform } from '../../src/check/compare.js';
import { policyOf } from '../../src/facts/queries.js';
import type { HostFacts } from '../../src/facts/types.js';
import { indexLock } from '../../src/lock/lock-index.js';
import type { Lockfile } from '../../src/lock/lockfile.js';
import type { Blocked, HostPlan, Note, PackageAction } from '../../src/plan/plan-file.js';
import { PIN_FILE, PIN_PRIORITY, parsePins, sha256Hex } from '../../src/plan/pins.js';

const ACTION_ORDER: Record<PackageAction['type'], number> = {
  install: 0,
  upgrade: 1,
  downgrade: 2,
  reinstall: 3,
};

/**
 * What the plan was computed from: dpkg state of every locked package, the pin file, the
 * platform. apply recomputes it and refuses a host whose fingerprint moved.
 */
export function fingerprintReference(lock: Lockfile, facts: HostFacts): string {
  const { id, versionId, architecture } = facts.platform;
  // Decision 8: a package's line is its version, plus dpkg's want/status/flag when they are not the
  // usual ones, or "-"; only the lines other than the bare locked version are written, each after
  // the package's place in the lock's sorted order (the digest binds the order to keys and
  // versions, so the lines left out are known).
  const lines = [`${lock.digest} ${id} ${versionId} ${architecture}`];
  indexLock(lock).packages.forEach(({ key, entry }, i) => {
    const p = facts.packages.get(key);
    const line = !p
      ? '-'
      : p.want === 'install' && p.status === 'installed' && p.eflag === 'ok'
        ? p.version
        : `${p.version} ${p.want} ${p.status} ${p.eflag}`;
    if (line !== entry.version) lines.push(`${i} ${line}`);
  });
  lines.push(`pins ${facts.pinSha256 ?? 'absent'}`, '');
  return `sha256:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
}

function availableVersions(facts: HostFacts, key: string): string[] {
  return (policyOf(facts, key)?.versions ?? []).filter((v) => v.sources.length > 0).map((v) => v.version);
}

// Every host of a run gets the same rendered pins: hash them once, not once per host.
let lastPins: { text: string; sha: string } | undefined;
function pinsSha(text: string): string {
  if (lastPins?.text !== text) lastPins = { text, sha: sha256Hex(text) };
  return lastPins.sha;
}

/**
 * Pure: (lock, facts of one host) → that host's plan. `desiredPins` is the rendered pin file,
 * passed in so the planner stays free of templates and I/O.
 */
export function planHostReference(lock: Lockfile, facts: HostFacts, desiredPins: string): HostPlan {
  const actions: PackageAction[] = [];
  const blocked: Blocked[] = [];
  const notes: Note[] = [];
  const fp = fingerprintReference(lock, facts);

  for (const m of comparePlatform(lock, facts)) {
    if (m.field === 'codename') continue; // id + versionId already decide; codename only restates them
    blocked.push({
      package: null,
      version: null,
      reason: 'platform-mismatch',
      detail: `${m.field} is ${JSON.stringify(m.actual)}, the lock needs ${JSON.stringify(m.expected)}`,
    });
  }
  if (blocked.length > 0)
    return { name: facts.host, status: 'blocked', fingerprint: fp, actions: [], blocked, notes };

  for (const p of facts.problems) {
    if (p.type === 'broken-dpkg-state') {
      blocked.push({
        package: p.package ?? null,
        version: null,
        reason: 'broken-dpkg-state',
        detail: p.detail,
      });
    }
  }

  // A file no package owns cannot be converged by apt: the host is blocked until someone fixes it.
  const findings = compareHost(lock, facts);
  for (const f of findings) {
    if (f.type === 'file' && f.package === null) {
      blocked.push({
        package: null,
        version: null,
        reason: 'file-mismatch',
        detail: `unmanaged file ${f.path}: ${f.criu}`,
      });
    }
  }

  // Our own pins are read back only when a rival pin is suspected.
  let ourPins: Map<string, { version: string; priority: number }> | undefined;
  const ourPin = (key: string): { version: string } | undefined => {
    ourPins ??= facts.pinFile === null ? new Map() : parsePins(facts.pinFile);
    return ourPins.get(key) ?? ourPins.get(key.replace(/:all$/, ''));
  };
  const fileDrift = new Set(
    findings
      .filter((f) => f.type === 'file' && f.package !== null)
      .map((f) => (f.type === 'file' ? f.package : null)),
  );

  for (const { key, entry } of indexLock(lock).packages) {
    const want = entry.version;
    const got = facts.packages.get(key);
    let type: PackageAction['type'] | undefined;
    if (!got) type = 'install';
    else {
      const c = got.version === want ? 0 : compareVersions(got.version, want);
      if (c < 0) type = 'upgrade';
      else if (c > 0) type = 'downgrade';
      else if (fileDrift.has(key)) type = 'reinstall';
    }
    if (!type) continue;

    const available = availableVersions(facts, key);
    if (!available.some((v) => compareVersions(v, want) === 0)) {
      blocked.push({
        package: key,
        version: want,
        reason: 'version-unavailable',
        detail:
          available.length > 0
            ? `the node's apt sources offer ${available.join(', ')}, not ${want}`
            : `no apt source of the node offers ${key.split(':')[0]}; run plan --refresh if the sources changed`,
      });
      continue;
    }
    if (got?.want === 'hold') {
      blocked.push({
        package: key,
        version: want,
        reason: 'held',
        detail: `${key} is on hold (apt-mark unhold ${key.split(':')[0]} to let it move)`,
      });
      continue;
    }
    const rival = (policyOf(facts, key)?.versions ?? []).find((v) => {
      if (v.priority < PIN_PRIORITY || compareVersions(v.version, want) === 0) return false;
      const mine = ourPin(key);
      return !(mine && compareVersions(mine.version, v.version) === 0);
    });
    if (rival) {
      blocked.push({
        package: key,
        version: want,
        reason: 'conflicting-pin',
        detail: `another apt preference pins ${rival.version} at priority ${rival.priority} (≥ ${PIN_PRIORITY}); remove it from /etc/apt/preferences(.d)`,
      });
      continue;
    }
    actions.push({ type, package: key, from: got?.version ?? null, to: want });
  }

  if (lock.scope.kind === 'all') {
    const locked = indexLock(lock).keys;
    for (const [key, p] of facts.packages) {
      if (!locked.has(key)) notes.push({ type: 'extra-package', package: key, version: p.version });
    }
    notes.sort((a, b) => (a.package < b.package ? -1 : a.package > b.package ? 1 : 0));
  }

  actions.sort((a, b) => ACTION_ORDER[a.type] - ACTION_ORDER[b.type] || (a.package < b.package ? -1 : 1));
  const all: HostPlan['actions'] = [];
  const desiredSha = pinsSha(desiredPins);
  if (facts.pinSha256 !== desiredSha) all.push({ type: 'write-pins', path: PIN_FILE, sha256: desiredSha });
  all.push(...actions);
  const status: HostPlan['status'] = blocked.length > 0 ? 'blocked' : all.length > 0 ? 'changes' : 'ok';
  return { name: facts.host, status, fingerprint: fp, actions: all, blocked, notes };
}
