// Every literal helper, read back by a real parser of its language where one is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NASTY } from './nasty.js';
import { commentText, jsonText, shellWord, stringLiteral, type LiteralLanguage } from '../src/escape.js';


const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'escape-'));

/** Programs that print the UTF-8 hex of each literal, one per line. */
const programs: Partial<Record<LiteralLanguage, { tool: string; file: string; source: (lits: string[]) => string; run: (file: string) => string[] }>> = {
  python: {
    tool: 'python3',
    file: 'lits.py',
    source: (l) => `for s in [${l.join(', ')}]:\n    print(s.encode('utf-8', 'surrogatepass').hex())\n`,
    run: (f) => ['python3', f],
  },
  go: {
    tool: 'go',
    file: 'lits.go',
    source: (l) => `package main\n\nimport (\n\t"encoding/hex"\n\t"fmt"\n)\n\nfunc main() {\n\tfor _, s := range []string{${l.join(', ')}} {\n\t\tfmt.Println(hex.EncodeToString([]byte(s)))\n\t}\n}\n`,
    run: (f) => ['go', 'run', f],
  },
  rust: {
    tool: 'rustc',
    file: 'lits.rs',
    source: (l) => `fn main() {\n    for s in [${l.join(', ')}] {\n        println!("{}", s.bytes().map(|b| format!("{:02x}", b)).collect::<String>());\n    }\n}\n`,
    run: (f) => ['sh', '-c', `rustc -o ${f}.bin ${f} && ${f}.bin`],
  },
  java: {
    tool: 'java',
    file: 'Lits.java',
    source: (l) => `public class Lits {\n  public static void main(String[] a) {\n    for (String s : new String[] {${l.join(', ')}}) {\n      StringBuilder b = new StringBuilder();\n      for (byte x : s.getBytes(java.nio.charset.StandardCharsets.UTF_8)) b.append(String.format("%02x", x));\n      System.out.println(b);\n    }\n  }\n}\n`,
    run: (f) => ['java', f],
  },
  php: {
    tool: 'php',
    file: 'lits.php',
    source: (l) => `<?php\nforeach ([${l.join(', ')}] as $s) echo bin2hex($s), "\\n";\n`,
    run: (f) => ['php', f],
  },
  ruby: {
    tool: 'ruby',
    file: 'lits.rb',
    source: (l) => `[${l.join(', ')}].each { |s| puts s.unpack1('H*') }\n`,
    run: (f) => ['ruby', f],
  },
  perl: {
    tool: 'perl',
    file: 'lits.pl',
    source: (l) => `use strict;\nuse Encode;\nfor my $s (${l.join(', ')}) { print unpack('H*', encode('UTF-8', $s)), "\\n"; }\n`,
    run: (f) => ['perl', f],
  },
  lua: {
    tool: 'luajit',
    file: 'lits.lua',
    source: (l) => `for _, s in ipairs({${l.join(', ')}}) do\n  print((s:gsub('.', function(c) return string.format('%02x', c:byte()) end)))\nend\n`,
    run: (f) => ['luajit', f],
  },
  haskell: {
    tool: 'runghc',
    file: 'Lits.hs',
    source: (l) =>
      `import qualified Data.ByteString as B\nimport qualified Data.Text as T\nimport Data.Text.Encoding (encodeUtf8)\nimport Text.Printf (printf)\n\nmain :: IO ()\nmain = mapM_ (\\s -> putStrLn (concatMap (printf "%02x") (B.unpack (encodeUtf8 (T.pack s))))) [${l.join(', ')}]\n`,
    run: (f) => ['runghc', f],
  },
  toml: {
    tool: 'python3',
    file: 'lits.toml',
    source: (l) => l.map((lit, i) => `k${i} = ${lit}`).join('\n') + '\n',
    run: (f) => ['python3', '-c', `import tomllib,sys\nd=tomllib.load(open(sys.argv[1],'rb'))\nfor i in range(len(d)): print(d[f'k{i}'].encode().hex())`, f],
  },
};

describe('string literals', () => {
  it('js: evaluates back to the input and holds no < or > (safe inside <script>)', () => {
    for (const s of NASTY) {
      const lit = stringLiteral('js', s);
      expect(new Function(`return ${lit}`)()).toBe(s);
      expect(lit).not.toMatch(/[<>]|[^\x20-\x7e]/);
    }
  });

  it('json: parses back to the input', () => {
    for (const s of NASTY) expect(JSON.parse(stringLiteral('json', s))).toBe(s);
  });

  for (const [language, program] of Object.entries(programs) as Array<[LiteralLanguage, NonNullable<(typeof programs)[LiteralLanguage]>]>) {
    it.skipIf(!has(program.tool))(`${language}: ${program.tool} reads every literal back byte for byte`, () => {
      const lits = NASTY.map((s) => stringLiteral(language, s));
      for (const lit of lits) expect(lit).toMatch(/^[\x20-\x7e]*$/);
      const file = join(dir, program.file);
      writeFileSync(file, program.source(lits));
      const [cmd, ...args] = program.run(file);
      const out = execFileSync(cmd, args, { encoding: 'utf8', cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out.trim().split('\n')).toEqual(NASTY.map(hex).map((h) => h || ''));
    }, 120_000);
  }

  it('kotlin and dart escape $, ruby and elixir escape #, perl escapes $ and @', () => {
    expect(stringLiteral('kotlin', '${x} $y')).toBe('"\\${x} \\$y"');
    expect(stringLiteral('dart', '${x}')).toBe('"\\${x}"');
    expect(stringLiteral('ruby', '#{x}')).toBe('"\\#{x}"');
    expect(stringLiteral('elixir', '#{x}')).toBe('"\\#{x}"');
    expect(stringLiteral('perl', '$x @y')).toBe('"\\$x \\@y"');
    expect(stringLiteral('swift', '\\(x) 🎉')).toBe('"\\\\(x) \\u{1F389}"');
    expect(stringLiteral('csharp', '🎉"')).toBe('"\\U0001F389\\""');
    expect(stringLiteral('clojure', '🎉')).toBe('"\\uD83C\\uDF89"');
  });
});

describe('other helpers', () => {
  it('jsonText is ASCII, keeps the value, and cannot close a <script>', () => {
    const value = { s: NASTY, n: [1, 2.5, null, true] };
    const text = jsonText(value);
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toMatch(/^[\x20-\x7e]*$/);
    expect(text).not.toMatch(/[<>]/);
  });

  it('shellWord quotes for sh', () => {
    for (const s of NASTY.filter((x) => /^[\x20-\x7e]*$/.test(x))) {
      expect(execFileSync('sh', ['-c', `printf %s ${shellWord(s)}`], { encoding: 'utf8' })).toBe(s);
    }
    expect(() => shellWord('é')).toThrow(/printable ASCII/);
  });

  it('commentText stays on one line and closes no comment', () => {
    for (const s of NASTY) {
      const c = commentText(s);
      expect(c).toMatch(/^[\x20-\x7e]*$/);
      for (const end of ['*/', '-->', '-}', '*)']) expect(c).not.toContain(end);
    }
  });
});
