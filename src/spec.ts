// The event spec: load YAML or JSON, validate it against a JSON Schema, fill defaults.
// Every error names its field (`events[1].name: must match ...`) and nothing is written
// before the whole spec is valid.
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { closest, distance } from 'fastest-levenshtein';
import { parse as parseYaml } from 'yaml';

export interface EventSpec {
  name: string;
  every: number;
  data: Record<string, unknown>;
}

export interface Spec {
  name: string;
  port: number;
  path: string;
  retry: number;
  heartbeat: number;
  history: number;
  maxClients: number;
  cors: { origins: string[]; credentials: boolean };
  auth: { required: boolean };
  publish: { enabled: boolean };
  /** where ids, history and publishes live: this process, or Redis shared by every instance (docs/broker.md) */
  broker: 'memory' | 'redis';
  events: EventSpec[];
}

export class SpecError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid spec ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SpecError';
  }
}

/** A spec file that cannot be read (not an invalid spec: there is none). */
export class SpecFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpecFileError';
  }
}

/** Limits on an event's `data` (every target must carry it through its queues and parsers). */
export const DATA_MAX_BYTES = 16 * 1024;
export const DATA_MAX_DEPTH = 32;

export const NAME_PATTERN = '^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$';
export const EVENT_NAME_PATTERN = '^[a-z][a-z0-9_-]*$';
export const PATH_PATTERN = '^(/[A-Za-z0-9._~-]+)+$';
export const ORIGIN_PATTERN = '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$';
const RESERVED_PATHS = ['/health', '/publish'];

/** Version 1 of the contract put tokens in the spec; version 2 reads them from the environment. */
const MOVED_SECRETS: Array<[section: 'auth' | 'publish', variable: string]> = [
  ['auth', 'SSE_TOKEN'],
  ['publish', 'SSE_PUBLISH_TOKEN'],
];

export const specSchema = {
  $id: 'https://create-sse-server.dev/spec.schema.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', pattern: NAME_PATTERN, maxLength: 64, default: 'sse-server' },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 3000 },
    path: { type: 'string', pattern: PATH_PATTERN, maxLength: 128, default: '/events' },
    retry: { type: 'integer', minimum: 0, maximum: 3600000, default: 3000 },
    heartbeat: { type: 'integer', minimum: 0, maximum: 3600, default: 15 },
    history: { type: 'integer', minimum: 0, maximum: 100000, default: 100 },
    maxClients: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000 },
    cors: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        origins: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { anyOf: [{ const: '*' }, { type: 'string', pattern: ORIGIN_PATTERN }] },
          default: ['*'],
        },
        credentials: { type: 'boolean', default: false },
      },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { required: { type: 'boolean', default: false } },
    },
    publish: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
      },
    },
    broker: { enum: ['memory', 'redis'], default: 'memory' },
    events: {
      type: 'array',
      maxItems: 50,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: EVENT_NAME_PATTERN, maxLength: 64 },
          every: { type: 'integer', minimum: 0, maximum: 86400000, default: 0 },
          data: { type: 'object', default: {} },
        },
      },
      default: [
        { name: 'tick', every: 1000, data: { message: 'tick' } },
        { name: 'message', every: 0, data: {} },
      ],
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true, verbose: true });
const validate = ajv.compile(specSchema);

/** `/events/1/name` -> `events[1].name` */
function fieldName(error: ErrorObject): string {
  const parts = error.instancePath.split('/').slice(1);
  if (error.keyword === 'additionalProperties') parts.push(String(error.params.additionalProperty));
  if (error.keyword === 'required') parts.push(String(error.params.missingProperty));
  let out = '';
  for (const part of parts) out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  return out || '(spec)';
}

/** "did you mean `heartbeat`?" for a field name close to a known one. */
export function didYouMean(word: string, known: string[]): string {
  if (!known.length) return '';
  const best = closest(word, known);
  return distance(word.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean \`${best}\`?)` : '';
}

function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {}).filter((k) => k !== '$schema');
      return `unknown field${didYouMean(String(error.params.additionalProperty), known)}`;
    }
    case 'required':
      return 'is required';
    case 'pattern':
      return `must match ${error.params.pattern}`;
    case 'anyOf':
      return 'must be "*" or an origin like https://example.com';
    default:
      return error.message ?? error.keyword;
  }
}

/** Validates a parsed spec object and returns it with every default filled in. */
export function normalizeSpec(input: unknown, source = 'spec'): Spec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new SpecError(source, ['(spec): must be an object']);
  }
  const spec = structuredClone(input) as Record<string, unknown>;
  const moved = MOVED_SECRETS.filter(([section]) => {
    const value = spec[section];
    return value !== null && typeof value === 'object' && Object.hasOwn(value, 'token');
  });
  if (moved.length) {
    throw new SpecError(
      source,
      moved.map(([section, variable]) => `${section}.token: secrets no longer go in the spec; remove it and set ${variable} in the server's environment`),
    );
  }
  if (!validate(spec)) {
    // anyOf reports its branches too; keep one message per field.
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const error of validate.errors ?? []) {
      if (error.schemaPath.includes('/anyOf/')) continue;
      const line = `${fieldName(error)}: ${describe(error)}`;
      if (!seen.has(line)) problems.push(line), seen.add(line);
    }
    throw new SpecError(source, problems);
  }
  const result = spec as unknown as Spec;
  const problems: string[] = [];
  const names = new Set<string>();
  result.events.forEach((event, i) => {
    if (names.has(event.name)) problems.push(`events[${i}].name: duplicate event name "${event.name}"`);
    names.add(event.name);
    problems.push(...dataProblems(event.data, `events[${i}].data`));
    if (Object.hasOwn(event.data, 'timestamp')) {
      problems.push(`events[${i}].data.timestamp: reserved, the server adds it`);
    }
  });
  const dots = result.path.split('/').find((s) => s === '.' || s === '..');
  if (dots) problems.push(`path: must not hold a "${dots}" segment (${result.path}); browsers and servers resolve it differently`);
  if (RESERVED_PATHS.includes(result.path)) problems.push(`path: ${result.path} is reserved`);
  if (result.cors.credentials && result.cors.origins.includes('*')) {
    problems.push('cors.credentials: cannot be true when cors.origins holds "*" (list the origins)');
  }
  if (result.cors.origins.includes('*') && result.cors.origins.length > 1) {
    problems.push('cors.origins: "*" cannot be combined with other origins');
  }
  if (problems.length) throw new SpecError(source, problems);
  return result;
}

/**
 * An event's data must be valid Unicode (checked on the raw strings: JSON.stringify escapes a
 * lone surrogate, which hid it), at most DATA_MAX_DEPTH levels deep and DATA_MAX_BYTES of JSON.
 */
function dataProblems(data: unknown, field: string): string[] {
  const problems: string[] = [];
  let deepest = 0;
  const visit = (value: unknown, at: string, depth: number) => {
    if (typeof value === 'string') {
      if (!value.isWellFormed()) problems.push(`${at}: holds a lone surrogate (not valid Unicode)`);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    deepest = Math.max(deepest, depth);
    if (depth > DATA_MAX_DEPTH) return;
    for (const [key, inner] of Object.entries(value)) {
      const path = Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`;
      if (!key.isWellFormed()) problems.push(`${at}: a key holds a lone surrogate (not valid Unicode)`);
      visit(inner, path, depth + 1);
    }
  };
  visit(data, field, 1);
  if (deepest > DATA_MAX_DEPTH) problems.push(`${field}: nested deeper than ${DATA_MAX_DEPTH} levels`);
  else {
    const bytes = Buffer.byteLength(JSON.stringify(data), 'utf8');
    if (bytes > DATA_MAX_BYTES) problems.push(`${field}: ${bytes} bytes of JSON, more than the ${DATA_MAX_BYTES} allowed`);
  }
  return problems;
}

export function parseSpecText(text: string, source: string): Spec {
  let parsed: unknown;
  try {
    parsed = source.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    // Keep the parser's whole message: its position and the code excerpt with a caret.
    const message = (error as Error).message.trimEnd().replace(/\n\n+/g, '\n').replace(/\n/g, '\n      ');
    throw new SpecError(source, [`(spec): not valid ${source.endsWith('.json') ? 'JSON' : 'YAML'}: ${message}`]);
  }
  return normalizeSpec(parsed ?? {}, source);
}

export async function loadSpec(file: string): Promise<Spec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SpecFileError(code === 'ENOENT' ? `spec file ${file} not found` : `cannot read spec file ${file}: ${code ?? (error as Error).message}`);
  }
  return parseSpecText(text, file);
}

export function defaultSpec(overrides: Partial<Spec> = {}): Spec {
  return normalizeSpec(overrides);
}
