/** The dev tools' process runner (execa) and flag parsers (node:util parseArgs). */
import { describe, expect, it } from 'vitest';
import { ArgsError, parseArgs as benchArgs } from '../../tools/bench/args.js';
import { spawnTimed } from '../../tools/bench/measure.js';
import { parseArgs as sandboxArgs } from '../../tools/sandbox/cli.js';
import { run, runOk } from '../../tools/sandbox/exec.js';
import { CriuLockError } from '../../src/errors.js';

describe('sandbox run (execa)', () => {
  it('returns output, exit code and stdin round trip without throwing', async () => {
    const r = await run(['sh', '-c', 'cat; echo err >&2; exit 3'], { input: 'hello\n' });
    expect(r).toMatchObject({
      command: 'sh -c cat; echo err >&2; exit 3',
      exitCode: 3,
      stdout: 'hello\n',
      stderr: 'err\n',
      timedOut: false,
    });
  });

  it('runs with LC_ALL=C and only the environment given', async () => {
    const r = await run(['sh', '-c', 'echo "$LC_ALL:${ONLY-unset}:${HOME-unset}"'], {
      env: { ONLY: 'x', PATH: process.env.PATH ?? '' },
    });
    expect(r.stdout).toBe('C:x:unset\n');
  });

  it('a missing program is exit 127 with the reason on stderr', async () => {
    const r = await run(['/nonexistent/criu-lock-tool']);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toMatch(/ENOENT/);
  });

  it('kills a command past its timeout', async () => {
    const r = await run(['sleep', '5'], { timeoutMs: 100 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).not.toBe(0);
    expect(r.durationMs).toBeLessThan(4000);
  });

  it('runOk throws a sandbox error with the stderr tail', async () => {
    await expect(runOk(['sh', '-c', 'echo boom >&2; exit 1'])).rejects.toThrow(
      /command failed \(exit 1\): .*boom/,
    );
  });

  it('bench spawnTimed measures wall time the same way', async () => {
    const r = await spawnTimed(['sh', '-c', 'cat; exit 2'], { input: 'x' });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('x');
    expect(r.wallS).toBeGreaterThan(0);
  });
});

describe('sandbox flags', () => {
  it('parses commands, options and positionals', () => {
    expect(sandboxArgs(['up', '--nodes', '3', '--reset', '--json'])).toMatchObject({
      command: 'up',
      nodes: 3,
      reset: true,
      json: true,
    });
    expect(sandboxArgs(['up', '--nodes=7'])).toMatchObject({ nodes: 7 });
    expect(sandboxArgs(['reset', 'node01', 'node02'])).toMatchObject({
      command: 'reset',
      positional: ['node01', 'node02'],
    });
    expect(sandboxArgs(['-h'])).toMatchObject({ help: true, command: undefined });
    expect(sandboxArgs(['up'])).toMatchObject({ python: undefined });
    expect(sandboxArgs(['up', '--python'])).toMatchObject({ python: true });
    expect(sandboxArgs(['reset', '--all', '--no-python'])).toMatchObject({ python: false, all: true });
  });

  it.each([[['up', '--bogus']], [['up', '--nodes', 'many']], [['up', '--nodes']]])(
    'rejects %j with a usage error',
    (argv) => {
      let e: unknown;
      try {
        sandboxArgs(argv);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(CriuLockError);
      expect((e as CriuLockError).code).toBe('usage');
    },
  );
});

describe('bench flags', () => {
  it('defaults and values', () => {
    expect(benchArgs([])).toEqual({
      nodes: 20,
      runs: 5,
      scale: false,
      scaleNodes: 100,
      scaleRuns: 1,
      forks: 20,
      forksCurve: false,
      forksCurveNodes: 300,
      microOnly: false,
      converged: false,
      noProbeViaSsh: false,
      plannerHosts: 10_000,
    });
    expect(benchArgs(['--nodes', '5', '--runs=2', '--micro-only', '--json', 'out.json'])).toMatchObject({
      nodes: 5,
      runs: 2,
      microOnly: true,
      json: 'out.json',
    });
  });

  it.each([[['--nodes', '1']], [['--runs', '2.5']], [['--frobnicate']], [['extra']]])(
    'rejects %j',
    (argv) => {
      expect(() => benchArgs(argv)).toThrow(ArgsError);
    },
  );
});
