// Render a target's `files/` tree from a spec. Files ending in `.hbs` go through Handlebars
// in strict mode (a missing variable is an error); every other file is copied byte for byte.
// Output is deterministic: sorted paths, no dates, no absolute paths.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import Handlebars from 'handlebars';
import { stringify as yamlText } from 'yaml';
import { commentText, jsonText, literalLanguages, shellWord, stringLiteral, valueLanguages, valueLiteral } from './escape.js';
import type { Spec } from './spec.js';
import { redisUnsupported, type Target } from './targets.js';

export interface RenderedFile {
  /** path inside the project, with `/` separators */
  path: string;
  content: Buffer;
  executable: boolean;
}

/** The spec asks for something this target cannot do (a one-line error, nothing written). */
export class BrokerUnsupported extends Error {
  name = 'BrokerUnsupported';
}

/** The file `run` reads to know which target a generated folder belongs to. */
export const MARKER_FILE = '.create-sse-server.json';

/** create-vite's trick: npm would drop or act on these names inside a published package. */
const RENAMES: Record<string, string> = {
  _gitignore: '.gitignore',
  _npmrc: '.npmrc',
  _dockerignore: '.dockerignore',
  _editorconfig: '.editorconfig',
};

const handlebars = Handlebars.create();
handlebars.registerHelper('json', (value: unknown) => jsonText(value));
handlebars.registerHelper('sh', (value: string) => shellWord(String(value)));
handlebars.registerHelper('comment', (value: string) => commentText(String(value)));
for (const language of literalLanguages) {
  // {{goString x}}, {{pythonString (json data)}}, ...
  handlebars.registerHelper(`${language}String`, (value: unknown) => {
    if (typeof value !== 'string') throw new Error(`${language}String needs a string, got ${typeof value}`);
    return stringLiteral(language, value);
  });
}
for (const language of valueLanguages) {
  // {{pythonValue data}}: a JSON value as that language's own literal (dict, hash, object, ...)
  handlebars.registerHelper(`${language}Value`, (value: unknown) => valueLiteral(language, value));
}
handlebars.registerHelper('eq', (a: unknown, b: unknown) => a === b);
// {{#if (or publish.enabled hasTimedEvents)}}
handlebars.registerHelper('or', (...args: unknown[]) => args.slice(0, -1).some(Boolean));
// {{only redis "Broker.java"}}: the text when the condition holds, else nothing. File names use it
// (a `{{/if}}` cannot be part of one): a name that renders empty is not written.
handlebars.registerHelper('only', (condition: unknown, text: unknown) => (condition ? String(text) : ''));
handlebars.registerHelper('concat', (...args: unknown[]) => args.slice(0, -1).join(''));
// {{yaml value 6}}: a YAML block of any value, every line indented by 6 spaces
handlebars.registerHelper('yaml', (value: unknown, indent: unknown) => {
  const pad = ' '.repeat(typeof indent === 'number' ? indent : 0);
  return yamlText(value, { lineWidth: 0 }).trimEnd().split('\n').map((line) => pad + line).join('\n');
});

/** A JSON Schema that example data conforms to: its types, with the example as `examples`. */
export function schemaOf(value: unknown): Record<string, unknown> {
  if (value === null) return { type: 'null' };
  if (Array.isArray(value)) return value.length ? { type: 'array', items: schemaOf(value[0]) } : { type: 'array' };
  if (typeof value === 'object') {
    const properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, schemaOf(v)]));
    return { type: 'object', properties, required: Object.keys(properties) };
  }
  if (typeof value === 'number') return { type: Number.isInteger(value) ? 'integer' : 'number', examples: [value] };
  return { type: typeof value, examples: [value] };
}

const words = (name: string) => name.split('-');

/** The data of an event as it arrives: the spec's fields, plus `timestamp` for timed events. */
function eventSchema(data: Record<string, unknown>, timed: boolean) {
  const schema = schemaOf(data) as { properties: Record<string, unknown>; required: string[] };
  if (!timed) return schema;
  return {
    ...schema,
    properties: { ...schema.properties, timestamp: { type: 'string', format: 'date-time', description: 'when the server sent it (ISO-8601, UTC)' } },
    required: [...schema.required, 'timestamp'],
  };
}
const capitalize = (w: string) => w[0].toUpperCase() + w.slice(1);

/** What every template sees. Values are validated by the spec; strings still need a helper. */
export function renderContext(spec: Spec, target: Target) {
  const timedEvents = spec.events.filter((e) => e.every > 0);
  return {
    ...spec,
    nameSnake: words(spec.name).join('_'),
    namePascal: words(spec.name).map(capitalize).join(''),
    nameCamel: words(spec.name).map((w, i) => (i ? capitalize(w) : w)).join(''),
    corsAny: spec.cors.origins.includes('*'),
    events: spec.events.map((e) => ({ ...e, dataJson: jsonText(e.data), timed: e.every > 0, schema: eventSchema(e.data, e.every > 0) })),
    timedEvents: timedEvents.map((e) => ({ ...e, dataJson: jsonText(e.data) })),
    hasTimedEvents: timedEvents.length > 0,
    redis: spec.broker === 'redis',
    // the Redis stream is the replay history and the delivery log (docs/broker.md)
    brokerLogSize: Math.max(spec.history, 1000),
    target: { id: target.id, language: target.language, framework: target.framework },
  };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

const compiled = new Map<string, HandlebarsTemplateDelegate>();
function compile(source: string, key: string) {
  let template = compiled.get(key);
  if (!template) {
    template = handlebars.compile(source, { strict: true, noEscape: true });
    compiled.set(key, template);
  }
  return template;
}

/** The file's path in the project; '' when a part of it renders empty (`{{only redis "redis.lua"}}.hbs`). */
function outputPath(templatePath: string, context: object): string {
  const parts = templatePath.split(sep).map((part) => (part.includes('{{') ? compile(part, `path:${part}`)(context) : part));
  const last = parts.length - 1;
  if (parts[last].endsWith('.hbs')) parts[last] = parts[last].slice(0, -4);
  // after `.hbs` is gone, so that `_gitignore.hbs` becomes `.gitignore` too
  const renamed = parts.map((part) => RENAMES[part] ?? part);
  return renamed.some((part) => part === '') ? '' : renamed.join('/');
}

/**
 * Files every target gets, rendered from one template: `templates/_shared/files/` beside the
 * targets (a target's own file of the same name wins).
 */
function sharedFiles(target: Target): Array<[dir: string, full: string]> {
  const dir = join(dirname(target.dir), '_shared', 'files');
  return existsSync(dir) ? walk(dir).map((full) => [dir, full]) : [];
}

export function renderTarget(spec: Spec, target: Target): RenderedFile[] {
  const unsupported = spec.broker === 'redis' ? redisUnsupported(target) : undefined;
  if (unsupported) throw new BrokerUnsupported(`broker: redis is not supported by ${target.id}: ${unsupported}`);
  const context = renderContext(spec, target);
  const filesDir = join(target.dir, 'files');
  const own = walk(filesDir).map((full): [string, string] => [filesDir, full]);
  const ownPaths = new Set(own.map(([dir, full]) => relative(dir, full)));
  const files: RenderedFile[] = [];
  for (const [root, full] of [...own, ...sharedFiles(target).filter(([dir, full]) => !ownPaths.has(relative(dir, full)))]) {
    const rel = relative(root, full);
    const executable = (statSync(full).mode & 0o111) !== 0;
    let content = readFileSync(full);
    if (full.endsWith('.hbs')) {
      try {
        content = Buffer.from(compile(content.toString('utf8'), full)(context), 'utf8');
      } catch (error) {
        throw new Error(`templates/${relative(dirname(dirname(root)), full)}: ${(error as Error).message}`);
      }
    }
    const path = outputPath(rel, context);
    if (path) files.push({ path, content, executable });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const marker = { target: target.id, path: spec.path, events: spec.events.map((e) => e.name), files: files.map((f) => f.path) };
  files.unshift({ path: MARKER_FILE, content: Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), executable: false });
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.path)) throw new Error(`templates/${target.id}: two files render to ${file.path}`);
    seen.add(file.path);
  }
  return files;
}
