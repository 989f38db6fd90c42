// C12: past maxClients a new stream gets 503 with Retry-After, and a freed slot is reusable.
import { expect, expectJsonError, skip } from '../context.js';
import type { Stream } from '../client.js';
import type { Check } from './types.js';

const MAX_TRIED = 64;

export const limits: Check = {
  id: 'C12',
  title: 'limits',
  variants: ['hardened'],
  async run(ctx) {
    const { maxClients } = ctx.spec;
    if (maxClients > MAX_TRIED) skip(`maxClients ${maxClients} is more than the ${MAX_TRIED} streams this check opens`);
    await ctx.settle();
    const mine: Stream[] = [];
    try {
      const room = maxClients - ctx.openStreams();
      for (let i = 0; i < room; i++) mine.push(await ctx.connect({}, `stream ${ctx.openStreams() + 1} of ${maxClients}`));
      const over = ctx.open();
      await over.ready;
      expect(over.status === 503, `stream ${maxClients + 1} of maxClients ${maxClients} answered ${over.status || over.error?.message}, expected 503`);
      await over.until((s) => s.ended, 3000, 'the end of the 503 answer').catch(() => undefined);
      expectJsonError({ status: over.status, headers: over.headers, body: over.body }, `stream ${maxClients + 1}`);
      // At the cap, the server still answers the other routes.
      await ctx.health();
      if (ctx.spec.publish.enabled) await ctx.publish('c12-at-cap', 'published while the server is full');
      over.close();
      mine.pop()!.close();
      await ctx.waitForClients((n) => n < maxClients, 5000);
      const again = await ctx.connect({}, 'a stream after one slot was freed');
      again.close();
      return `${maxClients} streams served, the next got 503 (Retry-After: ${over.headers['retry-after']}), /health and /publish still answered; a freed slot was reused`;
    } finally {
      for (const s of mine) s.close();
    }
  },
};
