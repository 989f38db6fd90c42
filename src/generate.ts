// `generate`: render targets from one spec into OUT/<id>/, or with `check` say which files
// differ from what would be written (for CI: generated/ must match the templates).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER_FILE, renderTarget, type RenderedFile } from './render.js';
import type { Spec } from './spec.js';
import { findTarget, loadTargets, type Target } from './targets.js';
import { previousFiles, refreshRendered } from './write.js';

/** Each target's example listens on its own port: spec.port + the target's offset. */
export function specFor(spec: Spec, target: Target): Spec {
  return { ...spec, port: spec.port + target.portOffset };
}

export function selectTargets(ids: string[] = []): Target[] {
  return ids.length ? [...new Set(ids)].map((id) => findTarget(id)) : loadTargets();
}

export interface Difference {
  path: string;
  problem: 'missing' | 'changed' | 'stale' | 'mode';
}

function compare(dir: string, files: RenderedFile[], outPrefix: string, before: string[] | undefined): Difference[] {
  const out: Difference[] = [];
  for (const file of files) {
    const full = join(dir, file.path);
    const path = `${outPrefix}/${file.path}`;
    if (!existsSync(full)) out.push({ path, problem: 'missing' });
    else if (!readFileSync(full).equals(file.content)) out.push({ path, problem: 'changed' });
    else if (((statSync(full).mode & 0o111) !== 0) !== file.executable) out.push({ path, problem: 'mode' });
  }
  const now = new Set(files.map((f) => f.path));
  for (const old of before ?? []) {
    if (!now.has(old) && existsSync(join(dir, old))) out.push({ path: `${outPrefix}/${old}`, problem: 'stale' });
  }
  return out;
}

export interface GenerateOptions {
  targets?: string[];
  check?: boolean;
  force?: boolean;
}

export async function generate(spec: Spec, outDir: string, options: GenerateOptions = {}) {
  const targets = selectTargets(options.targets);
  // Render everything first: a template error must not leave some targets written.
  const rendered = targets.map((target) => ({ target, files: renderTarget(specFor(spec, target), target) }));
  const differences: Difference[] = [];
  for (const { target, files } of rendered) {
    const dir = join(outDir, target.id);
    if (options.check) differences.push(...compare(dir, files, target.id, await previousFiles(dir)));
    else await refreshRendered(dir, files, { force: options.force });
  }
  // A whole-set check also notices folders of targets that no longer exist.
  if (options.check && !options.targets?.length && existsSync(outDir)) {
    const ids = new Set(targets.map((t) => t.id));
    for (const entry of readdirSync(outDir)) {
      if (!ids.has(entry) && existsSync(join(outDir, entry, MARKER_FILE))) differences.push({ path: entry, problem: 'stale' });
    }
  }
  return { targets: rendered.map((r) => r.target), differences };
}
