// C15: on SIGTERM the server ends open streams and exits 0 within 5 s.
import { canConnect } from '../client.js';
import { expect, sleep } from '../context.js';
import type { Check } from './types.js';

const EXIT_MS = 5000;

export const shutdown: Check = {
  id: 'C15',
  title: 'shutdown',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const stream = await ctx.connect();
    await stream.until((s) => s.frames.length > 0, 2000, 'first frame');
    const sentAt = Date.now();
    process.kill(-ctx.server.pid, 'SIGTERM');
    const exit = await Promise.race([ctx.server.exited, sleep(EXIT_MS + 500).then(() => undefined)]);
    const exitMs = Date.now() - sentAt;
    expect(exit !== undefined, `still running ${EXIT_MS} ms after SIGTERM`);
    expect(exit.signal === undefined, `killed by ${exit.signal} (no SIGTERM handler?)`);
    expect(exit.exitCode === 0, `exited with code ${exit.exitCode} after SIGTERM`);
    expect(exitMs <= EXIT_MS, `exited ${exitMs} ms after SIGTERM (more than ${EXIT_MS} ms)`);
    await stream.until((s) => s.ended, 1000, 'the open stream to end').catch(() => undefined);
    expect(stream.ended, 'an open stream was not ended');
    expect(!(await canConnect(ctx.server.host, ctx.server.port)), 'still accepting connections after exit');
    return `streams ended, exit 0 after ${exitMs} ms`;
  },
};
