// C10: a client that goes away is forgotten within 5 s (GET /health counts it out), also one
// that hangs up right after sending its request; clients that hang up while events go out
// break neither publishing nor the timers; request headers that never complete are cut off
// within 15 s.
import { hangUpAfterRequest, slowHeaders } from '../client.js';
import { type Context, expect, sleep } from '../context.js';
import type { Check } from './types.js';

const FORGET_MS = 5000;
const EARLY_HANG_UPS = 10;
const CHURN_HANG_UPS = 40;
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
    detail += `; ${await churn(ctx, before)}`;

    if (slow) {
      const closedMs = await slow;
      expect(closedMs >= 0, `a request whose headers never completed was still open after ${(HEADERS_MS + SLACK_MS) / 1000} s`);
      detail += `; unfinished headers cut off after ${(closedMs / 1000).toFixed(1)} s`;
    }
    return detail;
  },
};

/**
 * Streams that hang up a few milliseconds into their stream while publishes go out as fast as
 * the server answers them: a server that trips over a client gone but not yet forgotten fails
 * those publishes, or loses the timer that was writing when it happened.
 */
async function churn(ctx: Context, before: number): Promise<string> {
  let publishing = ctx.spec.publish.enabled;
  const answers = new Map<number, number>();
  const publisher = (async () => {
    while (publishing) {
      const res = await ctx.publishRaw(JSON.stringify({ event: 'c10-churn', data: 'x' }));
      answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
    }
  })();
  // a stream hangs up once its first frame is in (or at once when none came: that is C2's failure)
  let waitMs = 300;
  for (let i = 0; i < CHURN_HANG_UPS; i++) {
    const stream = ctx.open();
    await stream.until((s) => s.frames.length > 0, waitMs).catch(() => (waitMs = 0));
    await sleep(Math.random() * 10);
    stream.close();
    ctx.streams.delete(stream);
  }
  publishing = false;
  await publisher;
  const published = [...answers.values()].reduce((a, b) => a + b, 0);
  const refused = [...answers].filter(([status]) => status !== 202);
  expect(refused.length === 0, `while ${CHURN_HANG_UPS} clients hung up mid-stream, POST /publish answered ${refused.map(([status, n]) => `${status} ×${n}`).join(', ')} (of ${published})`);
  const forgotten = await ctx.waitForClients((n) => n === before, FORGET_MS);
  expect(forgotten >= 0, `${(await ctx.health()) - before} of ${CHURN_HANG_UPS} clients that hung up mid-stream are still counted ${FORGET_MS} ms later`);

  const stream = await ctx.connect({}, 'a stream after the hang-ups');
  const flowing: string[] = [];
  if (ctx.spec.publish.enabled) {
    const id = await ctx.publish('c10-after', 'still here');
    await stream.until((s) => s.ids.has(id), 5000, `event ${id} published after the hang-ups`);
    flowing.push('publishes');
  }
  const timer = ctx.spec.events.filter((e) => e.every > 0).sort((a, b) => a.every - b.every)[0];
  if (timer) {
    await stream.until((s) => s.events.some((e) => e.event === timer.name), timer.every + SLACK_MS, `"${timer.name}" event after the hang-ups (its timer stopped?)`);
    flowing.push(`"${timer.name}"`);
  }
  stream.close();
  ctx.streams.delete(stream);
  const load = ctx.spec.publish.enabled ? ` during ${published} publishes (all 202)` : '';
  return `${CHURN_HANG_UPS} mid-stream hang-ups${load} forgotten in ${forgotten} ms, ${flowing.join(' and ') || 'the server'} still flowing`;
}
