// Is a target's toolchain on this machine? Each manifest names commands that exit 0 when
// the tool is there (`go version`), the Debian packages that provide it, and a hint.
import { execa } from 'execa';
import type { Target, ToolchainCommand } from './targets.js';

export interface ToolchainStatus extends ToolchainCommand {
  found: boolean;
  /** first line the check printed, e.g. "go version go1.26.8 linux/amd64" */
  version?: string;
}

export async function checkToolchain(target: Target): Promise<ToolchainStatus[]> {
  return Promise.all(
    target.toolchain.map(async (tool) => {
      const result = await execa(tool.check[0], tool.check.slice(1), {
        cwd: target.dir,
        reject: false,
        all: true,
        timeout: 20_000,
        env: target.env,
      });
      const version = (result.all ?? '').toString().split('\n').find((l) => l.trim())?.trim();
      return { ...tool, found: result.exitCode === 0, version };
    }),
  );
}

export function missingSummary(statuses: ToolchainStatus[]): string {
  return statuses
    .filter((s) => !s.found)
    .map((s) => `${toolName(s)}: ${installHint(s)}`)
    .join(', ');
}

/** What a missing tool is called: the hint's first phrase ("Perl 5.36 with Mojolicious 9.31"). */
export function toolName(tool: ToolchainCommand): string {
  return tool.hint.split(/ \(|, |: /)[0].trim();
}

/** How to install a missing tool: Debian packages when the manifest names them, else the hint's link or text. */
export function installHint(tool: ToolchainCommand): string {
  if (tool.debian?.length) return `apt-get install ${tool.debian.join(' ')}`;
  const url = tool.hint.match(/https?:\/\/\S+/)?.[0];
  const apt = tool.hint.match(/apt(?:-get)? install [a-z0-9.+\- ]+/)?.[0];
  return apt ?? (url ? `see ${url.replace(/[),.;]+$/, '')}` : tool.hint);
}
