// The native-literal helpers ({{pythonValue data}}, ...): each language's own interpreter reads
// the literal back and encodes it as JSON, which must equal the original value.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { valueLanguages, valueLiteral, type ValueLanguage } from '../src/escape.js';
import { NASTY } from './nasty.js';

const VALUES: unknown[] = [
  { source: 'server-clock', price: 128.42, n: -3, big: 12345678901, ok: true, no: false, none: null },
  { nested: { list: [1, 'two', null, [], {}, [{ deep: [true] }]], empty: {} }, [NASTY.join('|')]: NASTY },
  { 'key with "quotes" and $x #{y} @z \\ \n': 'value', é: '🎉', '': 'empty key' },
  JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1, "toString": "x"}'),
  { '0': 'zero', '1': 'one' },
  [1e21, -2.5e-7, 1.5e300, 0.1, 0],
  { list: [{ '5': 'five' }, { '-1': 'minus', '01': 'padded' }] },
  [],
  {},
];

const dir = mkdtempSync(join(tmpdir(), 'values-'));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A program that prints each value as JSON on its own line; how to run it. */
const programs: Record<ValueLanguage, { tool: string; file: string; source: (lits: string[]) => string; run: string[] }> = {
  js: { tool: 'node', file: 'v.mjs', source: (l) => l.map((x) => `console.log(JSON.stringify(${x}));`).join('\n'), run: ['node'] },
  python: { tool: 'python3', file: 'v.py', source: (l) => `import json\n${l.map((x) => `print(json.dumps(${x}, ensure_ascii=False))`).join('\n')}\n`, run: ['python3'] },
  ruby: { tool: 'ruby', file: 'v.rb', source: (l) => `require 'json'\n${l.map((x) => `puts JSON.generate(${x})`).join('\n')}\n`, run: ['ruby'] },
  php: { tool: 'php', file: 'v.php', source: (l) => `<?php\n${l.map((x) => `echo json_encode(${x}, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION), "\\n";`).join('\n')}\n`, run: ['php'] },
  perl: { tool: 'perl', file: 'v.pl', source: (l) => `use strict;\nuse JSON::PP;\nmy $j = JSON::PP->new->utf8->allow_nonref;\n${l.map((x) => `print $j->encode(${x}), "\\n";`).join('\n')}\n`, run: ['perl'] },
  elixir: {
    tool: 'elixir',
    file: 'v.exs',
    // Elixir 1.14 ships no JSON module: a minimal encoder, enough to compare the data.
    source: (l) => `defmodule J do
  def e(nil), do: "null"
  def e(b) when is_boolean(b), do: to_string(b)
  def e(n) when is_integer(n), do: Integer.to_string(n)
  def e(n) when is_float(n), do: :erlang.float_to_binary(n, [:short])
  def e(s) when is_binary(s), do: "\\"" <> (s |> String.to_charlist() |> Enum.map_join(&c/1)) <> "\\""
  def e(l) when is_list(l), do: "[" <> Enum.map_join(l, ",", &e/1) <> "]"
  def e(m) when is_map(m), do: "{" <> Enum.map_join(m, ",", fn {k, v} -> e(k) <> ":" <> e(v) end) <> "}"
  defp c(?"), do: "\\\\\\""
  defp c(?\\\\), do: "\\\\\\\\"
  defp c(x) when x < 0x20, do: "\\\\u" <> String.pad_leading(Integer.to_string(x, 16), 4, "0")
  defp c(x), do: <<x::utf8>>
end
${l.map((x) => `IO.puts(J.e(${x}))`).join('\n')}
`,
    run: ['elixir'],
  },
};

describe('native value literals', () => {
  for (const language of valueLanguages) {
    const program = programs[language];
    it.skipIf(!has(program.tool))(`${language}: read back by ${program.tool} as the same JSON value`, () => {
      const file = join(dir, program.file);
      writeFileSync(file, program.source(VALUES.map((v) => valueLiteral(language, v))));
      const result = spawnSync(program.run[0], [...program.run.slice(1), file], { encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const lines = result.stdout.trim().split('\n');
      expect(lines).toHaveLength(VALUES.length);
      // Key order is not kept by every language's maps (Perl): compare as data.
      lines.forEach((line, i) => expect(JSON.parse(line), `${language} value ${i}`).toEqual(VALUES[i]));
    });
  }

  it('writes Python, Ruby and PHP literals a senior would (no JSON parsing at run time)', () => {
    const data = { source: 'server-clock', ok: true, none: null, list: [1, 2.5] };
    expect(valueLiteral('python', data)).toBe('{"source": "server-clock", "ok": True, "none": None, "list": [1, 2.5]}');
    expect(valueLiteral('ruby', data)).toBe('{ "source" => "server-clock", "ok" => true, "none" => nil, "list" => [1, 2.5] }');
    expect(valueLiteral('php', data)).toBe('["source" => "server-clock", "ok" => true, "none" => null, "list" => [1, 2.5]]');
    expect(valueLiteral('js', { a: 1, 'b-c': 2 })).toBe('{ a: 1, "b-c": 2 }');
  });
});
