// C9: POST /publish broadcasts to every client: strings as text split into data lines, other
// JSON compact. Always behind the publish token; JSON only; bodies capped while they arrive;
// bad bodies and names refused with JSON errors while the server keeps serving.
import { isDeepStrictEqual } from 'node:util';
import { postEndlessBody, request } from '../client.js';
import { expect, expectJsonError, fail, skip, type Context } from '../context.js';
import { PUBLISH_TOKEN_LINE } from '../publish-token.js';
import type { Check } from './types.js';

const JOIN_RACE_TRIES = 20;
const MAX_BODY = 64 * 1024;

/** JSON with no whitespace outside its strings */
const isCompact = (text: string) => !/\s/.test(text.replace(/"(?:[^"\\]|\\.)*"/g, '""'));

const TEXTS: Array<[string, string, string]> = [
  ['plain text', 'hello', 'hello'],
  ['LF lines', 'line one\nline two', 'line one\nline two'],
  ['CRLF and CR', 'a\r\nb\rc\nd', 'a\nb\nc\nd'],
  ['leading space', '  two spaces', '  two spaces'],
  ['empty string', '', ''],
  ['trailing break', 'ends with a break\n', 'ends with a break\n'],
  ['blank lines', 'a\n\nb', 'a\n\nb'],
  ['frame injection', 'x\n\nevent: injected\nid: 999999\ndata: owned', 'x\n\nevent: injected\nid: 999999\ndata: owned'],
  ['Unicode', 'héllo wörld — 中文 🎉 \u2028 \u0085 \u000b', 'héllo wörld — 中文 🎉 \u2028 \u0085 \u000b'],
];

const JSONS: Array<[string, unknown]> = [
  ['object', { text: 'hi', n: 1.5, ok: true, list: [1, 'two', null], nested: { é: '🎉' } }],
  ['number', 42],
  ['null', null],
  ['array', [1, 2, 3]],
];

const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

/** The publish token: given in the environment, or made by the server and logged once. */
function publishToken(ctx: Context): string {
  const token = ctx.publishToken;
  if (!token) {
    fail(
      'started without SSE_PUBLISH_TOKEN, the server did not log "publish token: <token> (set SSE_PUBLISH_TOKEN to choose your own)"',
    );
  }
  if (ctx.variant === 'spec') {
    const lines = ctx.server.output().split('\n').filter((l) => PUBLISH_TOKEN_LINE.test(l)).length;
    expect(lines === 1, `the made publish token was logged ${lines} times, expected once`);
    expect(token!.length >= 22, `the made publish token "${token}" is too short to hold 128 random bits`);
  }
  return token!;
}

/** Requests that must be accepted: the scheme in any case, Content-Type parameters, chunked. */
async function accepted(ctx: Context, token: string): Promise<string[]> {
  const body = (i: number) => JSON.stringify({ event: 'c9-accepted', data: { i } });
  const cases: Array<[string, Record<string, string>, boolean?]> = [
    ['"bearer" in lower case', { 'Content-Type': 'application/json', Authorization: `bearer ${token}` }],
    ['"BEARER" in upper case', { 'Content-Type': 'application/json', Authorization: `BEARER ${token}` }],
    ['Content-Type with charset', { 'Content-Type': 'application/json; charset=utf-8', Authorization: `Bearer ${token}` }],
    ['Content-Type in other case', { 'Content-Type': 'Application/JSON', Authorization: `Bearer ${token}` }],
  ];
  const ids: string[] = [];
  for (const [i, [label, headers]] of cases.entries()) {
    const res = await ctx.publishRaw(body(i), headers);
    expect(res.status === 202, `${label}: answered ${res.status} instead of 202: ${res.body.slice(0, 120)}`);
    ids.push(String(JSON.parse(res.body).id));
  }
  const text = body(cases.length);
  const chunked = await request(ctx.url('/publish'), { method: 'POST', headers: ctx.publishHeaders(), chunks: [text.slice(0, 10), text.slice(10)] });
  expect(chunked.status === 202, `a chunked body: answered ${chunked.status} instead of 202: ${chunked.body.slice(0, 120)}`);
  ids.push(String(JSON.parse(chunked.body).id));
  return ids;
}

export const publish: Check = {
  id: 'C9',
  title: 'publish',
  variants: ['hardened', 'spec'],
  async run(ctx) {
    if (!ctx.spec.publish.enabled) skip('publish is disabled in the spec');
    const token = publishToken(ctx);
    // A client whose headers have arrived is connected: an event published at once reaches it.
    for (let i = 0; i < JOIN_RACE_TRIES; i++) {
      const fresh = await ctx.connect();
      const id = await ctx.publish('c9-join', { try: i });
      await fresh.until((s) => s.ids.has(id), 2000, `event published right after a client's headers arrived (try ${i + 1})`);
      fresh.close();
    }
    const a = await ctx.connect();
    const b = await ctx.connect();
    try {
      const acceptedIds = await accepted(ctx, token);
      const sent: Array<{ id: string; label: string; check: (data: string) => string | undefined }> = [];
      for (const [label, text, want] of TEXTS) {
        sent.push({ id: await ctx.publish('c9-text', text), label, check: (d) => (d === want ? undefined : `got ${JSON.stringify(d)}, expected ${JSON.stringify(want)}`) });
      }
      for (const [label, value] of JSONS) {
        sent.push({
          id: await ctx.publish('c9-json', value),
          label,
          check: (d) => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(d);
            } catch {
              return `not JSON: ${d.slice(0, 80)}`;
            }
            if (!isDeepStrictEqual(parsed, value)) return `got ${d.slice(0, 80)}, expected ${JSON.stringify(value)}`;
            return isCompact(d) ? undefined : `not compact JSON: ${d.slice(0, 80)}`;
          },
        });
      }
      const long = 'n'.repeat(64);
      sent.push({ id: await ctx.publish(long, 'a 64-character name'), label: '64-character event name', check: () => undefined });
      const last = sent.at(-1)!.id;
      for (const stream of [a, b]) {
        await stream.until((s) => s.events.some((e) => e.id === last), 3000, 'every published event');
        const got = stream.events.filter((e) => sent.some((s) => s.id === e.id));
        expect(got.length === sent.length, `a client got ${got.length} of ${sent.length} published events (ids ${got.map((e) => e.id).join(',')})`);
        for (const [i, item] of sent.entries()) {
          const e = got[i];
          expect(e.id === item.id, `${item.label}: expected id ${item.id} in position ${i}, got ${e.id}`);
          const problem = item.check(e.data);
          expect(!problem, `${item.label}: ${problem}`);
        }
        const missing = acceptedIds.filter((id) => !stream.ids.has(id));
        expect(!missing.length, `accepted publishes (scheme case, Content-Type parameters, chunked) did not arrive: ids ${missing.join(',')}`);
        expect(!stream.events.some((e) => e.event === 'injected' || e.id === '999999'), 'a data line was read as a field: frame injection');
      }
      expect(got(a, sent.at(-1)!.id)?.event === long, '64-character event name did not arrive intact');

      const ok = JSON.stringify({ event: 'x', data: 'x' });
      const json = { 'Content-Type': 'application/json' };
      const auth = { ...json, Authorization: `Bearer ${token}` };
      const refused: Array<[string, string | Buffer, number, Record<string, string>, Record<string, string>?]> = [
        ['no Authorization', ok, 401, json],
        ['wrong token', ok, 401, { ...json, Authorization: 'Bearer wrong' }],
        ['token with one more character', ok, 401, { ...json, Authorization: `Bearer ${token}x` }],
        ['Basic scheme', ok, 401, { ...json, Authorization: `Basic ${token}` }],
        ['token in ?token= only', ok, 401, json, { token }],
        ['Content-Type text/plain', ok, 415, { ...auth, 'Content-Type': 'text/plain' }],
        ['no Content-Type', ok, 415, { Authorization: auth.Authorization }],
        ['form Content-Type', ok, 415, { ...auth, 'Content-Type': 'application/x-www-form-urlencoded' }],
        ['event name with LF', JSON.stringify({ event: 'bad\nname', data: 'x' }), 400, auth],
        ['event name with CR', JSON.stringify({ event: 'bad\rid: 1', data: 'x' }), 400, auth],
        ['65-character event name', JSON.stringify({ event: 'n'.repeat(65), data: 'x' }), 400, auth],
        ['body that is not JSON', '{"event": "x", data', 400, auth],
        ['body that is a JSON array', '[1, 2]', 400, auth],
        ['body that is not UTF-8', Buffer.concat([Buffer.from('{"event": "x", "data": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]), 400, auth],
        ['JSON nested 5000 levels deep', `{"event": "x", "data": ${deep(5000)}}`, 400, auth],
        ['body over 64 KiB', JSON.stringify({ event: 'big', data: 'x'.repeat(70 * 1024) }), 413, auth],
      ];
      for (const [label, body, status, headers, query] of refused) {
        const res = await ctx.publishRaw(body, headers, query);
        expect(res.status === status, `${label}: answered ${res.status}, expected ${status}: ${res.body.slice(0, 100)}`);
        expectJsonError(res, label);
        await ctx.health();
      }

      // Limits enforced while the body arrives: a server that reads the whole body before its
      // size check never answers a body that never ends.
      const endless = [
        ['a chunked body that never ends', undefined],
        ['a Content-Length of 10 MiB with 256 KiB sent', 10 * 1024 * 1024],
      ] as const;
      for (const [label, contentLength] of endless) {
        const res = await postEndlessBody(ctx.url('/publish'), auth, { contentLength, maxBytes: contentLength ? 256 * 1024 : 2 * 1024 * 1024, waitMs: 3000 });
        expect(
          res.status === 413,
          `${label}: ${res.status ? `answered ${res.status}` : res.error ?? 'no answer'} after ${Math.round(res.sentBytes / 1024)} KiB, expected 413 while the body was still arriving (is the body buffered before the size check?)`,
        );
        expect(res.sentBytes <= 16 * MAX_BODY, `${label}: 413 came only after ${Math.round(res.sentBytes / 1024)} KiB (the body was read far past 64 KiB)`);
        await ctx.health();
      }

      const after = await ctx.publish('c9-after', 'still serving');
      await a.until((s) => s.events.some((e) => e.id === after), 3000, 'an event after the refused requests');
      expect(!a.events.some((e) => e.event?.includes('bad') || e.event === 'big' || e.event === 'x'), 'a refused event reached a client');
      return `${JOIN_RACE_TRIES} just-connected clients and ${sent.length + acceptedIds.length} events reached both clients intact (multi-line, CR/LF, Unicode, JSON, chunked, any-case Bearer); ${refused.length + endless.length} bad requests refused with JSON errors, oversized bodies while arriving`;
    } finally {
      a.close();
      b.close();
    }
  },
};

const got = (stream: { events: Array<{ id?: string; event?: string }> }, id: string) => stream.events.find((e) => e.id === id);
