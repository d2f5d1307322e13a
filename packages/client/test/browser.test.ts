/**
 * The browser bundle in a real browser (Chromium through playwright-core): the native WebSocket,
 * the token in the `bearer.<jwt>` subprotocol, subscribe, receive, recover after a restart.
 * Needs Debian's chromium (scripts/install-test-deps.sh): under CI=true its absence fails the run.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FakeServer } from './helpers/fake-server.js';
import { startGateway } from './helpers/gateway.js';
import { describeWithChromium } from '../../server/test/helpers/chromium.js';

describeWithChromium('browser bundle', (executablePath) => {
  let http: Server;
  let origin: string;
  let browser: Browser;
  let page: Page;
  let bundleSize = 0;

  beforeAll(async () => {
    // The same build as `npm run build:bundle`: if anything Node-only leaked in, this fails.
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
      bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2022', write: false,
    });
    const bundle = result.outputFiles[0]!.contents;
    bundleSize = bundle.length;
    http = createServer((req, res) => {
      if (req.url === '/signalbox-client.min.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' })
          .end('<!doctype html><script type="module">import * as sb from "/signalbox-client.min.js"; window.sb = sb; window.ready = true;</script>');
      }
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
    page = await browser.newPage();
    await page.goto(origin);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  });

  it('connects with the subprotocol token, receives publications, and recovers after a restart', async () => {
    expect(bundleSize).toBeGreaterThan(0);
    const server = await FakeServer.start();
    try {
      // The page runs the client; the test plays the gateway.
      const received = page.evaluate(async (url) => {
        type Sb = typeof import('../src/index.js');
        const { SignalboxClient } = (window as unknown as { sb: Sb }).sb;
        const client = new SignalboxClient({ url, token: 'header.payload.sig', reconnectInterval: 10, maxReconnectInterval: 20 });
        const offsets: number[] = [];
        const states: string[] = [];
        client.on('$state', (c) => { states.push(c.to); });
        await client.connect();
        const sub = client.subscribe('project:p1');
        await new Promise<void>((resolve) => {
          sub.on('publication', (m) => {
            offsets.push(m.offset);
            if (m.offset === 3) resolve();
          });
        });
        client.disconnect();
        return { offsets, states };
      }, server.url());

      const conn = await server.accept();
      expect(conn.request.headers['sec-websocket-protocol']?.split(/,\s*/)).toEqual(['signalbox.json', 'bearer.header.payload.sig']);
      conn.establish();
      const req = await conn.next('subscribe');
      conn.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e', offset: 0 } }] }, { replyTo: req.id });
      conn.publication('project:p1', 'e', 1, 'prp.created', {});
      await conn.close(1012, 'restart');

      const conn2 = await server.accept();
      conn2.establish();
      const req2 = await conn2.next('subscribe');
      expect(req2.payload).toEqual({ channels: [{ channel: 'project:p1', since: { epoch: 'e', offset: 1 } }] });
      conn2.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e', offset: 3 }, recovered: true, missed: 2 }] }, { replyTo: req2.id });
      for (const o of [1, 2, 3]) conn2.publication('project:p1', 'e', o, 'prp.created', {});

      const { offsets, states } = await received;
      expect(offsets).toEqual([1, 2, 3]);
      expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected', 'disconnected']);
    } finally {
      await server.close();
    }
  });

  it('works against the real gateway: subprotocol auth, publish with ack, receive', async () => {
    const gw = await startGateway();
    try {
      const result = await page.evaluate(async ({ url, token }) => {
        type Sb = typeof import('../src/index.js');
        const { SignalboxClient } = (window as unknown as { sb: Sb }).sb;
        const client = new SignalboxClient({ url, token });
        await client.connect();
        const sub = client.subscribe('agent:agent_001');
        await new Promise<void>((resolve) => sub.on('subscribed', () => resolve()));
        const received = new Promise<unknown>((resolve) => client.on('agent.progress', (m) => resolve(m.data)));
        const ack = await client.publish('agent:agent_001', { agentId: 'agent_001', prpId: 'prp_1', progress: 45 }, { type: 'agent.progress' });
        const data = await received;
        client.disconnect();
        return { offset: ack.offset, data };
      }, { url: gw.url(), token: await gw.token() });
      expect(result).toEqual({ offset: 1, data: { agentId: 'agent_001', prpId: 'prp_1', progress: 45 } });
    } finally {
      await gw.close();
    }
  });
});
