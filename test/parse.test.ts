// Parse-only targets (level `parses`): the real parsers named in their manifests accept what
// the templates render, and reject a copy with a syntax error (a check that cannot fail is
// worth nothing).
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleSpecPath } from '../src/create.js';
import { globRegExp, parseProject, parserMissing } from '../src/parse.js';
import { renderTarget } from '../src/render.js';
import { smokeTargets } from '../src/smoke/smoke.js';
import { hardenedSpec } from '../src/smoke/variants.js';
import { loadSpec, type Spec } from '../src/spec.js';
import { loadTargets, type Target } from '../src/targets.js';
import { writeProject } from '../src/write.js';

const spec = await loadSpec(exampleSpecPath);
const scratch = mkdtempSync(join(tmpdir(), 'parse-test-'));
const parseTargets = loadTargets().filter((t) => t.level === 'parses');

// The main source file of each target, where the syntax errors are injected, and a call in
// its code (not in a comment or a string) whose parenthesis is doubled.
const mainFile: Record<string, string> = {
  'csharp-aspnetcore': 'Program.cs',
  'dart-shelf': 'bin/server.dart',
  'swift-vapor': 'Sources/Server/main.swift',
  'elixir-phoenix': 'lib/sse_server/hub.ex',
};
const call: Record<string, string> = {
  'csharp-aspnetcore': 'Env("SSE_TOKEN")',
  'dart-shelf': "env('SSE_TOKEN')",
  'swift-vapor': 'env("SSE_TOKEN")',
  'elixir-phoenix': 'GenServer.start_link(__MODULE__',
};

async function render(target: Target, s: Spec, name: string) {
  const dir = join(scratch, target.id, name);
  await writeProject(dir, renderTarget(s, target), { force: true });
  return dir;
}

// What a real parser must refuse, in any of the four languages: a dropped closing token at
// the end of the file, and an opening parenthesis that is never closed.
const injections: Array<[string, (source: string, target: Target) => string]> = [
  [
    'the last closing brace or `end` removed',
    (source, target) => {
      const closer = target.id === 'elixir-phoenix' ? 'end' : '}';
      const at = source.lastIndexOf(closer);
      return source.slice(0, at) + source.slice(at + closer.length);
    },
  ],
  ['an unclosed parenthesis', (source, target) => source.replace(call[target.id], call[target.id].replace('(', '(('))],
];

describe('parse-only targets', () => {
  it('include the four whose toolchains cannot be installed here', () => {
    expect(parseTargets.map((t) => t.id)).toEqual(expect.arrayContaining(Object.keys(mainFile)));
  });

  for (const target of parseTargets) {
    describe(target.id, () => {
      it('is covered by the syntax-error tests below (add it to mainFile and call)', () => {
        expect(mainFile[target.id]).toBeDefined();
        expect(call[target.id]).toBeDefined();
      });

      it('names its parser, and the parser is here', () => {
        expect(target.parse?.length).toBeGreaterThan(0);
        expect(parserMissing(target.parse!)).toBeUndefined();
        expect(target.levelNote).toBeTruthy();
      });

      for (const [variant, s] of [['spec', spec], ['hardened', hardenedSpec(spec)]] as const) {
        it(`parses the ${variant} variant`, async () => {
          const dir = await render(target, s, variant);
          const outcome = await parseProject(dir, target.parse!, target.env);
          expect(outcome.problem).toBeUndefined();
          // A grammar step parsed at least one file (a step that matches nothing fails).
          for (const [i, step] of target.parse!.entries()) if (step.grammar) expect(outcome.files[i]).toBeGreaterThan(0);
        });
      }

      for (const [what, inject] of mainFile[target.id] ? injections : []) {
        it(`fails on ${what}, naming the file`, async () => {
          const good = await render(target, spec, 'good');
          const bad = join(scratch, target.id, `bad-${injections.findIndex(([w]) => w === what)}`);
          cpSync(good, bad, { recursive: true });
          const file = join(bad, mainFile[target.id]);
          const source = readFileSync(file, 'utf8');
          const broken = inject(source, target);
          expect(broken).not.toBe(source);
          writeFileSync(file, broken);
          const { problem } = await parseProject(bad, target.parse!, target.env);
          expect(problem).toBeDefined();
          if (target.parse!.some((step) => step.grammar)) {
            // file:line:col of the first ERROR or MISSING node
            expect(problem).toMatch(new RegExp(`^${mainFile[target.id].replace(/[.]/g, '\\.')}:\\d+:\\d+: syntax error`));
          } else {
            expect(problem).toContain(mainFile[target.id].split('/').pop());
          }
        });
      }
    });
  }
});

describe('smoke of a parse-only target', () => {
  it('reports `parses` with the reason, counts no check as passed, and needs only the parser', async () => {
    const reports = await smokeTargets(parseTargets, spec, { work: join(scratch, 'smoke'), requireToolchains: true });
    for (const report of reports) {
      expect(report.result, `${report.id}: ${report.reason}`).toBe('parses');
      expect(report.reason).toMatch(/^checks not run: /);
      expect(report.checks).toEqual({});
    }
  });
});

describe('parse steps', () => {
  const grammar = '@repomix/tree-sitter-wasms/out/tree-sitter-c_sharp.wasm';

  it('globs: ** any folders or none, * one name part', () => {
    expect(globRegExp('**/*.cs').test('Program.cs')).toBe(true);
    expect(globRegExp('**/*.cs').test('src/a/b.cs')).toBe(true);
    expect(globRegExp('Sources/**/*.swift').test('Sources/Server/main.swift')).toBe(true);
    expect(globRegExp('*.cs').test('src/b.cs')).toBe(false);
    expect(globRegExp('Package.swift').test('Package.swift')).toBe(true);
    expect(globRegExp('Package.swift').test('PackageXswift')).toBe(false);
  });

  it('a grammar step that matches no file fails: parsing nothing proves nothing', async () => {
    const dir = join(scratch, 'empty');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    const { problem } = await parseProject(dir, [{ grammar, files: ['**/*.cs'] }]);
    expect(problem).toMatch(/no file matches \*\*\/\*\.cs/);
  });

  it('reports the first ERROR node with its line and column', async () => {
    const dir = join(scratch, 'one-error');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'A.cs'), 'class A\n{\n    void F() { var x = ; }\n}\n');
    const { problem } = await parseProject(dir, [{ grammar, files: ['*.cs'] }]);
    expect(problem).toMatch(/^A\.cs:3:\d+: syntax error/);
  });

  it('a command step fails with its output; a missing parser is named', async () => {
    const dir = join(scratch, 'cmd');
    mkdirSync(dir, { recursive: true });
    const { problem } = await parseProject(dir, [{ run: [process.execPath, '-e', 'console.error("x.ex:1:2: boom"); process.exit(3)'] }]);
    expect(problem).toMatch(/exit 3[\s\S]*x\.ex:1:2: boom/);
    expect(parserMissing([{ run: ['no-such-parser-here'], hint: 'install it' }])).toBe('no-such-parser-here (install it)');
    expect(parserMissing([{ grammar: 'no-such-package/x.wasm', files: ['*'] }])).toMatch(/grammar no-such-package\/x\.wasm/);
  });

  it('a parses manifest without parse steps is refused', () => {
    const root = join(scratch, 'templates');
    mkdirSync(join(root, 'nothing-to-parse', 'files'), { recursive: true });
    const manifest = { id: 'nothing-to-parse', language: 'X', framework: 'Y', portOffset: 90, level: 'parses', toolchain: [], install: [], build: [], start: ['x'] };
    writeFileSync(join(root, 'nothing-to-parse', 'target.json'), JSON.stringify(manifest));
    expect(() => loadTargets(root)).toThrow(/must have required property 'parse'/);
  });
});
