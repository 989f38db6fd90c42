// Parse-only verification, for targets whose toolchain cannot be installed here (level
// `parses`). A manifest's `parse` steps name their parser; nothing here names a target:
//
//   { "grammar": "@repomix/tree-sitter-wasms/out/tree-sitter-swift.wasm", "files": ["**/*.swift"] }
//       every matching file is parsed in process with web-tree-sitter; the first ERROR or
//       MISSING node fails the step with its file:line:col. The grammar is a module path,
//       resolved from this package's own node_modules (so it works from the packed CLI).
//   { "run": ["elixir", "-e", "..."] }
//       a command run in the project folder (no shell); a non-zero exit fails the step.
//
// A grammar step that matches no file fails too: a check that parsed nothing proved nothing.
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import type { ParseStep } from './targets.js';

const require = createRequire(import.meta.url);

export interface ParseOutcome {
  /** undefined when every step passed */
  problem?: string;
  /** how many files each grammar step parsed, in step order (run steps count 0) */
  files: number[];
}

/** Why a step cannot run on this machine (its parser is missing), or undefined. */
export function parserMissing(steps: ParseStep[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const missing: string[] = [];
  for (const step of steps) {
    if (step.grammar !== undefined) {
      try {
        require.resolve(step.grammar);
      } catch {
        missing.push(`grammar ${step.grammar} (reinstall create-sse-server)`);
      }
    } else if (step.run && !onPath(step.run[0], env)) {
      missing.push(`${step.run[0]}${step.hint ? ` (${step.hint})` : ''}`);
    }
  }
  return missing.length ? missing.join(', ') : undefined;
}

function onPath(command: string, env: NodeJS.ProcessEnv): boolean {
  if (command.includes('/')) return executable(command);
  return (env.PATH ?? '').split(delimiter).some((dir) => dir && executable(join(dir, command)));
}

function executable(path: string) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Run every parse step of a target in a rendered project folder. */
export async function parseProject(dir: string, steps: ParseStep[], env: Record<string, string> = {}): Promise<ParseOutcome> {
  const files: number[] = [];
  if (steps.length === 0) return { problem: 'the manifest has no parse steps', files };
  for (const step of steps) {
    if (step.grammar !== undefined) {
      const outcome = await parseWithGrammar(dir, step.grammar, step.files ?? []);
      files.push(outcome.count);
      if (outcome.problem) return { problem: outcome.problem, files };
    } else if (step.run) {
      files.push(0);
      const r = await execa(step.run[0], step.run.slice(1), {
        cwd: dir,
        reject: false,
        all: true,
        timeout: 120_000,
        env: { ...env, ...step.env },
      });
      if (r.exitCode !== 0) {
        const output = String(r.all ?? r.message).trim();
        return { problem: `\`${step.run[0]}\` parse step failed (exit ${r.exitCode ?? r.signal}):\n${output.slice(-1500)}`, files };
      }
    }
  }
  return { files };
}

// web-tree-sitter is loaded on first use: `list`, `generate` and `run` never pay for it.
type WebTreeSitter = typeof import('web-tree-sitter');
type Language = import('web-tree-sitter').Language;
type Node = import('web-tree-sitter').Node;
let treeSitter: Promise<WebTreeSitter> | undefined;
const languages = new Map<string, Promise<Language>>();

function loadTreeSitter(): Promise<WebTreeSitter> {
  treeSitter ??= import('web-tree-sitter').then(async (m) => {
    await m.Parser.init();
    return m;
  });
  return treeSitter;
}

function loadLanguage(grammar: string): Promise<Language> {
  let language = languages.get(grammar);
  if (!language) {
    language = loadTreeSitter().then((m) => m.Language.load(require.resolve(grammar)));
    languages.set(grammar, language);
  }
  return language;
}

async function parseWithGrammar(dir: string, grammar: string, patterns: string[]): Promise<{ count: number; problem?: string }> {
  const matched = listFiles(dir).filter((path) => patterns.some((p) => globRegExp(p).test(path)));
  if (matched.length === 0) return { count: 0, problem: `no file matches ${patterns.join(', ')} in ${dir}: nothing to parse with ${grammar}` };
  const { Parser } = await loadTreeSitter();
  const parser = new Parser();
  try {
    parser.setLanguage(await loadLanguage(grammar));
    for (const path of matched) {
      const source = readFileSync(join(dir, path), 'utf8');
      const tree = parser.parse(source);
      if (!tree) return { count: matched.length, problem: `${path}: ${grammar} returned no tree` };
      try {
        const bad = firstError(tree.rootNode);
        if (bad) return { count: matched.length, problem: `${path}:${bad.startPosition.row + 1}:${bad.startPosition.column + 1}: ${describe(bad, source)} (${grammar})` };
      } finally {
        tree.delete();
      }
    }
  } finally {
    parser.delete();
  }
  return { count: matched.length };
}

/** The first ERROR or MISSING node in document order, or undefined. */
function firstError(root: Node): Node | undefined {
  if (!root.hasError) return undefined;
  const cursor = root.walk();
  try {
    for (;;) {
      const node = cursor.currentNode;
      if (node.isError || node.isMissing) return node;
      // Only descend where an error is: hasError covers the whole subtree.
      if (node.hasError && cursor.gotoFirstChild()) continue;
      while (!cursor.gotoNextSibling()) {
        if (!cursor.gotoParent()) return undefined;
      }
    }
  } finally {
    cursor.delete();
  }
}

function describe(node: Node, source: string): string {
  if (node.isMissing) return `syntax error: missing ${JSON.stringify(node.type)}`;
  const text = source.slice(node.startIndex, node.endIndex).split('\n')[0].slice(0, 60);
  // Error recovery can wrap a long region (the whole file, for a brace missing at its end).
  const end = node.endPosition;
  const span = end.row > node.startPosition.row ? `; unparsable up to ${end.row + 1}:${end.column + 1}` : '';
  return `syntax error near ${JSON.stringify(text)}${span}`;
}

/** Every file under dir (relative, `/`-separated), skipping dot folders and dependencies. */
function listFiles(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const path = sub ? `${sub}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!entry.name.startsWith('.') && entry.name !== 'node_modules') out.push(...listFiles(dir, path));
    } else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/** `**` any folders (or none), `*` any characters but `/`, `?` one of them. */
export function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
