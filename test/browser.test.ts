// The demo page in a real browser (Debian's chromium, driven by playwright-core; no browser is
// ever downloaded), against servers of three languages that `up` builds and starts: events
// arrive with increasing ids; a multi-line Unicode publish arrives whole; a connection cut by
// a proxy resumes with no gap and no duplicate; a restarted server's card comes back and says
// its ids started anew; Disconnect makes the server's client count fall.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer } from '../src/demo.js';
import { generate } from '../src/generate.js';
import { loadSpec } from '../src/spec.js';
import { loadTargets } from '../src/targets.js';
import { checkToolchain } from '../src/toolchain.js';
import { upSession, type UpSession, type UpTarget } from '../src/up.js';

const CHROMIUM = '/usr/bin/chromium';
/** three languages; a parse-only target shows why it cannot run */
const RUNNING = ['node-express', 'go-stdlib', 'python-fastapi'];
const PARSE_ONLY = loadTargets().find((t) => t.level === 'parses')?.id;
const SHOWN = [...RUNNING, ...(PARSE_ONLY ? [PARSE_ONLY] : [])];
const PROXIED = 'go-stdlib';
const RESTARTED = 'python-fastapi';
export const SCREENSHOT = join(import.meta.dirname, '..', 'test-results', 'demo.png');

async function missing(): Promise<string | undefined> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium)`;
  for (const target of loadTargets().filter((t) => RUNNING.includes(t.id))) {
    const absent = (await checkToolchain(target)).filter((s) => !s.found);
    if (absent.length) return `${target.id}: toolchain missing (${absent.map((s) => s.hint).join('; ')})`;
  }
  return undefined;
}
const why = await missing();
if (why && process.env.CI) throw new Error(`browser tests cannot run in CI: ${why}`);
if (why) console.warn(`browser tests skipped: ${why}`);

/** A TCP proxy whose open connections the test can cut while the server goes on. */
async function tcpProxy(port: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((done) => (server.close(() => done()), sockets.forEach((s) => s.destroy()))),
  };
}

const card = (page: Page, id: string) => page.locator(`article[data-target="${id}"]`);
const ids = async (page: Page, id: string) =>
  (await card(page, id).locator('[data-role=events] li').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-id'))))).reverse();

async function clients(url: string): Promise<number> {
  return (await (await fetch(`${url}/health`)).json()).clients;
}

describe.skipIf(why !== undefined)('the demo page in Chromium', () => {
  let session: UpSession;
  let browser: Browser;
  let page: Page;
  let demo: Awaited<ReturnType<typeof startDemoServer>>;
  let proxy: Awaited<ReturnType<typeof tcpProxy>>;
  let direct: UpTarget;

  beforeAll(async () => {
    const out = mkdtempSync(join(tmpdir(), 'sse-demo-'));
    await generate(await loadSpec('examples/sse.spec.yaml'), out, { targets: SHOWN });
    session = upSession(out, { portBase: 20000 + Math.floor(Math.random() * 20000) });
    await session.start();
    for (const id of RUNNING) expect(session.targets.find((t) => t.id === id)?.state, `${id}: ${session.targets.find((t) => t.id === id)?.reason}`).toBe('up');
    direct = session.targets.find((t) => t.id === PROXIED)!;
    proxy = await tcpProxy(direct.port);
    const viaProxy = () => session.targets.map((t) => (t.id === PROXIED ? { ...t, url: `http://127.0.0.1:${proxy.port}` } : t));
    demo = await startDemoServer({ targets: viaProxy });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(demo.url);
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await proxy?.close();
    await session?.stop();
  });

  it('shows a card per target in seed order, and why a parse-only one does not run', async () => {
    await page.waitForSelector(`article[data-target="${SHOWN.at(-1)}"]`);
    const order = await page.locator('article').evaluateAll((as) => as.map((a) => a.getAttribute('data-target')));
    expect(order).toEqual(loadTargets().map((t) => t.id).filter((id) => SHOWN.includes(id)));
    if (PARSE_ONLY) await expect.poll(() => card(page, PARSE_ONLY).textContent()).toMatch(/Not run here: level parses/);
  });

  it('connects every card and sees events arrive with increasing ids', async () => {
    await page.getByRole('button', { name: 'Connect all' }).click();
    for (const id of RUNNING) {
      await expect.poll(() => card(page, id).getAttribute('data-state'), { timeout: 10_000 }).toBe('open');
      await expect.poll(async () => (await ids(page, id)).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      const seen = await ids(page, id);
      expect(seen.every((n, i) => i === 0 || n === seen[i - 1] + 1), `${id}: ids ${seen}`).toBe(true);
    }
  });

  it('publishes multi-line Unicode text from a card and sees it arrive whole', async () => {
    const text = 'first line\nsecond — ünïcødé 中文 🎉\n  indented third';
    for (const id of RUNNING) {
      const c = card(page, id);
      await c.locator('[data-role=publish-event]').fill('note');
      await c.locator('[data-role=publish-data]').fill(text);
      await c.locator('[data-action=publish]').click();
      await expect.poll(() => c.locator('[data-role=publish-result]').textContent()).toMatch(/^202: published as id \d+/);
      await expect.poll(() => c.locator('li[data-event="note"] pre').first().textContent(), { timeout: 5000 }).toBe(text);
    }
  });

  it('resumes with no gap and no duplicate when the connection is cut while the server goes on', async () => {
    const c = card(page, PROXIED);
    const before = (await ids(page, PROXIED)).at(-1)!;
    proxy.cut();
    await expect.poll(() => c.getAttribute('data-state'), { timeout: 5000 }).toBe('reconnecting');
    // The server goes on: events are published while the card is away.
    for (let i = 0; i < 3; i++) {
      await fetch(`${direct.url}/publish`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${direct.publishToken}` },
        body: JSON.stringify({ event: 'message', data: `while away ${i}` }),
      });
    }
    await expect.poll(() => c.getAttribute('data-state'), { timeout: 15_000 }).toBe('open');
    await expect.poll(() => c.locator('[data-role=notes]').textContent(), { timeout: 10_000 }).toMatch(/resumed after id \d+: no gap, no duplicate/);
    await expect.poll(async () => (await ids(page, PROXIED)).at(-1)!, { timeout: 5000 }).toBeGreaterThan(before + 3);
    const gaps = c.locator('[data-role=gaps]');
    expect(await gaps.getAttribute('data-gaps')).toBe('0');
    expect(await gaps.getAttribute('data-duplicates')).toBe('0');
    expect(await c.locator('li[data-event="message"] pre').allTextContents()).toEqual(expect.arrayContaining(['while away 0', 'while away 1', 'while away 2']));
  });

  it('comes back when its server is stopped and started again, and says the ids started anew', async () => {
    const c = card(page, RESTARTED);
    await session.stopOne(RESTARTED);
    await expect.poll(() => c.getAttribute('data-state'), { timeout: 10_000 }).toMatch(/reconnecting|connecting/);
    await session.restartOne(RESTARTED);
    await expect.poll(() => c.getAttribute('data-state'), { timeout: 20_000 }).toBe('open');
    await expect.poll(() => c.locator('[data-role=notes]').textContent(), { timeout: 10_000 }).toMatch(/new server run: its ids start anew/);
  });

  it('takes a screenshot with several cards live', async () => {
    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });

  it('Disconnect makes the server count one client less', async () => {
    const before = await clients(direct.url);
    await card(page, PROXIED).locator('[data-action=disconnect]').click();
    await expect.poll(() => card(page, PROXIED).getAttribute('data-state')).toBe('closed');
    await expect.poll(() => clients(direct.url), { timeout: 6000 }).toBe(before - 1);
  });
});
