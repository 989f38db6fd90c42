// Install, build and start a generated project with its target's own toolchain.
// Steps that already ran (their `creates` output is newer than their inputs) are skipped,
// so a second run reuses node_modules, .venv, target/, the Go and Maven caches.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { MARKER_FILE } from './render.js';
import { findTarget, type Step, type Target } from './targets.js';
import { checkToolchain } from './toolchain.js';
import { killTree } from './process-tree.js';

export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

export function targetOf(dir: string): Target {
  const marker = join(dir, MARKER_FILE);
  if (!existsSync(marker)) {
    throw new RunError(`${dir} is not a generated project (no ${MARKER_FILE}); create one with create-sse-server first`);
  }
  let target: unknown;
  try {
    target = JSON.parse(readFileSync(marker, 'utf8')).target;
  } catch {
    throw new RunError(`${marker} is not valid JSON; generate the project again`);
  }
  if (typeof target !== 'string') throw new RunError(`${marker} names no target; generate the project again`);
  return findTarget(target);
}

/** A step whose `creates` output is newer than its inputs has nothing to do. */
export function isFresh(dir: string, step: Step): boolean {
  if (!step.creates) return false;
  const created = join(dir, step.creates);
  if (!existsSync(created)) return false;
  const createdAt = statSync(created).mtimeMs;
  return (step.inputs ?? []).every((input) => {
    const path = join(dir, input);
    return !existsSync(path) || statSync(path).mtimeMs <= createdAt;
  });
}

export interface BuildOptions {
  /** where step output goes: 'inherit' for a terminal, 'pipe' to keep it quiet */
  stdio?: 'inherit' | 'pipe';
  log?: (line: string) => void;
}

/** Toolchain check, then install and build steps. */
export async function buildProject(dir: string, options: BuildOptions = {}): Promise<Target> {
  dir = resolve(dir);
  const target = targetOf(dir);
  const missing = (await checkToolchain(target)).filter((t) => !t.found);
  if (missing.length) {
    throw new RunError(`toolchain missing for ${target.id}: ${missing.map((m) => `${m.check.join(' ')} (${m.hint})`).join('; ')}`);
  }
  for (const step of [...target.install, ...target.build]) {
    if (isFresh(dir, step)) continue;
    options.log?.(`$ ${step.run.join(' ')}`);
    const result = await execa(step.run[0], step.run.slice(1), {
      cwd: dir,
      env: { ...target.env, ...step.env },
      stdio: options.stdio === 'inherit' ? 'inherit' : 'pipe',
      all: options.stdio !== 'inherit',
      reject: false,
    });
    if (result.exitCode !== 0) {
      const tail = (result.all ?? '').toString().split('\n').slice(-30).join('\n');
      throw new RunError(`${target.id}: \`${step.run.join(' ')}\` failed (exit ${result.exitCode})${tail ? `\n${tail}` : ''}`);
    }
    // A step may leave its `creates` path untouched when nothing changed; mark it as run.
    if (step.creates && existsSync(join(dir, step.creates))) {
      const now = new Date();
      utimesSync(join(dir, step.creates), now, now);
    }
  }
  return target;
}

export interface StartOptions {
  env?: Record<string, string>;
  stdio?: 'inherit' | 'pipe';
}

/**
 * Start the server in a process group of its own (so that every process it starts can be
 * signalled and reaped together). The caller owns the group: see `stopGroup`.
 */
export function startProject(dir: string, target: Target, options: StartOptions = {}): ResultPromise {
  dir = resolve(dir);
  return execa(target.start[0], target.start.slice(1), {
    cwd: dir,
    env: { ...target.env, ...options.env },
    detached: true,
    stdio: options.stdio === 'inherit' ? 'inherit' : 'pipe',
    all: options.stdio !== 'inherit',
    buffer: false,
    reject: false,
    cleanup: false,
  });
}

/** Send a signal to a whole process group; false when the group is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function groupAlive(pid: number): boolean {
  return signalGroup(pid, 0 as unknown as NodeJS.Signals);
}

/** SIGTERM the group, then SIGKILL whatever is left after `graceMs`. */
export async function stopGroup(pid: number, graceMs = 5000): Promise<void> {
  if (!signalGroup(pid, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  killTree(pid);
}

/** `create-sse-server run DIR`: build, start, forward signals, exit with the server's code. */
export async function runCommand(dir: string): Promise<number> {
  const target = await buildProject(dir, { stdio: 'inherit', log: (l) => console.error(l) });
  const child = startProject(dir, target, { stdio: 'inherit' });
  const pid = child.pid;
  if (pid === undefined) throw new RunError(`${target.id}: could not start \`${target.start.join(' ')}\``);
  // If `run` is killed outright (kill -9), a watchdog on a pipe notices and stops the server.
  const watchdog = spawn(process.execPath, [fileURLToPath(new URL('./watchdog.js', import.meta.url)), String(pid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.stdin?.on('error', () => undefined);
  const forward = (signal: NodeJS.Signals) => () => signalGroup(pid, signal);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const handlers = signals.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  // If this process dies first, take the server group with it.
  const reap = () => killTree(pid);
  process.on('exit', reap);
  const result = await child;
  for (const [s, h] of handlers) process.off(s, h);
  // The server is gone; make sure nothing it started lingers.
  await stopGroup(pid, 2000);
  process.off('exit', reap);
  watchdog.stdin?.end('done\n');
  if (result.exitCode !== undefined) return result.exitCode;
  const signalNumber = result.signal ? constants.signals[result.signal] : 1;
  return 128 + signalNumber;
}
