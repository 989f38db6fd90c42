// The harness must be able to fail: a correct reference server passes every check, and each
// deliberately broken one fails exactly the check it breaks.
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchBrowser } from '../src/smoke/browser.js';
import { mergeChecks } from '../src/smoke/harness.js';
import { smokeServer } from '../src/smoke/smoke.js';
import { loadSpec } from '../src/spec.js';
import { fixtureStarter, type Break } from './fixtures/start-fixture.js';

const spec = await loadSpec('examples/sse.spec.yaml');

async function failing(mode: Break) {
  const checks = mergeChecks(await smokeServer(spec, fixtureStarter(mode)));
  const statuses = Object.values(checks).map((c) => c.status);
  expect(statuses.filter((s) => s === 'skip')).toEqual([]);
  expect(Object.keys(checks)).toHaveLength(16);
  return Object.entries(checks).filter(([, c]) => c.status === 'fail').map(([id, c]) => ({ id, detail: c.detail }));
}

describe.concurrent('harness against fixture servers', () => {
  it('passes a server that meets the contract', async () => {
    expect(await failing('none')).toEqual([]);
  }, 120_000);

  // [bug, the check that must fail, why, other checks the same bug may also trip]
  const broken: Array<[Break, string, RegExp, string[]?]> = [
    ['buffering', 'C2', /no first frame/],
    ['headers', 'C1', /Cache-Control: \(none\); X-Accel-Buffering: \(none\)/],
    ['ids', 'C4', /not strictly increasing/],
    ['last-event-id', 'C7', /replayed events after Last-Event-ID/],
    ['dead-clients', 'C10', /closed clients still counted/],
    ['event-newline', 'C9', /event name with LF: answered 202, expected 400/],
    ['open-publish', 'C9', /no Authorization: answered 202, expected 401/],
    ['any-content-type', 'C9', /Content-Type text\/plain: answered 202, expected 415/],
    ['buffered-body', 'C9', /a chunked body that never ends: no answer after \d+ KiB, expected 413 while the body was still arriving/],
    ['early-hang-up-ghost', 'C10', /clients that hung up right after their request are still counted/],
    // C7 and C9 close a stream and publish at once, and may hit the same bug first
    ['hang-up-throws', 'C10', /while 40 clients hung up mid-stream, POST \/publish answered 500/, ['C7', 'C9']],
    ['socket-kept', 'C13', /kept its connection ESTABLISHED/],
    ['html-errors', 'C14', /GET \/no-such-path: 404 came as text\/html/],
  ];
  for (const [mode, check, why, also = []] of broken) {
    it(`fails ${check} (and only ${[check, ...also].join(' or ')}) for a server with the ${mode} bug`, async () => {
      const failures = await failing(mode);
      expect(failures.map((f) => f.id).filter((id) => !also.includes(id))).toEqual([check]);
      expect(failures.find((f) => f.id === check)?.detail).toMatch(why);
    }, 300_000);
  }
});

// B1 (`smoke --browser`): a real Chromium EventSource on another origin.
const chromium = existsSync(CHROMIUM);
if (!chromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI runs the browser check (apt-get install chromium)`);
describe.skipIf(!chromium)('the browser check (B1) against fixture servers', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(() => browser?.close());

  it('passes a server that meets the contract', async () => {
    const [report] = await smokeServer(spec, fixtureStarter('none'), ['spec'], { browser, only: ['B1'] });
    expect(report.checks.B1?.status, report.checks.B1?.detail).toBe('pass');
  }, 60_000);

  it('fails a server that refuses CORS to a browser page on another origin', async () => {
    const [report] = await smokeServer(spec, fixtureStarter('browser-cors'), ['spec'], { browser, only: ['B1'] });
    expect(report.checks.B1?.status).toBe('fail');
    expect(report.checks.B1?.detail).toMatch(/did not open the stream|never reached Chromium/);
  }, 60_000);
});
