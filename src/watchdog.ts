// The server's watchdog: `run` starts it with a pipe on its stdin and the server's process
// group id as its argument. When `run` dies without saying "done" (kill -9 leaves no chance
// to clean up), the pipe closes and the watchdog stops the server's whole process tree.
import { killTree } from './process-tree.js';

const pid = Number(process.argv[2]);
let done = false;
process.stdin.on('data', (chunk: Buffer) => {
  if (chunk.toString().includes('done')) done = true;
});
process.stdin.on('error', () => undefined);
process.stdin.on('close', async () => {
  if (!done && pid > 0) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      try {
        process.kill(-pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    killTree(pid);
  }
  process.exit(0);
});
