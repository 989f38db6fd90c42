// String literals for every language a template is written in.
//
// A value from the spec (a token, an event's data as JSON) reaches 20 languages. Each helper
// returns a complete literal, quotes included, that holds exactly the input and nothing
// else: only printable ASCII is written as itself; everything else (line breaks, control
// characters, non-ASCII) becomes that language's escape, and the characters its literals
// treat specially (quotes, backslash, `$`, `#{`, `@`, ...) are escaped too. So no spec can end
// a literal early, interpolate, or smuggle a line into a comment.

type CodePointEscape = (codePoint: number) => string;

interface LiteralStyle {
  quote: string;
  /** printable ASCII characters that must be escaped, and how */
  special: Record<string, string>;
  /** escape for any other character (control or non-ASCII) */
  other: CodePointEscape;
}

const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');

/** \uXXXX, astral characters as a UTF-16 surrogate pair (JS, JSON, Java, C#, Clojure, TOML, YAML) */
const utf16Escape: CodePointEscape = (cp) => {
  if (cp < 0x10000) return `\\u${hex(cp, 4)}`;
  const v = cp - 0x10000;
  return `\\u${hex(0xd800 + (v >> 10), 4)}\\u${hex(0xdc00 + (v & 0x3ff), 4)}`;
};
/**
 * Java turns \uXXXX into its character before it reads the source, so \u000A would end the
 * literal: control characters take 3-digit octal escapes, and only non-ASCII takes \uXXXX.
 */
const javaEscape: CodePointEscape = (cp) => (cp < 0x80 ? `\\${cp.toString(8).padStart(3, '0')}` : utf16Escape(cp));
/** \u{1F389} (Rust, Swift, Dart, PHP, Ruby, Elixir) */
const bracedEscape: CodePointEscape = (cp) => `\\u{${hex(cp, 1)}}`;
/** \u00E9 / \U0001F389 (Python, Go, C#) */
const shortLongEscape: CodePointEscape = (cp) =>
  cp < 0x10000 ? `\\u${hex(cp, 4)}` : `\\U${hex(cp, 8)}`;
/** \u00e9 / \U0001f389: Python's hex digits in lower case, as ruff format and black write them */
const pythonEscape: CodePointEscape = (cp) =>
  cp < 0x10000 ? `\\u${hex(cp, 4).toLowerCase()}` : `\\U${hex(cp, 8).toLowerCase()}`;
/** each UTF-8 byte as \ddd (Lua 5.1 / LuaJIT) */
const luaEscape: CodePointEscape = (cp) =>
  [...Buffer.from(String.fromCodePoint(cp), 'utf8')].map((b) => `\\${String(b).padStart(3, '0')}`).join('');
/** \233\& (Haskell: the empty escape \& ends the number) */
const haskellEscape: CodePointEscape = (cp) => `\\${cp}\\&`;
/** \x{E9} (Perl) */
const perlEscape: CodePointEscape = (cp) => `\\x{${hex(cp, 1)}}`;

const C_LIKE = { '"': '\\"', '\\': '\\\\' };

const styles = {
  js: { quote: '"', special: { ...C_LIKE, '<': '\\u003C', '>': '\\u003E' }, other: utf16Escape },
  json: { quote: '"', special: { ...C_LIKE, '<': '\\u003C', '>': '\\u003E' }, other: utf16Escape },
  python: { quote: '"', special: C_LIKE, other: pythonEscape },
  go: { quote: '"', special: C_LIKE, other: shortLongEscape },
  rust: { quote: '"', special: C_LIKE, other: bracedEscape },
  java: { quote: '"', special: C_LIKE, other: javaEscape },
  kotlin: { quote: '"', special: { ...C_LIKE, $: '\\$' }, other: utf16Escape },
  scala: { quote: '"', special: C_LIKE, other: utf16Escape },
  csharp: { quote: '"', special: C_LIKE, other: shortLongEscape },
  dart: { quote: '"', special: { ...C_LIKE, $: '\\$' }, other: bracedEscape },
  swift: { quote: '"', special: C_LIKE, other: bracedEscape },
  php: { quote: '"', special: { ...C_LIKE, $: '\\$' }, other: bracedEscape },
  ruby: { quote: '"', special: { ...C_LIKE, '#': '\\#' }, other: bracedEscape },
  elixir: { quote: '"', special: { ...C_LIKE, '#': '\\#' }, other: bracedEscape },
  perl: { quote: '"', special: { ...C_LIKE, $: '\\$', '@': '\\@' }, other: perlEscape },
  lua: { quote: '"', special: C_LIKE, other: luaEscape },
  haskell: { quote: '"', special: C_LIKE, other: haskellEscape },
  clojure: { quote: '"', special: C_LIKE, other: utf16Escape },
  toml: { quote: '"', special: C_LIKE, other: shortLongEscape },
} satisfies Record<string, LiteralStyle>;

export type LiteralLanguage = keyof typeof styles;
export const literalLanguages = Object.keys(styles) as LiteralLanguage[];

/** Python reads '...' and "..." alike: take the one that needs no escapes (as ruff format does). */
const pythonSingle: LiteralStyle = { quote: "'", special: { "'": "\\'", '\\': '\\\\' }, other: pythonEscape };

export function stringLiteral(language: LiteralLanguage, value: string): string {
  const style: LiteralStyle = language === 'python' && value.includes('"') && !value.includes("'") ? pythonSingle : styles[language];
  let out = style.quote;
  for (const char of value) {
    const cp = char.codePointAt(0)!;
    if (Object.hasOwn(style.special, char)) out += style.special[char];
    else if (cp >= 0x20 && cp < 0x7f) out += char;
    else out += style.other(cp);
  }
  return out + style.quote;
}

/** Compact JSON of any value, ASCII only and safe inside HTML/XML (`<` and `>` escaped). */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error('value has no JSON form');
  // Inside JSON only string contents hold these characters, so escaping them keeps the value.
  return text.replace(/[^\x20-\x7e]|[<>]/gu, (char) => utf16Escape(char.codePointAt(0)!));
}

/** A shell word in single quotes. */
export function shellWord(value: string): string {
  if (/[^\x20-\x7e]/u.test(value)) throw new Error('shell words must be printable ASCII');
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Text for a comment of any language: printable ASCII on one line, no comment terminators. */
export function commentText(value: string): string {
  return value
    .replace(/[^\x20-\x7e]/gu, '?')
    .replace(/\*\/|\*\)|-}|--\]\]|-->|\]\]/g, (m) => m.split('').join(' '));
}

/**
 * Languages whose own literals `valueLiteral` writes (a JSON value as a dict, hash, object,
 * map). Not Lua: Debian's lua-cjson has no empty-array marker, so a table literal cannot tell
 * `[]` from `{}`; a Lua template decodes its JSON instead.
 */
export const valueLanguages = ['js', 'python', 'ruby', 'php', 'perl', 'elixir'] as const;
export type ValueLanguage = (typeof valueLanguages)[number];

interface ValueStyle {
  null: string;
  true: string;
  false: string;
  string: (s: string) => string;
  array: (items: string[]) => string;
  /** when JSON's own number text is not a literal of the language */
  number?: (n: number) => string;
  /** `pairs` holds already-written keys and values, and each key as it was */
  object: (pairs: Array<[string, string, string]>) => string;
}

const list = (open: string, items: string[], close: string) => `${open}${items.join(', ')}${close}`;

const valueStyles: Record<ValueLanguage, ValueStyle> = {
  js: {
    null: 'null',
    true: 'true',
    false: 'false',
    string: (s) => stringLiteral('js', s),
    array: (items) => list('[', items, ']'),
    object: (pairs) => (pairs.length ? list('{ ', pairs.map(([k, v]) => `${k}: ${v}`), ' }') : '{}'),
  },
  python: {
    null: 'None',
    true: 'True',
    false: 'False',
    string: (s) => stringLiteral('python', s),
    array: (items) => list('[', items, ']'),
    object: (pairs) => list('{', pairs.map(([k, v]) => `${k}: ${v}`), '}'),
  },
  ruby: {
    null: 'nil',
    true: 'true',
    false: 'false',
    string: (s) => stringLiteral('ruby', s),
    array: (items) => list('[', items, ']'),
    object: (pairs) => (pairs.length ? list('{ ', pairs.map(([k, v]) => `${k} => ${v}`), ' }') : '{}'),
  },
  php: {
    null: 'null',
    true: 'true',
    false: 'false',
    string: (s) => stringLiteral('php', s),
    array: (items) => list('[', items, ']'),
    // An empty PHP array encodes as a JSON list, and PHP turns a key like "0" into the integer
    // 0 (so keys "0", "1" would make a list too): such objects are cast to an object.
    object: (pairs) => {
      if (!pairs.length) return 'new \\stdClass()';
      const array = list('[', pairs.map(([k, v]) => `${k} => ${v}`), ']');
      return pairs.some(([, , raw]) => /^(0|-?[1-9][0-9]*)$/.test(raw)) ? `(object) ${array}` : array;
    },
  },
  perl: {
    null: 'undef',
    // what JSON::PP, Cpanel::JSON::XS and Mojo::JSON all encode as true and false
    true: '\\1',
    false: '\\0',
    string: (s) => stringLiteral('perl', s),
    array: (items) => list('[', items, ']'),
    object: (pairs) => (pairs.length ? list('{ ', pairs.map(([k, v]) => `${k} => ${v}`), ' }') : '{}'),
  },
  elixir: {
    // 1e+21 is not Elixir: a float needs a fraction before its exponent (1.0e21)
    number: (n) => JSON.stringify(n).replace(/^(-?\d+)e\+?/, '$1.0e').replace('e+', 'e'),
    null: 'nil',
    true: 'true',
    false: 'false',
    string: (s) => stringLiteral('elixir', s),
    array: (items) => list('[', items, ']'),
    object: (pairs) => list('%{', pairs.map(([k, v]) => `${k} => ${v}`), '}'),
  },
};

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `__proto__: x`, quoted or not, sets an object literal's prototype: only a computed key adds the field. */
const jsKey = (key: string) => (key === '__proto__' ? `[${stringLiteral('js', key)}]` : IDENTIFIER.test(key) ? key : stringLiteral('js', key));

/**
 * A JSON value written as `language`'s own literal: `{"a": [1, true, null]}` becomes
 * `{"a": [1, True, None]}` in Python, `{ "a" => [1, true, nil] }` in Ruby. Strings go through
 * the string literals above, so any spec value stays exact and inert.
 */
export function valueLiteral(language: ValueLanguage, value: unknown): string {
  const style = valueStyles[language];
  const write = (v: unknown): string => {
    if (v === null) return style.null;
    if (v === true) return style.true;
    if (v === false) return style.false;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error('JSON numbers are finite');
      return style.number?.(v) ?? JSON.stringify(v);
    }
    if (typeof v === 'string') return style.string(v);
    if (Array.isArray(v)) return style.array(v.map(write));
    if (typeof v === 'object') {
      return style.object(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [language === 'js' ? jsKey(k) : style.string(k), write(x), k]),
      );
    }
    throw new Error(`${typeof v} has no JSON form`);
  };
  return write(value);
}
