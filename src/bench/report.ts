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

export const tableHeader = () => COLUMNS.map((c, i) => c.padEnd(WIDTHS[i])).join(' ');

export function tableRow(r: BenchResult): string {
  const line = cells(r).map((c, i) => c.padEnd(WIDTHS[i])).join(' ');
  return r.reason ? `${line}\n    ${r.reason}` : line;
}

export function markdownTable(results: BenchResult[]): string {
  const head = ['target', 'held / N', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'dup', 'idle MiB', 'MiB with N', 'KiB per stream', 'server CPU s', 'server CPU µs per delivered event', 'client CPU %core (per process)', 'other processes %core'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of results) {
    const c = cells(r);
    c[0] = r.kind === 'hub' ? `**${r.id}** (hub)` : `\`${r.id}\``;
    if (r.status !== 'ok') c[1] = `${r.status}: ${r.reason ?? ''}`;
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
