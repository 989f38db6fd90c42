// The bench's outputs: a table row per target (printed as each finishes), the JSON document,
// a Markdown table, and an SVG chart (p99 publish-to-receipt latency and memory per stream by
// target), all made from the same results.
import type { BenchResult } from './run.js';

const cell = (v: number | undefined, digits = 0) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));
const ms = (v: number | undefined) => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const total = (o: Record<string, number> | undefined) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);

export const COLUMNS = ['target', 'held/N', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'dup', 'idle MiB', 'N MiB', 'KiB/stream', 'srv CPU s', 'srv µs/event', 'client %core', 'others %core'];
const WIDTHS = [22, 12, 7, 8, 8, 8, 6, 5, 9, 8, 11, 10, 13, 13, 12];

export function cells(r: BenchResult): string[] {
  const name = r.kind === 'hub' ? `${r.id} (hub)` : r.id;
  if (r.status !== 'ok') return [name, r.status, '', '', '', '', '', '', '', '', '', '', '', '', ''];
  const errors = total(r.connectErrors) + total(r.dropped);
  return [
    name,
    `${r.held}/${r.clients}`,
    String(errors),
    ms(r.latency?.p50Ms),
    ms(r.latency?.p99Ms),
    ms(r.latency?.maxMs),
    String(r.lost ?? '-'),
    String(r.duplicated ?? '-'),
    cell(r.memory?.idleMiB, 1),
    cell(r.memory?.loadedMiB, 1),
    cell(r.memory?.perStreamKiB, 1),
    cell(r.serverCpu?.totalS, 2),
    cell(r.serverCpu?.usPerDeliveredEvent, 1),
    (r.client?.publishWindowPctOfCore ?? []).map((p) => cell(p)).join('+'),
    cell(r.machine?.othersPctOfCore),
  ];
}

const median = (values: number[]) => {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};

/**
 * One result per target over every run: the median of each measure (with its lowest and
 * highest in `range`), the fewest streams held, the most events lost or duplicated. A target
 * with a failed run keeps that failure. Results without `run` pass through as they are.
 */
export function medians(results: BenchResult[]): BenchResult[] {
  if (!results.some((r) => r.run !== undefined && r.run > 1)) return results;
  const out: BenchResult[] = [];
  for (const id of [...new Set(results.map((r) => r.id))]) {
    const all = results.filter((r) => r.id === id);
    const failed = all.find((r) => r.status !== 'ok');
    if (failed) {
      out.push({ ...failed, runs: all.length, reason: `${failed.reason ?? failed.status} (run ${failed.run} of ${all.length})` });
      continue;
    }
    const range: Record<string, [number, number]> = {};
    const pick = (name: string, get: (r: BenchResult) => number | undefined) => {
      const values = all.map(get).filter((v): v is number => v !== undefined);
      if (!values.length) return undefined;
      range[name] = [Math.min(...values), Math.max(...values)];
      return Math.round(median(values) * 100) / 100;
    };
    const base = all[0];
    // the reason beside the row is the run that held the fewest streams (the one `held` shows)
    const fewest = all.reduce((m, r) => ((r.held ?? 0) < (m.held ?? 0) ? r : m), base);
    out.push({
      ...base,
      reason: fewest.reason,
      run: undefined,
      runs: all.length,
      held: Math.min(...all.map((r) => r.held ?? 0)),
      lost: Math.max(...all.map((r) => r.lost ?? 0)),
      duplicated: Math.max(...all.map((r) => r.duplicated ?? 0)),
      connectErrors: all.reduce((m, r) => (total(r.connectErrors) > total(m) ? r.connectErrors : m), base.connectErrors),
      dropped: all.reduce((m, r) => (total(r.dropped) > total(m) ? r.dropped : m), base.dropped),
      latency: base.latency && {
        ...base.latency,
        p50Ms: pick('p50Ms', (r) => r.latency?.p50Ms),
        p99Ms: pick('p99Ms', (r) => r.latency?.p99Ms),
        maxMs: pick('maxMs', (r) => r.latency?.maxMs),
      },
      memory: base.memory && {
        ...base.memory,
        idleMiB: pick('idleMiB', (r) => r.memory?.idleMiB)!,
        loadedMiB: pick('loadedMiB', (r) => r.memory?.loadedMiB)!,
        perStreamKiB: pick('perStreamKiB', (r) => r.memory?.perStreamKiB),
      },
      serverCpu: base.serverCpu && {
        ...base.serverCpu,
        totalS: pick('serverCpuS', (r) => r.serverCpu?.totalS)!,
        usPerDeliveredEvent: pick('usPerDeliveredEvent', (r) => r.serverCpu?.usPerDeliveredEvent),
      },
      client: base.client && {
        ...base.client,
        publishWindowPctOfCore: base.client.publishWindowPctOfCore.map((_, i) => pick(`clientPct${i}`, (r) => r.client?.publishWindowPctOfCore[i])!),
        loopDelayP99Ms: pick('clientLoopDelayP99Ms', (r) => r.client?.loopDelayP99Ms),
      },
      machine: base.machine && { ...base.machine, othersPctOfCore: pick('othersPctOfCore', (r) => r.machine?.othersPctOfCore)! },
      range,
    });
  }
  return out;
}

export const tableHeader = () => COLUMNS.map((c, i) => c.padEnd(WIDTHS[i])).join(' ');

export function tableRow(r: BenchResult): string {
  const line = cells(r).map((c, i) => c.padEnd(WIDTHS[i])).join(' ');
  return r.reason ? `${line}\n    ${r.reason}` : line;
}

export function markdownTable(results: BenchResult[]): string {
  const summary = results.some((r) => r.runs !== undefined && r.runs > 1);
  const head = ['target', 'held / N', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'dup', 'idle MiB', 'MiB with N', 'KiB per stream', 'server CPU s', 'server CPU µs per delivered event', 'client CPU %core (per process)', 'other processes %core'];
  // medians over several runs: the spread of the two numbers that vary most follows them
  if (summary) head.push('p99 ms (lowest-highest)', 'KiB per stream (lowest-highest)');
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  const span = (r: BenchResult, key: string, f: (v: number) => string) => (r.range?.[key] ? `${f(r.range[key][0])}-${f(r.range[key][1])}` : '-');
  for (const r of results) {
    const c = cells(r);
    c[0] = r.kind === 'hub' ? `**${r.id}** (hub)` : `\`${r.id}\``;
    if (r.status !== 'ok') c[1] = `${r.status}: ${r.reason ?? ''}`;
    if (summary) c.push(span(r, 'p99Ms', ms), span(r, 'perStreamKiB', (v) => v.toFixed(1)));
    lines.push(`| ${c.join(' | ')} |`);
  }
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Two bar charts side by side, both on log scales: p99 latency and KiB per stream, one bar per target. */
export function chartSvg(results: BenchResult[], title: string): string {
  const ok = results.filter((r) => r.status === 'ok');
  const rowH = 22;
  const top = 64;
  const labelW = 190;
  const panelW = 330;
  const gap = 70;
  const width = labelW + panelW * 2 + gap + 30;
  const height = top + Math.max(1, ok.length) * rowH + 40;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  const panel = (x0: number, heading: string, value: (r: BenchResult) => number | undefined, label: (v: number) => string) => {
    const values = ok.map(value).filter((v): v is number => v !== undefined && v > 0);
    const lo = Math.floor(Math.log10(Math.max(0.1, Math.min(1, ...values))));
    const hi = Math.ceil(Math.log10(Math.max(10, ...values) * 1.5));
    const x = (v: number) => x0 + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * panelW;
    out.push(`<text x="${x0}" y="44" font-weight="bold">${esc(heading)}</text>`);
    for (let d = lo; d <= hi; d++) {
      out.push(`<line x1="${x(10 ** d).toFixed(1)}" y1="${top - 6}" x2="${x(10 ** d).toFixed(1)}" y2="${height - 34}" stroke="#ddd"/>`);
      out.push(`<text x="${x(10 ** d).toFixed(1)}" y="${height - 20}" text-anchor="middle" fill="#555">${10 ** d >= 1 ? 10 ** d : (10 ** d).toFixed(1)}</text>`);
    }
    ok.forEach((r, i) => {
      const v = value(r);
      if (v === undefined || v <= 0) return;
      const y = top + i * rowH;
      const w = Math.max(1, x(v) - x0);
      out.push(`<rect x="${x0}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${r.kind === 'hub' ? '#d9822b' : '#2b6cb0'}"/>`);
      out.push(`<text x="${(x0 + w + 4).toFixed(1)}" y="${y + 15}" fill="#222">${label(v)}</text>`);
    });
  };
  ok.forEach((r, i) => out.push(`<text x="${labelW - 8}" y="${top + i * rowH + 14}" text-anchor="end">${esc(r.kind === 'hub' ? `${r.id} (hub)` : r.id)}</text>`));
  panel(labelW, 'p99 publish-to-receipt, ms (log scale)', (r) => r.latency?.p99Ms, ms);
  panel(labelW + panelW + gap, 'resident memory per held stream, KiB (log scale)', (r) => r.memory?.perStreamKiB, (v) => v.toFixed(1));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
