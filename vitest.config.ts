import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Files run one after another: the smoke tests build toolchains on a 2-core machine,
    // and the timing checks of the harness tests must not compete with those builds.
    fileParallelism: false,
    maxConcurrency: 4,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
