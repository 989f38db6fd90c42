// C5: while no event is due, a comment arrives at least every `heartbeat` seconds.
import { expect, skip, sleep } from '../context.js';
import type { Check } from './types.js';

/** timers in some runtimes tick late; a gap may exceed the period by this much */
const SLACK_MS = 1000;

export const heartbeat: Check = {
  id: 'C5',
  title: 'heartbeat',
  variants: ['hardened'],
  async run(ctx) {
    if (ctx.spec.heartbeat === 0) skip('heartbeat is 0 in the spec');
    if (ctx.spec.events.some((e) => e.every > 0)) skip('the stream is never idle (timed events)');
    const periodMs = ctx.spec.heartbeat * 1000;
    const watchMs = Math.max(3500, periodMs * 3 + 500);
    const stream = await ctx.connect();
    try {
      await sleep(watchMs);
      const events = stream.events;
      expect(events.length === 0, `${events.length} event(s) on an idle stream (data ${JSON.stringify(events[0]?.data)}): a heartbeat must be a comment (": ..."), not an event`);
      const comments = stream.frames.filter((f) => f.kind === 'comment').map((f) => f.at);
      expect(comments.length >= 2, `${comments.length} comment(s) in ${watchMs} ms with heartbeat ${ctx.spec.heartbeat} s`);
      const marks = [stream.headersAt ?? stream.openedAt, ...comments, Date.now()];
      const gaps = marks.slice(1).map((t, i) => t - marks[i]);
      const worst = Math.max(...gaps);
      expect(worst <= periodMs + SLACK_MS, `a ${worst} ms gap without a comment (heartbeat ${ctx.spec.heartbeat} s)`);
      return `${comments.length} comments in ${(watchMs / 1000).toFixed(1)} s, longest gap ${worst} ms`;
    } finally {
      stream.close();
    }
  },
};
