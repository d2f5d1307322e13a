/**
 * The real Signalbox gateway (`@signalbox/server`), embedded on 127.0.0.1 port 0 with the memory
 * broker, for the client's end-to-end tests. The broker can be shared between gateway instances to
 * play a node restart: history survives, connections do not.
 */
import { Gateway, MemoryBroker, loadConfig, mintToken, type Broker, type GatewayConfig } from '@signalbox/server';

export const SECRET = 'client-test-secret-0123456789abcdef';
export const API_KEY = 'client-test-api-key-0123456789';

export interface RunningGateway {
  gateway: Gateway;
  port: number;
  url(path?: string): string;
  token(opts?: { sub?: string; channels?: string[]; ttlSeconds?: number }): Promise<string>;
  /** POST /v1/publish with the API key. */
  publish(channel: string, type: string, data: unknown, id?: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A memory broker whose close() is a no-op, so a second gateway can take it over after a drain. */
export function survivingBroker(): Broker {
  const broker = new MemoryBroker();
  return new Proxy(broker, {
    get(target, prop) {
      if (prop === 'close') return async () => {};
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export async function startGateway(opts: { port?: number; broker?: Broker; overrides?: Partial<GatewayConfig> } = {}): Promise<RunningGateway> {
  const config = loadConfig({
    env: {},
    overrides: { host: '127.0.0.1', port: opts.port ?? 0, jwtSecret: SECRET, apiKey: API_KEY, logLevel: 'silent', maxConnectionsPerIp: 0, ...opts.overrides },
  });
  const gateway = new Gateway(config, opts.broker ? { broker: opts.broker } : {});
  const { port } = await gateway.start();
  const http = `http://127.0.0.1:${port}`;
  return {
    gateway,
    port,
    url: (path = '/v1/ws/prps') => `ws://127.0.0.1:${port}${path}`,
    token: (o = {}) => mintToken(SECRET, { sub: o.sub ?? 'usr_1', channels: o.channels ?? ['*'], publish: o.channels ?? ['*'], handle: o.channels ?? ['*'], call: o.channels ?? ['*'], ttlSeconds: o.ttlSeconds ?? 3600 }),
    async publish(channel, type, data, id) {
      const res = await fetch(`${http}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ channel, type, data, ...(id ? { id } : {}) }),
      });
      const body = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`publish failed: ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    close: () => gateway.drain(1000),
  };
}
