#!/usr/bin/env node
// The Debian packages every target's toolchain, linters and Redis broker need here, from the manifests (for .ci/run).
import { readdirSync, readFileSync, existsSync } from 'node:fs';

const packages = new Set(process.argv.slice(2));
for (const id of readdirSync('templates')) {
  const manifest = `templates/${id}/target.json`;
  if (!existsSync(manifest)) continue;
  const { toolchain, lint, broker } = JSON.parse(readFileSync(manifest, 'utf8'));
  for (const tool of [...toolchain, ...(lint?.toolchain ?? []), ...(broker?.redis?.toolchain ?? [])]) for (const p of tool.debian ?? []) packages.add(p);
}
console.log([...packages].sort().join(' '));
