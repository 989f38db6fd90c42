// C11: with a stream token, no stream without it (header or ?token=).
import { expect, skip } from '../context.js';
import type { Check } from './types.js';

export const auth: Check = {
  id: 'C11',
  title: 'auth',
  variants: ['hardened', 'spec'],
  async run(ctx) {
    const token = ctx.streamToken ?? skip('no stream token in the spec');
    await ctx.settle();
    const refused = [
      ['no token', ctx.open({ auth: false })],
      ['wrong Bearer', ctx.open({ auth: false, headers: { Authorization: 'Bearer wrong' } })],
      ['wrong ?token=', ctx.open({ auth: false, query: { token: `${token}x` } })],
      ['Basic scheme', ctx.open({ auth: false, headers: { Authorization: `Basic ${token}` } })],
    ] as const;
    for (const [label, stream] of refused) {
      await stream.ready;
      stream.close();
      expect(stream.status === 401, `${label}: answered ${stream.status || stream.error?.message}, expected 401`);
      expect(!/event-stream/.test(stream.headers['content-type'] ?? ''), `${label}: 401 came as an event stream`);
    }
    const header = await ctx.connect({}, 'Authorization: Bearer <token>');
    header.close();
    const query = await ctx.connect({ auth: false, query: { token } }, '?token=<token>');
    query.close();
    return `401 without the token (${refused.length} ways); Bearer and ?token= accepted`;
  },
};
