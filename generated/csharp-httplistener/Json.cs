using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace SseServer
{
    /// <summary>A JSON number, kept as the text it came in (written back exactly).</summary>
    sealed class JsonNumber
    {
        public readonly string Text;
        public JsonNumber(string text) { Text = text; }
    }

    sealed class JsonException : Exception
    {
        public JsonException(string message) : base(message) { }
    }

    /// <summary>
    /// Strict RFC 8259 JSON reader and compact writer. Mono has no System.Text.Json and this
    /// project takes no packages. Values: objects are List&lt;KeyValuePair&lt;string, object&gt;&gt;
    /// (order kept), arrays List&lt;object&gt;, strings string, numbers JsonNumber, true/false bool, null null.
    /// </summary>
    static class Json
    {
        public const int MaxJsonDepth = 64;

        public static object Parse(string text)
        {
            int at = 0;
            object value = ReadValue(text, ref at, 0);
            SkipSpace(text, ref at);
            if (at != text.Length) throw new JsonException("body is not JSON");
            return value;
        }

        static object ReadValue(string s, ref int at, int depth)
        {
            SkipSpace(s, ref at);
            if (at >= s.Length) throw new JsonException("body is not JSON");
            char c = s[at];
            switch (c)
            {
                case '{': return ReadObject(s, ref at, Nest(depth));
                case '[': return ReadArray(s, ref at, Nest(depth));
                case '"': return ReadString(s, ref at);
                case 't': return ReadWord(s, ref at, "true", true);
                case 'f': return ReadWord(s, ref at, "false", false);
                case 'n': return ReadWord(s, ref at, "null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber(s, ref at);
                    throw new JsonException("body is not JSON");
            }
        }

        static int Nest(int depth)
        {
            if (depth >= MaxJsonDepth) throw new JsonException("JSON nested deeper than 64 levels");
            return depth + 1;
        }

        static List<KeyValuePair<string, object>> ReadObject(string s, ref int at, int depth)
        {
            var members = new List<KeyValuePair<string, object>>();
            at++;
            SkipSpace(s, ref at);
            if (Peek(s, at) == '}') { at++; return members; }
            while (true)
            {
                SkipSpace(s, ref at);
                if (Peek(s, at) != '"') throw new JsonException("body is not JSON");
                string key = ReadString(s, ref at);
                SkipSpace(s, ref at);
                Expect(s, ref at, ':');
                members.Add(new KeyValuePair<string, object>(key, ReadValue(s, ref at, depth)));
                SkipSpace(s, ref at);
                if (Peek(s, at) == ',') { at++; continue; }
                Expect(s, ref at, '}');
                return members;
            }
        }

        static List<object> ReadArray(string s, ref int at, int depth)
        {
            var items = new List<object>();
            at++;
            SkipSpace(s, ref at);
            if (Peek(s, at) == ']') { at++; return items; }
            while (true)
            {
                items.Add(ReadValue(s, ref at, depth));
                SkipSpace(s, ref at);
                if (Peek(s, at) == ',') { at++; continue; }
                Expect(s, ref at, ']');
                return items;
            }
        }

        static string ReadString(string s, ref int at)
        {
            var sb = new StringBuilder();
            at++;
            while (true)
            {
                if (at >= s.Length) throw new JsonException("body is not JSON");
                char c = s[at++];
                if (c == '"') return sb.ToString();
                if (c < 0x20) throw new JsonException("body is not JSON");
                if (c != '\\') { sb.Append(c); continue; }
                char e = Peek(s, at++);
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        char unit = Hex4(s, ref at);
                        if (char.IsHighSurrogate(unit))
                        {
                            if (Peek(s, at) != '\\' || Peek(s, at + 1) != 'u') throw new JsonException("body is not JSON");
                            at += 2;
                            char low = Hex4(s, ref at);
                            if (!char.IsLowSurrogate(low)) throw new JsonException("body is not JSON");
                            sb.Append(unit).Append(low);
                        }
                        // a lone surrogate has no UTF-8 form
                        else if (char.IsLowSurrogate(unit)) throw new JsonException("body is not JSON");
                        else sb.Append(unit);
                        break;
                    default: throw new JsonException("body is not JSON");
                }
            }
        }

        static char Hex4(string s, ref int at)
        {
            if (at + 4 > s.Length) throw new JsonException("body is not JSON");
            int value;
            string hex = s.Substring(at, 4);
            foreach (char h in hex)
                if (!Uri.IsHexDigit(h)) throw new JsonException("body is not JSON");
            value = int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            at += 4;
            return (char)value;
        }

        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        static JsonNumber ReadNumber(string s, ref int at)
        {
            int start = at;
            if (Peek(s, at) == '-') at++;
            if (Peek(s, at) == '0') at++;
            else if (IsDigit(Peek(s, at))) Digits(s, ref at);
            else throw new JsonException("body is not JSON");
            if (Peek(s, at) == '.')
            {
                at++;
                if (!IsDigit(Peek(s, at))) throw new JsonException("body is not JSON");
                Digits(s, ref at);
            }
            if (Peek(s, at) == 'e' || Peek(s, at) == 'E')
            {
                at++;
                if (Peek(s, at) == '+' || Peek(s, at) == '-') at++;
                if (!IsDigit(Peek(s, at))) throw new JsonException("body is not JSON");
                Digits(s, ref at);
            }
            return new JsonNumber(s.Substring(start, at - start));
        }

        static void Digits(string s, ref int at)
        {
            while (IsDigit(Peek(s, at))) at++;
        }

        static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

        static object ReadWord(string s, ref int at, string word, object value)
        {
            if (string.CompareOrdinal(s, at, word, 0, word.Length) != 0) throw new JsonException("body is not JSON");
            at += word.Length;
            return value;
        }

        static char Peek(string s, int at) { return at < s.Length ? s[at] : '\0'; }

        static void Expect(string s, ref int at, char c)
        {
            if (Peek(s, at) != c) throw new JsonException("body is not JSON");
            at++;
        }

        static void SkipSpace(string s, ref int at)
        {
            while (at < s.Length && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) at++;
        }

        public static string Write(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value);
            return sb.ToString();
        }

        static void Write(StringBuilder sb, object value)
        {
            if (value == null) sb.Append("null");
            else if (value is bool) sb.Append((bool)value ? "true" : "false");
            else if (value is string) WriteString(sb, (string)value);
            else if (value is JsonNumber) sb.Append(((JsonNumber)value).Text);
            else if (value is long) sb.Append(((long)value).ToString(CultureInfo.InvariantCulture));
            else if (value is List<KeyValuePair<string, object>>)
            {
                sb.Append('{');
                bool first = true;
                foreach (var member in (List<KeyValuePair<string, object>>)value)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, member.Key);
                    sb.Append(':');
                    Write(sb, member.Value);
                }
                sb.Append('}');
            }
            else
            {
                sb.Append('[');
                bool first = true;
                foreach (var item in (List<object>)value)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, item);
                }
                sb.Append(']');
            }
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
