// C11: with a stream token (SSE_TOKEN), no stream without it: Bearer (scheme in any case) or
// ?token=, either place enough. With auth.required and no SSE_TOKEN, no server at all.
import { expect, expectJsonError, skip, sleep, type Context } from '../context.js';
import type { Check } from './types.js';

const START_MS = 60_000;

/** Started without SSE_TOKEN, a server whose spec requires it exits non-zero naming it. */
async function refusesToStart(ctx: Context): Promise<string> {
  const env = { SSE_PUBLISH_TOKEN: ctx.publishToken ?? 'publish-token' };
  const server = await ctx.launch!(env);
  const exit = await Promise.race([server.exited, sleep(START_MS).then(() => undefined)]);
  expect(exit !== undefined, `auth.required, started without SSE_TOKEN: still running after ${START_MS / 1000} s`);
  expect(exit.exitCode !== 0 || exit.signal !== undefined, 'auth.required, started without SSE_TOKEN: exited 0');
  expect(server.output().includes('SSE_TOKEN'), `auth.required, started without SSE_TOKEN: exited (code ${exit.exitCode}) without naming SSE_TOKEN: ${server.output().trim().split('\n').slice(-3).join(' | ')}`);
  return `without SSE_TOKEN it exits ${exit.exitCode ?? exit.signal} naming it`;
}

export const auth: Check = {
  id: 'C11',
  title: 'auth',
  variants: ['hardened', 'spec'],
  async run(ctx) {
    const token = ctx.streamToken ?? skip('started without SSE_TOKEN');
    await ctx.settle();
    const refused = [
      ['no token', ctx.open({ auth: false })],
      ['wrong Bearer', ctx.open({ auth: false, headers: { Authorization: 'Bearer wrong' } })],
      ['wrong ?token=', ctx.open({ auth: false, query: { token: `${token}x` } })],
      ['Basic scheme', ctx.open({ auth: false, headers: { Authorization: `Basic ${token}` } })],
      ['token as the whole header', ctx.open({ auth: false, headers: { Authorization: token } })],
    ] as const;
    for (const [label, stream] of refused) {
      await stream.ready;
      await stream.until((s) => s.ended, 3000, 'the end of the 401 answer').catch(() => undefined);
      stream.close();
      expect(stream.status === 401, `${label}: answered ${stream.status || stream.error?.message}, expected 401`);
      expect(!/event-stream/.test(stream.headers['content-type'] ?? ''), `${label}: 401 came as an event stream`);
      expectJsonError({ status: stream.status, headers: stream.headers, body: stream.body }, label);
    }
    const accepted: Array<[string, Parameters<Context['open']>[0]]> = [
      ['Authorization: Bearer <token>', {}],
      ['"bearer" in lower case', { auth: false, headers: { Authorization: `bearer ${token}` } }],
      ['"BEARER" in upper case', { auth: false, headers: { Authorization: `BEARER ${token}` } }],
      ['?token=<token>', { auth: false, query: { token } }],
      ['a wrong Bearer with a right ?token=', { auth: false, headers: { Authorization: 'Bearer wrong' }, query: { token } }],
    ];
    for (const [label, options] of accepted) (await ctx.connect(options, label)).close();
    const start = ctx.spec.auth.required ? `; ${await refusesToStart(ctx)}` : '';
    return `401 with a JSON error without the token (${refused.length} ways); accepted ${accepted.length} ways${start}`;
  },
};
