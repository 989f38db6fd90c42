// B1, with `smoke --browser`: a real Chromium EventSource, on a page from another origin,
// receives the server's events (C3 and C8 as a browser sees them: a CORS failure or a body
// the browser will not parse shows up here, not in a Node client). Debian's chromium, driven
// by playwright-core; no browser is downloaded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { expect, skip, sleep } from './context.js';
import type { Check } from './checks/types.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  let playwright: typeof import('playwright-core');
  try {
    playwright = await import('playwright-core');
  } catch {
    throw new Error('smoke --browser needs the playwright-core package (npm install playwright-core)');
  }
  try {
    return await playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (error) {
    throw new Error(`smoke --browser could not start ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH): ${(error as Error).message.split('\n')[0]}`);
  }
}

const PUBLISHED = 'b1-browser';
const TEXT = 'line one\nline two — é 中文 🎉';

function page(streamUrl: string, names: string[]): string {
  const config = JSON.stringify({ streamUrl, names }).replace(/</g, '\\u003c');
  return `<!doctype html><meta charset="utf-8"><title>B1</title><script>
const { streamUrl, names } = ${config};
window.received = []; window.opened = false; window.errors = 0;
const source = new EventSource(streamUrl);
source.onopen = () => { window.opened = true; };
source.onerror = () => { window.errors++; };
for (const name of names) source.addEventListener(name, (e) => window.received.push({ id: e.lastEventId, event: e.type, data: e.data }));
</script>`;
}

export const browserCheck: Check = {
  id: 'B1',
  title: 'browser',
  variants: ['spec'],
  async run(ctx) {
    const browser = ctx.browser ?? skip('run with --browser');
    const { origins } = ctx.spec.cors;
    if (!origins.includes('*')) skip(`origins are a list (${origins.join(', ')}): a page from a test origin would be refused, as it should`);
    const query: Record<string, string> = ctx.streamToken ? { token: ctx.streamToken } : {};
    const html = page(ctx.url(ctx.spec.path, query), [...new Set([...ctx.spec.events.map((e) => e.name), PUBLISHED])]);
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const context = await browser.newContext();
    try {
      const tab = await context.newPage();
      await tab.goto(`${origin}/`);
      await tab.waitForFunction(() => (globalThis as unknown as { opened: boolean }).opened, undefined, { timeout: 5000 }).catch(async () => {
        expect(false, `Chromium's EventSource on ${origin} did not open the stream (errors: ${await tab.evaluate(() => (globalThis as unknown as { errors: number }).errors)}; CORS?)`);
      });
      const id = ctx.spec.publish.enabled ? await ctx.publish(PUBLISHED, TEXT) : undefined;
      const timed = ctx.spec.events.filter((e) => e.every > 0);
      const waitMs = Math.max(0, ...timed.map((e) => e.every)) + 3000;
      const deadline = Date.now() + Math.min(waitMs, 15_000);
      type Got = { id: string; event: string; data: string };
      let received: Got[] = [];
      const done = () => (id === undefined || received.some((e) => e.id === id)) && timed.every((t) => received.some((e) => e.event === t.name));
      while (Date.now() < deadline) {
        received = await tab.evaluate(() => (globalThis as unknown as { received: Got[] }).received);
        if (done()) break;
        await sleep(200);
      }
      if (id !== undefined) {
        const got = received.find((e) => e.id === id);
        expect(got, `the published event (id ${id}) never reached Chromium's EventSource on ${origin}`);
        expect(got.data === TEXT, `Chromium received ${JSON.stringify(got.data)}, expected ${JSON.stringify(TEXT)}`);
      }
      for (const t of timed) {
        const got = received.find((e) => e.event === t.name);
        expect(got, `no "${t.name}" event reached Chromium within ${Math.round(Math.min(waitMs, 15_000) / 1000)} s`);
        expect(typeof JSON.parse(got.data).timestamp === 'string', `"${t.name}" data in Chromium has no timestamp: ${got.data.slice(0, 80)}`);
      }
      const ids = received.map((e) => Number(e.id));
      expect(ids.every((n, i) => i === 0 || n > ids[i - 1]), `ids in Chromium not increasing: ${ids.join(',')}`);
      return `Chromium's EventSource on ${origin} got ${received.length} events (${[...new Set(received.map((e) => e.event))].join(', ')}), multi-line Unicode intact`;
    } finally {
      await context.close();
      server.close();
    }
  },
};
