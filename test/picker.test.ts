// The interactive picker, driven through its answers.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import prompts from 'prompts';
import { describe, expect, it } from 'vitest';
import { Cancelled, create } from '../src/create.js';
import { loadTargets } from '../src/targets.js';

const [first, second = first] = loadTargets();

describe('interactive picker', () => {
  it('asks folder, language and port, then writes the project', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pick-')), 'chosen-app');
    prompts.inject([dir, second.id, 4555]);
    const result = await create(undefined, { interactive: true });
    expect(result.target.id).toBe(second.id);
    expect(result.spec.port).toBe(4555);
    expect(result.spec.name).toBe('chosen-app');
    expect(JSON.parse(readFileSync(join(dir, '.create-sse-server.json'), 'utf8')).target).toBe(second.id);
  });

  it('asks only what flags did not answer', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pick-')), 'app');
    prompts.inject([4556]);
    const result = await create(dir, { interactive: true, target: first.id });
    expect(result.spec.port).toBe(4556);
  });

  it('Ctrl-C (a cancelled prompt) exits cleanly and writes nothing', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'pick-'));
    prompts.inject([join(parent, 'app'), new Error('cancelled')]);
    await expect(create(undefined, { interactive: true })).rejects.toBeInstanceOf(Cancelled);
    expect(existsSync(join(parent, 'app'))).toBe(false);
  });

  it('a non-empty folder is kept unless the user confirms (cancel is the default)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pick-'));
    writeFileSync(join(dir, 'mine.txt'), 'mine');
    prompts.inject([4557, false]);
    await expect(create(dir, { interactive: true, target: first.id })).rejects.toBeInstanceOf(Cancelled);
    expect(readFileSync(join(dir, 'mine.txt'), 'utf8')).toBe('mine');
    prompts.inject([4557, true]);
    await create(dir, { interactive: true, target: first.id });
    expect(existsSync(join(dir, 'mine.txt'))).toBe(false);
  });
});
