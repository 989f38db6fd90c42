// The CLI runs from dist/: build it once before any test file spawns it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup() {
  execFileSync('npx', ['tsc', '-p', '.'], { cwd: join(import.meta.dirname, '..'), stdio: 'inherit' });
}
