#!/usr/bin/env node
// The Debian packages every target's toolchain needs here, from the manifests (for .ci/run).
import { readdirSync, readFileSync, existsSync } from 'node:fs';

const packages = new Set(process.argv.slice(2));
for (const id of readdirSync('templates')) {
  const manifest = `templates/${id}/target.json`;
  if (!existsSync(manifest)) continue;
  for (const tool of JSON.parse(readFileSync(manifest, 'utf8')).toolchain) for (const p of tool.debian ?? []) packages.add(p);
}
console.log([...packages].sort().join(' '));
