// The interactive scaffold: `npx create-sse-server [dir]`. Asks only what flags did not
// answer, and never waits for input without a TTY (it says which flag to pass instead).
import { basename, relative, resolve } from 'node:path';
import prompts from 'prompts';
import { loadSpec, normalizeSpec, type Spec } from './spec.js';
import { findTarget, loadTargets, type Target } from './targets.js';
import { renderTarget } from './render.js';
import { shellWord } from './escape.js';
import { isEmptyDir, writeProject } from './write.js';
import { join } from 'node:path';
import { packageRoot } from './targets.js';

export interface CreateOptions {
  target?: string;
  port?: number;
  name?: string;
  spec?: string;
  yes?: boolean;
  force?: boolean;
  /** whether questions may be asked (a TTY on stdin and stdout) */
  interactive: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export class Cancelled extends Error {
  constructor() {
    super('cancelled, nothing was written');
    this.name = 'Cancelled';
  }
}

export const exampleSpecPath = join(packageRoot, 'examples', 'sse.spec.yaml');

/** A package name from a folder name: `My App` -> `my-app`. */
export function nameFromDir(dir: string): string {
  const name = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/-(?=[0-9])/g, '')
    .replace(/^[^a-z]+|-+$/g, '');
  return name || 'sse-server';
}

const shellLine = (argv: string[]) => argv.map((a) => (/^[\w./=:@%+-]+$/.test(a) ? a : shellWord(a))).join(' ');

function label(target: Target) {
  return `${target.language} · ${target.framework}${target.level === 'runs' ? '' : ` (${target.level})`}`;
}

async function ask<T extends string>(question: prompts.PromptObject<T>) {
  const answers = await prompts(question, { onCancel: () => { throw new Cancelled(); } });
  return answers[question.name as T];
}

export async function create(dirArg: string | undefined, options: CreateOptions) {
  const ask_ = options.interactive && !options.yes;
  const targets = loadTargets();

  let dir = dirArg;
  if (!dir) {
    if (!ask_) throw new UsageError('no project folder given: pass it as the first argument (create-sse-server my-app --target ID)');
    dir = await ask({ type: 'text', name: 'dir', message: 'Project folder', initial: 'sse-server' });
    if (!dir) throw new Cancelled();
  }

  let target: Target;
  if (options.target) target = findTarget(options.target, targets);
  else if (ask_) {
    const id = await ask({
      type: 'select',
      name: 'target',
      message: 'Language and framework',
      choices: targets.map((t) => ({ title: label(t), value: t.id, description: t.id })),
    });
    target = findTarget(id, targets);
  } else {
    throw new UsageError(`no target chosen: pass --target ID (one of ${targets.map((t) => t.id).join(', ')})`);
  }

  const base: Spec = await loadSpec(options.spec ?? exampleSpecPath);
  let port = options.port ?? base.port;
  if (options.port === undefined && ask_) {
    port = await ask({ type: 'number', name: 'port', message: 'Port', initial: base.port, min: 1, max: 65535 });
    if (port === undefined) throw new Cancelled();
  }
  const spec = normalizeSpec({ ...base, name: options.name ?? (options.spec ? base.name : nameFromDir(dir)), port }, 'options');

  let force = options.force ?? false;
  if (!(await isEmptyDir(dir)) && !force) {
    if (!ask_) throw new UsageError(`${dir} is not empty: pass --force to replace its contents (.git is kept)`);
    force = await ask({ type: 'confirm', name: 'force', message: `${dir} is not empty. Replace its contents (.git is kept)?`, initial: false });
    if (!force) throw new Cancelled();
  }

  await writeProject(dir, renderTarget(spec, target), { force });
  const rel = relative(process.cwd(), resolve(dir));
  const shown = rel.startsWith('..') ? resolve(dir) : rel || '.';
  return {
    dir: shown,
    target,
    spec,
    nextSteps: [
      `cd ${shown}`,
      ...[...target.install, ...target.build].map((step) => shellLine(step.run)),
      shellLine(target.start),
      `# or all of that in one: npx create-sse-server run .`,
      `curl -N http://localhost:${spec.port}${spec.path}${spec.auth.required ? ` -H "Authorization: Bearer $SSE_TOKEN"` : ''}`,
    ],
  };
}
