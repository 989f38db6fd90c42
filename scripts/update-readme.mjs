#!/usr/bin/env node
// Rewrites the target table in README.md from the manifests (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { targetTable } from '../dist/targets.js';

const START = '<!-- targets:start (npm run readme) -->';
const END = '<!-- targets:end -->';
const readme = readFileSync('README.md', 'utf8');
const [before, rest] = readme.split(START);
const [, after] = rest.split(END);
writeFileSync('README.md', `${before}${START}\n${targetTable()}\n${END}${after}`);
