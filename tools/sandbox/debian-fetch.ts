import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriuLockError } from '../../src/errors.js';
import { findSource, type Mirror } from './base.js';
import { runOk } from './exec.js';

/**
 * apt-get / apt-cache against a private sources list and private state, cache and preference
 * dirs: nothing of the machine's own apt configuration or state is read or changed except the
 * mirror URI, which comes from the machine's apt sources (never written into the code).
 */
export interface PrivateApt {
  dir: string;
  opts: string[];
}

const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface SourceSpec {
  /** Suite whose mirror to look up in the machine's apt sources (bookworm, bookworm-security). */
  lookup: string;
  /** Suite to use with that mirror (defaults to lookup; trixie is served by bookworm's mirror). */
  suite?: string;
}

function sourceLine(m: Mirror, suite: string): string {
  const keyring = m.keyring ?? DEFAULT_KEYRING;
  return `deb [signed-by=${keyring}] ${m.uri} ${suite} main`;
}

/** A fresh private apt environment in `dir`, with `apt-get update` done. */
export async function privateApt(
  dir: string,
  sources: readonly SourceSpec[],
  log: (s: string) => void,
): Promise<PrivateApt> {
  const lines = sources.map((s) => sourceLine(findSource(s.lookup), s.suite ?? s.lookup));
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc', 'download'])
    mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'etc/sources.list'), `${lines.join('\n')}\n`);
  const opts = [
    '-o',
    `Dir::Etc::SourceList=${join(dir, 'etc/sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/dev/null',
    '-o',
    `Dir::State=${join(dir, 'state')}`,
    '-o',
    `Dir::State::status=${join(dir, 'state/status')}`,
    '-o',
    `Dir::Cache=${join(dir, 'cache')}`,
    '-o',
    'Dir::Etc::Preferences=/dev/null',
    '-o',
    'Dir::Etc::PreferencesParts=/dev/null',
    '-o',
    'APT::Architecture=amd64',
    '-o',
    'APT::Sandbox::User=root',
    '-o',
    'Acquire::Languages=none',
  ];
  writeFileSync(join(dir, 'state/status'), '');
  log(`apt-get update (private state in ${dir}): ${sources.map((s) => s.suite ?? s.lookup).join(', ')}`);
  await runOk(['apt-get', ...opts, '-q', 'update'], { timeoutMs: 300_000 });
  return { dir, opts };
}

/** `apt-cache policy PKG`: every version with the suites serving it. */
export async function policyVersions(apt: PrivateApt, pkg: string): Promise<PolicyRow[]> {
  return parsePolicy((await runOk(['apt-cache', ...apt.opts, 'policy', pkg])).stdout);
}

export interface PolicyRow {
  version: string;
  /** Suites whose Packages list this version ("bookworm", "bookworm-security"). */
  suites: string[];
}

/** Parses one package's `apt-cache policy` version table (pure). */
export function parsePolicy(stdout: string): PolicyRow[] {
  const out: PolicyRow[] = [];
  let cur: PolicyRow | undefined;
  for (const line of stdout.split('\n')) {
    // Version rows: "     1.0-1 500", or " *** 1.0-1 500" for the installed one.
    const v = /^ (?:\*\*\*| {3}) (\S+) -?\d+$/.exec(line);
    if (v?.[1]) {
      cur = { version: v[1], suites: [] };
      out.push(cur);
      continue;
    }
    const s = /^\s+-?\d+ \S+ (\S+)\/main /.exec(line);
    if (s?.[1] && cur) cur.suites.push(s[1]);
  }
  return out;
}

/** Downloads `pkg=version` requests into apt.dir/download and returns the .deb paths. */
export async function download(apt: PrivateApt, requests: readonly string[]): Promise<string[]> {
  const dl = join(apt.dir, 'download');
  await runOk(['apt-get', ...apt.opts, '-q', 'download', ...requests], { cwd: dl, timeoutMs: 600_000 });
  const debs = readdirSync(dl).filter((f) => f.endsWith('.deb'));
  if (debs.length < requests.length) {
    throw new CriuLockError(
      'sandbox',
      `apt-get download fetched ${debs.length} of ${requests.length} packages`,
      {
        hint: `see ${dl}`,
      },
    );
  }
  return debs.map((f) => join(dl, f));
}
