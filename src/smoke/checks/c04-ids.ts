// C4: ids are decimal integers, strictly increasing over all events of one server run.
import { expect, skip } from '../context.js';
import type { Check } from './types.js';

export const ids: Check = {
  id: 'C4',
  title: 'ids',
  variants: ['spec', 'hardened'],
  async run(ctx) {
    // The sentinel stream has been open since the start and has seen every event.
    const seen = ctx.sentinel.events;
    if (seen.length < 2) skip(`only ${seen.length} event(s) seen on this run`);
    let previous = -1n;
    for (const e of seen) {
      expect(e.id !== undefined && /^\d+$/.test(e.id), `event "${e.event}" has id ${JSON.stringify(e.id)}, not a decimal integer`);
      const id = BigInt(e.id!);
      expect(id > previous, `id ${id} after ${previous}: not strictly increasing`);
      previous = id;
    }
    return `${seen.length} ids, strictly increasing (${seen[0].id}…${seen.at(-1)!.id})`;
  },
};
