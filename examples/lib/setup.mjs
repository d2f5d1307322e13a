// Where the examples connect. By default each example embeds a gateway of its own (memory broker,
// 127.0.0.1, a free port, a random secret), so `node examples/<name>.mjs` runs with nothing else.
// With SIGNALBOX_URL it uses a running gateway instead:
//
//   SIGNALBOX_URL=http://127.0.0.1:8080   the gateway's HTTP origin
//   SIGNALBOX_JWT_SECRET=...              to mint one token per participant (HS256), or
//   SIGNALBOX_TOKEN=...                   one token for every participant (e.g. the dev token)
//   SIGNALBOX_API_KEY=...                 for the HTTP publish API (examples that publish from a backend)
import { randomBytes } from 'node:crypto';
import { DEFAULT_NAMESPACES, Gateway, loadConfig, mintToken } from '@signalbox/server';

/**
 * A participant's grants: what it may read (`channels`), publish to, produce (`handle`: RPC handler
 * and the channel's reserved event types) and call. A bare array is a read grant only.
 * @param {string[] | { channels?: string[], publish?: string[], handle?: string[], call?: string[] }} grants
 */
function grantsOf(grants) {
  return Array.isArray(grants) ? { channels: grants } : grants;
}

/**
 * @returns {Promise<{ wsUrl: (path?: string) => string, token: (sub: string, grants?: string[] | object) => Promise<string>,
 *   publish: (body: object) => Promise<object>, close: () => Promise<void>, embedded: boolean }>}
 */
export async function setup() {
  const external = process.env.SIGNALBOX_URL;
  if (external) {
    const origin = external.replace(/\/+$/, '');
    const secret = process.env.SIGNALBOX_JWT_SECRET;
    const fixed = process.env.SIGNALBOX_TOKEN;
    if (!secret && !fixed) throw new Error('SIGNALBOX_URL is set: set SIGNALBOX_JWT_SECRET or SIGNALBOX_TOKEN too');
    return {
      embedded: false,
      wsUrl: (path = '/v1/ws/prps') => origin.replace(/^http/, 'ws') + path,
      token: async (sub, grants = ['*']) => (secret ? mintToken(secret, { sub, ...grantsOf(grants), ttlSeconds: 3600 }) : fixed),
      publish: (body) => httpPublish(origin, process.env.SIGNALBOX_API_KEY, body),
      close: async () => {},
    };
  }
  const secret = randomBytes(32).toString('hex');
  const apiKey = `sk_example_${randomBytes(12).toString('hex')}`;
  const config = loadConfig({
    env: {},
    overrides: {
      host: '127.0.0.1', port: 0, jwtSecret: secret, apiKey, logLevel: 'warn',
      namespaces: DEFAULT_NAMESPACES,
    },
  });
  const gateway = new Gateway(config);
  const { port } = await gateway.start();
  const origin = `http://127.0.0.1:${port}`;
  return {
    embedded: true,
    wsUrl: (path = '/v1/ws/prps') => `ws://127.0.0.1:${port}${path}`,
    token: (sub, grants = ['*']) => mintToken(secret, { sub, ...grantsOf(grants), ttlSeconds: 3600 }),
    publish: (body) => httpPublish(origin, apiKey, body),
    close: () => gateway.drain(1000),
  };
}

async function httpPublish(origin, apiKey, body) {
  if (!apiKey) throw new Error('set SIGNALBOX_API_KEY to publish over HTTP');
  const res = await fetch(`${origin}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const reply = await res.json();
  if (!res.ok) throw new Error(`POST /v1/publish: ${res.status} ${JSON.stringify(reply)}`);
  return reply;
}

/** Runs an example's main(): exits 0 when it finishes, 1 on an error or after `limitMs`. */
export function run(main, limitMs = 20_000) {
  const timer = setTimeout(() => {
    console.error(`example did not finish within ${limitMs} ms`);
    process.exit(1);
  }, limitMs);
  main().then(
    () => {
      clearTimeout(timer);
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** Resolves with the first `type` event of an emitter (a client or a subscription) that `match` accepts. */
export function next(target, type, match = () => true) {
  return new Promise((resolve) => {
    const handler = (e) => {
      if (!match(e)) return;
      target.off(type, handler);
      resolve(e);
    };
    target.on(type, handler);
  });
}
