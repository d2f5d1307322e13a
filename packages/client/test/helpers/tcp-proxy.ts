/**
 * A TCP proxy in front of the gateway that a test can break: `drop()` resets every connection
 * (the client sees 1006, as on a network failure); `blackhole()` keeps them open but silently
 * discards everything (a half-open connection: no FIN, no RST, nothing).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => proxy.#accept(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  #accept(client: Socket, targetPort: number): void {
    this.accepted++;
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, dead: false };
    this.#pairs.add(pair);
    client.on('data', (d) => { if (!pair.dead) upstream.write(d); });
    upstream.on('data', (d) => { if (!pair.dead) client.write(d); });
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  }

  /** Resets every current connection. */
  drop(): void {
    for (const p of this.#pairs) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
  }

  /** Current connections stop carrying data, in both directions, and stay open. */
  blackhole(): void {
    for (const p of this.#pairs) p.dead = true;
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
