// The load client: one Node process holding a share of the streams, each parsed by
// eventsource-parser (a maintained SSE parser, not one of ours). The bench starts several of
// these (node:child_process fork of this text written to a temporary .mjs file), so no single
// event loop is the limit, and reads each one's own CPU time. It is plain JavaScript in a
// string so that it runs the same under vitest, from src/ and from dist/.
//
// Messages (IPC): in  start {…} · mark {name} · poll {expected} · finish {expected}
//                 out progress {…} · mark {name, cpuMs} · poll {missing, open} · result {…}
// It exits by itself when the bench goes away (IPC disconnect) or its lifetime runs out.

export const WORKER_SOURCE = String.raw`
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const args = JSON.parse(process.argv[2]);
const parserModule = await import(args.parserUrl);
const createParser = parserModule.createParser ?? parserModule.default.createParser;

// Same buckets as src/bench/histogram.ts.
const LINEAR_US = 1000, LINEAR_BUCKETS = 100, LOG = Math.log(1.01);
function histogram() { return { counts: new Map(), count: 0, sumMs: 0, minMs: Infinity, maxMs: 0 }; }
function add(h, ms) {
  const us = ms > 0 ? ms * 1000 : 0;
  const i = us < LINEAR_US ? Math.floor(us / 10) : LINEAR_BUCKETS + Math.floor(Math.log(us / LINEAR_US) / LOG);
  h.counts.set(i, (h.counts.get(i) || 0) + 1);
  h.count++; h.sumMs += ms;
  if (ms < h.minMs) h.minMs = ms;
  if (ms > h.maxMs) h.maxMs = ms;
}
function dump(h) { return { buckets: [...h.counts.entries()], count: h.count, sumMs: h.sumMs, minMs: h.count ? h.minMs : 0, maxMs: h.maxMs }; }
// CLOCK_MONOTONIC: one clock for every process on the machine, so a send time taken by the
// publisher and a receipt time taken here can be subtracted.
const now = () => Number(process.hrtime.bigint()) / 1e6;

let cfg;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
const streams = [];
const latency = histogram();
const connect = histogram();
const failed = {};
const dropped = {};
let pending = 0, inflight = 0, held = 0, closing = false, started = 0;
const count = (o, k) => { o[k] = (o[k] || 0) + 1; };

function kindOf(error) {
  const code = error && error.code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'EADDRNOTAVAIL') return 'no source port (EADDRNOTAVAIL)';
  if (code === 'EMFILE' || code === 'ENFILE') return 'open-files limit (' + code + ')';
  if (code === 'ETIMEDOUT') return 'timeout';
  return code ? String(code) : String((error && error.message) || error).slice(0, 60);
}

function next() {
  while (inflight < cfg.inflight && started < cfg.count) {
    const index = started++;
    inflight++;
    open(streams[index] = { index, status: 0, held: false, done: false, got: 0, dup: 0, gaps: 0, lastId: undefined, req: null, res: null, settled: false });
  }
}

function settle(s) {
  if (s.settled) return;
  s.settled = true;
  inflight--;
  pending--;
  next();
}

function fail(s, kind) {
  if (s.held) {
    if (!s.done && !closing) { s.done = true; held--; count(dropped, kind); }
    return;
  }
  if (s.done) return;
  s.done = true;
  count(failed, kind);
  settle(s);
}

function open(s) {
  const t0 = now();
  const global = cfg.offset + s.index;
  const source = cfg.sources[Math.min(cfg.sources.length - 1, Math.floor(global / cfg.perSource))];
  const req = http.request({ host: cfg.host, port: cfg.port, path: cfg.path, headers: cfg.headers, agent: false, localAddress: source }, (res) => {
    clearTimeout(timer);
    if (s.done) { res.destroy(); return; }
    s.res = res;
    s.status = res.statusCode;
    add(connect, now() - t0);
    if (res.statusCode !== 200) {
      res.resume();
      fail(s, 'HTTP ' + res.statusCode);
      req.destroy();
      return;
    }
    s.held = true;
    held++;
    settle(s);
    res.setEncoding('utf8');
    const parser = createParser({ onEvent: (e) => onEvent(s, e) });
    res.on('data', (text) => parser.feed(text));
    res.on('end', () => fail(s, 'ended by the server'));
    res.on('close', () => fail(s, 'closed'));
    res.on('error', (error) => fail(s, kindOf(error)));
  });
  const timer = setTimeout(() => { fail(s, 'no answer within ' + cfg.connectTimeoutMs / 1000 + ' s'); req.destroy(); }, cfg.connectTimeoutMs);
  req.on('error', (error) => { clearTimeout(timer); fail(s, kindOf(error)); });
  req.end();
  s.req = req;
}

function onEvent(s, e) {
  let id, payload;
  if (cfg.mode === 'centrifugo') {
    // uni_sse: every message is a JSON push; a publication is {"channel", "pub": {"data", "offset"}}
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    if (!m || !m.pub) return;
    id = m.pub.offset;
    payload = m.pub.data;
  } else {
    if (e.id === undefined) return;
    id = Number(e.id);
  }
  if (s.lastId !== undefined) {
    if (!(id > s.lastId)) { s.dup++; return; }
    if (id > s.lastId + 1) s.gaps += id - s.lastId - 1;
  }
  s.lastId = id;
  if (cfg.mode !== 'centrifugo') {
    if (e.event !== cfg.event) return;
    try { payload = JSON.parse(e.data); } catch { return; }
  }
  if (!payload || payload.bench !== cfg.tag || typeof payload.t !== 'number') return;
  s.got++;
  add(latency, now() - payload.t);
}

function cpuMs() { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }

function missing(expected) {
  let sum = 0, open = 0;
  for (const s of streams) if (s && s.held && !s.done) { open++; if (s.got < expected) sum += expected - s.got; }
  return { missing: sum, open };
}

function finish(expected) {
  closing = true;
  let lost = 0, extra = 0, lossyStreams = 0, dup = 0, gaps = 0, open = 0;
  for (const s of streams) {
    if (!s) continue;
    dup += s.dup;
    if (s.held && !s.done) {
      open++;
      gaps += s.gaps;
      if (s.got < expected) { lost += expected - s.got; lossyStreams++; }
      else extra += s.got - expected;
    }
  }
  const result = { type: 'result', open, failed, dropped, lost, extra, lossyStreams, dup, gaps, latency: dump(latency), connect: dump(connect), cpuMs: cpuMs(), rssBytes: process.memoryUsage().rss, loopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 } };
  for (const s of streams) if (s) { try { s.req && s.req.destroy(); s.res && s.res.destroy(); } catch {} }
  process.send(result, () => setTimeout(() => process.exit(0), 50));
}

process.on('message', (m) => {
  if (m.type === 'start') {
    cfg = m;
    pending = cfg.count;
    setTimeout(() => process.exit(3), cfg.lifetimeMs).unref();
    const progress = setInterval(() => process.send({ type: 'progress', held, pending, failed: Object.values(failed).reduce((a, b) => a + b, 0), dropped: Object.values(dropped).reduce((a, b) => a + b, 0) }), 500);
    progress.unref();
    next();
  } else if (m.type === 'cutoff') {
    // the connect phase is over: streams not open by now would miss events; count them as failed
    const never = cfg.count - started;
    started = cfg.count;
    if (never > 0) { failed['not started before publishing began'] = never; pending -= never; }
    for (const s of streams) if (s && !s.settled && !s.done) { fail(s, 'not open when publishing began'); try { s.req.destroy(); } catch {} }
    process.send({ type: 'cutoff' });
  } else if (m.type === 'mark') {
    // the event loop's own delay, from the start of publishing: how late this client itself
    // was to read what had arrived
    if (m.name === 'publish') { loopDelay.reset(); loopDelay.enable(); }
    process.send({ type: 'mark', name: m.name, cpuMs: cpuMs() });
  } else if (m.type === 'poll') {
    process.send({ type: 'poll', ...missing(m.expected) });
  } else if (m.type === 'finish') {
    finish(m.expected);
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
`;
