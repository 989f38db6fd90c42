// C9: POST /publish broadcasts to every client: strings as text split into data lines, other
// JSON compact; bad bodies, bad names and bad tokens refused while the server keeps serving.
import { isDeepStrictEqual } from 'node:util';
import { expect, skip } from '../context.js';
import type { Check } from './types.js';

const JOIN_RACE_TRIES = 20;

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

export const publish: Check = {
  id: 'C9',
  title: 'publish',
  variants: ['hardened', 'spec'],
  async run(ctx) {
    if (!ctx.spec.publish.enabled) skip('publish is disabled in the spec');
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
        expect(!stream.events.some((e) => e.event === 'injected' || e.id === '999999'), 'a data line was read as a field: frame injection');
      }
      expect(got(a, sent.at(-1)!.id)?.event === long, '64-character event name did not arrive intact');

      const refused: Array<[string, string | Buffer, number[], Record<string, string>?]> = [
        ['event name with LF', JSON.stringify({ event: 'bad\nname', data: 'x' }), [400]],
        ['event name with CR', JSON.stringify({ event: 'bad\rid: 1', data: 'x' }), [400]],
        ['65-character event name', JSON.stringify({ event: 'n'.repeat(65), data: 'x' }), [400]],
        ['body that is not JSON', '{"event": "x", data', [400]],
        ['body over 64 KiB', JSON.stringify({ event: 'big', data: 'x'.repeat(70 * 1024) }), [413, 400]],
      ];
      if (ctx.publishToken) {
        refused.push(['no Authorization', JSON.stringify({ event: 'x', data: 'x' }), [401], { 'Content-Type': 'application/json' }]);
        refused.push(['wrong token', JSON.stringify({ event: 'x', data: 'x' }), [401], { 'Content-Type': 'application/json', Authorization: 'Bearer wrong' }]);
      }
      for (const [label, body, statuses, headers] of refused) {
        const res = await ctx.publishRaw(body, headers);
        expect(statuses.includes(res.status), `${label}: answered ${res.status}, expected ${statuses.join(' or ')}`);
        await ctx.health();
      }
      const after = await ctx.publish('c9-after', 'still serving');
      await a.until((s) => s.events.some((e) => e.id === after), 3000, 'an event after the refused requests');
      expect(!a.events.some((e) => e.event?.includes('bad') || e.event === 'big'), 'a refused event reached a client');
      return `${JOIN_RACE_TRIES} just-connected clients and ${sent.length} events reached both clients intact (multi-line, CR/LF, Unicode, JSON); ${refused.length} bad requests refused`;
    } finally {
      a.close();
      b.close();
    }
  },
};

const got = (stream: { events: Array<{ id?: string; event?: string }> }, id: string) => stream.events.find((e) => e.id === id);
