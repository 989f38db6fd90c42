// C16: PORT and HOST from the environment, and one log line saying where it listens.
import { canConnect } from '../client.js';
import { expect } from '../context.js';
import type { Check } from './types.js';

export const config: Check = {
  id: 'C16',
  title: 'config',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const { host, port } = ctx.server;
    // It answers on PORT (every other check relies on that); with HOST=127.0.0.1 it must not
    // also listen on the rest of the loopback range, as it would bound to 0.0.0.0.
    expect(await canConnect(host, port), `nothing listens on ${host}:${port}`);
    expect(!(await canConnect('127.0.0.2', port)), `HOST=${host} ignored: it also accepts on 127.0.0.2:${port}`);
    const line = ctx.server.output().split('\n').find((l) => l.includes(String(port)));
    expect(line !== undefined, `no log line mentions port ${port}`);
    return `PORT and HOST honoured; logged "${line!.trim().slice(0, 80)}"`;
  },
};
