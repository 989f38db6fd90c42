// The interactive picker, driven through its answers.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import prompts from 'prompts';
import { describe, expect, it } from 'vitest';
import { Cancelled, create, Declined, UsageError } from '../src/create.js';
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

  it('a non-empty folder is kept unless the user confirms; "no" is a refusal (exit 1), not a Ctrl-C (130)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pick-'));
    writeFileSync(join(dir, 'mine.txt'), 'mine');
    prompts.inject([4557, false]);
    await expect(create(dir, { interactive: true, target: first.id })).rejects.toBeInstanceOf(Declined);
    expect(readFileSync(join(dir, 'mine.txt'), 'utf8')).toBe('mine');
    prompts.inject([4557, true]);
    await create(dir, { interactive: true, target: first.id });
    expect(existsSync(join(dir, 'mine.txt'))).toBe(false);
  });

  it('item 8: a control character typed into the folder name (Ctrl-U) never becomes part of it', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'pick-'));
    prompts.inject([join(parent, '\x15pty-app')]);
    await expect(create(undefined, { interactive: true, target: first.id })).rejects.toThrow(/holds a control character \(U\+0015\)/);
    expect(existsSync(join(parent, '\x15pty-app'))).toBe(false);
  });

  it('item 11: an injected port of 70000 is refused, not turned into 65535', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pick-')), 'app');
    prompts.inject([70000]);
    await expect(create(dir, { interactive: true, target: first.id })).rejects.toThrow(new UsageError('port 70000 is not a port number (1-65535)'));
  });
});
