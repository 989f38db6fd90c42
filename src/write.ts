// Putting rendered files on disk without losing anything.
//
// - Nothing outside the folder the user named is touched: the new files are staged in a
//   hidden folder inside it, and what they replace is moved aside into another one there.
// - Nothing is deleted before the new project is complete: old contents are moved aside,
//   the new ones moved in, and only then is the old removed. Any failure moves everything
//   back (and removes a folder this run created).
// - Folders that can never be replaced are refused: a filesystem root, the home folder, and
//   any folder that holds the current one.
// - Files get the user's umask (0666/0777 minus umask), like any other tool.
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, parse, posix, relative, resolve } from 'node:path';
import lockfile from 'proper-lockfile';
import { MARKER_FILE, type RenderedFile } from './render.js';

export class DirectoryNotEmptyError extends Error {
  constructor(readonly dir: string) {
    super(`${dir} is not empty; pass --force to replace its contents (.git is kept)`);
    this.name = 'DirectoryNotEmptyError';
  }
}

/** A problem with the destination or with writing it, explained in one line. */
export class WriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WriteError';
  }
}

const KEPT = new Set(['.git']);
/** Hidden working folders inside the destination (never part of a project). */
export const STAGING_PREFIX = '.create-sse-server.new-';
export const ASIDE_PREFIX = '.create-sse-server.old-';
export const LOCK_FILE = '.create-sse-server.lock';
const isWorkEntry = (name: string) => name.startsWith(STAGING_PREFIX) || name.startsWith(ASIDE_PREFIX) || name === LOCK_FILE;

const code = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** Where the user is: tests pass a temporary root, home and cwd that stand for the real ones. */
export interface Guard {
  /** the filesystem root (default: the root of the destination's path) */
  root?: string;
  home?: string;
  cwd?: string;
}

const inside = (parent: string, child: string) => {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/** Refuses folders whose contents must never be replaced. */
export function assertReplaceable(dir: string, guard: Guard = {}): void {
  dir = resolve(dir);
  const root = resolve(guard.root ?? parse(dir).root);
  const home = resolve(guard.home ?? homedir());
  const cwd = resolve(guard.cwd ?? process.cwd());
  if (dir === root || dirname(dir) === dir) throw new WriteError(`refusing to write into ${dir}: it is the root of the filesystem`);
  if (dir === home) throw new WriteError(`refusing to write into ${dir}: it is your home folder; name a new folder inside it`);
  if (inside(dir, cwd)) throw new WriteError(`refusing to write into ${dir}: it holds the current folder (${cwd})`);
  if (!inside(root, dir)) throw new WriteError(`refusing to write into ${dir}: it is outside ${root}`);
}

/** What is at `dir`: missing, a folder, or something a project cannot go in (said in one line). */
export async function destinationKind(dir: string, flag = 'folder'): Promise<'missing' | 'dir'> {
  let stat;
  try {
    stat = await lstat(dir);
  } catch (error) {
    if (code(error) === 'ENOENT') return 'missing';
    throw new WriteError(`cannot use ${dir}: ${code(error)}`);
  }
  if (stat.isDirectory()) return 'dir';
  if (stat.isSymbolicLink()) {
    let target;
    try {
      target = await realpath(dir);
    } catch {
      throw new WriteError(`${flag} ${dir} is a dangling symlink; remove it or name another folder`);
    }
    if ((await lstat(target)).isDirectory()) return 'dir';
  }
  throw new WriteError(`${flag} ${dir} is a file, not a folder; name a folder`);
}

export async function isEmptyDir(dir: string): Promise<boolean> {
  if (!existsSync(dir)) return true;
  const entries = await readdir(dir);
  return entries.every((e) => KEPT.has(e));
}

/** Stage `files` in a new hidden folder inside `dir`, with the user's umask. */
async function stage(dir: string, files: RenderedFile[]): Promise<string> {
  const tmp = await mkdtemp(join(dir, STAGING_PREFIX));
  try {
    for (const file of files) {
      const full = join(tmp, file.path);
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, file.content, { mode: file.executable ? 0o777 : 0o666 });
    }
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw new WriteError(`cannot write the new files in ${dir}: ${code(error)}; nothing was changed`);
  }
  return tmp;
}

/**
 * A replacement in progress: `swap` moves old entries aside and new ones in (undoing itself on
 * failure); `commit` then removes the old, `rollback` puts it back.
 */
export class Swap {
  private moved: Array<{ from: string; aside: string }> = [];
  private placed: string[] = [];
  private createdDirs: string[] = [];
  private aside?: string;

  constructor(
    readonly dir: string,
    private readonly staging: string,
    /** top-level entries or relative file paths that the new files replace or retire */
    private readonly replaced: string[],
    /** relative paths (files, or top-level entries) to move from staging into dir */
    private readonly incoming: string[],
    private readonly createdRoot?: string,
  ) {}

  async swap(): Promise<void> {
    try {
      this.aside = await mkdtemp(join(this.dir, ASIDE_PREFIX));
      for (const rel of this.replaced) {
        const from = join(this.dir, rel);
        if (!(await exists(from))) continue;
        const aside = join(this.aside, rel);
        await mkdir(dirname(aside), { recursive: true });
        try {
          await rename(from, aside);
        } catch (error) {
          throw new WriteError(`cannot move ${from} aside: ${code(error)}`);
        }
        this.moved.push({ from, aside });
      }
      for (const rel of this.incoming) {
        const to = join(this.dir, rel);
        await this.mkdirs(dirname(to));
        try {
          await rename(join(this.staging, rel), to);
        } catch (error) {
          throw new WriteError(`cannot move the new ${rel} into ${this.dir}: ${code(error)}`);
        }
        this.placed.push(to);
      }
    } catch (error) {
      const rolled = await this.rollback();
      const why = error instanceof WriteError ? error.message : `cannot replace the contents of ${this.dir}: ${code(error)}`;
      throw new WriteError(`${why}; ${rolled ? 'everything was put back' : 'some files could not be put back, see ' + this.aside}`);
    }
  }

  private async mkdirs(path: string) {
    const made = await mkdir(path, { recursive: true });
    if (made) this.createdDirs.push(made);
  }

  /** Undo `swap`; true when everything is back where it was. */
  async rollback(): Promise<boolean> {
    let ok = true;
    for (const to of this.placed.reverse()) await rm(to, { recursive: true, force: true }).catch(() => (ok = false));
    for (const made of this.createdDirs.reverse()) await rm(made, { recursive: true, force: true }).catch(() => undefined);
    for (const { from, aside } of this.moved.reverse()) {
      try {
        await mkdir(dirname(from), { recursive: true });
        await rename(aside, from);
      } catch {
        ok = false;
      }
    }
    this.placed = [];
    this.moved = [];
    await rm(this.staging, { recursive: true, force: true }).catch(() => undefined);
    if (ok && this.aside) await rm(this.aside, { recursive: true, force: true }).catch(() => undefined);
    if (ok && this.createdRoot) await rm(this.createdRoot, { recursive: true, force: true }).catch(() => undefined);
    return ok;
  }

  /** The new files are in place: remove the old ones. Returns a warning when some remain. */
  async commit(): Promise<string | undefined> {
    await rm(this.staging, { recursive: true, force: true }).catch(() => undefined);
    // Folders that only held retired files go too (rmdir: only when empty, never content).
    for (const { from } of this.moved) {
      for (let at = dirname(from); at !== this.dir && inside(this.dir, at); at = dirname(at)) {
        if (!(await rmdir(at).then(() => true, () => false))) break;
      }
    }
    if (!this.aside) return undefined;
    try {
      await rm(this.aside, { recursive: true, force: true });
    } catch (error) {
      return `the new files are in place, but some old ones could not be removed (${code(error)}): they are in ${this.aside}`;
    }
    return undefined;
  }
}

async function exists(path: string) {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `mkdir -p` one level at a time; returns the first folder created. (Node's own recursive
 * mkdir loops forever under /proc, where a missing parent cannot be created: ENOENT again.)
 */
export async function makeDirs(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  for (let at = resolve(dir); ; at = dirname(at)) {
    if (await exists(at)) break;
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const at of missing) await mkdir(at);
  return missing[0];
}

/** Create `dir` if needed and stage `files` in it; a failed staging removes what was created. */
async function prepareAndStage(dir: string, files: RenderedFile[]): Promise<{ created?: string; staging: string }> {
  const created = await prepare(dir, 'folder');
  try {
    return { created, staging: await stage(dir, files) };
  } catch (error) {
    if (created) await rm(created, { recursive: true, force: true });
    throw error;
  }
}

/** Create `dir` if needed; returns the first folder created (to remove on failure). */
async function prepare(dir: string, flag: string): Promise<string | undefined> {
  if ((await destinationKind(dir, flag)) === 'dir') return undefined;
  try {
    return await makeDirs(dir);
  } catch (error) {
    throw new WriteError(`cannot create ${dir}: ${code(error)}`);
  }
}

export interface WriteOptions {
  force?: boolean;
  guard?: Guard;
}

/**
 * A new project: into a missing or empty folder, or a non-empty one with `force` (its
 * contents are replaced, `.git` is kept). Returns a warning when old files could not be removed.
 */
export async function writeProject(dir: string, files: RenderedFile[], { force = false, guard }: WriteOptions = {}): Promise<string | undefined> {
  dir = resolve(dir);
  assertReplaceable(dir, guard);
  const kind = await destinationKind(dir);
  if (kind === 'dir' && !(await isEmptyDir(dir)) && !force) throw new DirectoryNotEmptyError(dir);
  const { created, staging } = await prepareAndStage(dir, files);
  const old = (await readdir(dir)).filter((e) => !KEPT.has(e) && !isWorkEntry(e));
  const incoming = await readdir(staging);
  const swap = new Swap(dir, staging, old, incoming, created);
  await swap.swap();
  return swap.commit();
}

/** A relative path a marker file may name: normalized, inside the folder, no `..`. */
export function isSafeRelative(path: unknown): path is string {
  return (
    typeof path === 'string' &&
    path !== '' &&
    !path.includes('\0') &&
    !path.includes('\\') &&
    !posix.isAbsolute(path) &&
    posix.normalize(path) === path &&
    path.split('/').every((s) => s !== '..' && s !== '.' && s !== '')
  );
}

/**
 * Files a previous render wrote here, from its marker file (undefined when there is none).
 * Only normalized relative paths inside the folder are honoured; others are reported.
 */
export async function previousFiles(dir: string, report?: (line: string) => void): Promise<string[] | undefined> {
  let marker;
  try {
    marker = JSON.parse(await readFile(join(dir, MARKER_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  const listed: unknown[] = Array.isArray(marker?.files) ? marker.files : [];
  const safe: string[] = [];
  for (const path of listed) {
    if (isSafeRelative(path)) safe.push(path);
    else report?.(`${join(dir, MARKER_FILE)}: ignored ${JSON.stringify(path)} (not a relative path inside the folder)`);
  }
  return safe;
}

/** No symlink or file stands where a folder of `rel` must be (that would lead outside `dir`). */
async function assertPlainParents(dir: string, rel: string) {
  const parts = rel.split('/').slice(0, -1);
  let at = dir;
  for (const part of parts) {
    at = join(at, part);
    let stat;
    try {
      stat = await lstat(at);
    } catch {
      return;
    }
    if (!stat.isDirectory()) {
      throw new WriteError(`${at} is ${stat.isSymbolicLink() ? 'a symlink' : 'a file'} where the project needs a folder; refusing to write through it`);
    }
  }
}

export interface Prepared {
  dir: string;
  swap: Swap;
  /** lines about marker entries that were ignored */
  notes: string[];
}

/**
 * Stage a refresh of a folder that a previous render made (generated/<id>, a smoke work
 * folder): rendered files are replaced, files the previous render wrote and this one does
 * not are retired, anything else (node_modules, target/, .venv) stays. Nothing changes until
 * `swap.swap()`; call `swap.commit()` or `swap.rollback()` after.
 */
export async function prepareRefresh(dir: string, files: RenderedFile[], { force = false } = {}): Promise<Prepared> {
  dir = resolve(dir);
  const kind = await destinationKind(dir);
  const notes: string[] = [];
  const before = kind === 'dir' ? await previousFiles(dir, (l) => notes.push(l)) : undefined;
  if (kind === 'dir' && before === undefined && !(await isEmptyDir(dir)) && !force) throw new DirectoryNotEmptyError(dir);
  for (const file of files) await assertPlainParents(dir, file.path);
  const now = new Set(files.map((f) => f.path));
  const retired: string[] = [];
  for (const old of before ?? []) {
    if (now.has(old)) continue;
    try {
      await assertPlainParents(dir, old);
    } catch {
      notes.push(`${join(dir, MARKER_FILE)}: ignored ${JSON.stringify(old)} (it leads through a symlink)`);
      continue;
    }
    retired.push(old);
  }
  const { created, staging } = await prepareAndStage(dir, files);
  const paths = files.map((f) => f.path);
  return { dir, notes, swap: new Swap(dir, staging, [...paths, ...retired], paths, created) };
}

/** `prepareRefresh`, swapped and committed at once (one folder). */
export async function refreshRendered(dir: string, files: RenderedFile[], options: { force?: boolean } = {}) {
  const { swap } = await prepareRefresh(dir, files, options);
  await swap.swap();
  await swap.commit();
}


export class LockedError extends Error {
  constructor(dir: string) {
    super(`${dir} is being written by another create-sse-server run (lock ${join(dir, LOCK_FILE)}); wait for it to finish and try again`);
    this.name = 'LockedError';
  }
}

/** Hold the per-folder lock of `dir` while `body` runs (waits up to `waitMs`, then refuses). */
export async function withFolderLock<T>(dir: string, waitMs: number, body: () => Promise<T>): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, {
      lockfilePath: join(dir, LOCK_FILE),
      realpath: false,
      stale: 15_000,
      update: 5_000,
      // A long build can starve the timer that refreshes the lock; losing it must not crash the run.
      onCompromised: () => undefined,
      retries: waitMs > 0 ? { retries: Math.ceil(waitMs / 500), minTimeout: 500, maxTimeout: 500, factor: 1 } : 0,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') throw new LockedError(dir);
    throw new WriteError(`cannot lock ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return await body();
  } finally {
    await release().catch(() => undefined);
  }
}

