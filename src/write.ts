// Putting rendered files on disk without losing anything: everything is written to a
// temporary folder next to the destination first and moved in place only when complete,
// so a failure leaves nothing half-made; a non-empty folder needs `force`, and even then
// its `.git` is kept.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MARKER_FILE, type RenderedFile } from './render.js';

export class DirectoryNotEmptyError extends Error {
  constructor(readonly dir: string) {
    super(`${dir} is not empty; pass --force to replace its contents (.git is kept)`);
    this.name = 'DirectoryNotEmptyError';
  }
}

const KEPT = new Set(['.git']);

export async function isEmptyDir(dir: string): Promise<boolean> {
  if (!existsSync(dir)) return true;
  const entries = await readdir(dir);
  return entries.every((e) => KEPT.has(e));
}

async function stage(dest: string, files: RenderedFile[]): Promise<string> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = await mkdtemp(join(dirname(dest), `.${basename(dest)}.tmp-`));
  try {
    for (const file of files) {
      const full = join(tmp, file.path);
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, file.content, { mode: file.executable ? 0o755 : 0o644 });
    }
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return tmp;
}

/** A new project: into a missing or empty folder, or a non-empty one with `force`. */
export async function writeProject(dir: string, files: RenderedFile[], { force = false } = {}) {
  dir = resolve(dir);
  if (!(await isEmptyDir(dir)) && !force) throw new DirectoryNotEmptyError(dir);
  const tmp = await stage(dir, files);
  try {
    if (!existsSync(dir)) {
      await rename(tmp, dir);
      return;
    }
    for (const entry of await readdir(dir)) {
      if (!KEPT.has(entry)) await rm(join(dir, entry), { recursive: true, force: true });
    }
    for (const entry of await readdir(tmp)) await rename(join(tmp, entry), join(dir, entry));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Files a previous render wrote here, from its marker file (empty when there is none). */
export async function previousFiles(dir: string): Promise<string[] | undefined> {
  try {
    const marker = JSON.parse(await readFile(join(dir, MARKER_FILE), 'utf8'));
    return Array.isArray(marker.files) ? marker.files : [];
  } catch {
    return undefined;
  }
}

/**
 * Refresh a folder that a previous render made (generated/<id>, a smoke work folder):
 * rendered files are replaced, files the previous render wrote and this one does not are
 * removed, and anything else (node_modules, target/, .venv) stays for the next build.
 */
export async function refreshRendered(dir: string, files: RenderedFile[], { force = false } = {}) {
  dir = resolve(dir);
  const before = await previousFiles(dir);
  if (before === undefined && !(await isEmptyDir(dir)) && !force) throw new DirectoryNotEmptyError(dir);
  const tmp = await stage(dir, files);
  try {
    for (const file of files) {
      await mkdir(dirname(join(dir, file.path)), { recursive: true });
      await rename(join(tmp, file.path), join(dir, file.path));
    }
    const now = new Set(files.map((f) => f.path));
    for (const old of before ?? []) {
      if (!now.has(old)) await rm(join(dir, old), { force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
