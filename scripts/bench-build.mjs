#!/usr/bin/env node
// Cold and warm build of each target through `run`'s build steps: render the example spec
// into a fresh folder, build (cold: nothing in the folder; the toolchain's global caches, such
// as Cargo's registry, pip's and npm's caches and Go's build cache, are as this machine has
// them), then build again (warm). Prints a Markdown table.
//   npm run build && node scripts/bench-build.mjs [id...]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec } from '../dist/spec.js';
import { loadTargets } from '../dist/targets.js';
import { renderTarget } from '../dist/render.js';
import { specFor } from '../dist/generate.js';
import { writeProject } from '../dist/write.js';
import { buildProject } from '../dist/run.js';

const ids = process.argv.slice(2);
const spec = await loadSpec('examples/sse.spec.yaml');
const targets = loadTargets().filter((t) => !ids.length || ids.includes(t.id));
console.log('| target | cold build s | warm build s |\n|---|---|---|');
for (const target of targets) {
  const dir = join(mkdtempSync(join(tmpdir(), 'bench-build-')), target.id);
  await writeProject(dir, renderTarget(specFor(spec, target), target));
  const time = async () => {
    const start = Date.now();
    await buildProject(dir, { stdio: 'pipe' });
    return ((Date.now() - start) / 1000).toFixed(1);
  };
  const cold = await time();
  const warm = await time();
  console.log(`| \`${target.id}\` | ${cold} | ${warm} |`);
  rmSync(join(dir, '..'), { recursive: true, force: true });
}
