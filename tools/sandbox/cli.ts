import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs as parseArgv } from 'node:util';
import { CriuLockError, formatError } from '../../src/errors.js';
import { down, reset, status, up } from './fleet.js';

const USAGE = `usage: npm run sandbox -- <command> [options]
  up [--nodes N] [--reset] [--python] [--json]
                                      bring the fleet up (idempotent; default 5 nodes);
                                      --python: nodes with python3, for Ansible (a layer over the base)
  down                                stop every sshd, unmount everything, verify nothing is left
  status [--json]                     each node: port, scenario, sshd alive, mounted
  reset NODE...|--all [--python|--no-python]
                                      restore nodes to their scenario (with/without python3)
environment: CRIU_LOCK_SANDBOX_DIR (default /var/lib/criu-lock-sandbox)`;

interface Args {
  command: string | undefined;
  positional: string[];
  nodes: number | undefined;
  json: boolean;
  all: boolean;
  reset: boolean;
  python: boolean | undefined;
  debug: boolean;
  help: boolean;
}

export function parseArgs(argv: readonly string[]): Args {
  let parsed;
  try {
    parsed = parseArgv({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        nodes: { type: 'string', short: 'n' },
        json: { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        reset: { type: 'boolean', default: false },
        python: { type: 'boolean' },
        'no-python': { type: 'boolean' },
        debug: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
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
    positional: positionals.slice(1),
    nodes: v.nodes === undefined ? undefined : Number(v.nodes),
    json: v.json,
    all: v.all,
    reset: v.reset,
    python: v['no-python'] ? false : v.python,
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
        const s = await up({ nodes: a.nodes, reset: a.reset, ...(a.python ? { python: true } : {}) });
        if (a.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        else for (const n of s.nodes) process.stdout.write(`${n.name}  127.0.0.1:${n.port}  ${n.scenario}\n`);
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
      default:
        throw new CriuLockError('usage', `unknown command ${a.command}`, {
          hint: 'commands: up, down, status, reset',
        });
    }
  } catch (err) {
    process.stderr.write(`${formatError(err, debug)}\n`);
    return 1;
  }
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntry()) {
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
