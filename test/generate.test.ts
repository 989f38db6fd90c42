// generate: ports of every target (issue 8 item 4) and --check reporting extra files (item 11).
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../src/generate.js';
import { normalizeSpec } from '../src/spec.js';
import { templatesRoot } from './tmp-templates.js';

const ROOT = templatesRoot([
  { id: 'near', portOffset: 1 },
  { id: 'far', portOffset: 20 },
]);

describe('generate', () => {
  it('item 4: checks spec port + offset for every target it renders, before writing anything', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'gen-')), 'out');
    await expect(generate(normalizeSpec({ port: 65535 }), out, { templates: ROOT })).rejects.toThrow(
      'port: 65535 plus the offset of near (+1), far (+20) is above 65535; use a port of at most 65515',
    );
    await expect(generate(normalizeSpec({ port: 65520 }), out, { templates: ROOT })).rejects.toThrow('port: 65520 plus the offset of far (+20) is above 65535; use a port of at most 65515');
    expect(existsSync(out)).toBe(false);
    // only the targets it renders count
    await generate(normalizeSpec({ port: 65520 }), out, { templates: ROOT, targets: ['near'] });
    expect(existsSync(join(out, 'near'))).toBe(true);
    await generate(normalizeSpec({ port: 65515 }), out, { templates: ROOT });
  });

  it('item 11: --check reports files no template writes, but not build output the .gitignore names', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gen-'));
    const spec = normalizeSpec({ name: 'app' });
    await generate(spec, out, { templates: ROOT });
    expect((await generate(spec, out, { templates: ROOT, check: true })).differences).toEqual([]);
    writeFileSync(join(out, 'near', 'notes-by-hand.txt'), 'x');
    mkdirSync(join(out, 'far', 'src', 'extra'), { recursive: true });
    writeFileSync(join(out, 'far', 'src', 'extra', 'left.txt'), 'x');
    mkdirSync(join(out, 'near', 'node_modules', 'x'), { recursive: true });
    writeFileSync(join(out, 'near', 'node_modules', 'x', 'index.js'), 'x');
    const { differences } = await generate(spec, out, { templates: ROOT, check: true });
    expect(differences).toEqual([
      { path: 'near/notes-by-hand.txt', problem: 'extra' },
      { path: 'far/src/extra/left.txt', problem: 'extra' },
    ]);
  });
});
