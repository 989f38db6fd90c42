// C7: Last-Event-ID (header or ?lastEventId=) replays the kept events after it, in order and
// once, then live ones; a malformed, unknown, very long or non-ASCII id is ignored.
import { expect, skip } from '../context.js';
import type { Stream } from '../client.js';
import type { Check } from './types.js';

const LIVE_MS = 2000;

export const resume: Check = {
  id: 'C7',
  title: 'resume',
  variants: ['hardened'],
  async run(ctx) {
    const { history } = ctx.spec;
    if (history === 0) skip('history is 0 in the spec');
    if (!ctx.spec.publish.enabled) skip('publish is disabled in the spec');
    const count = history + 2;
    const ids: string[] = [];
    for (let n = 1; n <= count; n++) ids.push(await ctx.publish('c7-resume', { n }));
    // every id published so far; the server keeps the last `history` of them
    const published = [...ids];
    const kept = () => published.slice(-history);

    /** After Last-Event-ID `from`, expect exactly `replay`, then one live event. */
    const expectResume = async (stream: Stream, from: string, replay: string[], how: string) => {
      await stream.ready;
      expect(stream.status === 200, `${how} ${from.slice(0, 40)}: answered ${stream.status || stream.error?.message}`);
      await stream.until((s) => s.events.length >= replay.length, LIVE_MS, `${replay.length} replayed events after ${how} ${from.slice(0, 20)}`);
      const live = await ctx.publish('c7-live', { after: from.slice(0, 20) });
      published.push(live);
      await stream.until((s) => s.events.some((e) => e.id === live), LIVE_MS, `live event after ${how} ${from.slice(0, 20)}`);
      const got = stream.events.map((e) => e.id);
      const want = [...replay, live];
      expect(JSON.stringify(got) === JSON.stringify(want), `${how} ${from.slice(0, 40)}: got ids [${got.join(', ')}], expected [${want.join(', ')}]`);
      stream.close();
    };

    const third = ids[2];
    const after = (id: string) => kept().filter((k) => BigInt(k) > BigInt(id));
    await expectResume(ctx.open({ headers: { 'Last-Event-ID': third } }), third, after(third), 'Last-Event-ID');
    await expectResume(ctx.open({ query: { lastEventId: ids[3] } }), ids[3], after(ids[3]), '?lastEventId=');
    // Older than anything kept: every kept event.
    await expectResume(ctx.open({ headers: { 'Last-Event-ID': ids[0] } }), ids[0], kept(), 'Last-Event-ID (evicted)');

    const ignored: Array<[string, Record<string, string>]> = [
      ['abc', { 'Last-Event-ID': 'abc' }],
      ['-1', { 'Last-Event-ID': '-1' }],
      ['9'.repeat(40) + ' (beyond 64 bits)', { 'Last-Event-ID': '9'.repeat(40) }],
      ['2000 digits', { 'Last-Event-ID': '1'.repeat(2000) }],
      // Node writes header values as latin1: these two chars go out as the UTF-8 bytes of "é".
      ['non-ASCII', { 'Last-Event-ID': '\u00c3\u00a9' }],
    ];
    for (const [label, headers] of ignored) {
      await expectResume(ctx.open({ headers }), label, [], 'ignored Last-Event-ID');
    }
    await expectResume(ctx.open({ query: { lastEventId: 'x'.repeat(1500) } }), 'x'.repeat(1500), [], 'ignored ?lastEventId=');
    return `replayed the ${history} kept events after header and query ids, in order, once; 6 bad ids ignored`;
  },
};
