// `create-sse-server bench` in its quick mode (issue 13), so the bench cannot rot: two targets,
// 200 streams, 5 s of publishing. It must hold every stream, lose and duplicate nothing, see
// every publish on every stream, measure memory and CPU, write JSON and a chart, and leave no
// process or port behind. The parts that need no toolchain (histogram, table, chart) are
// checked on their own.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartSvg, markdownTable, medians, tableRow } from '../src/bench/report.js';
import { addValue, emptyHistogram, mergeHistograms, quantile } from '../src/bench/histogram.js';
import type { BenchResult } from '../src/bench/run.js';
import { program } from '../src/cli.js';
import { generate } from '../src/generate.js';
import { loadSpec } from '../src/spec.js';
import { canConnect } from '../src/smoke/client.js';
import { loadTargets } from '../src/targets.js';
import { checkToolchain } from '../src/toolchain.js';

const TARGETS = ['go-stdlib', 'node-express'];
const missing = (
  await Promise.all(loadTargets().filter((t) => TARGETS.includes(t.id)).map(async (t) => ((await checkToolchain(t)).every((s) => s.found) ? [] : [t.id])))
).flat();
if (missing.length && process.env.CI) throw new Error(`bench test cannot run in CI: toolchain missing for ${missing.join(', ')}`);

/** Processes running a bench client script (sse-bench-…/client.mjs in a temporary folder). */
function benchClients(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('/sse-bench-') && cmdline.includes('client.mjs')) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('bench: histogram, table and chart', () => {
  it('gives percentiles within 1 % and merges parts', () => {
    const a = emptyHistogram();
    const b = emptyHistogram();
    for (let i = 1; i <= 1000; i++) addValue(i % 2 ? a : b, i); // 1..1000 ms
    const h = mergeHistograms([a, b]);
    expect(h.count).toBe(1000);
    expect(h.maxMs).toBe(1000);
    expect(Math.abs(quantile(h, 0.5)! - 500) / 500).toBeLessThan(0.01);
    expect(Math.abs(quantile(h, 0.99)! - 990) / 990).toBeLessThan(0.01);
    expect(quantile(emptyHistogram(), 0.5)).toBeUndefined();
  });

  it('prints a row, a Markdown table and an SVG with a bar per target', () => {
    const r = (id: string, kind: 'target' | 'hub', p99: number, kib: number): BenchResult => ({
      id, kind, language: 'Go', framework: 'x', status: 'ok', clients: 100, held: 100, connectErrors: {}, dropped: {},
      latency: { count: 1000, p50Ms: 1, p99Ms: p99, maxMs: p99 * 2 }, lost: 0, duplicated: 0,
      memory: { idleMiB: 5, loadedMiB: 8, peakMiB: 9, perStreamKiB: kib }, serverCpu: { connectS: 0, publishS: 0.1, publishPctOfCore: 1, totalS: 0.1, processes: 1 },
      client: { procs: 2, cpuS: 0.2, publishWindowPctOfCore: [3, 4], publisherCpuS: 0.1, rssMiB: 100 }, provenance: {},
    });
    const rows = [r('go-stdlib', 'target', 12.5, 31), r('centrifugo', 'hub', 8, 20), { ...r('php', 'target', 0, 0), status: 'skipped' as const, reason: 'toolchain missing' }];
    expect(tableRow(rows[0])).toMatch(/^go-stdlib\s+100\/100\s+0\s+1\.00\s+12\.5\s+25\.0\s+0\s+0\s+5\.0\s+8\.0\s+31\.0/);
    expect(markdownTable(rows)).toContain('| `php` | skipped: toolchain missing |');
    const svg = chartSvg(rows, 'test');
    expect(svg.match(/<rect /g)?.length).toBe(1 + 2 * 2); // background + 2 bars for each of 2 ok rows
    expect(svg).toContain('centrifugo (hub)');
    // --runs 3: one row per target with medians, the spread beside them, the worst loss
    const runs = [r('go-stdlib', 'target', 12, 31), r('go-stdlib', 'target', 40, 30), { ...r('go-stdlib', 'target', 20, 33), lost: 2 }].map((x, i) => ({ ...x, run: i + 1 }));
    const [summary] = medians(runs);
    expect(summary).toMatchObject({ runs: 3, lost: 2, latency: { p99Ms: 20 }, memory: { perStreamKiB: 31 }, range: { p99Ms: [12, 40], perStreamKiB: [30, 33] } });
    expect(markdownTable([summary])).toMatch(/\| 12\.0-40\.0 \| 30\.0-33\.0 \|$/m);
  });
});

describe.skipIf(missing.length > 0)('bench quick mode', () => {
  it('holds 200 streams on go-stdlib and node-express, loses nothing, and cleans up', { timeout: 600_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), 'sse-bench-test-'));
    await generate(await loadSpec('examples/sse.spec.yaml'), out, { targets: TARGETS });
    const json = join(out, 'bench.json');
    const svg = join(out, 'bench.svg');
    await program().parseAsync(['node', 'create-sse-server', 'bench', ...TARGETS, '--clients', '200', '--secs', '5', '--publish-rate', '10', '--dir', out, '--json', json, '--svg', svg, '--gap', process.env.BENCH_TEST_GAP ?? '0']);
    const exitCode = process.exitCode;
    process.exitCode = 0;
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc.load).toMatchObject({ clients: 200, publishRate: 10, secs: 5 });
    expect(doc.results.map((r: BenchResult) => r.id)).toEqual(TARGETS);
    for (const r of doc.results as BenchResult[]) {
      expect(r.status, `${r.id}: ${r.reason}`).toBe('ok');
      expect(r.held).toBe(200);
      expect(r.publishes!.accepted).toBe(50);
      expect(r.lost).toBe(0);
      expect(r.duplicated).toBe(0);
      expect(r.idGaps).toBe(0);
      // every publish on every stream, each with its latency
      expect(r.latency!.count).toBe(200 * 50);
      expect(r.latency!.p50Ms).toBeGreaterThan(0);
      expect(r.latency!.p99Ms!).toBeGreaterThanOrEqual(r.latency!.p50Ms!);
      expect(r.memory!.loadedMiB).toBeGreaterThan(r.memory!.idleMiB);
      expect(r.serverCpu!.totalS).toBeGreaterThan(0);
      expect(r.client!.procs).toBe(2);
      expect(r.client!.cpuS).toBeGreaterThan(0);
      expect(await canConnect('127.0.0.1', r.port!, 500)).toBe(false);
    }
    expect(exitCode ?? 0).toBe(0);
    expect(readFileSync(svg, 'utf8')).toContain('go-stdlib');
    expect(benchClients()).toEqual([]);
  });
});
