#!/usr/bin/env node
// Wall time of the whole `generate` command (Node's start included) rendering every target
// from the example spec: median, min and max over N runs (default 10) after one warm-up.
//   node scripts/bench-generate.mjs [runs]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const runs = Number(process.argv[2] ?? 10);
const out = mkdtempSync(join(tmpdir(), 'bench-generate-'));
const command = ['bin/create-sse-server.js', 'generate', '--spec', 'examples/sse.spec.yaml', '--out', out];
const once = () => {
  rmSync(out, { recursive: true, force: true });
  const start = process.hrtime.bigint();
  execFileSync('node', command, { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - start) / 1e6;
};
once();
const times = Array.from({ length: runs }, once).sort((a, b) => a - b);
const median = runs % 2 ? times[(runs - 1) / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
const targets = execFileSync('node', ['-e', "import('./dist/targets.js').then(m => console.log(m.loadTargets().length))"], { encoding: 'utf8' }).trim();
console.log(`generate, ${targets} targets, ${runs} runs: median ${median.toFixed(0)} ms (min ${times[0].toFixed(0)}, max ${times.at(-1).toFixed(0)})`);
rmSync(out, { recursive: true, force: true });
