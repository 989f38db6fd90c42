// The interactive scaffold: `npx create-sse-server [dir]`. Asks only what flags did not
// answer, and never waits for input without a TTY (it says which flag to pass instead).
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import prompts from 'prompts';
import { loadSpec, normalizeSpec, type Spec } from './spec.js';
import { findTarget, loadTargets, type Target } from './targets.js';
import { renderTarget } from './render.js';
import { shellWord } from './escape.js';
import { assertReplaceable, destinationKind, isEmptyDir, writeProject, type Guard } from './write.js';
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
  /** where the prompts read and write (tests type into a stream) */
  stdin?: import('node:stream').Readable;
  stdout?: import('node:stream').Writable;
  /** stands for the filesystem root, home and current folder (tests) */
  guard?: Guard;
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

/** The user answered "no" to replacing a folder: not an interrupt, a refusal (exit 1). */
export class Declined extends Error {
  constructor(dir: string) {
    super(`${dir} was left as it was; nothing was written`);
    this.name = 'Declined';
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A folder name typed or passed: no control characters (a Ctrl-U must not become part of it). */
export function folderProblem(dir: string): string | undefined {
  if (!dir.trim()) return 'the folder name is empty';
  const c = dir.match(CONTROL);
  if (c) return `folder name ${JSON.stringify(dir)} holds a control character (U+${c[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}); type it again`;
  return undefined;
}

export function portProblem(port: unknown): string | undefined {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535 ? undefined : `port ${String(port)} is not a port number (1-65535)`;
}

export type PackageManager = 'npm' | 'pnpm' | 'yarn' | 'bun';

/** The package manager that started us, from npm_config_user_agent ("pnpm/9.1.0 npm/? node/v20…"). */
export function detectPackageManager(userAgent = process.env.npm_config_user_agent ?? ''): PackageManager {
  const name = userAgent.split('/')[0];
  return name === 'pnpm' || name === 'yarn' || name === 'bun' ? name : 'npm';
}

/** How to run a package that is not installed, in the words of each package manager. */
const RUNNER: Record<PackageManager, string> = { npm: 'npx', pnpm: 'pnpm dlx', yarn: 'yarn dlx', bun: 'bunx' };

/**
 * A command that runs this CLI again from anywhere: the runner when we were fetched by one
 * (npx, pnpm dlx, yarn dlx, bunx: the package is published), else this copy by its path (a
 * clone, or a local install, where \`npx create-sse-server\` in another folder would ask the
 * registry).
 */
export function selfCommand(pm = detectPackageManager(), root = packageRoot): string {
  const fetched = root.includes(`${sep}node_modules${sep}`) && /[\\/](_npx|dlx[^\\/]*|bunx[^\\/]*|xfs-[^\\/]*)[\\/]/.test(root);
  if (fetched) return `${RUNNER[pm]} create-sse-server`;
  return `node ${shellWord(join(root, 'bin', 'create-sse-server.js'))}`;
}

/** `npm install` / `npm start` / `npm run x` in the words of the package manager in use. */
function inWords(argv: string[], pm: PackageManager): string[] {
  if (argv[0] !== 'npm' || pm === 'npm') return argv;
  if (argv[1] === 'ci' || argv[1] === 'install' || argv[1] === 'i') return pm === 'yarn' ? ['yarn', ...argv.slice(2).filter((a) => !a.startsWith('--no-'))] : [pm, 'install', ...argv.slice(2).filter((a) => !a.startsWith('--no-'))];
  return [pm, ...argv.slice(1)];
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

const io = (options: CreateOptions) => (options.stdin ? { stdin: options.stdin, stdout: options.stdout } : {});

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
    dir = await ask({ type: 'text', name: 'dir', message: 'Project folder', initial: 'sse-server', validate: (v: string) => folderProblem(v) ?? true, ...io(options) });
    if (dir === undefined) throw new Cancelled();
  }
  const problem = folderProblem(dir);
  if (problem) throw new UsageError(problem);
  assertReplaceable(dir, options.guard);
  await destinationKind(resolve(dir));

  let target: Target;
  if (options.target) target = findTarget(options.target, targets);
  else if (ask_) {
    const id = await ask({
      type: 'select',
      name: 'target',
      message: 'Language and framework',
      choices: targets.map((t) => ({ title: label(t), value: t.id, description: t.id })),
      ...io(options),
    });
    target = findTarget(id, targets);
  } else {
    throw new UsageError(`no target chosen: pass --target ID (one of ${targets.map((t) => t.id).join(', ')})`);
  }

  const base: Spec = await loadSpec(options.spec ?? exampleSpecPath);
  let port = options.port ?? base.port;
  if (options.port === undefined && ask_) {
    // No min/max: prompts would clamp 70000 to 65535 silently; say what is wrong instead.
    port = await ask({ type: 'number', name: 'port', message: 'Port', initial: base.port, validate: (n: number) => portProblem(n) ?? true, ...io(options) });
    if (port === undefined) throw new Cancelled();
  }
  const badPort = portProblem(port);
  if (badPort) throw new UsageError(badPort);
  const spec = normalizeSpec({ ...base, name: options.name ?? (options.spec ? base.name : nameFromDir(dir)), port }, 'options');

  let force = options.force ?? false;
  if (!(await isEmptyDir(dir)) && !force) {
    if (!ask_) throw new UsageError(`${dir} is not empty: pass --force to replace its contents (.git is kept)`);
    force = await ask({ type: 'confirm', name: 'force', message: `${dir} is not empty. Replace its contents (.git is kept)?`, initial: false, ...io(options) });
    if (force === undefined) throw new Cancelled();
    if (!force) throw new Declined(dir);
  }

  const warning = await writeProject(dir, renderTarget(spec, target), { force, guard: options.guard });
  const rel = relative(process.cwd(), resolve(dir));
  // As the user named it: relative stays relative (`../my-app` pastes fine where they are).
  const shown = isAbsolute(dir) || isAbsolute(rel) ? resolve(dir) : rel || '.';
  const pm = detectPackageManager();
  return {
    dir: shown,
    target,
    spec,
    warning,
    nextSteps: [
      shellLine(['cd', shown]),
      ...[...target.install, ...target.build].map((step) => shellLine(inWords(step.run, pm))),
      shellLine(inWords(target.start, pm)),
      `# or all of that in one: ${selfCommand(pm)} run .`,
      `curl -N http://localhost:${spec.port}${spec.path}${spec.auth.required ? ` -H "Authorization: Bearer $SSE_TOKEN"` : ''}`,
    ],
  };
}
