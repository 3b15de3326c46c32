import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { assetPath } from '../assets.js';
import { CriuLockError, type SourceLocation } from '../errors.js';
import { parseYamlSource, yamlToJs } from '../input/yaml-source.js';
import { issueError, parseWith } from '../input/zod-error.js';
import { MODULES } from './modules/registry.js';

export const Task = z.strictObject({
  name: z.string().min(1),
  module: z.string(),
  args: z.unknown().optional(),
  /** always: every host that is worked on; changes: only hosts whose plan changes something. */
  when: z.enum(['always', 'changes']).default('always'),
});
export type Task = z.infer<typeof Task>;

export const Playbook = z.strictObject({
  name: z.string().optional(),
  pre_tasks: z.array(Task).default([]),
  tasks: z.array(Task).optional(),
  post_tasks: z.array(Task).default([]),
});
export type Playbook = z.infer<typeof Playbook>;

/** Tasks in run order, with their arguments already validated by each module's schema. */
export interface ResolvedTask {
  name: string;
  module: string;
  args: unknown;
  when: 'always' | 'changes';
}

export const DEFAULT_PLAYBOOK = assetPath('playbooks/converge.yaml');

const PLAYBOOK_HINT =
  'a playbook has name, pre_tasks, tasks, post_tasks; each task has name, module, args, when';

async function parsePlaybookFile(file: string): Promise<{
  book: Playbook;
  file: string;
  locate: (path: ReadonlyArray<PropertyKey>, key?: string) => SourceLocation;
}> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CriuLockError('input', `cannot read playbook ${file}: ${(err as Error).message}`, {
      hint: 'pass an existing file to --playbook',
    });
  }
  const src = parseYamlSource(text, file, { code: 'input', hint: 'fix the playbook syntax' });
  const raw = yamlToJs(
    () => src.doc.toJS() as unknown,
    { file, line: 1 },
    'input',
    'fix the playbook syntax',
  );
  const book = parseWith(Playbook, raw, {
    code: 'input',
    what: 'playbook',
    hint: PLAYBOOK_HINT,
    file,
    locate: src.locate,
  });
  return { book, file, locate: src.locate };
}

/** Loads a playbook (the built-in converge one when `file` is undefined) and validates every task. */
export async function loadPlaybook(file?: string): Promise<ResolvedTask[]> {
  const base = await parsePlaybookFile(DEFAULT_PLAYBOOK);
  const user = file ? await parsePlaybookFile(file) : undefined;
  const out: ResolvedTask[] = [];
  const add = (tasks: readonly Task[], section: string, src: typeof base): void => {
    tasks.forEach((t, i) => {
      const mod = MODULES.get(t.module);
      if (!mod) {
        throw new CriuLockError(
          'input',
          `unknown module ${JSON.stringify(t.module)} in task ${JSON.stringify(t.name)}`,
          {
            location: src.locate([section, i, 'module']),
            hint: `known modules: ${[...MODULES.keys()].join(', ')}`,
          },
        );
      }
      const args = mod.args.safeParse(t.args);
      if (!args.success) {
        throw issueError(args.error, {
          code: 'input',
          what: 'args',
          prefix: `task ${JSON.stringify(t.name)}: invalid args for ${t.module}: `,
          pathPrefix: [section, i, 'args'],
          hint: `see docs/playbooks.md for ${t.module}'s arguments`,
          file: src.file,
          locate: src.locate,
        });
      }
      out.push({ name: t.name, module: t.module, args: args.data, when: t.when });
    });
  };
  if (user) add(user.book.pre_tasks, 'pre_tasks', user);
  if (user?.book.tasks) add(user.book.tasks, 'tasks', user);
  else add(base.book.tasks ?? [], 'tasks', base);
  if (user) add(user.book.post_tasks, 'post_tasks', user);
  return out;
}
