/**
 * Issue 13, defect 6 (second half): one IP's sockets are capped from TCP accept, not only once an
 * upgrade request is complete. Before, sockets trickling partial upgrade requests were never
 * counted, so one IP held many times SIGNALBOX_MAX_CONNECTIONS_PER_IP sockets.
 *
 * The rule (docs/configuration.md): per IP, at most SIGNALBOX_MAX_CONNECTIONS_PER_IP WebSocket
 * connections (429 at the upgrade, as before) and at most as many sockets that have not finished
 * a request head yet (a request still arriving, partial or trickled); a socket beyond that is
 * answered 429 and closed at accept. A socket that completed an HTTP request (an API client's
 * keep-alive pool) is not counted; behind a trusted proxy the pre-request count is off.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { metricValue, scrapeMetrics } from './helpers/core-util.js';
import { connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { until } from './helpers/wait.js';

vi.setConfig({ hookTimeout: 60_000, testTimeout: 30_000 });

/** A raw TCP client: what it received, and whether the server closed it. */
interface RawSocket {
  socket: Socket;
  received(): string;
  closed: boolean;
  /** Writes one header byte every 100 ms from now on (a request that never completes). */
  trickle(): void;
  /** Stops the trickle and destroys the socket. */
  end(): void;
}

async function rawSocket(port: number): Promise<RawSocket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let data = '';
  let timer: NodeJS.Timeout | undefined;
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  const raw: RawSocket = {
    socket,
    closed: false,
    received: () => data,
    trickle() {
      timer = setInterval(() => socket.writable && socket.write('X'), 100);
    },
    end() {
      clearInterval(timer);
      socket.destroy();
    },
  };
  socket.once('close', () => {
    raw.closed = true;
    clearInterval(timer);
  });
  return raw;
}

/** Opens `n` sockets, each sending a partial upgrade request and then trickling header bytes, never finishing it. */
async function trickling(port: number, n: number): Promise<RawSocket[]> {
  const out: RawSocket[] = [];
  for (let i = 0; i < n; i++) {
    const raw = await rawSocket(port);
    raw.socket.write('GET /v1/ws/prps HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: ');
    raw.trickle();
    out.push(raw);
  }
  return out;
}

/** Finishes a trickled request into a complete upgrade request; resolves with the status line of the answer. */
async function finishUpgrade(raw: RawSocket, token: string, extraHeaders = ''): Promise<string> {
  raw.socket.write(
    `\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${token}\r\n${extraHeaders}\r\n`,
  );
  await until(() => raw.received().includes('\r\n') || raw.closed, { label: 'an answer to the finished upgrade request' });
  return raw.received().split('\r\n')[0]!;
}

/** One keep-alive HTTP request on a raw socket; resolves with the status line once the whole response arrived. */
async function keepAliveGet(raw: RawSocket, path: string): Promise<string> {
  const before = raw.received().length;
  raw.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`);
  await until(
    () => {
      const got = raw.received().slice(before);
      const m = /content-length: (\d+)\r\n/i.exec(got);
      const head = got.indexOf('\r\n\r\n');
      return raw.closed || (m !== null && head >= 0 && got.length >= head + 4 + Number(m[1]));
    },
    { label: `the response to GET ${path}` },
  );
  return raw.received().slice(before).split('\r\n')[0]!;
}

describe('per-IP socket cap before the upgrade (issue 13, defect 6)', () => {
  let gw: TestGateway | null = null;
  const sockets: RawSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.end();
    await gw?.close();
    gw = null;
  });

  it('sockets trickling partial upgrade requests: beyond the cap each is answered 429 and closed at once', async () => {
    // A long handshake timeout: the cap, not the timeout, must be what closes them.
    gw = await startGateway({ maxConnectionsPerIp: 3, handshakeTimeoutMs: 60_000 });
    sockets.push(...(await trickling(gw.port, 10)));
    await until(() => sockets.filter((s) => s.closed).length >= 7, {
      label: '7 of 10 trickling sockets to be refused',
      detail: () => `closed: ${sockets.filter((s) => s.closed).length}`,
    });
    const refused = sockets.filter((s) => s.closed);
    const held = sockets.filter((s) => !s.closed);
    expect(refused.length).toBe(7);
    for (const s of refused) {
      expect(s.received()).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
      expect(s.received()).toContain('"code":"RATE_LIMITED"');
      expect(s.received()).toContain('SIGNALBOX_MAX_CONNECTIONS_PER_IP');
    }
    // The three held sockets were never cut: each can still finish its upgrade.
    const token = await gw.token();
    for (const s of held) expect(await finishUpgrade(s, token)).toBe('HTTP/1.1 101 Switching Protocols');
    // Three WebSockets now: the WebSocket cap answers the next upgrade, as before.
    const more = await trickling(gw.port, 1);
    sockets.push(...more);
    expect(await finishUpgrade(more[0]!, token)).toMatch(/^HTTP\/1\.1 429 /);
    expect(more[0]!.received()).toContain('Too many connections from this address');
    const metrics = await scrapeMetrics(gw);
    expect(metricValue(metrics, 'signalbox_upgrades_rejected_total', { reason: 'ip_sockets' })).toBe(7);
    expect(metricValue(metrics, 'signalbox_upgrades_rejected_total', { reason: 'ip_limit' })).toBe(1);
  });

  it('a refused socket frees nothing; a closed held one frees its slot', async () => {
    gw = await startGateway({ maxConnectionsPerIp: 2, handshakeTimeoutMs: 60_000 });
    const first = await trickling(gw.port, 2);
    sockets.push(...first);
    const third = await trickling(gw.port, 1);
    sockets.push(...third);
    await until(() => third[0]!.closed, { label: 'the third socket to be refused' });
    // Still 2 held: another is refused too.
    const fourth = await trickling(gw.port, 1);
    sockets.push(...fourth);
    await until(() => fourth[0]!.closed, { label: 'the fourth socket to be refused' });
    first[0]!.end();
    // Once the server saw the close, a new socket is admitted and upgrades.
    const token = await gw.token();
    await until(
      async () => {
        const [s] = await trickling(gw!.port, 1);
        sockets.push(s!);
        return (await finishUpgrade(s!, token)) === 'HTTP/1.1 101 Switching Protocols';
      },
      { label: 'a slot to come free after a held socket closed' },
    );
  });

  it('HTTP API keep-alive sockets do not count: a backend holding more than the cap is served, and WebSockets still connect', async () => {
    gw = await startGateway({ maxConnectionsPerIp: 2, handshakeTimeoutMs: 60_000 });
    const pool: RawSocket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await rawSocket(gw.port);
      sockets.push(s);
      pool.push(s);
      expect(await keepAliveGet(s, '/healthz')).toBe('HTTP/1.1 200 OK');
    }
    // Every pooled socket stays usable.
    for (const s of pool) expect(await keepAliveGet(s, '/healthz')).toBe('HTTP/1.1 200 OK');
    expect(pool.every((s) => !s.closed)).toBe(true);
    const a = await connectPrp(gw);
    const b = await connectPrp(gw);
    await a.close();
    await b.close();
  });

  it('behind a trusted proxy the socket address is the proxy\u2019s: the pre-request count is off', async () => {
    gw = await startGateway({ maxConnectionsPerIp: 1, trustProxy: true, handshakeTimeoutMs: 60_000 });
    const held = await trickling(gw.port, 3);
    sockets.push(...held);
    const token = await gw.token();
    // All three were admitted (none refused), and each is its own client by X-Forwarded-For.
    for (const [i, s] of held.entries()) {
      expect(await finishUpgrade(s, token, `X-Forwarded-For: 203.0.113.${i + 1}\r\n`)).toBe('HTTP/1.1 101 Switching Protocols');
    }
  });

  it('a socket that connects and sends nothing holds its slot until the handshake timeout, then frees it', async () => {
    gw = await startGateway({ maxConnectionsPerIp: 1, handshakeTimeoutMs: 1000 });
    const started = Date.now();
    const silent = await rawSocket(gw.port);
    sockets.push(silent);
    const [second] = await trickling(gw.port, 1);
    sockets.push(second!);
    await until(() => second!.closed, { label: 'the second socket to be refused' });
    expect(second!.received()).toMatch(/^HTTP\/1\.1 429 /);
    // Node's headers timeout (the handshake timeout) covers a socket before its first byte too.
    await until(() => silent.closed, { label: 'the silent socket to be closed', timeoutMs: 8000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const token = await gw.token();
    await until(
      async () => {
        const [s] = await trickling(gw!.port, 1);
        sockets.push(s!);
        return (await finishUpgrade(s!, token)) === 'HTTP/1.1 101 Switching Protocols';
      },
      { label: 'the slot of the timed-out socket to come free' },
    );
  });

  it('0 (unlimited) caps nothing', async () => {
    gw = await startGateway({ maxConnectionsPerIp: 0, handshakeTimeoutMs: 60_000 });
    const held = await trickling(gw.port, 12);
    sockets.push(...held);
    const token = await gw.token();
    for (const s of held) expect(await finishUpgrade(s, token)).toBe('HTTP/1.1 101 Switching Protocols');
  });
});
