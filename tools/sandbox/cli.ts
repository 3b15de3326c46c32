import { parseArgs as parseArgv } from 'node:util';
import { CriuLockError, formatError } from '../../src/errors.js';
import { inNodeNamespace, runCriu, spawnInNode } from './criu.js';
import { down, reset, status, up } from './fleet.js';
import { readState } from './state.js';
import { isMainModule } from '../paths.js';

const USAGE = `usage: npm run sandbox -- <command> [options]
  up [--nodes N (≤ 5000)] [--reset] [--json] [--python] [--libc-drift] [--criu] [--converged]
                                      bring the fleet up (idempotent; default 5 nodes);
                                      --python: nodes with python3, for Ansible (a layer over the base);
                                      --libc-drift: behind nodes get the other real libc6 build;
                                      --criu: fetch and cache the real CRIU (trixie's 4.1.1);
                                      --converged: no package drift (every node like the golden)
  down                                stop every sshd, unmount everything, verify nothing is left
  status [--json]                     each node: port, scenario, sshd alive, mounted
  reset NODE...|--all [--python|--no-python]
                                      restore nodes to their scenario (with/without python3)
  criu NODE ARGS...                   run the real CRIU inside NODE (private mount namespace);
                                      with -t PID of a process spawned in a node, in its namespace
  spawn NODE CMD...                   start CMD detached inside NODE so CRIU can dump it; prints its pid
environment: CRIU_LOCK_SANDBOX_DIR (default /var/lib/criu-lock-sandbox)`;

interface Args {
  command: string | undefined;
  positional: string[];
  nodes: number | undefined;
  json: boolean;
  all: boolean;
  reset: boolean;
  python: boolean | undefined;
  libcDrift: boolean;
  criu: boolean;
  converged: boolean;
  debug: boolean;
  help: boolean;
}

const OPTIONS = {
  nodes: { type: 'string', short: 'n' },
  json: { type: 'boolean', default: false },
  all: { type: 'boolean', default: false },
  reset: { type: 'boolean', default: false },
  python: { type: 'boolean' },
  'no-python': { type: 'boolean' },
  'libc-drift': { type: 'boolean', default: false },
  criu: { type: 'boolean', default: false },
  converged: { type: 'boolean', default: false },
  debug: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * `criu NODE ARGS...` and `spawn NODE CMD...`: what follows NODE (after an optional `--`) belongs
 * to CRIU or to the command, not to us. Returns our own part and that pass-through part.
 */
function splitPassThrough(argv: readonly string[]): { own: string[]; rest: string[] } {
  const { tokens } = parseArgv({
    args: [...argv],
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: OPTIONS,
  });
  const positionals = tokens.filter((t) => t.kind === 'positional');
  const [command, node] = positionals;
  if (command === undefined || node === undefined || (command.value !== 'criu' && command.value !== 'spawn'))
    return { own: [...argv], rest: [] };
  const rest = argv.slice(node.index + 1);
  return { own: argv.slice(0, node.index + 1), rest: rest[0] === '--' ? rest.slice(1) : rest };
}

export function parseArgs(argv: readonly string[]): Args {
  const { own, rest } = splitPassThrough(argv);
  let parsed;
  try {
    parsed = parseArgv({ args: own, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    // node:util's messages name the option ("Unknown option '--x'"); keep them, add the hint.
    throw new CriuLockError('usage', (err as Error).message.split('\n')[0] ?? 'invalid arguments', {
      hint: 'see `npm run sandbox -- --help`',
    });
  }
  const { values: v, positionals } = parsed;
  if (v.nodes !== undefined && !/^\d+$/.test(v.nodes)) {
    throw new CriuLockError('usage', `--nodes needs a number, got ${v.nodes}`, {
      hint: USAGE.split('\n')[1]?.trim(),
    });
  }
  return {
    command: positionals[0],
    positional: [...positionals.slice(1), ...rest],
    nodes: v.nodes === undefined ? undefined : Number(v.nodes),
    json: v.json,
    all: v.all,
    reset: v.reset,
    python: v['no-python'] ? false : v.python,
    libcDrift: v['libc-drift'],
    criu: v.criu,
    converged: v.converged,
    debug: v.debug,
    help: v.help,
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  let debug = argv.includes('--debug');
  try {
    const a = parseArgs(argv);
    debug = a.debug;
    if (a.help || a.command === undefined) {
      process.stdout.write(`${USAGE}\n`);
      return a.help ? 0 : 1;
    }
    switch (a.command) {
      case 'up': {
        const s = await up({
          nodes: a.nodes,
          reset: a.reset,
          ...(a.python ? { python: true } : {}),
          libcDrift: a.libcDrift,
          criu: a.criu,
          converged: a.converged,
        });
        if (a.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        else
          for (const n of s.nodes)
            process.stdout.write(
              `${n.name}  127.0.0.1:${n.port}  ${n.scenario}${n.libc ? ` (libc6 ${n.libc})` : ''}\n`,
            );
        if (!a.json) {
          const n0 = s.nodes[0];
          if (n0)
            process.stdout.write(
              `try: ssh -i ${s.key} -o UserKnownHostsFile=${s.knownHosts} -p ${n0.port} root@127.0.0.1 dpkg-query -W\n`,
            );
        }
        return 0;
      }
      case 'down': {
        const r = await down();
        return r.leftMounts.length || r.leftPids.length ? 1 : 0;
      }
      case 'status': {
        const st = status();
        if (a.json) {
          process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
        } else if (st.nodes.length === 0) {
          process.stdout.write(`no sandbox is up in ${st.dir}\n`);
        } else {
          process.stdout.write('NODE     PORT   SCENARIO   SSHD        MOUNTED\n');
          for (const n of st.nodes) {
            const sshd = n.sshdAlive ? `up(${n.sshdPid})` : 'down';
            process.stdout.write(
              `${n.name.padEnd(8)} ${String(n.port).padEnd(6)} ${n.scenario.padEnd(10)} ${sshd.padEnd(11)} ${n.mounted ? 'yes' : 'no'}\n`,
            );
          }
        }
        return st.nodes.every((n) => n.sshdAlive && n.mounted) ? 0 : 3;
      }
      case 'reset': {
        if (!a.all && a.positional.length === 0)
          throw new CriuLockError('usage', 'reset needs NODE... or --all');
        await reset(a.all ? 'all' : a.positional, a.python === undefined ? {} : { python: a.python });
        return 0;
      }
      case 'criu':
      case 'spawn': {
        const [name, ...rest] = a.positional;
        if (name === undefined || rest.length === 0)
          throw new CriuLockError(
            'usage',
            `${a.command} needs NODE and ${a.command === 'criu' ? 'criu arguments' : 'a command'}`,
            {
              hint:
                a.command === 'criu'
                  ? 'e.g. npm run sandbox -- criu node01 check'
                  : 'e.g. npm run sandbox -- spawn node01 /usr/bin/fleet-tool tick',
            },
          );
        const node = status().nodes.find((n) => n.name === name);
        const st = readState();
        const root = st?.nodes.find((n) => n.name === name)?.root;
        if (!node || !root)
          throw new CriuLockError('usage', `no node named ${name} in the sandbox`, {
            hint: 'see `npm run sandbox -- status`',
          });
        if (a.command === 'spawn') {
          process.stdout.write(`${await spawnInNode(root, rest)}\n`);
          return 0;
        }
        const t = rest.findIndex((x) => x === '-t' || x === '--tree');
        const pid =
          t >= 0
            ? Number(rest[t + 1])
            : Number(/^--tree=(\d+)$/.exec(rest.find((x) => x.startsWith('--tree=')) ?? '')?.[1]);
        const r = await runCriu(
          root,
          rest,
          Number.isInteger(pid) && pid > 0 && inNodeNamespace(pid) ? { enterPid: pid } : {},
        );
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        return r.exitCode;
      }
      default:
        throw new CriuLockError('usage', `unknown command ${a.command}`, {
          hint: 'commands: up, down, status, reset, criu, spawn',
        });
    }
  } catch (err) {
    process.stderr.write(`${formatError(err, debug)}\n`);
    return 1;
  }
}

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${formatError(err, true)}\n`);
      process.exitCode = 1;
    },
  );
}
