// Group R (docs/broker.md): for every target with a Redis broker, two instances on one real
// Redis (Debian's redis-server, started and stopped by the harness) serve one stream; and a
// Go and a Python instance of the same spec serve one stream together. A target without a
// broker is listed with its manifest's reason; a missing toolchain is SKIPPED here (never
// passed) and fails in CI.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatBrokerReport } from '../src/smoke/command.js';
import { brokerChecks, runBrokerChecks } from '../src/smoke/broker.js';
import { defaultWorkDir, smokeBrokerTargets, targetStarter } from '../src/smoke/smoke.js';
import { loadSpec } from '../src/spec.js';
import { findTarget, loadTargets, redisUnsupported } from '../src/targets.js';
import { checkToolchain, installHint, toolName } from '../src/toolchain.js';
import { fixtureStarter, type Break } from './fixtures/start-fixture.js';

const spec = await loadSpec('examples/sse.spec.yaml');
const CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const runs = loadTargets().filter((t) => t.level === 'runs');
const supported = runs.filter((t) => !redisUnsupported(t));
const unsupported = loadTargets().filter((t) => redisUnsupported(t));
console.log(`broker: ${supported.length} targets with broker: redis; without: ${unsupported.map((t) => `${t.id} (${redisUnsupported(t)})`).join('; ')}`);

const redisServer = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].some((p) => existsSync(p));
if (!redisServer && CI) throw new Error('redis-server is missing: CI runs the broker checks (npm run toolchains installs it)');
if (!redisServer) console.log('broker: every check SKIPPED: redis-server is missing (apt-get install redis-server)');

async function missingFor(id: string) {
  const target = findTarget(id, runs);
  const redis = target.broker?.redis;
  const toolchain = [...target.toolchain, ...(redis && 'client' in redis ? (redis.toolchain ?? []) : [])];
  return (await checkToolchain({ ...target, toolchain })).filter((s) => !s.found).map((s) => `${toolName(s)}: ${installHint(s)}`);
}

describe('broker: redis (group R)', () => {
  for (const target of supported) {
    it(`${target.id}: two instances on one Redis pass R1-R7`, async (ctx) => {
      const needs = await missingFor(target.id);
      if (!redisServer || (needs.length && !CI)) ctx.skip(`SKIPPED: ${redisServer ? needs.join('; ') : 'redis-server missing'}`);
      const [report] = await smokeBrokerTargets([target], spec, { requireToolchains: true, onProgress: (line) => process.stderr.write(`  ${line}\n`) });
      console.log(formatBrokerReport([report]));
      expect(report.result, formatBrokerReport([report])).toBe('pass');
      expect(Object.keys(report.checks)).toHaveLength(brokerChecks.length);
    }, 20 * 60_000);
  }

  // The same keys, entries and script in every language: one stream across two of them.
  const pair = ['go-stdlib', 'python-fastapi'];
  const pairReady = pair.every((id) => supported.some((t) => t.id === id));
  it.runIf(pairReady)(`a ${pair[0]} instance and a ${pair[1]} instance serve one stream (R1, R2, R4, R5)`, async (ctx) => {
    const needs = [...(await missingFor(pair[0])), ...(await missingFor(pair[1]))];
    if (!redisServer || (needs.length && !CI)) ctx.skip(`SKIPPED: ${redisServer ? needs.join('; ') : 'redis-server missing'}`);
    const work = join(defaultWorkDir(), 'broker-pair');
    const [a, b] = pair.map((id) => targetStarter(findTarget(id, runs), work, (line) => process.stderr.write(`  ${line}\n`)));
    const run = await runBrokerChecks(spec, [a, b], { only: ['R1', 'R2', 'R4', 'R5'] });
    const lines = Object.entries(run.checks).map(([id, o]) => `${id} ${o.status}: ${o.detail}`);
    console.log([`${pair.join(' + ')}:`, ...lines].join('\n  '));
    expect(run.error, run.error).toBeUndefined();
    for (const [id, o] of Object.entries(run.checks)) expect(o.status, `${id}: ${o.detail}`).toBe('pass');
    expect(Object.keys(run.checks)).toHaveLength(4);
  }, 20 * 60_000);

  it('generate refuses broker: redis for a target without it, naming the reason', async () => {
    const { renderTarget } = await import('../src/render.js');
    for (const target of unsupported) {
      expect(() => renderTarget({ ...spec, broker: 'redis' }, target)).toThrow(`broker: redis is not supported by ${target.id}: ${redisUnsupported(target)}`);
    }
  });
});

// The group can fail: the reference server (test/fixtures/sse-server.mjs) passes it, and each
// broken one fails exactly the check it breaks.
describe.runIf(redisServer).concurrent('group R against the reference server', () => {
  async function failures(mode: Break) {
    const run = await runBrokerChecks(spec, [fixtureStarter(mode)]);
    expect(run.error, run.error).toBeUndefined();
    expect(Object.keys(run.checks)).toHaveLength(brokerChecks.length);
    return Object.entries(run.checks).filter(([, o]) => o.status !== 'pass').map(([id, o]) => ({ id, detail: o.detail }));
  }

  it('passes a server that meets docs/broker.md', async () => {
    expect(await failures('none')).toEqual([]);
  }, 180_000);

  // [bug, the checks it fails (the first is the one written for it), why the first fails]
  const broken: Array<[Break, string[], RegExp]> = [
    // publishes that never reach the other instance are missing in the outage and TLS checks too
    ['broker-local-publish', ['R1', 'R5', 'R7'], /A1 received 10 of the 20 publishes/],
    ['broker-local-history', ['R2'], /the 3 events published while away/],
    ['broker-timer-per-instance', ['R3'], /two timers would give about 12/],
    // R5, R6 and R7 read the broker's state from /health
    ['broker-no-health', ['R4', 'R5', 'R6', 'R7'], /has no "broker"/],
    // a server that accepts while Redis is away does so at start too, and before TLS is through
    ['broker-accept-while-down', ['R5', 'R6', 'R7'], /answered 202 while Redis was stopped/],
    // R7's instance that does not trust the CA cannot reach Redis either
    ['broker-exit-without-redis', ['R6', 'R7'], /exited/],
    // it logs the URL when Redis goes away (R5)
    ['broker-logs-url', ['R4'], /instance A printed the Redis password/],
    ['broker-tls-unverified', ['R7'], /does not verify Redis's certificate/],
  ];
  for (const [mode, checks, why] of broken) {
    it(`fails ${checks.join(', ')} (and nothing else) for a server with the ${mode} bug`, async () => {
      const found = await failures(mode);
      expect(found.map((f) => f.id), JSON.stringify(found)).toEqual(checks);
      expect(found[0].detail).toMatch(why);
    }, 180_000);
  }
});
