// C14: unknown paths get 404, a wrong method on a known path 405 with Allow; every error is
// {"error": ...} as JSON; with a list of origins, Vary: Origin comes on every answer.
import { request } from '../client.js';
import { expect, expectJsonError } from '../context.js';
import type { Check } from './types.js';

const varyOrigin = (vary: string | string[] | undefined) => String(vary ?? '').toLowerCase().split(',').some((v) => v.trim() === 'origin');

export const routing: Check = {
  id: 'C14',
  title: 'routing',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const auth = ctx.authHeaders();
    const cases: Array<[string, string, number[], Record<string, string>?]> = [
      ['GET', '/no-such-path', [404]],
      ['GET', `${ctx.spec.path}/deeper`, [404]],
      ['POST', ctx.spec.path, [405], auth],
      ['DELETE', ctx.spec.path, [405], auth],
      ['POST', '/health', [405]],
    ];
    if (ctx.spec.publish.enabled) cases.push(['GET', '/publish', [405], ctx.publishHeaders()]);
    else cases.push(['POST', '/publish', [404, 405]]);
    const list = !ctx.spec.cors.origins.includes('*');
    for (const [method, path, statuses, headers] of cases) {
      const origin: Record<string, string> = list ? { Origin: ctx.spec.cors.origins[0] } : {};
      const res = await request(ctx.url(path), { method, headers: { ...headers, ...origin }, body: method === 'POST' ? '{}' : undefined });
      const label = `${method} ${path}`;
      expect(statuses.includes(res.status), `${label} answered ${res.status}, expected ${statuses.join(' or ')}`);
      expectJsonError(res, label);
      if (list) expect(varyOrigin(res.headers.vary), `${label}: ${res.status} without Vary: Origin (origins are a list)`);
    }
    return `${cases.length} requests: 404 for unknown paths, 405 with Allow for wrong methods, all as JSON errors${list ? ' with Vary: Origin' : ''}`;
  },
};
