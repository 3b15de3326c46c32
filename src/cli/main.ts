import yargs, { type Argv } from 'yargs';
import { CriuLockError, formatError } from '../errors.js';
import {
  DEFAULT_INVENTORY,
  DEFAULT_LOCKFILE,
  type CommandDeps,
  type CommonOptions,
  type Io,
} from '../commands/context.js';
import { processIo, realDeps } from '../commands/deps.js';

export { processIo } from '../commands/deps.js';

// Commands are loaded when run: `--help` and a usage error need neither SSH nor templates.
const commands = {
  generate: () => import('../commands/generate.js'),
  plan: () => import('../commands/plan.js'),
  apply: () => import('../commands/apply.js'),
  check: () => import('../commands/check.js'),
  vendor: () => import('../commands/vendor.js'),
  history: () => import('../commands/history.js'),
  rollback: () => import('../commands/rollback.js'),
  inventory: () => import('../commands/inventory.js'),
  export: () => import('../commands/export.js'),
  checkpoint: () => import('../commands/checkpoint.js'),
};

function common(y: Argv): Argv {
  return (
    y
      .option('inventory', {
        requiresArg: true,
        alias: 'i',
        type: 'string',
        default: DEFAULT_INVENTORY,
        describe: 'Ansible inventory: YAML, INI, ansible-inventory JSON or an executable printing it',
      })
      .option('forks', {
        requiresArg: true,
        type: 'string',
        default: 20,
        describe: 'hosts worked on at once',
      })
      .option('known-hosts', {
        requiresArg: true,
        type: 'string',
        describe: 'OpenSSH known_hosts file (default ~/.ssh/known_hosts)',
      })
      // No yargs defaults for these three: given on the command line they win over the ssh config, like `ssh -o`.
      .option('host-key-checking', {
        requiresArg: true,
        choices: ['strict', 'accept-new', 'off'] as const,
        describe: 'like StrictHostKeyChecking (default strict, or the ssh config)',
      })
      .option('connect-timeout', {
        requiresArg: true,
        type: 'string',
        describe: 'SSH connect timeout in seconds (default 10, or the ssh config)',
      })
      .option('ssh-config', {
        requiresArg: true,
        type: 'string',
        describe: "OpenSSH client config (default ~/.ssh/config; 'none' to skip)",
      })
      .option('vault-password-file', {
        requiresArg: true,
        type: 'string',
        describe: 'password for Ansible vault files in group_vars/host_vars',
      })
      .option('color', {
        type: 'boolean',
        default: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
        describe: 'colour output (--no-color to disable)',
      })
      .option('verbose', {
        alias: 'v',
        type: 'boolean',
        default: false,
        describe: 'per-phase timings and commands',
      })
      .option('debug', { type: 'boolean', default: false, describe: 'stack traces on errors' })
  );
}

function limit(y: Argv): Argv {
  return y.option('limit', {
    requiresArg: true,
    type: 'string',
    describe: "Ansible host pattern, e.g. 'web*:&dc1:!web03'",
  });
}

/** -l; without `defaulted` the default is applied by the handler, so it can tell -l was given. */
function lockOpt(y: Argv, defaulted = true): Argv {
  return y.option('lockfile', {
    requiresArg: true,
    alias: 'l',
    type: 'string',
    ...(defaulted
      ? { default: DEFAULT_LOCKFILE, describe: 'lockfile' }
      : { describe: `lockfile (default ${DEFAULT_LOCKFILE})` }),
  });
}

function storeOpt(y: Argv): Argv {
  return y.option('store', {
    requiresArg: true,
    type: 'string',
    describe: 'package store (default: criu-lock.debs/ beside the lockfile, used when it exists)',
  });
}

function vendorSources(y: Argv): Argv {
  return y
    .option('archive', {
      requiresArg: true,
      type: 'string',
      array: true,
      describe:
        'apt repository base URL to fetch locked versions from ("URL [SUITE [COMPONENT...]]"; repeatable)',
    })
    .option('rebuild', {
      type: 'boolean',
      default: false,
      describe: "rebuild what no source has from the golden node's installed files",
    });
}

/**
 * A number option's value, read strictly: decimal digits, with a fraction only where `fraction`.
 * These options are strings to yargs, whose own number type reads '' and ' ' as 0 and takes 0x10
 * and 1e1; undefined stays undefined, and a number is a default.
 */
export function numberOption(
  flag: string,
  v: unknown,
  o: { what: string; hint: string; fraction?: boolean },
): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  if (!(o.fraction ? /^\d{1,15}(?:\.\d{1,9})?$/ : /^\d{1,15}$/).test(text))
    throw new CriuLockError('usage', `${flag} must be ${o.what}, got ${JSON.stringify(text)}`, {
      hint: o.hint,
    });
  return Number(text);
}

/** The options that take a value per use (array: true); any other given twice is refused. */
const REPEATABLE = new Set(['archive', 'package', 'pid']);

function commonOptions(a: Record<string, unknown>): CommonOptions {
  const forks =
    numberOption('--forks', a.forks, { what: 'a positive integer', hint: 'e.g. --forks 20' }) ?? 20;
  const timeout =
    numberOption('--connect-timeout', a['connect-timeout'], {
      what: 'a positive number of seconds',
      hint: 'e.g. --connect-timeout 10',
      fraction: true,
    }) ?? 10;
  if (forks < 1)
    throw new CriuLockError('usage', `--forks must be a positive integer, got ${forks}`, {
      hint: 'e.g. --forks 20',
    });
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new CriuLockError('usage', `--connect-timeout must be a positive number of seconds`, {
      hint: 'e.g. --connect-timeout 10',
    });
  return {
    inventory: String(a.inventory),
    limit: a.limit as string | undefined,
    forks,
    knownHosts: a['known-hosts'] as string | undefined,
    hostKeyChecking: (a['host-key-checking'] ?? 'strict') as CommonOptions['hostKeyChecking'],
    sshConfig: a['ssh-config'] as string | undefined,
    vaultPasswordFile: a['vault-password-file'] as string | undefined,
    explicit: {
      knownHosts: a['known-hosts'] !== undefined,
      hostKeyChecking: a['host-key-checking'] !== undefined,
      connectTimeout: a['connect-timeout'] !== undefined,
    },
    connectTimeout: timeout,
    verbose: Boolean(a.verbose),
    debug: Boolean(a.debug),
    color: Boolean(a.color),
  };
}

function keepTransactions(v: unknown): number {
  const o = { what: 'a positive integer', hint: 'e.g. --keep-transactions 5' };
  const n = numberOption('--keep-transactions', v, o) ?? 5;
  if (n < 1)
    throw new CriuLockError('usage', `--keep-transactions must be ${o.what}, got ${n}`, { hint: o.hint });
  return n;
}

/** --max-fail-percentage, apply's and export's: 0 to 100. */
function maxFailPercentage(v: unknown): number | undefined {
  const o = { what: 'a number between 0 and 100', hint: 'e.g. --max-fail-percentage 20', fraction: true };
  const n = numberOption('--max-fail-percentage', v, o);
  if (n !== undefined && n > 100)
    throw new CriuLockError('usage', '--max-fail-percentage must be between 0 and 100', { hint: o.hint });
  return n;
}

function asList<T>(v: unknown): T[] {
  return v === undefined ? [] : Array.isArray(v) ? (v as T[]) : [v as T];
}

const flagName = (key: string): string => `${key.length === 1 ? '-' : '--'}${key}`;

/** yargs' validation messages as one line, in the flags' own spelling. */
export function usageMessage(text: string): string {
  const missing = /^Not enough arguments following: (\S+)$/.exec(text);
  if (missing) return `${flagName(missing[1]!)} needs a value`;
  const choice = /^Invalid values:\s+Argument: (\S+), Given: (.+), Choices: (.+)$/s.exec(text);
  if (choice) return `${flagName(choice[1]!)} ${choice[2]!} is not one of ${choice[3]!.replace(/"/g, '')}`;
  const both = /^Arguments (\S+) and (\S+) are mutually exclusive$/.exec(text);
  if (both) return `${flagName(both[1]!)} and ${flagName(both[2]!)} cannot be given together`;
  return text.replace(/\s*\n\s*/g, '; ');
}

/**
 * Parses argv, runs one command, returns the exit code (design.md's table). Only the bin sets
 * process.exitCode. The real dependencies are wired here once; tests may replace any of them.
 */
export async function main(
  argv: string[],
  io: Io = processIo(),
  overrides: Partial<Omit<CommandDeps, 'io'>> = {},
): Promise<number> {
  const deps = realDeps(io, overrides);
  const debug = argv.includes('--debug');
  let code = 0;
  const cli = yargs(argv)
    .scriptName('criu-lock')
    .usage(
      '$0 <command> [options]\n\nMake a Debian/Ubuntu fleet identical where CRIU looks: exact package versions and ELF build-IDs.',
    )
    .command(
      'generate',
      'read the golden node and write the lockfile',
      (y) =>
        vendorSources(storeOpt(common(y)))
          .option('golden', {
            requiresArg: true,
            type: 'string',
            describe: 'golden node (default: the single host of group "golden")',
          })
          .option('output', {
            requiresArg: true,
            alias: 'o',
            type: 'string',
            default: DEFAULT_LOCKFILE,
            describe: 'lockfile to write (- for stdout)',
          })
          .option('package', {
            requiresArg: true,
            type: 'string',
            array: true,
            describe: 'lock only this package (repeatable)',
          })
          .option('with-deps', {
            type: 'boolean',
            default: false,
            describe: "add the packages' installed dependency closure",
          })
          .option('pid', {
            requiresArg: true,
            type: 'string',
            array: true,
            describe: 'lock exactly what CRIU checks for this process (repeatable)',
          })
          .option('checkpoint', {
            requiresArg: true,
            type: 'string',
            describe: 'lock exactly what this CRIU checkpoint directory needs',
          })
          .option('vendor', {
            type: 'boolean',
            default: false,
            describe: 'then copy every locked .deb into the package store (see vendor)',
          })
          .example(
            '$0 generate -i inventory.yaml -o criu-lock.yaml',
            'lock every installed package of the golden node',
          )
          .example('$0 generate --package libc6 --with-deps', 'lock libc6 and what it depends on')
          .example('$0 generate --pid 4242', 'lock the files process 4242 maps')
          .example('$0 generate --vendor', 'lock, then vendor the exact .debs into criu-lock.debs/'),
      async (a) => {
        if (a.vendor && a.output === '-')
          throw new CriuLockError('usage', '--vendor needs a lockfile on disk, not -o -', {
            hint: 'e.g. criu-lock generate -o criu-lock.yaml --vendor',
          });
        // The package store's options are vendor's: checked before the golden node is read.
        const archives = asList<string>(a.archive);
        if (!a.vendor && (archives.length > 0 || a.rebuild || a.store !== undefined))
          throw new CriuLockError(
            'usage',
            '--archive, --rebuild and --store take effect only with --vendor',
            {
              hint: 'add --vendor to copy the locked .debs into the package store, or drop them',
            },
          );
        if (a.vendor) {
          const { checkArchive } = await import('../store/vendor.js');
          for (const x of archives) checkArchive(x);
        }
        if (a.checkpoint !== undefined) {
          if (a.pid !== undefined || a.package !== undefined || a['with-deps'])
            throw new CriuLockError(
              'usage',
              '--checkpoint cannot be combined with --pid, --package or --with-deps',
              { hint: 'the checkpoint alone says what to lock' },
            );
          const { runGenerateCheckpoint } = await commands.checkpoint();
          code = await runGenerateCheckpoint(
            { ...commonOptions(a), checkpoint: a.checkpoint, golden: a.golden, output: a.output },
            deps,
          );
        } else {
          const { runGenerate } = await commands.generate();
          code = await runGenerate(
            {
              ...commonOptions(a),
              golden: a.golden,
              output: a.output,
              packages: asList<string>(a.package),
              withDeps: a['with-deps'],
              pids: asList<string | number>(a.pid).map((p) =>
                numberOption('--pid', p, { what: 'a process id', hint: 'e.g. --pid 4242' })!,
              ),
            },
            deps,
          );
        }
        if (code === 0 && a.vendor) {
          const [{ vendorWith }, { loadLock }] = await Promise.all([
            commands.vendor(),
            import('../lock/lockfile.js'),
          ]);
          const lockfile = String(a.output);
          code = await vendorWith(
            await loadLock(lockfile),
            {
              ...commonOptions(a),
              lockfile,
              golden: a.golden,
              store: a.store as string | undefined,
              archives,
              rebuild: Boolean(a.rebuild),
            },
            deps,
          );
        }
      },
    )
    .command(
      'plan',
      'show what apply would change on each host',
      (y) =>
        storeOpt(lockOpt(limit(common(y))))
          .option('out', {
            requiresArg: true,
            alias: 'o',
            type: 'string',
            describe: 'save the JSON plan for `apply PLANFILE`',
          })
          .option('format', {
            requiresArg: true,
            choices: ['text', 'markdown', 'json'] as const,
            default: 'text' as const,
          })
          .option('detailed-exitcode', {
            type: 'boolean',
            default: false,
            describe: '0 no changes, 2 changes, 1 error, 3 host failures',
          })
          .option('refresh', {
            type: 'boolean',
            default: false,
            describe: 'run apt-get update on the hosts first',
          })
          .example(
            '$0 plan -o plan.json --format markdown > plan.md',
            'a reviewable plan for a pull request',
          ),
      async (a) => {
        const { runPlan } = await commands.plan();
        code = await runPlan(
          {
            ...commonOptions(a),
            lockfile: String(a.lockfile),
            store: a.store as string | undefined,
            out: a.out,
            format: a.format,
            detailedExitcode: a['detailed-exitcode'],
            refresh: a.refresh,
          },
          deps,
        );
      },
    )
    .command(
      'apply [planfile]',
      'converge hosts to the lock (pins + one exact apt transaction), then verify',
      (y) =>
        storeOpt(lockOpt(limit(common(y))))
          .positional('planfile', { type: 'string', describe: 'a plan saved by `plan -o`; refused if stale' })
          .option('check', {
            type: 'boolean',
            default: false,
            describe: 'show what would change, change nothing',
          })
          .option('yes', { type: 'boolean', default: false, describe: 'do not ask for confirmation' })
          .option('serial', {
            requiresArg: true,
            type: 'string',
            describe: 'batches like Ansible serial: 1,5,25%',
          })
          .option('max-fail-percentage', {
            requiresArg: true,
            type: 'string',
            describe: 'stop later batches when more than P% of a batch failed',
          })
          .option('skip-unavailable', {
            type: 'boolean',
            default: false,
            describe: 'converge hosts even if some locked versions are unavailable',
          })
          .option('playbook', {
            requiresArg: true,
            type: 'string',
            describe: 'playbook with pre_tasks/post_tasks (default playbooks/converge.yaml)',
          })
          .option('format', {
            requiresArg: true,
            choices: ['text', 'json'] as const,
            default: 'text' as const,
          })
          .option('capture', {
            type: 'boolean',
            default: true,
            describe: 'record a transaction for rollback first (--no-capture: faster, no rollback)',
          })
          .option('keep-transactions', {
            requiresArg: true,
            type: 'string',
            default: 5,
            describe: 'transactions kept per host',
          })
          .example('$0 apply plan.json', 'apply exactly a reviewed plan')
          .example('$0 apply --yes --serial 1,25%', 'converge one host, then a quarter at a time'),
      async (a) => {
        const mfp = maxFailPercentage(a['max-fail-percentage']);
        const { runApply } = await commands.apply();
        code = await runApply(
          {
            ...commonOptions(a),
            lockfile: String(a.lockfile),
            store: a.store as string | undefined,
            planfile: a.planfile,
            check: a.check,
            yes: a.yes,
            serial: a.serial,
            maxFailPercentage: mfp,
            skipUnavailable: a['skip-unavailable'],
            playbook: a.playbook,
            format: a.format,
            capture: a.capture,
            keepTransactions: keepTransactions(a['keep-transactions']),
          },
          deps,
        );
      },
    )
    .command(
      'check',
      'pre-migration gate: does each host match the lock exactly as CRIU checks it?',
      (y) =>
        lockOpt(limit(common(y)), false)
          .option('format', {
            requiresArg: true,
            choices: ['text', 'markdown', 'json'] as const,
            default: 'text' as const,
          })
          .option('checkpoint', {
            requiresArg: true,
            type: 'string',
            describe: 'check against a CRIU checkpoint directory instead of a lockfile',
          })
          .example('$0 check --limit node-b', 'exit 0 if a restore on node-b would pass, 2 if not')
          .example(
            '$0 check --checkpoint /srv/ckpt --limit node-b',
            'will this checkpoint restore on node-b?',
          ),
      async (a) => {
        if (a.checkpoint !== undefined) {
          if (a.lockfile !== undefined) {
            throw new CriuLockError('usage', '-l and --checkpoint cannot be given together', {
              hint: 'check against a lockfile (-l) or against a checkpoint directory (--checkpoint)',
            });
          }
          const { runCheckCheckpoint } = await commands.checkpoint();
          code = await runCheckCheckpoint(
            { ...commonOptions(a), checkpoint: a.checkpoint, format: a.format },
            deps,
          );
          return;
        }
        const { runCheck } = await commands.check();
        code = await runCheck(
          {
            ...commonOptions(a),
            lockfile: typeof a.lockfile === 'string' ? a.lockfile : DEFAULT_LOCKFILE,
            format: a.format,
          },
          deps,
        );
      },
    )
    .command(
      'vendor',
      'copy the exact .deb of every locked package into the package store',
      (y) =>
        vendorSources(storeOpt(lockOpt(common(y))))
          .option('golden', {
            requiresArg: true,
            type: 'string',
            describe: 'golden node (default: the single host of group "golden")',
          })
          .option('verify', {
            type: 'boolean',
            default: false,
            describe: 're-check every store file against the manifest and the lock',
          })
          .example('$0 vendor', "store the golden node's .debs in criu-lock.debs/ beside the lock")
          .example(
            '$0 vendor --archive http://snapshot.example/debian/20240101T000000Z/ --rebuild',
            'also try a snapshot, then rebuild from installed files',
          )
          .example('$0 vendor --verify', 'exit 0 only if every stored file still matches'),
      async (a) => {
        const { runVendor } = await commands.vendor();
        code = await runVendor(
          {
            ...commonOptions(a),
            lockfile: String(a.lockfile),
            golden: a.golden,
            store: a.store as string | undefined,
            archives: asList<string>(a.archive),
            rebuild: Boolean(a.rebuild),
            verify: Boolean(a.verify),
          },
          deps,
        );
      },
    )
    .command(
      'history',
      'list the transactions recorded on each host (what apply and rollback changed)',
      (y) =>
        limit(common(y))
          .option('format', {
            requiresArg: true,
            choices: ['text', 'json'] as const,
            default: 'text' as const,
          })
          .example('$0 history --limit node-b', "node-b's transactions, newest first"),
      async (a) => {
        const { runHistory } = await commands.history();
        code = await runHistory({ ...commonOptions(a), format: a.format }, deps);
      },
    )
    .command(
      'rollback',
      'undo the last transaction (or --to TXID) from its captured .debs, then verify',
      (y) =>
        limit(common(y))
          .option('to', {
            requiresArg: true,
            type: 'string',
            describe: 'the transaction to undo (default: the most recent)',
          })
          .option('last', { type: 'boolean', describe: 'undo the most recent transaction (the default)' })
          .option('check', {
            type: 'boolean',
            default: false,
            describe: 'show what would change, change nothing',
          })
          .option('yes', { type: 'boolean', default: false, describe: 'do not ask for confirmation' })
          .option('force', {
            type: 'boolean',
            default: false,
            describe: 'roll back even if the host changed since the transaction',
          })
          .option('keep-transactions', {
            requiresArg: true,
            type: 'string',
            default: 5,
            describe: 'transactions kept per host',
          })
          .option('format', {
            requiresArg: true,
            choices: ['text', 'json'] as const,
            default: 'text' as const,
          })
          .conflicts('to', 'last')
          .example('$0 rollback --limit node-b --check', 'what undoing the last apply on node-b would do')
          .example('$0 rollback --limit node-b --to 20261129T011233Z-a1b2c3 --yes', 'undo one transaction'),
      async (a) => {
        const { runRollback } = await commands.rollback();
        code = await runRollback(
          {
            ...commonOptions(a),
            to: a.to,
            check: a.check,
            yes: a.yes,
            force: a.force,
            keepTransactions: keepTransactions(a['keep-transactions']),
            format: a.format,
          },
          deps,
        );
      },
    )
    .command(
      'inventory',
      'show the resolved hosts and their connection settings',
      (y) =>
        limit(common(y))
          .option('format', {
            requiresArg: true,
            choices: ['text', 'json'] as const,
            default: 'text' as const,
          })
          .example('$0 inventory -i inventory.yaml --limit fleet', 'list the fleet hosts'),
      async (a) => {
        const { runInventory } = await commands.inventory();
        code = await runInventory({ ...commonOptions(a), format: a.format }, deps);
      },
    )
    .command(
      'export <target>',
      'write the lock as a self-contained Ansible project that converges hosts as apply does',
      (y) =>
        storeOpt(lockOpt(y))
          .positional('target', { choices: ['ansible'] as const, describe: 'what to export to' })
          .option('output', {
            requiresArg: true,
            alias: 'o',
            type: 'string',
            demandOption: true,
            describe: 'directory to write (new, empty, or an earlier export, which is updated)',
          })
          .option('serial', {
            requiresArg: true,
            type: 'string',
            describe: "the play's serial, as apply --serial: 1,5,25%",
          })
          .option('max-fail-percentage', {
            requiresArg: true,
            type: 'string',
            describe: "the play's max_fail_percentage, as apply's",
          })
          .option('debug', { type: 'boolean', default: false, describe: 'stack traces on errors' })
          .example(
            '$0 export ansible -l criu-lock.yaml -o criu-lock-ansible',
            'then: ansible-playbook -i inventory.yaml criu-lock-ansible/site.yml',
          )
          .example(
            '$0 export ansible -o out --serial 1,25% --max-fail-percentage 10',
            'one host first, then a quarter at a time',
          ),
      async (a) => {
        const { runExport } = await commands.export();
        code = await runExport(
          {
            target: a.target as 'ansible',
            lockfile: String(a.lockfile),
            output: String(a.output),
            store: a.store as string | undefined,
            serial: a.serial,
            maxFailPercentage: maxFailPercentage(a['max-fail-percentage']),
          },
          deps,
        );
      },
    )
    .demandCommand(
      1,
      'name a command: generate, vendor, plan, apply, check, history, rollback, inventory or export',
    )
    // A value flag given nothing (`--serial` last on the line, or `--serial "$UNSET"`) must not fall
    // back to its default: a staged rollout would become one batch of every host. requiresArg on
    // each value option catches the first; this, the empty string.
    .check((a) => {
      // A flag that takes one value, given twice: yargs makes an array of it (`-o a -o b` became
      // the path "a,b"). Which one was meant is not ours to guess.
      const twice = Object.keys(a)
        .filter((k) => k !== '_' && !/[A-Z]/.test(k) && !REPEATABLE.has(k) && Array.isArray(a[k]))
        .sort((x, y) => y.length - x.length);
      if (twice[0] !== undefined) {
        const flag = `${twice[0].length === 1 ? '-' : '--'}${twice[0]}`;
        throw new CriuLockError('usage', `${flag} was given more than once`, {
          hint: `give ${flag} once (only --archive, --package and --pid repeat)`,
        });
      }
      const empty = Object.keys(a)
        .filter((k) => k !== '_' && k !== '$0' && !/[A-Z]/.test(k))
        .filter((k) => a[k] === '' || (Array.isArray(a[k]) && (a[k] as unknown[]).includes('')))
        .sort((x, y) => y.length - x.length);
      if (empty[0] !== undefined) {
        const flag = `${empty[0].length === 1 ? '-' : '--'}${empty[0]}`;
        throw new CriuLockError('usage', `${flag} was given an empty value`, {
          hint: `give ${flag} a value, or leave it out for its default`,
        });
      }
      return true;
    })
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    // Throw, so validation errors (unknown flags, bad choices) stop before any command runs.
    .fail((msg, err) => {
      // yargs' own parse errors (a flag without its value) come as a YError; anything else is ours.
      if (err && err.name !== 'YError') throw err;
      throw new CriuLockError('usage', usageMessage(msg ?? err?.message ?? ''), {
        hint: 'see criu-lock --help',
      });
    });
  try {
    let helpShown = false;
    await cli.parseAsync(argv, {}, (err, _parsed, output) => {
      if (output && !err) {
        io.out(output + '\n');
        helpShown = true;
      }
    });
    return helpShown ? 0 : code;
  } catch (err) {
    io.err(formatError(err, debug) + '\n');
    return 1;
  }
}
