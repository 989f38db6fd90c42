// What `create-sse-server demo` tells the page about each target (GET /api/targets).
export interface TargetInfo {
  id: string;
  language: string;
  framework: string;
  level: 'runs' | 'parses' | 'rendered';
  port: number;
  url: string;
  path: string;
  events: string[];
  state: 'waiting' | 'building' | 'starting' | 'up' | 'failed' | 'exited' | 'stopped' | 'not run';
  reason?: string;
  publishToken?: string;
  /** when this run of the server came up: a new value means a new run, whose ids start anew */
  since?: number;
  lastHeartbeatAt?: number;
}

export interface TargetsAnswer {
  now: number;
  targets: TargetInfo[];
}

export async function fetchTargets(): Promise<TargetsAnswer> {
  const res = await fetch('/api/targets', { cache: 'no-store' });
  if (!res.ok) throw new Error(`GET /api/targets: ${res.status}`);
  return res.json();
}
