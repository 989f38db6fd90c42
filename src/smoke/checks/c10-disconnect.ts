// C10: a client that goes away is forgotten within 5 s (GET /health counts it out), also one
// that hangs up right after sending its request; request headers that never complete are cut
// off within 15 s.
import { hangUpAfterRequest, slowHeaders } from '../client.js';
import { expect } from '../context.js';
import type { Check } from './types.js';

const FORGET_MS = 5000;
const EARLY_HANG_UPS = 10;
const HEADERS_MS = 15_000;
/** time for the close to travel, on top of the contract's 15 s */
const SLACK_MS = 3000;

export const disconnect: Check = {
  id: 'C10',
  title: 'disconnect',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    // Once per target (the spec variant): it takes the 15 s it measures, alongside the rest.
    const slow = ctx.variant === 'spec' ? slowHeaders(ctx.server.host, ctx.server.port, HEADERS_MS + SLACK_MS) : undefined;
    await ctx.settle();
    const before = await ctx.health();
    const streams = [await ctx.connect(), await ctx.connect(), await ctx.connect()];
    const joined = await ctx.waitForClients((n) => n === before + streams.length, 2000);
    expect(joined >= 0, `GET /health did not count ${streams.length} new streams (expected ${before + streams.length}, have ${await ctx.health()})`);
    for (const s of streams) s.close();
    const closedAt = Date.now();
    const forgotten = await ctx.waitForClients((n) => n === before, FORGET_MS);
    expect(forgotten >= 0, `${(await ctx.health()) - before} of ${streams.length} closed clients still counted ${FORGET_MS} ms after they left`);
    const forgetMs = Date.now() - closedAt;

    const query = ctx.streamToken ? `?token=${encodeURIComponent(ctx.streamToken)}` : '';
    for (let i = 0; i < EARLY_HANG_UPS; i++) await hangUpAfterRequest(ctx.server.host, ctx.server.port, `${ctx.spec.path}${query}`, {});
    const hungUpAt = Date.now();
    const noGhosts = await ctx.waitForClients((n) => n === before, FORGET_MS);
    expect(noGhosts >= 0, `${(await ctx.health()) - before} of ${EARLY_HANG_UPS} clients that hung up right after their request are still counted ${FORGET_MS} ms later (ghosts)`);
    let detail = `3 closed clients forgotten after ${forgetMs} ms; ${EARLY_HANG_UPS} early hang-ups left no ghost (${Date.now() - hungUpAt} ms)`;

    if (slow) {
      const closedMs = await slow;
      expect(closedMs >= 0, `a request whose headers never completed was still open after ${(HEADERS_MS + SLACK_MS) / 1000} s`);
      detail += `; unfinished headers cut off after ${(closedMs / 1000).toFixed(1)} s`;
    }
    return detail;
  },
};
