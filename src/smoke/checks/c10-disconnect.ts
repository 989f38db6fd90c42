// C10: a client that goes away is forgotten within 5 s (GET /health counts it out).
import { expect } from '../context.js';
import type { Check } from './types.js';

const FORGET_MS = 5000;

export const disconnect: Check = {
  id: 'C10',
  title: 'disconnect',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    await ctx.settle();
    const before = await ctx.health();
    const streams = [await ctx.connect(), await ctx.connect(), await ctx.connect()];
    const joined = await ctx.waitForClients((n) => n === before + streams.length, 2000);
    expect(joined >= 0, `GET /health did not count ${streams.length} new streams (expected ${before + streams.length}, have ${await ctx.health()})`);
    for (const s of streams) s.close();
    const closedAt = Date.now();
    const forgotten = await ctx.waitForClients((n) => n === before, FORGET_MS);
    expect(forgotten >= 0, `${(await ctx.health()) - before} of ${streams.length} closed clients still counted ${FORGET_MS} ms after they left`);
    return `3 closed clients forgotten after ${Date.now() - closedAt} ms`;
  },
};
