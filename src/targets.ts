// Targets are data: each folder under templates/ holds a `target.json` manifest and a
// `files/` tree. Nothing in src/ names a target, so adding one touches no file here.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closest, distance } from 'fastest-levenshtein';
import { Ajv } from 'ajv';

export type Level = 'runs' | 'parses' | 'rendered';

/** One command of a target's install, build or parse steps. */
export interface Step {
  /** argv, run in the project folder (no shell) */
  run: string[];
  /** skip the step when this path exists and is newer than every `inputs` file */
  creates?: string;
  inputs?: string[];
  env?: Record<string, string>;
}

/**
 * One step of a `parses` target's check: a tree-sitter grammar (a module path to its `.wasm`,
 * resolved from this package's node_modules) applied to every file matching `files`, or a
 * command (`run`) that exits non-zero on a syntax error. See src/parse.ts.
 */
export interface ParseStep {
  grammar?: string;
  /** globs relative to the project folder (`**` any folders, `*` any name part) */
  files?: string[];
  run?: string[];
  env?: Record<string, string>;
  /** for a `run` step: what to tell a user whose machine lacks the command */
  hint?: string;
}

export interface ToolchainCommand {
  /** argv of a command that exits 0 when the tool is there, e.g. ["go", "version"] */
  check: string[];
  /** Debian packages that provide it here (what .ci/run installs) */
  debian?: string[];
  /** what to tell a user who lacks it */
  hint: string;
}

/** A formatter or linter run over a generated project; a finding fails it. */
export interface LintStep extends Step {
  /** the tool exits 0 but prints what it would change (`gofmt -l`): any output is a finding */
  failOnOutput?: boolean;
}

/** The ecosystem's own formatter and linters, run by `create-sse-server lint`. */
export interface Lint {
  /** tools beyond the target's toolchain (ruff, rubocop, perlcritic, ...) */
  toolchain?: ToolchainCommand[];
  /** run in the project after its install steps */
  steps: LintStep[];
  /** the usual linters of this ecosystem that cannot be had on this machine, and why */
  unavailable?: string;
}

export interface Target {
  id: string;
  language: string;
  framework: string;
  /** the example servers listen on spec.port + portOffset (3001-3020 for the seed targets) */
  portOffset: number;
  level: Level;
  /** why the level is not `runs`, shown by `list` */
  levelNote?: string;
  toolchain: ToolchainCommand[];
  install: Step[];
  build: Step[];
  start: string[];
  /** environment for every step and the server */
  env?: Record<string, string>;
  /** for level `parses`: real parsers the generated sources must pass */
  parse?: ParseStep[];
  lint?: Lint;
  /** `broker: redis` (docs/broker.md): the Redis client it uses, or why it cannot */
  broker?: { redis: { client: string; toolchain?: ToolchainCommand[] } | { unsupported: string } };
  /** absolute path of the target's folder */
  dir: string;
}

const stepSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['run'],
  properties: {
    run: { type: 'array', minItems: 1, items: { type: 'string' } },
    creates: { type: 'string' },
    inputs: { type: 'array', items: { type: 'string' } },
    env: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

const parseStepSchema = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['grammar', 'files'],
      properties: {
        grammar: { type: 'string', pattern: '\\.wasm$' },
        files: { type: 'array', minItems: 1, items: { type: 'string' } },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['run'],
      properties: {
        run: { type: 'array', minItems: 1, items: { type: 'string' } },
        env: { type: 'object', additionalProperties: { type: 'string' } },
        hint: { type: 'string' },
      },
    },
  ],
};

const toolchainSchema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['check', 'hint'],
    properties: {
      check: { type: 'array', minItems: 1, items: { type: 'string' } },
      debian: { type: 'array', items: { type: 'string' } },
      hint: { type: 'string' },
    },
  },
};

const lintSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['steps'],
  properties: {
    toolchain: toolchainSchema,
    steps: {
      type: 'array',
      items: { ...stepSchema, properties: { ...stepSchema.properties, failOnOutput: { type: 'boolean' } } },
    },
    unavailable: { type: 'string' },
  },
};

const manifestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'language', 'framework', 'portOffset', 'level', 'toolchain', 'install', 'build', 'start'],
  // A `parses` target names the parsers that verify it.
  if: { properties: { level: { const: 'parses' } } },
  then: { required: ['parse'], properties: { parse: { type: 'array', minItems: 1 } } },
  properties: {
    $comment: { type: 'string' },
    id: { type: 'string', pattern: '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' },
    language: { type: 'string' },
    framework: { type: 'string' },
    portOffset: { type: 'integer', minimum: 1, maximum: 99 },
    level: { enum: ['runs', 'parses', 'rendered'] },
    levelNote: { type: 'string' },
    toolchain: toolchainSchema,
    install: { type: 'array', items: stepSchema },
    build: { type: 'array', items: stepSchema },
    parse: { type: 'array', items: parseStepSchema },
    lint: lintSchema,
    broker: {
      type: 'object',
      additionalProperties: false,
      required: ['redis'],
      properties: {
        redis: {
          oneOf: [
            {
              type: 'object',
              additionalProperties: false,
              required: ['client'],
              // toolchain: what the Redis client needs beyond the target's own (Debian's ruby-redis, ...)
              properties: { client: { type: 'string', minLength: 1 }, toolchain: toolchainSchema },
            },
            { type: 'object', additionalProperties: false, required: ['unsupported'], properties: { unsupported: { type: 'string', minLength: 1 } } },
          ],
        },
      },
    },
    start: { type: 'array', minItems: 1, items: { type: 'string' } },
    env: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

const validateManifest = new Ajv({ allErrors: true }).compile(manifestSchema);

export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The package's templates, or CREATE_SSE_SERVER_TEMPLATES (template authors and tests). */
export const templatesRoot = process.env.CREATE_SSE_SERVER_TEMPLATES ? resolve(process.env.CREATE_SSE_SERVER_TEMPLATES) : join(packageRoot, 'templates');

let cache: Target[] | undefined;

/** Every target, in seed order (by port offset). */
export function loadTargets(root = templatesRoot): Target[] {
  if (root === templatesRoot && cache) return cache;
  const targets: Target[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    const manifestPath = join(dir, 'target.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    if (!validateManifest(manifest)) {
      const why = validateManifest.errors!.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
      throw new Error(`templates/${entry.name}/target.json: ${why}`);
    }
    if (manifest.id !== entry.name) {
      throw new Error(`templates/${entry.name}/target.json: id "${manifest.id}" must equal its folder name`);
    }
    targets.push({ ...(manifest as Omit<Target, "dir">), dir });
  }
  targets.sort((a, b) => a.portOffset - b.portOffset);
  for (let i = 1; i < targets.length; i++) {
    if (targets[i].portOffset === targets[i - 1].portOffset) {
      throw new Error(`targets ${targets[i - 1].id} and ${targets[i].id} share portOffset ${targets[i].portOffset}`);
    }
  }
  if (root === templatesRoot) cache = targets;
  return targets;
}

/** What people call a language or platform, mapped to words that appear in ids, languages and frameworks. */
const ALIASES: Record<string, string[]> = {
  golang: ['go'],
  js: ['javascript', 'node'],
  javascript: ['javascript', 'node'],
  nodejs: ['node'],
  ts: ['typescript'],
  py: ['python'],
  python3: ['python'],
  rb: ['ruby'],
  rs: ['rust'],
  pl: ['perl'],
  hs: ['haskell'],
  dotnet: ['csharp', 'c#', '.net', 'asp.net'],
  '.net': ['csharp', 'c#', '.net', 'asp.net'],
  'c#': ['csharp', 'c#'],
  cs: ['csharp', 'c#'],
  aspnet: ['csharp', 'asp.net'],
  spring: ['spring'],
  springboot: ['spring'],
  kt: ['kotlin'],
  ex: ['elixir'],
  erlang: ['elixir'],
  nginx: ['openresty', 'nginx'],
};

function words(target: Target): string[] {
  const text = `${target.id} ${target.id.replace(/-/g, ' ')} ${target.language} ${target.framework}`.toLowerCase();
  return [...new Set(text.split(/[\s()/,+-]+/).filter(Boolean))];
}

/** Targets a mistyped or informal id probably means: language, framework and id words, substrings, then spelling. */
export function suggestTargets(query: string, targets: Target[]): Target[] {
  const q = query.toLowerCase().trim();
  if (!q) return [];
  const wanted = [q, ...(ALIASES[q] ?? [])];
  const byWord = targets.filter((t) => words(t).some((w) => wanted.includes(w)));
  if (byWord.length) return byWord;
  if (q.length >= 3) {
    const bySubstring = targets.filter((t) => `${t.id} ${t.language} ${t.framework}`.toLowerCase().includes(q) || words(t).some((w) => w.length >= 3 && q.includes(w)));
    if (bySubstring.length) return bySubstring;
  }
  const ids = targets.map((t) => t.id);
  if (!ids.length) return [];
  const best = closest(q, ids);
  return distance(q, best) <= Math.max(2, Math.floor(best.length / 3)) ? targets.filter((t) => t.id === best) : [];
}

export class UnknownTargetError extends Error {
  constructor(id: string, targets: Target[]) {
    const ids = targets.map((t) => t.id);
    const near = suggestTargets(id, targets).map((t) => t.id);
    const suggestion = near.length === 1 ? ` (did you mean ${near[0]}?)` : near.length ? ` (did you mean one of ${near.join(', ')}?)` : '';
    super(`unknown target "${id}"${suggestion}. Targets: ${ids.join(', ')}`);
    this.name = 'UnknownTargetError';
  }
}

export function findTarget(id: string, targets = loadTargets()): Target {
  const target = targets.find((t) => t.id === id);
  if (!target) throw new UnknownTargetError(id, targets);
  return target;
}

/** The README's target table (a test keeps the README in step with the manifests). */
export function targetTable(targets = loadTargets()): string {
  const broker = (t: Target) => {
    const redis = t.broker?.redis;
    return redis && 'client' in redis ? redis.client : `no: ${redisUnsupported(t)}`;
  };
  const rows = targets.map((t) => `| \`${t.id}\` | ${t.language} | ${t.framework} | ${3000 + t.portOffset} | ${t.level}${t.levelNote ? `: ${t.levelNote}` : ''} | ${broker(t)} |`);
  return ['| id | language | framework | example port | level | `broker: redis` |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/** Why `target` cannot render `broker: redis`, or undefined when it can. */
export function redisUnsupported(target: Target): string | undefined {
  const redis = target.broker?.redis;
  if (!redis) return 'its template has no Redis broker';
  return 'unsupported' in redis ? redis.unsupported : undefined;
}
