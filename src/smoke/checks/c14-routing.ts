// C14: unknown paths get 404; a wrong method on a known path gets 405.
import { request } from '../client.js';
import { expect } from '../context.js';
import type { Check } from './types.js';

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
    for (const [method, path, statuses, headers] of cases) {
      const res = await request(ctx.url(path), { method, headers, body: method === 'POST' ? '{}' : undefined });
      expect(statuses.includes(res.status), `${method} ${path} answered ${res.status}, expected ${statuses.join(' or ')}`);
    }
    return `${cases.length} requests: 404 for unknown paths, 405 for wrong methods`;
  },
};
