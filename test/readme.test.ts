import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { targetTable } from '../src/targets.js';

it('the README target table is the one the manifests give (npm run readme)', () => {
  const readme = readFileSync('README.md', 'utf8');
  const table = readme.split('<!-- targets:start (npm run readme) -->')[1]?.split('<!-- targets:end -->')[0]?.trim();
  expect(table).toBe(targetTable());
});
