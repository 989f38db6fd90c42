// The two specs the harness renders each target from.
//
// - `spec`: the user's spec as it is (the example spec by default): headers, pacing of timed
//   events, ids, retry, CORS as configured, routing, PORT/HOST, shutdown.
// - `hardened`: the same spec with every optional feature switched on and made easy to
//   observe: a 1 s heartbeat and only publish-only events (so the stream is idle and
//   deterministic), a small history and client limit, a CORS allow-list with credentials,
//   and a required stream token.
//
// Tokens never reach a spec (contract v2): the `spec` variant starts the server with neither
// SSE_TOKEN nor SSE_PUBLISH_TOKEN (it must make a publish token and log it), the hardened
// one with both, full of characters that shells and string literals treat specially.
import { normalizeSpec, type Spec } from '../spec.js';

export type VariantName = 'spec' | 'hardened';

export const HARDENED = {
  heartbeat: 1,
  retry: 1500,
  history: 5,
  maxClients: 8,
  allowedOrigin: 'http://allowed.test',
  streamToken: `t0k"en'$x#{y}\\{{z}}%&+=`,
  publishToken: `p"ub'$lish#{x}\\`,
} as const;

export function hardenedSpec(spec: Spec): Spec {
  return normalizeSpec(
    {
      ...spec,
      heartbeat: HARDENED.heartbeat,
      retry: HARDENED.retry,
      history: HARDENED.history,
      maxClients: HARDENED.maxClients,
      cors: { origins: [HARDENED.allowedOrigin], credentials: true },
      auth: { required: true },
      publish: { enabled: true },
      // Publish-only, so the stream stays idle and every event is one the harness sent;
      // the data exercises every template's escaping.
      events: [
        ...spec.events.map((e) => ({ ...e, every: 0 })),
        {
          name: 'escaping-probe',
          every: 0,
          data: { text: `"quotes' \\back\\slash\n{{x}} */ </script> \${x} #{y} $z @w é 中文 🎉`, nested: { list: [1, 2.5, null, true] } },
        },
      ].filter((e, i, all) => all.findIndex((o) => o.name === e.name) === i),
    },
    'hardened variant',
  );
}

/** The environment a variant's server starts with (besides PORT and HOST). */
export function variantEnv(variant: VariantName): Record<string, string> {
  return variant === 'spec' ? {} : { SSE_TOKEN: HARDENED.streamToken, SSE_PUBLISH_TOKEN: HARDENED.publishToken };
}

export function variantSpec(spec: Spec, variant: VariantName): Spec {
  return variant === 'spec' ? spec : hardenedSpec(spec);
}
