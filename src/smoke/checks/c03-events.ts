// C3: every timed event arrives at its pace, with the spec's data plus an ISO-8601 UTC timestamp.
import { isDeepStrictEqual } from 'node:util';
import { expect, skip, sleep } from '../context.js';
import type { Check } from './types.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$/;
const MAX_WINDOW_MS = 15_000;

export const events: Check = {
  id: 'C3',
  title: 'events',
  variants: ['spec'],
  async run(ctx) {
    const timed = ctx.spec.events.filter((e) => e.every > 0);
    if (!timed.length) skip('the spec has no event with every > 0');
    const slowest = Math.max(...timed.map((e) => e.every));
    const windowMs = Math.min(MAX_WINDOW_MS, Math.max(3000, Math.round(slowest * 2.2) + 500));
    const stream = await ctx.connect();
    try {
      await sleep(windowMs);
      const received = stream.events.filter((e) => e.at - stream.openedAt <= windowMs);
      const notes: string[] = [];
      for (const spec of timed) {
        const mine = received.filter((e) => e.event === spec.name);
        for (const e of mine) {
          let data: Record<string, unknown>;
          try {
            data = JSON.parse(e.data);
          } catch {
            return expect(false, `${spec.name}: data is not JSON: ${e.data.slice(0, 100)}`) as never;
          }
          expect(data && typeof data === 'object' && !Array.isArray(data), `${spec.name}: data is not a JSON object`);
          const { timestamp, ...rest } = data;
          expect(typeof timestamp === 'string' && ISO_UTC.test(timestamp), `${spec.name}: timestamp ${JSON.stringify(timestamp)} is not ISO-8601 UTC`);
          const skew = Math.abs(Date.parse(timestamp as string) - e.at);
          expect(skew < 5000, `${spec.name}: timestamp ${timestamp} is ${skew} ms away from the arrival time`);
          expect(isDeepStrictEqual(rest, spec.data), `${spec.name}: data ${JSON.stringify(rest).slice(0, 160)} differs from the spec's ${JSON.stringify(spec.data).slice(0, 160)}`);
          expect(e.id !== undefined, `${spec.name}: event without id`);
        }
        if (spec.every > windowMs) {
          notes.push(`${spec.name}: every ${spec.every} ms is longer than the ${windowMs} ms window (not paced)`);
          continue;
        }
        const expected = windowMs / spec.every;
        const low = Math.max(1, Math.floor(expected) - 1);
        const high = Math.ceil(expected) + 1;
        expect(mine.length >= low && mine.length <= high, `${spec.name}: ${mine.length} events in ${windowMs} ms, expected ${low}-${high} (every ${spec.every} ms)`);
        notes.push(`${spec.name} ×${mine.length}`);
      }
      const unknown = received.filter((e) => !ctx.spec.events.some((s) => s.name === e.event));
      expect(unknown.length === 0, `unexpected event names: ${[...new Set(unknown.map((e) => e.event ?? 'message'))].join(', ')}`);
      return `${notes.join(', ')} in ${(windowMs / 1000).toFixed(1)} s, data and timestamps ok`;
    } finally {
      stream.close();
    }
  },
};
