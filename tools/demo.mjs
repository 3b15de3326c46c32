#!/usr/bin/env node
// `npm run demo`: the whole story on a real sandbox fleet (needs root, overlayfs, debootstrap).
// sandbox up → generate from the golden node (+ package store) → plan as Markdown → apply → check.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
step('bring up the sandbox fleet (golden + converged, behind, ahead, missing nodes)', ['node', join(root, 'dist-tools/tools/sandbox/cli.js'), 'up', '--nodes', '5', '--reset']);
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
step('check the fleet before converging (exit 2: drift)', cli('check', ...conn, '-l', lock), { allow: [0, 2] });
step('plan, as Markdown for a pull request, saved as JSON for apply', cli('plan', ...conn, '-l', lock, '-o', plan, '--format', 'markdown'));
step('apply the reviewed plan (node05 gets the golden-only package from the store)', cli('apply', ...conn, '-l', lock, plan));
step('check again: every node passes the CRIU gate', cli('check', ...conn, '-l', lock));
step('apply again: nothing to do', cli('apply', ...conn, '-l', lock, '--yes'));
process.stdout.write(`\nDone. The fleet is still up (${dir}); stop it with: npm run sandbox -- down\n`);
