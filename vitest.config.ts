import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // builds dist/ once: the CLI tests run bin/create-sse-server.js
    globalSetup: ['test/global-setup.ts'],
    // Files run one after another: the smoke tests build toolchains on a 2-core machine,
    // and the timing checks of the harness tests must not compete with those builds.
    // (`npm run test:unit` has no toolchain builds and no timing checks: its files run in parallel)
    fileParallelism: process.env.npm_lifecycle_event === 'test:unit',
    maxConcurrency: 4,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
