#!/usr/bin/env node
// The README's picture of the demo page: `demo` over generated/ (every target that runs here
// comes up), Connect all, one publish, a full-page screenshot in Debian's chromium, then Ctrl-C,
// which must stop every server.
//   node scripts/demo-screenshot.mjs [out.png] [--port-base N]
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const out = process.argv[2] ?? 'docs/demo.png';
const portBase = process.argv.includes('--port-base') ? process.argv[process.argv.indexOf('--port-base') + 1] : '23000';
const demo = spawn('node', ['bin/create-sse-server.js', 'demo', 'generated', '--port', '5199', '--port-base', portBase], { stdio: ['ignore', 'pipe', 'inherit'] });
let log = '';
demo.stdout.on('data', (c) => {
  log += c;
  process.stdout.write(c);
});
const started = Date.now();
while (!/of \d+ up;|open http/.test(log)) {
  if (Date.now() - started > 20 * 60_000) throw new Error('the servers did not come up within 20 minutes');
  await new Promise((r) => setTimeout(r, 500));
}
console.log(`all built and started in ${Math.round((Date.now() - started) / 1000)} s`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
await page.goto('http://127.0.0.1:5199/');
await page.getByRole('button', { name: 'Connect all' }).click();
await page.waitForTimeout(4000);
const go = page.locator('article[data-target="go-stdlib"]');
await go.locator('[data-role=publish-event]').fill('notification');
await go.locator('[data-role=publish-data]').fill('{"level": "info", "text": "Deploy finished — 🎉"}');
await go.locator('input[type=checkbox]').check();
await go.locator('[data-action=publish]').click();
await page.waitForTimeout(4000);
await page.screenshot({ path: out, fullPage: true });
const states = await page.locator('article').evaluateAll((as) => as.map((a) => `${a.getAttribute('data-target')}:${a.getAttribute('data-state')}`));
console.log(states.join(' '));
await browser.close();
demo.kill('SIGINT');
await new Promise((r) => demo.on('exit', r));
console.log(`screenshot: ${out}`);
