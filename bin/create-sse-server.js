#!/usr/bin/env node
// Entry: runs dist/cli.js (built by `npm install` in a clone, shipped in the package).
let cli;
try {
  cli = await import('../dist/cli.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    const root = new URL('..', import.meta.url).pathname;
    console.error(`error: create-sse-server is not built yet: run \`npm install\` in ${root} first`);
    process.exit(1);
  }
  throw error;
}
await cli.main();
