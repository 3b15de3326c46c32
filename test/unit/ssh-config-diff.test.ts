/**
 * Differential test: criu-lock's ssh_config evaluation against OpenSSH's own (`ssh -G HOST`) for the
 * same files, over many host names and patterns (negation, `?`, Include in and out of Host blocks,
 * first-value-wins, ProxyJump/ProxyCommand competition, time units).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSshConfig, resolveSshConfig, type SshConfigResult } from '../../src/transport/ssh-config.js';

const haveSsh = (() => {
  try {
    execFileSync('ssh', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const dir = mkdtempSync(join(os.tmpdir(), 'criu-lock-sshcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

mkdirSync(join(dir, 'conf.d'));
writeFileSync(
  join(dir, 'conf.d', '10-db.conf'),
  `Host db-*
  User dbadmin
  Port 5022
Host db-7
  Port 7777
`,
);
writeFileSync(join(dir, 'conf.d', '20-cache.conf'), `Host cache?\n  ServerAliveInterval 1m30s\n`);
writeFileSync(join(dir, 'conf.d', '.hidden.conf'), `Host *\n  User hidden\n`);
writeFileSync(join(dir, 'inner.conf'), `Port 4000\nHost inner-other\n  Port 4001\n`);

const config = `# a realistic user config
Host bastion
  HostName bastion.example.net
  User jump
  Port 2222
  IdentityFile ~/.ssh/bastion_key
  IdentitiesOnly yes

Host web-* !web-legacy
  ProxyJump jump@bastion:2222
  User deploy
  IdentityFile ~/.ssh/id_%h_%r

Host web-legacy
  ProxyCommand ssh -W %h:%p oldgw
  ProxyJump never-used

Host app? "app 9"
  HostName %h.internal
  ConnectTimeout 7
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/.ssh/known_apps /etc/ssh/known_apps

Host app1
  User first-wins-not
  HostName overridden.example

Host inner-*
  Include ${dir}/inner.conf
  User after-include

# Include belongs to the Host block above it; this one applies to every host.
Host *
Include ${dir}/conf.d/*.conf

Host *.example.com,bad
  User comma-is-not-a-list

Host !nothing-* *
  ServerAliveInterval 15
  StrictHostKeyChecking yes
  ConnectTimeout 3
  IdentitiesOnly no
`;
const file = join(dir, 'config');
writeFileSync(file, config);

const HOSTS = [
  'bastion',
  'web-1',
  'web-22',
  'web-legacy',
  'app1',
  'app2',
  'app12',
  'APP1',
  'inner-a',
  'inner-other',
  'db-1',
  'db-7',
  'cache1',
  'cache12',
  'x.example.com',
  'bad',
  'nothing-here',
  'plain',
  '10.0.0.5',
];

const KEYS = [
  'hostname',
  'user',
  'port',
  'proxyjump',
  'proxycommand',
  'identitiesonly',
  'userknownhostsfile',
  'stricthostkeychecking',
  'connecttimeout',
  'serveraliveinterval',
  'identityfile',
] as const;

function sshG(host: string): Record<string, string> {
  const out = execFileSync('ssh', ['-F', file, '-G', host], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const r: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const k = line.slice(0, sp);
    const v = line.slice(sp + 1);
    if ((KEYS as readonly string[]).includes(k)) r[k] = k === 'identityfile' && r[k] ? `${r[k]}|${v}` : v;
  }
  return r;
}

/** What `ssh -G` prints for our result (ssh's defaults where the config says nothing). */
function asSshG(r: SshConfigResult, host: string): Record<string, string> {
  const home = os.userInfo().homedir;
  const hostname = (r.hostName?.value ?? host)
    .replace(/%(.)/g, (_a, t: string) => (t === 'h' ? host : t === '%' ? '%' : `%${t}`))
    .toLowerCase();
  const out: Record<string, string> = {
    hostname,
    user: r.user?.value ?? os.userInfo().username,
    port: String(r.port?.value ?? 22),
    identitiesonly: r.identitiesOnly?.value ? 'yes' : 'no',
    userknownhostsfile: (r.userKnownHostsFiles?.value ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'])
      .map((f) => (f.startsWith('~/') ? join(home, f.slice(2)) : f))
      .join(' '),
    stricthostkeychecking: { strict: 'true', 'accept-new': 'accept-new', off: 'false', ask: 'ask' }[
      r.strictHostKeyChecking?.value ?? 'ask'
    ],
    serveraliveinterval: String(r.serverAliveIntervalSeconds?.value ?? 0),
  };
  if (r.connectTimeoutSeconds) out.connecttimeout = String(r.connectTimeoutSeconds.value);
  else out.connecttimeout = 'none';
  if (r.proxyJump && r.proxyJump.value !== 'none') out.proxyjump = r.proxyJump.value;
  if (r.proxyCommand) out.proxycommand = r.proxyCommand.value;
  if (r.identityFiles.length > 0) out.identityfile = r.identityFiles.map((f) => f.value).join('|');
  return out;
}

describe.skipIf(!haveSsh)('ssh config resolution agrees with ssh -G', async () => {
  const loaded = await loadSshConfig(file, { homeDir: os.userInfo().homedir });

  it.each(HOSTS)('%s', (host) => {
    const ours = asSshG(resolveSshConfig(loaded, host), host);
    const theirs = sshG(host);
    if (theirs.connecttimeout === undefined) theirs.connecttimeout = 'none';
    // ssh -G lists its built-in default identities when none is configured; we leave that to auth.
    if (ours.identityfile === undefined) delete theirs.identityfile;
    expect(ours).toEqual(theirs);
  });

  it('names the file and line of each setting, Includes included', () => {
    const r = resolveSshConfig(loaded, 'db-7');
    // First obtained value wins: `Host db-*` comes before `Host db-7`.
    expect(r.port).toEqual({ value: 5022, origin: `${join(dir, 'conf.d', '10-db.conf')}:3` });
    expect(r.user?.origin).toBe(`${join(dir, 'conf.d', '10-db.conf')}:2`);
    expect(resolveSshConfig(loaded, 'bastion').hostName).toEqual({
      value: 'bastion.example.net',
      origin: `${file}:3`,
    });
  });
});
