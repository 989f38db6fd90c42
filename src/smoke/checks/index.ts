// The contract's checks, in the order the harness runs them against one server.
import { headers } from './c01-headers.js';
import { noBuffering } from './c02-no-buffering.js';
import { events } from './c03-events.js';
import { ids } from './c04-ids.js';
import { heartbeat } from './c05-heartbeat.js';
import { retry } from './c06-retry.js';
import { resume } from './c07-resume.js';
import { cors } from './c08-cors.js';
import { publish } from './c09-publish.js';
import { disconnect } from './c10-disconnect.js';
import { auth } from './c11-auth.js';
import { limits } from './c12-limits.js';
import { slowClients } from './c13-slow-clients.js';
import { routing } from './c14-routing.js';
import { shutdown } from './c15-shutdown.js';
import { config } from './c16-config.js';
import type { Check } from './types.js';

export type { Check, CheckId } from './types.js';

/** Every check, by id. */
export const checks: Check[] = [headers, noBuffering, events, ids, heartbeat, retry, resume, cors, publish, disconnect, auth, limits, slowClients, routing, shutdown, config];

/**
 * Run order: the idle heartbeat first (nothing published yet), the limit while few streams
 * are open, the heavy slow-client load late, C1 (which also asks whether a stream lasted the
 * whole run) and C4 (ids the long stream saw) near the end, and shutdown last.
 */
export const runOrder: Check[] = [heartbeat, config, noBuffering, retry, limits, auth, events, resume, cors, publish, routing, disconnect, slowClients, ids, headers, shutdown];
