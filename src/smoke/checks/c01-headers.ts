// C1: stream headers, no compression even when offered, and no write timeout cutting a long stream.
import { expect, fail } from '../context.js';
import type { Check } from './types.js';

export const headers: Check = {
  id: 'C1',
  title: 'headers',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const stream = await ctx.connect({ headers: { 'Accept-Encoding': 'gzip, deflate, br' } });
    const h = stream.headers;
    stream.close();
    const problems: string[] = [];
    if (!/^text\/event-stream(\s*;\s*charset=utf-8)?$/i.test(h['content-type'] ?? '')) problems.push(`Content-Type: ${h['content-type'] ?? '(none)'}`);
    if (!/\bno-(store|cache)\b/i.test(h['cache-control'] ?? '')) problems.push(`Cache-Control: ${h['cache-control'] ?? '(none)'}`);
    if (String(h['x-accel-buffering'] ?? '').toLowerCase() !== 'no') problems.push(`X-Accel-Buffering: ${h['x-accel-buffering'] ?? '(none)'}`);
    if (h['content-length'] !== undefined) problems.push(`Content-Length: ${h['content-length']}`);
    if (h['content-encoding'] && h['content-encoding'] !== 'identity') problems.push(`Content-Encoding: ${h['content-encoding']} (gzip was offered)`);
    expect(problems.length === 0, problems.join('; '));
    // The sentinel stream has been open since the server started; nothing may have cut it.
    const age = ((Date.now() - ctx.sentinel.openedAt) / 1000).toFixed(1);
    if (ctx.sentinel.ended) fail(`the server ended a stream after ${(((ctx.sentinel.endedAt ?? 0) - ctx.sentinel.openedAt) / 1000).toFixed(1)} s`);
    return `headers ok; a stream stayed open ${age} s`;
  },
};
