// Resident memory of a started server: its whole process tree (see process-tree.ts).
import { processTree } from '../process-tree.js';

export const groupRssBytes = (pid: number) => processTree(pid).reduce((total, p) => total + p.rssBytes, 0);

export const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
