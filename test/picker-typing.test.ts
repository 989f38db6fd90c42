// The picker typed into, key by key (no injected answers in this file: prompts keeps
// injecting once anything was injected).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { create } from '../src/create.js';
import { loadTargets } from '../src/targets.js';

const [first] = loadTargets();

describe('interactive picker, typed', () => {
  it('item 11: a port typed as 70000 is refused with a message, not turned into 65535', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pick-')), 'app');
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let shown = '';
    stdout.on('data', (c) => (shown += c));
    const done = create(dir, { interactive: true, target: first.id, stdin, stdout });
    const type = async (text: string) => {
      await new Promise((r) => setTimeout(r, 100));
      stdin.write(text);
    };
    const deadline = Date.now() + 10_000;
    while (!shown.includes('Port') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await type('\x7f\x7f\x7f\x7f\x7f70000');
    await type('\r');
    await new Promise((r) => setTimeout(r, 200));
    expect(shown).toContain('port 70000 is not a port number (1-65535)');
    // prompts appends digits typed within 1 s to what was typed before: type again after a pause
    await new Promise((r) => setTimeout(r, 1100));
    await type('4321');
    await type('\r');
    const result = await Promise.race([done, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer; the prompt showed: ${JSON.stringify(shown.slice(-400))}`)), 5000))]);
    expect(result.spec.port).toBe(4321);
  });
});
