// The processes a started server is made of: its process group plus every descendant. A
// server may start daemons in sessions of their own (php-fpm calls setsid), which leave the
// group; they must still be measured and, when the harness gives up on a server, killed.
import { readdirSync, readFileSync } from 'node:fs';

const PAGE = 4096;

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  rssBytes: number;
}

function processes(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // fields after the command name, which is in parentheses and may hold spaces
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z') continue; // a zombie: dead, only waiting to be reaped
      out.push({ pid: Number(entry), ppid: Number(f[1]), pgid: Number(f[2]), rssBytes: Number(f[21]) * PAGE });
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

/** The process `pid`, the members of its process group, and all their descendants. */
export function processTree(pid: number): ProcessInfo[] {
  const all = processes();
  const mine = new Set(all.filter((p) => p.pgid === pid || p.pid === pid).map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (!mine.has(p.pid) && mine.has(p.ppid)) mine.add(p.pid), (grew = true);
  }
  return all.filter((p) => mine.has(p.pid));
}

/** SIGKILL a process tree (collected first: once a parent dies its children move to init). */
export function killTree(pid: number): void {
  for (const p of processTree(pid)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
