// A latency histogram that costs the same at 200 events as at 20 million: fixed buckets, 10 µs
// wide below 1 ms, then 1 % wide (so a percentile is within 1 % of the true value), with the
// exact minimum, maximum, count and sum kept beside them. Client processes fill their own and
// the bench merges them. The same bucketing is written out in worker-source.ts (plain JS).

export const LINEAR_US = 1000; // below this, 10 µs buckets
export const LINEAR_BUCKETS = 100;
export const LOG_BASE = 1.01;

export interface HistogramData {
  /** sparse [bucket index, count] pairs */
  buckets: Array<[number, number]>;
  count: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
}

export function bucketOf(ms: number): number {
  const us = Math.max(0, ms * 1000);
  if (us < LINEAR_US) return Math.floor(us / 10);
  return LINEAR_BUCKETS + Math.floor(Math.log(us / LINEAR_US) / Math.log(LOG_BASE));
}

/** The middle of a bucket, in ms. */
export function bucketValueMs(index: number): number {
  if (index < LINEAR_BUCKETS) return (index * 10 + 5) / 1000;
  const k = index - LINEAR_BUCKETS;
  const low = LINEAR_US * LOG_BASE ** k;
  return (low * (1 + LOG_BASE)) / 2 / 1000;
}

export function emptyHistogram(): HistogramData {
  return { buckets: [], count: 0, sumMs: 0, minMs: Infinity, maxMs: 0 };
}

export function addValue(h: HistogramData, ms: number): void {
  const index = bucketOf(ms);
  const at = h.buckets.findIndex(([i]) => i === index);
  if (at >= 0) h.buckets[at][1]++;
  else h.buckets.push([index, 1]);
  h.count++;
  h.sumMs += ms;
  h.minMs = Math.min(h.minMs, ms);
  h.maxMs = Math.max(h.maxMs, ms);
}

export function mergeHistograms(parts: HistogramData[]): HistogramData {
  const counts = new Map<number, number>();
  const out = emptyHistogram();
  for (const p of parts) {
    for (const [i, c] of p.buckets) counts.set(i, (counts.get(i) ?? 0) + c);
    out.count += p.count;
    out.sumMs += p.sumMs;
    if (p.count) {
      out.minMs = Math.min(out.minMs, p.minMs);
      out.maxMs = Math.max(out.maxMs, p.maxMs);
    }
  }
  out.buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  return out;
}

/** The q-quantile (0..1) in ms; undefined when empty. Clamped to the exact min and max. */
export function quantile(h: HistogramData, q: number): number | undefined {
  if (!h.count) return undefined;
  const sorted = [...h.buckets].sort((a, b) => a[0] - b[0]);
  const rank = Math.max(1, Math.ceil(q * h.count));
  let seen = 0;
  for (const [i, c] of sorted) {
    seen += c;
    if (seen >= rank) return Math.min(h.maxMs, Math.max(h.minMs, bucketValueMs(i)));
  }
  return h.maxMs;
}
