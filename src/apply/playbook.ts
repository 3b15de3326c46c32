import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { assetPath } from '../assets.js';
import { CriuLockError } from '../errors.js';
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

async function parsePlaybookFile(file: string): Promise<{ book: Playbook; locate: (path: PropertyKey[]) => { file: string; line?: number; col?: number } }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CriuLockError('input', `cannot read playbook ${file}: ${(err as Error).message}`, { hint: 'pass an existing file to --playbook' });
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const locate = (path: PropertyKey[]): { file: string; line?: number; col?: number } => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const p = lc.linePos(node.range[0]);
        return { file, line: p.line, col: p.col };
      }
    }
    return { file };
  };
  if (doc.errors[0]) {
    const p = lc.linePos(doc.errors[0].pos[0]);
    throw new CriuLockError('input', `invalid YAML: ${doc.errors[0].message.split('\n')[0]}`, { location: { file, line: p.line, col: p.col }, hint: 'fix the playbook syntax' });
  }
  const parsed = Playbook.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path;
    throw new CriuLockError('input', `${path.map(String).join('.') || 'playbook'}: ${issue.message}`, {
      location: locate(path),
      hint: 'a playbook has name, pre_tasks, tasks, post_tasks; each task has name, module, args, when',
    });
  }
  return { book: parsed.data, locate };
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
        throw new CriuLockError('input', `unknown module ${JSON.stringify(t.module)} in task ${JSON.stringify(t.name)}`, {
          location: src.locate([section, i, 'module']),
          hint: `known modules: ${[...MODULES.keys()].join(', ')}`,
        });
      }
      const args = mod.args.safeParse(t.args);
      if (!args.success) {
        const issue = args.error.issues[0]!;
        throw new CriuLockError('input', `task ${JSON.stringify(t.name)}: invalid args for ${t.module}: ${issue.path.map(String).join('.') || 'args'}: ${issue.message}`, {
          location: src.locate([section, i, 'args', ...(issue.path)]),
          hint: `see docs/playbooks.md for ${t.module}'s arguments`,
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
