// What the bench can run: every `runs` target of a generated folder, and the reference hub
// (Centrifugo, built from its Go module). Each says how to build it, start it on a port with
// a publish secret, where its stream is, and how to publish to it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { MARKER_FILE } from '../render.js';
import { buildProject, startProject } from '../run.js';
import type { Target } from '../targets.js';
import { checkToolchain, missingSummary } from '../toolchain.js';
import { generatedTargets } from '../up.js';

export const HUB_ID = 'centrifugo';
export const CENTRIFUGO_VERSION = 'v6.9.1';
export const CENTRIFUGO_MODULE = 'github.com/centrifugal/centrifugo/v6';
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CENTRIFUGO_CONFIG = join(packageRoot, 'bench', 'centrifugo', 'config.json');
export const CENTRIFUGO_CHANNEL = 'bench';
export const BENCH_EVENT = 'notification';

export const cacheRoot = () => join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'create-sse-server');

export interface PublishRequest {
  path: string;
  headers: Record<string, string>;
  body: (payload: object) => string;
}

export interface BenchTarget {
  id: string;
  kind: 'target' | 'hub';
  language: string;
  framework: string;
  /** 'contract': ids in `id:` and the bench event by name; 'centrifugo': JSON pushes with offsets */
  mode: 'contract' | 'centrifugo';
  /** a reason not to run it here (toolchain missing, not level runs) */
  unavailable(): Promise<string | undefined>;
  /** install and build; `log` gets a line per step */
  build(log: (line: string) => void): Promise<void>;
  /** start it listening on 127.0.0.1:port, in a process group of its own */
  start(port: number, secret: string): ResultPromise;
  streamPath: string;
  streamHeaders: Record<string, string>;
  healthPath: string;
  publish(secret: string): PublishRequest;
  /** facts worth keeping beside the numbers (commit, dirty files, binary) */
  provenance: Record<string, string>;
}

function git(args: string[], cwd: string): string | undefined {
  try {
    return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return undefined;
  }
}

/**
 * Copy a generated project (the files its marker lists, nothing else) into a work folder,
 * touching only files whose content changed, so builds there stay warm between runs and do
 * not race with anyone editing or building in the generated folder itself.
 */
export function syncProject(from: string, to: string): void {
  const marker = JSON.parse(readFileSync(join(from, MARKER_FILE), 'utf8'));
  const files: string[] = [MARKER_FILE, ...(Array.isArray(marker.files) ? marker.files : [])];
  for (const rel of files) {
    const src = join(from, rel);
    const dest = join(to, rel);
    if (!existsSync(src)) continue;
    const same = existsSync(dest) && readFileSync(dest).equals(readFileSync(src));
    if (!same) {
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(src, dest);
    }
    chmodSync(dest, statSync(src).mode & 0o777);
  }
}

export function generatedBenchTarget(target: Target, generatedDir: string, path: string, workDir: string | undefined, env: Record<string, string> = {}): BenchTarget {
  const dir = workDir ? join(workDir, target.id) : generatedDir;
  const repo = git(['rev-parse', '--show-toplevel'], generatedDir);
  const provenance: Record<string, string> = { source: generatedDir, builtIn: dir };
  if (repo) {
    provenance.commit = git(['rev-parse', '--short', 'HEAD'], repo) ?? '?';
    const dirty = git(['status', '--porcelain', '--', generatedDir], repo);
    provenance.uncommittedChanges = dirty ? String(dirty.split('\n').length) : '0';
  }
  return {
    id: target.id,
    kind: 'target',
    language: target.language,
    framework: target.framework,
    mode: 'contract',
    async unavailable() {
      if (target.level !== 'runs') return `level ${target.level}: ${target.levelNote ?? 'it does not run here'}`;
      const missing = missingSummary(await checkToolchain(target));
      return missing ? `toolchain missing: ${missing}` : undefined;
    },
    async build(log) {
      if (workDir) syncProject(generatedDir, dir);
      await buildProject(dir, { stdio: 'pipe', log });
    },
    start(port, secret) {
      return startProject(dir, target, { env: { ...env, PORT: String(port), HOST: '127.0.0.1', SSE_PUBLISH_TOKEN: secret }, stdio: 'pipe' });
    },
    streamPath: path,
    streamHeaders: { Accept: 'text/event-stream' },
    healthPath: '/health',
    publish: (secret) => ({
      path: '/publish',
      headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
      body: (payload) => JSON.stringify({ event: BENCH_EVENT, data: payload }),
    }),
    provenance,
  };
}

export function centrifugoBinary(explicit?: string): string {
  return explicit || process.env.CENTRIFUGO_BIN || join(cacheRoot(), `centrifugo-${CENTRIFUGO_VERSION}`, 'centrifugo');
}

export function centrifugoTarget(explicitBin?: string): BenchTarget {
  const bin = centrifugoBinary(explicitBin);
  return {
    id: HUB_ID,
    kind: 'hub',
    language: 'Go',
    framework: `Centrifugo ${CENTRIFUGO_VERSION} (uni_sse)`,
    mode: 'centrifugo',
    async unavailable() {
      if (!existsSync(CENTRIFUGO_CONFIG)) return `its config is not here (${CENTRIFUGO_CONFIG}: the bench runs from a clone of the repository)`;
      if (existsSync(bin)) return undefined;
      const go = await execa('go', ['version'], { reject: false });
      return go.exitCode === 0 ? undefined : `no ${bin}, and no Go toolchain to build it (pass --centrifugo BIN)`;
    },
    async build(log) {
      if (existsSync(bin)) return;
      log(`$ go install ${CENTRIFUGO_MODULE}@${CENTRIFUGO_VERSION} (into ${dirname(bin)}; minutes on a cold cache)`);
      mkdirSync(dirname(bin), { recursive: true });
      const result = await execa('go', ['install', `${CENTRIFUGO_MODULE}@${CENTRIFUGO_VERSION}`], {
        env: { GOFLAGS: '-mod=mod', GOBIN: dirname(bin) },
        reject: false,
        all: true,
        timeout: 30 * 60_000,
      });
      if (result.exitCode !== 0 || !existsSync(bin)) {
        throw new Error(`go install ${CENTRIFUGO_MODULE}@${CENTRIFUGO_VERSION} failed: ${String(result.all ?? '').split('\n').slice(-5).join(' | ')}`);
      }
    },
    start(port, secret) {
      return execa(bin, ['--config', CENTRIFUGO_CONFIG], {
        env: {
          CENTRIFUGO_HTTP_SERVER_PORT: String(port),
          CENTRIFUGO_HTTP_SERVER_ADDRESS: '127.0.0.1',
          CENTRIFUGO_HTTP_API_KEY: secret,
        },
        detached: true,
        stdio: 'pipe',
        all: true,
        buffer: false,
        reject: false,
        cleanup: false,
      });
    },
    streamPath: `/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify({ subs: { [CENTRIFUGO_CHANNEL]: {} } }))}`,
    streamHeaders: { Accept: 'text/event-stream' },
    healthPath: '/health',
    publish: (secret) => ({
      path: '/api/publish',
      headers: { 'X-API-Key': secret, 'Content-Type': 'application/json' },
      body: (payload) => JSON.stringify({ channel: CENTRIFUGO_CHANNEL, data: payload }),
    }),
    provenance: { module: `${CENTRIFUGO_MODULE}@${CENTRIFUGO_VERSION}`, binary: bin, config: 'bench/centrifugo/config.json' },
  };
}

export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The targets to bench: ids (a target id or `centrifugo`), or all runs targets plus the hub. */
export function selectBenchTargets(
  ids: string[],
  all: boolean,
  generatedDir: string,
  /** envFor: extra environment per target (SSE_REDIS_URL with --broker redis); noHub: leave the hub out of --all */
  options: { workDir?: string; centrifugoBin?: string; envFor?: (id: string) => Record<string, string>; noHub?: boolean },
): BenchTarget[] {
  const root = resolve(generatedDir);
  const found = generatedTargets(root);
  const wanted = all ? [...found.filter((f) => f.target.level === 'runs').map((f) => f.target.id), ...(options.noHub ? [] : [HUB_ID])] : ids;
  if (!wanted.length) throw new BenchUsageError('name the targets to bench (ids, or centrifugo for the hub), or pass --all');
  return wanted.map((id) => {
    if (id === HUB_ID) return centrifugoTarget(options.centrifugoBin);
    const f = found.find((x) => x.target.id === id);
    if (!f) throw new BenchUsageError(`${id}: no generated project for it in ${generatedDir} (have: ${found.map((x) => x.target.id).join(', ') || 'none'}; make them with create-sse-server generate)`);
    return generatedBenchTarget(f.target, f.dir, f.path, options.workDir, options.envFor?.(id));
  });
}

export const freshSecret = () => randomBytes(16).toString('hex');
