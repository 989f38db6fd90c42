// `generate`: render targets from one spec into OUT/<id>/, or with `check` say which files
// differ from what would be written (for CI: generated/ must match the templates).
//
// Writing is all or nothing: every target is rendered and staged first, then each target's
// files are swapped in; a failure in any target puts every target back as it was. One run at
// a time writes into an OUT folder (a lock file inside it); a second one waits, then refuses.
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MARKER_FILE, renderTarget, type RenderedFile } from './render.js';
import { SpecError, type Spec } from './spec.js';
import { findTarget, loadTargets, redisUnsupported, templatesRoot, type Target } from './targets.js';
import { ASIDE_PREFIX, LOCK_FILE, STAGING_PREFIX, WriteError, destinationKind, makeDirs, prepareRefresh, previousFiles, withFolderLock, type Prepared } from './write.js';
export { LockedError, withFolderLock } from './write.js';

/** Each target's example listens on its own port: spec.port + the target's offset. */
export function specFor(spec: Spec, target: Target): Spec {
  return { ...spec, port: spec.port + target.portOffset };
}

export function selectTargets(ids: string[] = [], root = templatesRoot): Target[] {
  const all = loadTargets(root);
  return ids.length ? [...new Set(ids)].map((id) => findTarget(id, all)) : all;
}

/** `broker: redis` only for targets that have it: checked before anything is rendered. */
export function checkBroker(spec: Spec, targets: Target[]): void {
  if (spec.broker !== 'redis') return;
  const refused = targets.flatMap((t) => {
    const why = redisUnsupported(t);
    return why ? [`${t.id} (${why})`] : [];
  });
  if (!refused.length) return;
  throw new SpecError('spec', [`broker: redis is not supported by ${refused.join('; ')}; pick the targets that support it with --target (list shows them)`]);
}

/** Every target's port (spec.port + its offset) must be a port: checked before anything is rendered. */
export function checkPorts(spec: Spec, targets: Target[]): void {
  const over = targets.filter((t) => spec.port + t.portOffset > 65535);
  if (!over.length) return;
  const maxOffset = Math.max(...over.map((t) => t.portOffset));
  throw new SpecError('spec', [
    `port: ${spec.port} plus the offset of ${over.map((t) => `${t.id} (+${t.portOffset})`).join(', ')} is above 65535; use a port of at most ${65535 - maxOffset}`,
  ]);
}

export interface Difference {
  path: string;
  problem: 'missing' | 'changed' | 'stale' | 'mode' | 'extra';
}

/** Names a rendered `.gitignore` keeps out of the project (node_modules/, /build/, *.log): build output, not extra files. */
function ignoredMatcher(files: RenderedFile[]): (rel: string) => boolean {
  const gitignore = files.find((f) => f.path === '.gitignore')?.content.toString('utf8') ?? '';
  const patterns = gitignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'))
    .map((l) => {
      const anchored = l.startsWith('/');
      const body = l.replace(/^\/|\/$/g, '');
      const re = new RegExp(`^${body.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
      return { anchored, re, nested: body.includes('/') };
    });
  return (rel) => {
    const parts = rel.split('/');
    return patterns.some(({ anchored, re, nested }) => {
      if (nested || anchored) return parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')));
      return parts.some((p) => re.test(p));
    });
  };
}

function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...walk(join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out;
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
  const stale = new Set<string>();
  for (const old of before ?? []) {
    if (!now.has(old) && existsSync(join(dir, old))) out.push({ path: `${outPrefix}/${old}`, problem: 'stale' }), stale.add(old);
  }
  if (existsSync(dir) && lstatSync(dir).isDirectory()) {
    const ignored = ignoredMatcher(files);
    for (const rel of walk(dir)) {
      const top = rel.split('/')[0];
      if (now.has(rel) || stale.has(rel) || top === '.git' || top === LOCK_FILE || top.startsWith(STAGING_PREFIX) || top.startsWith(ASIDE_PREFIX)) continue;
      if (ignored(rel)) continue;
      out.push({ path: `${outPrefix}/${rel}`, problem: 'extra' });
    }
  }
  return out;
}

export interface GenerateOptions {
  targets?: string[];
  check?: boolean;
  force?: boolean;
  /** templates root (default: the package's templates/) */
  templates?: string;
  /** how long a second run waits for the lock before it refuses */
  lockWaitMs?: number;
  /** told about marker entries that were ignored, and old files that could not be removed */
  report?: (line: string) => void;
}

export async function generate(spec: Spec, outDir: string, options: GenerateOptions = {}) {
  const targets = selectTargets(options.targets, options.templates);
  checkPorts(spec, targets);
  checkBroker(spec, targets);
  // Render everything first: a template error must not leave some targets written.
  const rendered = targets.map((target) => ({ target, files: renderTarget(specFor(spec, target), target) }));
  const differences: Difference[] = [];
  const out = resolve(outDir);
  if (options.check) {
    if (existsSync(out)) await destinationKind(out, '--out');
    for (const { target, files } of rendered) {
      const dir = join(out, target.id);
      differences.push(...compare(dir, files, target.id, await previousFiles(dir, options.report)));
    }
    // A whole-set check also notices folders of targets that no longer exist.
    if (!options.targets?.length && existsSync(out)) {
      const ids = new Set(targets.map((t) => t.id));
      for (const entry of readdirSync(out)) {
        if (!ids.has(entry) && existsSync(join(out, entry, MARKER_FILE))) differences.push({ path: entry, problem: 'stale' });
      }
    }
    return { targets: rendered.map((r) => r.target), differences };
  }

  if ((await destinationKind(out, '--out')) === 'missing') {
    try {
      await makeDirs(out);
    } catch (error) {
      throw new WriteError(`cannot create --out ${out}: ${(error as NodeJS.ErrnoException).code}`);
    }
  }
  await withFolderLock(out, options.lockWaitMs ?? 10_000, async () => {
    const prepared: Prepared[] = [];
    try {
      for (const { target, files } of rendered) prepared.push(await prepareRefresh(join(out, target.id), files, { force: options.force }));
    } catch (error) {
      for (const p of prepared) await p.swap.rollback();
      throw error;
    }
    for (const p of prepared) for (const note of p.notes) options.report?.(note);
    const swapped: Prepared[] = [];
    for (const p of prepared) {
      try {
        await p.swap.swap();
        swapped.push(p);
      } catch (error) {
        for (const done of swapped.reverse()) await done.swap.rollback();
        for (const rest of prepared) if (rest !== p && !swapped.includes(rest)) await rest.swap.rollback();
        throw new WriteError(`${(error as Error).message}; no target was changed`);
      }
    }
    for (const p of prepared) {
      const warning = await p.swap.commit();
      if (warning) options.report?.(warning);
    }
  });
  return { targets: rendered.map((r) => r.target), differences };
}
