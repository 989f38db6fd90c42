// A templates root made for one test: copies of the fixture target `demo` under other ids,
// offsets and start commands (the real templates are not needed to test the CLI).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEMO = join(import.meta.dirname, 'fixtures', 'templates', 'demo');
export const BIN = join(import.meta.dirname, '..', 'bin', 'create-sse-server.js');

export interface FixtureTarget {
  id: string;
  portOffset: number;
  language?: string;
  framework?: string;
  install?: Array<{ run: string[] }>;
  level?: 'runs' | 'parses' | 'rendered';
  start?: string[];
  toolchain?: Array<{ check: string[]; hint: string; debian?: string[] }>;
  files?: Record<string, string>;
}

export function templatesRoot(targets: FixtureTarget[]): string {
  const root = mkdtempSync(join(tmpdir(), 'templates-'));
  for (const t of targets) {
    const dir = join(root, t.id);
    cpSync(DEMO, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(DEMO, 'target.json'), 'utf8'));
    Object.assign(manifest, { id: t.id, portOffset: t.portOffset }, t.level ? { level: t.level } : {}, t.start ? { start: t.start } : {}, t.toolchain ? { toolchain: t.toolchain } : {}, t.language ? { language: t.language } : {}, t.framework ? { framework: t.framework } : {}, t.install ? { install: t.install } : {});
    writeFileSync(join(dir, 'target.json'), JSON.stringify(manifest, null, 2));
    for (const [path, text] of Object.entries(t.files ?? {})) writeFileSync(join(dir, 'files', path), text);
  }
  return root;
}
