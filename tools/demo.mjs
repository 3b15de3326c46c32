#!/usr/bin/env node
// `npm run demo`: the whole story on a real sandbox fleet (needs root, overlayfs, debootstrap).
// sandbox up → generate from the golden node (+ package store) → plan as Markdown → apply → check;
// then the real CRIU: checkpoint on node01, check --checkpoint, a failing and a passing restore.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dir = process.env.CRIU_LOCK_SANDBOX_DIR ?? '/var/lib/criu-lock-sandbox';
const work = join(dir, 'demo');

function step(title, argv, { allow = [0] } = {}) {
  process.stdout.write(`\n\u001b[1m==> ${title}\u001b[0m\n$ ${argv.join(' ')}\n`);
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit', cwd: root });
  if (r.error) throw r.error;
  if (!allow.includes(r.status)) {
    process.stderr.write(`demo: step "${title}" exited ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
  return r.status;
}

const cli = (...args) => ['node', join(root, 'dist/bin/criu-lock.js'), ...args];
step('bring up the sandbox fleet (golden + converged, behind, ahead, missing nodes)', [
  'node',
  join(root, 'dist-tools/tools/sandbox/cli.js'),
  'up',
  '--nodes',
  '5',
  '--reset',
]);
const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
const conn = ['-i', state.inventory, '--known-hosts', state.knownHosts];
spawnSync('mkdir', ['-p', work]);
const lock = join(work, 'criu-lock.yaml');
const plan = join(work, 'plan.json');
step('inventory', cli('inventory', ...conn));
step(
  'generate the lockfile from the golden node, and vendor every locked .deb into the package store (rebuilding what no repository serves)',
  cli('generate', ...conn, '-o', lock, '--vendor', '--rebuild'),
);
step('check the fleet before converging (exit 2: drift)', cli('check', ...conn, '-l', lock), {
  allow: [0, 2],
});
step(
  'plan, as Markdown for a pull request, saved as JSON for apply',
  cli('plan', ...conn, '-l', lock, '-o', plan, '--format', 'markdown'),
);
step(
  'apply the reviewed plan (node05 gets the golden-only package from the store)',
  cli('apply', ...conn, '-l', lock, plan),
);
step('check again: every node passes the CRIU gate', cli('check', ...conn, '-l', lock));
step('apply again: nothing to do', cli('apply', ...conn, '-l', lock, '--yes'));

// Part two: the real CRIU. A process on the golden node is checkpointed; node03 carries real glibc
// drift (bookworm-security's build instead of the point release's).
const sandbox = (...args) => ['node', join(root, 'dist-tools/tools/sandbox/cli.js'), ...args];
step(
  'real CRIU: the fleet again, node03 with the other real libc6 build; fetch CRIU 4.1.1 once',
  sandbox('up', '--nodes', '5', '--reset', '--libc-drift', '--criu'),
);
const nodes = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).nodes;
const rootOf = (name) => nodes.find((n) => n.name === name).root;
const CKPT = '/tmp/criu-lock-demo-ckpt';
process.stdout.write(
  `\n\u001b[1m==> start a process on node01 that maps libc and libfleet\u001b[0m\n$ npm run sandbox -- spawn node01 /usr/bin/fleet-tool tick\n`,
);
const spawned = spawnSync(
  'node',
  [join(root, 'dist-tools/tools/sandbox/cli.js'), 'spawn', 'node01', '/usr/bin/fleet-tool', 'tick'],
  { encoding: 'utf8' },
);
const pid = spawned.stdout.trim();
if (spawned.status !== 0 || !/^\d+$/.test(pid)) {
  process.stderr.write(`demo: spawn failed: ${spawned.stderr}\n`);
  process.exit(1);
}
process.stdout.write(`${pid}\n`);
rmSync(join(rootOf('node01'), CKPT), { recursive: true, force: true });
mkdirSync(join(rootOf('node01'), CKPT), { recursive: true });
step('checkpoint it with CRIU (inside node01)', sandbox('criu', 'node01', 'dump', '-t', pid, '-D', CKPT));
const images = join(work, 'checkpoint');
rmSync(images, { recursive: true, force: true });
cpSync(join(rootOf('node01'), CKPT), images, { recursive: true });
step(
  'will this checkpoint restore on the fleet? (no lockfile: the checkpoint says what CRIU will check)',
  cli('check', ...conn, '--checkpoint', images),
  { allow: [0, 2] },
);
const toNode = (name) => {
  rmSync(join(rootOf(name), CKPT), { recursive: true, force: true });
  cpSync(images, join(rootOf(name), CKPT), { recursive: true });
};
const pidFree = () => {
  const until = Date.now() + 10_000;
  while (existsSync(`/proc/${pid}`) && Date.now() < until) spawnSync('sleep', ['0.05']);
};
toNode('node03');
step(
  'restore it on node03 with the real CRIU: it fails with the line check printed',
  sandbox('criu', 'node03', 'restore', '-d', '-D', CKPT),
  { allow: [0, 1] },
);
const ckLock = join(work, 'checkpoint.yaml');
step(
  'lock exactly what the checkpoint needs',
  cli('generate', ...conn, '--checkpoint', images, '-o', ckLock),
);
step(
  'converge node03 to it (a real glibc upgrade among them)',
  cli('apply', ...conn, '-l', ckLock, '--limit', 'node03', '--yes'),
);
step(
  'check node03 against the checkpoint again',
  cli('check', ...conn, '--checkpoint', images, '--limit', 'node03'),
);
pidFree();
step('restore on node03 again: it succeeds', sandbox('criu', 'node03', 'restore', '-d', '-D', CKPT));
step('the restored process runs on node03 (its name counts)', [
  'sh',
  '-c',
  `cat /proc/${pid}/comm; sleep 0.5; cat /proc/${pid}/comm`,
]);
try {
  process.kill(Number(pid), 'SIGKILL');
} catch {
  // already gone
}
process.stdout.write(`\nDone. The fleet is still up (${dir}); stop it with: npm run sandbox -- down\n`);
