// C6: `retry: <ms>` on connect when retry > 0 (and none when it is 0).
import { expect } from '../context.js';
import type { Check } from './types.js';

export const retry: Check = {
  id: 'C6',
  title: 'retry',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    const stream = await ctx.connect();
    try {
      if (ctx.spec.retry > 0) {
        await stream.until((s) => s.frames.some((f) => f.kind === 'retry'), 2000, 'retry field');
        const first = stream.frames.find((f) => f.kind === 'retry')!;
        expect(first.retry === ctx.spec.retry, `retry: ${first.retry}, the spec says ${ctx.spec.retry}`);
        const before = stream.frames.indexOf(first);
        expect(stream.frames.slice(0, before).every((f) => f.kind !== 'event'), 'retry came after an event, not on connect');
        return `retry: ${first.retry}`;
      }
      await stream.until((s) => s.frames.length > 0, 2000, 'first frame');
      expect(!stream.frames.some((f) => f.kind === 'retry'), 'retry sent although the spec sets 0');
      return 'retry 0: none sent';
    } finally {
      stream.close();
    }
  },
};
