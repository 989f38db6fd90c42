// C13: a client that stops reading neither delays the others nor grows the server without
// bound: its queue is bounded, it is dropped, and its connection is closed.
import { serverSideState, stalledClient } from '../client.js';
import { expect, skip, sleep } from '../context.js';
import { groupRssBytes, mib } from '../memory.js';
import type { Check } from './types.js';

const EVENTS = 1200;
const EVENT_BYTES = 32 * 1024;
const CONCURRENCY = 4;
/** the others must get each event this soon after its publish was answered */
const MAX_LATENCY_MS = 2000;
const DROP_MS = 10_000;
/** after the drop, the server's side of the connection must leave ESTABLISHED this soon */
const CLOSE_MS = 10_000;

export const slowClients: Check = {
  id: 'C13',
  title: 'slow clients',
  variants: ['hardened'],
  async run(ctx) {
    if (!ctx.spec.publish.enabled) skip('publish is disabled in the spec');
    await ctx.settle();
    const fast = await ctx.connect({}, 'reading client');
    const query = ctx.streamToken ? `?token=${encodeURIComponent(ctx.streamToken)}` : '';
    const before = await ctx.health();
    const slow = await stalledClient(ctx.server.host, ctx.server.port, `${ctx.spec.path}${query}`, {});
    try {
      const withSlow = before + 1;
      expect((await ctx.waitForClients((n) => n === withSlow, 3000)) >= 0, `the stalled client was not counted (GET /health: ${await ctx.health()}, expected ${withSlow})`);
      const rssBefore = groupRssBytes(ctx.server.pid);
      const payload = 'x'.repeat(EVENT_BYTES - 64);
      const sentAt = new Map<string, number>();
      let next = 0;
      const started = Date.now();
      const worker = async () => {
        while (next < EVENTS) {
          next++;
          const id = await ctx.publish('c13-load', payload);
          sentAt.set(id, Date.now());
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const pumpMs = Date.now() - started;
      const ids = [...sentAt.keys()];
      await fast.until((s) => ids.every((id) => s.ids.has(id)), 15_000, `all ${EVENTS} events at the reading client`);
      let worst = 0;
      for (const e of fast.events) {
        const sent = e.id !== undefined ? sentAt.get(e.id) : undefined;
        if (sent !== undefined) worst = Math.max(worst, e.at - sent);
      }
      const dropped = await ctx.waitForClients((n) => n === withSlow - 1, DROP_MS);
      const rssAfter = groupRssBytes(ctx.server.pid);
      const mem = `RSS ${mib(rssBefore)} → ${mib(rssAfter)} MiB`;
      expect(dropped >= 0, `the stalled client was not dropped ${DROP_MS / 1000} s after ${EVENTS} events of ${EVENT_BYTES / 1024} KiB (${mem})`);
      expect(worst <= MAX_LATENCY_MS, `the reading client got an event ${worst} ms after its publish while another client stalled`);
      const droppedAt = Date.now();
      let state = serverSideState(ctx.server.port, slow.localPort!);
      while (state === 'ESTABLISHED' && Date.now() - droppedAt < CLOSE_MS) {
        await sleep(200);
        state = serverSideState(ctx.server.port, slow.localPort!);
      }
      expect(
        state !== 'ESTABLISHED',
        `the stalled client was dropped from the count, but the server kept its connection ESTABLISHED ${CLOSE_MS / 1000} s later (a file descriptor held for a dropped client)`,
      );
      const closed = `its connection ${state === undefined ? 'gone' : state} after ${((Date.now() - droppedAt) / 1000).toFixed(1)} s`;
      return `${EVENTS}×${EVENT_BYTES / 1024} KiB in ${pumpMs} ms; reader's worst latency ${worst} ms; stalled client dropped, ${closed}; ${mem}`;
    } finally {
      slow.destroy();
      fast.close();
    }
  },
};
