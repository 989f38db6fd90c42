// Resident memory of a started server: its process group plus every descendant (a server
// may start daemons in sessions of their own, as php-fpm does), from /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';

const PAGE = 4096;

interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  rss: number;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // fields after the command name, which is in parentheses and may hold spaces
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(entry), ppid: Number(f[1]), pgid: Number(f[2]), rss: Number(f[21]) * PAGE });
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

export function groupRssBytes(pid: number): number {
  const all = processes();
  const mine = new Set(all.filter((p) => p.pgid === pid || p.pid === pid).map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (!mine.has(p.pid) && mine.has(p.ppid)) mine.add(p.pid), (grew = true);
  }
  return all.filter((p) => mine.has(p.pid)).reduce((total, p) => total + p.rss, 0);
}

export const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
