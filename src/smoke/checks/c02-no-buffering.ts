// C2: headers and a first frame within 1 s; a published event is flushed at once.
import type { Check } from './types.js';

const FIRST_FRAME_MS = 1000;
const PUBLISH_LATENCY_MS = 1000;

export const noBuffering: Check = {
  id: 'C2',
  title: 'no buffering',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const stream = ctx.open();
    try {
      await stream.until((s) => s.frames.length > 0, FIRST_FRAME_MS, 'first frame (retry: or a comment)');
      let detail = `first frame after ${stream.firstFrameAt! - stream.openedAt} ms`;
      if (ctx.spec.publish.enabled) {
        const id = await ctx.publish('c2-flush', 'flush me');
        const sentAt = Date.now();
        await stream.until((s) => s.events.some((e) => e.id === id), PUBLISH_LATENCY_MS, `published event within ${PUBLISH_LATENCY_MS} ms`);
        detail += `; a published event after ${Math.max(0, stream.events.find((e) => e.id === id)!.at - sentAt)} ms`;
      }
      return detail;
    } finally {
      stream.close();
    }
  },
};
