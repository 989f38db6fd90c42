// What the kernel says a process tree uses: resident memory and CPU time (utime + stime) of
// every process in the server's tree (process-tree.ts finds the tree: its group and all
// descendants, also daemons that left the group), read from /proc.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { processTree } from '../process-tree.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux (getconf CLK_TCK); the same on every Linux ABI

export interface TreeSample {
  rssBytes: number;
  /** CPU seconds (user + system) of the processes alive now, since each started */
  cpuSeconds: number;
  processes: number;
}

/** utime + stime of one process, in seconds (0 when it is gone). */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export function sampleTree(pid: number): TreeSample {
  const tree = processTree(pid);
  return {
    rssBytes: tree.reduce((sum, p) => sum + p.rssBytes, 0),
    cpuSeconds: tree.reduce((sum, p) => sum + processCpuSeconds(p.pid), 0),
    processes: tree.length,
  };
}

/** The median of a few RSS samples `gapMs` apart: one sample can land on a GC or a burst. */
export async function medianRss(pid: number, samples = 5, gapMs = 200): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(sampleTree(pid).rssBytes);
    if (i < samples - 1) await new Promise((r) => setTimeout(r, gapMs));
  }
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)];
}

/** The open-files limit (soft, hard) of a process. */
export function nofileLimit(pid: number | 'self' = 'self'): { soft: number; hard: number } | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line!.replace('Max open files', '').trim().split(/\s+/);
    const n = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
    return { soft: n(soft), hard: n(hard) };
  } catch {
    return undefined;
  }
}

/**
 * Raise this process's open-files limit (soft and hard) with util-linux `prlimit`, so that
 * it and every server and client process it starts afterwards (they inherit it) can hold the
 * streams. Raising the hard limit needs root or CAP_SYS_RESOURCE; without it the soft limit
 * goes up to the hard one. Returns the limit in force afterwards and what went wrong, if anything.
 */
export function raiseNofile(wanted: number): { soft: number; hard: number; note?: string } {
  const before = nofileLimit() ?? { soft: 0, hard: 0 };
  if (before.soft >= wanted) return before;
  let note: string | undefined;
  for (const value of [`${wanted}:${Math.max(wanted, before.hard)}`, `${Math.min(wanted, before.hard)}:${before.hard}`]) {
    try {
      execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${value}`], { stdio: 'pipe' });
      break;
    } catch (error) {
      note = `prlimit --nofile=${value}: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  const after = nofileLimit() ?? before;
  if (after.soft >= wanted) return after;
  return { ...after, note: `raised to ${after.soft}:${after.hard}, not ${wanted} (${note ?? 'prlimit refused'}; raising the hard limit needs CAP_SYS_RESOURCE)` };
}

/** Busy and total CPU seconds of the whole machine so far (all cores, from /proc/stat). */
export function machineCpu(): { busyS: number; totalS: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busyS: (total - idle) / TICKS_PER_SECOND, totalS: total / TICKS_PER_SECOND };
  } catch {
    return { busyS: 0, totalS: 0 };
  }
}
