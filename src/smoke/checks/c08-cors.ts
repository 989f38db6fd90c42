// C8: CORS on the stream and preflights, as the spec's origins and credentials say.
import { request } from '../client.js';
import { expect } from '../context.js';
import type { Check } from './types.js';

const REQUEST_HEADERS = ['last-event-id', 'cache-control', 'content-type', 'authorization'];
const STRANGER = 'http://stranger.invalid';

const list = (value: string | string[] | undefined) =>
  String(value ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);

export const cors: Check = {
  id: 'C8',
  title: 'cors',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const { origins, credentials } = ctx.spec.cors;
    const any = origins.includes('*');
    const allowed = any ? 'http://example.test' : origins[0];

    const stream = await ctx.connect({ headers: { Origin: allowed } });
    const h = stream.headers;
    stream.close();
    if (any) {
      expect(h['access-control-allow-origin'] === '*', `Origin ${allowed}: Access-Control-Allow-Origin ${h['access-control-allow-origin'] ?? '(none)'}, expected *`);
    } else {
      expect(h['access-control-allow-origin'] === allowed, `allowed Origin ${allowed}: Access-Control-Allow-Origin ${h['access-control-allow-origin'] ?? '(none)'}`);
      expect(list(h.vary).includes('origin'), `allowed Origin ${allowed}: no Vary: Origin`);
      const stranger = await ctx.connect({ headers: { Origin: STRANGER } }, 'stream from a disallowed origin');
      const sh = stranger.headers;
      stranger.close();
      expect(sh['access-control-allow-origin'] === undefined, `disallowed Origin ${STRANGER} got Access-Control-Allow-Origin ${sh['access-control-allow-origin']}`);
      expect(list(sh.vary).includes('origin'), `disallowed Origin ${STRANGER}: no Vary: Origin (a cache could serve it the allowed origin's answer)`);
    }
    if (credentials) {
      expect(h['access-control-allow-credentials'] === 'true', `credentials: Access-Control-Allow-Credentials ${h['access-control-allow-credentials'] ?? '(none)'}`);
    }

    const preflights = [[ctx.spec.path, 'GET'], ...(ctx.spec.publish.enabled ? [['/publish', 'POST']] : [])];
    for (const [path, method] of preflights) {
      const res = await request(ctx.url(path), {
        method: 'OPTIONS',
        headers: { Origin: allowed, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': REQUEST_HEADERS.join(', ') },
      });
      expect(res.status === 204, `OPTIONS ${path} answered ${res.status}, expected 204`);
      const methods = list(res.headers['access-control-allow-methods']);
      expect(methods.includes(method.toLowerCase()), `OPTIONS ${path}: Access-Control-Allow-Methods "${res.headers['access-control-allow-methods'] ?? ''}" lacks ${method}`);
      const allowedHeaders = list(res.headers['access-control-allow-headers']);
      const missing = REQUEST_HEADERS.filter((x) => !allowedHeaders.includes(x) && !(allowedHeaders.includes('*') && !credentials));
      expect(missing.length === 0, `OPTIONS ${path}: Access-Control-Allow-Headers "${res.headers['access-control-allow-headers'] ?? ''}" lacks ${missing.join(', ')}`);
      const origin = res.headers['access-control-allow-origin'];
      expect(origin === (any ? '*' : allowed), `OPTIONS ${path}: Access-Control-Allow-Origin ${origin ?? '(none)'}`);
    }
    return any ? 'origins *: Allow-Origin *; preflights ok' : `allow-list echoed with Vary${credentials ? ' and credentials' : ''}, stranger refused; preflights ok`;
  },
};
