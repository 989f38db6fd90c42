// Resident memory of a whole process group, from /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';

const PAGE = 4096;

export function groupRssBytes(pgid: number): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // fields after the command name, which is in parentheses and may hold spaces
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      total += Number(fields[21]) * PAGE;
    } catch {
      // the process went away while we looked
    }
  }
  return total;
}

export const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
