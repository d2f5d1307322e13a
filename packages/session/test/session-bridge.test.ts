/**
 * The CDP bridge on a real headless Chromium (its own process, remote debugging on a free port):
 * while a viewer is on the session it streams screencast frames that are real JPEGs (SOI/EOI
 * markers, the size in their SOF header) as binary publications, no faster than `maxFps`; a remote
 * click (by selector and at a point) changes the page's state, read back with `dom.query`; the
 * page's console and exceptions arrive as the in-page source's event types; a navigation is
 * reported, and the bridge keeps answering and streaming after the page navigated and after the
 * gateway restarted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SignalboxClient } from '@signalbox/client/node';
import { msgpack } from '@signalbox/client/msgpack';
import { startGateway, type TestGateway } from '../../server/test/helpers/gateway.js';
import { describeWithChromium } from '../../server/test/helpers/chromium.js';
import { until } from '../../server/test/helpers/wait.js';
import { attachBridge, BinaryPublishWebSocket, frameBytes, jpegSize, type Bridge } from '../src/node.js';
import { startPageServer, buildBundle, type PageServer } from './helpers/page-server.js';
import { launchCdpBrowser, type CdpBrowser } from './helpers/cdp-browser.js';
import { Viewer, type Pub } from './helpers/viewer.js';

/** The root package's `signalbox` (built by `npm run build`, which `npm test` runs first). */
const CLI = fileURLToPath(new URL('../../server/dist/cli.js', import.meta.url));

describeWithChromium('CDP bridge on a real headless Chromium', (executablePath) => {
  let gw: TestGateway;
  let site: PageServer;
  let chrome: CdpBrowser;
  let bridge: Bridge;
  let bridgeClient: SignalboxClient;
  const session = `b_${randomBytes(6).toString('hex')}`;
  const channel = `session:${session}`;
  const viewers: Viewer[] = [];

  async function openViewer(sub: string, binary: boolean): Promise<Viewer> {
    const token = await gw.token({ sub, channels: [channel], publish: [], handle: [], call: [channel] });
    const v = await new Viewer(channel, { url: `${gw.ws}/v1/ws/prps`, token, ...(binary ? { format: msgpack } : {}) }).start();
    viewers.push(v);
    return v;
  }

  /** A frame published after `after` (a publication), checked to be a whole JPEG of the size it claims. */
  async function frameAfter(v: Viewer, after: number): Promise<{ pub: Pub; bytes: Uint8Array }> {
    const pub = await v.next((p) => p.type === 'page.frame' && (p.data.seq as number) > after, 'a page.frame', 15_000);
    const bytes = frameBytes(pub.data.jpeg);
    expect(bytes[0]).toBe(0xff);
    expect(bytes[1]).toBe(0xd8);
    expect(bytes[bytes.length - 2]).toBe(0xff);
    expect(bytes[bytes.length - 1]).toBe(0xd9);
    const size = jpegSize(bytes);
    expect(size).toEqual({ width: pub.data.width, height: pub.data.height });
    expect(size!.width).toBeGreaterThan(100);
    expect(size!.height).toBeGreaterThan(100);
    return { pub, bytes };
  }

  beforeAll(async () => {
    gw = await startGateway({ maxMessageBytes: 1024 * 1024 });
    site = await startPageServer(await buildBundle());
    chrome = await launchCdpBrowser(executablePath, `${site.origin}/bridge`);
    const token = await gw.token({ sub: 'bridge_1', channels: [channel], publish: [], handle: [channel], call: [] });
    bridgeClient = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token, WebSocket: BinaryPublishWebSocket, reconnectInterval: 50, maxReconnectInterval: 200 });
    await bridgeClient.connect();
    bridge = await attachBridge({ client: bridgeClient, cdp: chrome.wsEndpoint, target: '/bridge', session, screencast: { maxFps: 8, maxWidth: 800, maxHeight: 600 }, watchIntervalMs: 100 });
    await bridge.commands.ready;
  });

  afterAll(async () => {
    for (const v of viewers) v.stop();
    await bridge?.stop();
    bridgeClient?.disconnect();
    await chrome?.close();
    await site?.close();
    await gw?.close();
  });

  it('streams JPEG frames as binary publications only while watched, at most maxFps, acked after the gateway acked', async () => {
    expect(bridge.stats.screencasting).toBe(false);
    expect(bridge.stats.framesPublished).toBe(0);
    const v = await openViewer('usr_support', true);
    const first = await frameAfter(v, 0);
    // Bytes end to end: a MessagePack viewer gets a Uint8Array, not base64 text.
    expect(first.pub.data.jpeg).toBeInstanceOf(Uint8Array);
    expect(first.pub.publisher).toMatchObject({ sub: 'bridge_1' });
    expect(first.pub.data).toMatchObject({ source: 'cdp', deviceWidth: expect.any(Number), deviceHeight: expect.any(Number) });
    let last = first.pub;
    for (let i = 0; i < 5; i++) last = (await frameAfter(v, last.data.seq as number)).pub;
    const frames = v.pubs.filter((p) => p.type === 'page.frame');
    const span = (frames.at(-1)!.data.ts as number) - (frames[0]!.data.ts as number);
    // 8 fps at most: n frames take at least (n - 1) intervals of 125 ms (a little slack for timer rounding).
    expect(span).toBeGreaterThanOrEqual((frames.length - 1) * 115);

    // A JSON viewer gets the same frame as {"$base64"}, which decodes to the same JPEG.
    const j = await openViewer('usr_json', false);
    const jf = await frameAfter(j, last.data.seq as number);
    expect(jf.pub.data.jpeg).toHaveProperty('$base64');

    // Nobody watching: the screencast stops.
    v.stop();
    j.stop();
    viewers.length = 0;
    await new Promise<void>((resolve) => {
      const check = (): void => (bridge.stats.screencasting ? void setTimeout(check, 25) : resolve());
      check();
    });
    expect(bridge.watched).toBe(false);
  });

  it('a remote click by selector and at a point changes the page; console and exceptions arrive as page events', async () => {
    const v = await openViewer('usr_support', false);
    await v.client.call(channel, 'click', { selector: '#go' });
    expect(await v.client.call(channel, 'dom.query', { selector: '#status' })).toMatchObject({ found: true, text: 'clicked 1' });
    const log = await v.event('console.log', (d) => (d.args as unknown[])[0] === 'clicked');
    expect(log.data).toMatchObject({ source: 'cdp', level: 'log', args: ['clicked', 1, { at: true }] });

    const box = (await v.client.call<{ value: { x: number; y: number; width: number; height: number } }>(channel, 'evaluate', {
      expression: '(({x, y, width, height}) => ({x, y, width, height}))(document.getElementById("go").getBoundingClientRect())',
    })).value;
    await v.client.call(channel, 'click', { x: box.x + box.width / 2, y: box.y + box.height / 2 });
    expect(await v.client.call(channel, 'dom.query', { selector: '#status' })).toMatchObject({ text: 'clicked 2' });

    await v.client.call(channel, 'type', { selector: '#name', text: 'Ada' });
    expect(await v.client.call(channel, 'evaluate', { expression: 'document.getElementById("name").value' })).toEqual({ value: 'Ada', truncated: false });
    await expect(v.client.call(channel, 'click', { selector: '#nothing-here' })).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'NOT_FOUND' } });

    // A wheel scroll at the middle of the viewport scrolls the page (scrolling runs after the input, so the position is polled).
    await v.client.call(channel, 'evaluate', { expression: 'document.body.style.height = "5000px"' });
    await v.client.call(channel, 'scroll', { deltaY: 600 });
    await until(async () => ((await v.client.call<{ value: number }>(channel, 'evaluate', { expression: 'window.scrollY' })).value) > 0, { label: 'the page to scroll' });

    await v.client.call(channel, 'evaluate', { expression: 'setTimeout(() => { throw new Error("bridge boom"); }, 0); 1' });
    const ex = await v.event('error.uncaught');
    expect(ex.data).toMatchObject({ source: 'cdp', message: 'bridge boom' });
    expect(String(ex.data.stack)).toContain('bridge boom');

    const shot = await v.client.call<{ format: string; data: string; width: number }>(channel, 'screenshot', {});
    expect(jpegSize(Uint8Array.from(Buffer.from(shot.data, 'base64')))).toMatchObject({ width: shot.width });
    expect((await v.event('debug.command', (d) => d.method === 'click')).data.caller).toMatchObject({ sub: 'usr_support' });
  });

  it('reports a navigation and keeps answering and streaming after it', async () => {
    const v = await openViewer('usr_support', true);
    const before = await frameAfter(v, 0);
    await v.client.call(channel, 'navigate', { url: `${site.origin}/other` });
    const nav = await v.event('page.navigation', (d) => d.kind === 'navigated' && String(d.url).endsWith('/other'));
    expect(nav.data.source).toBe('cdp');
    const doc = await v.event('network.request', (d) => String(d.url).endsWith('/other'));
    expect(doc.data).toMatchObject({ api: 'Document', method: 'GET', status: 200, ok: true });
    expect(await v.client.call(channel, 'dom.query', { selector: '#title' })).toMatchObject({ text: 'Other page' });
    await frameAfter(v, nav.data.seq as number);
    expect(before.pub.data.seq).toBeLessThan(nav.data.seq as number);

    // Another site (localhost is not 127.0.0.1): with site isolation the tab gets a new renderer process.
    const otherSite = site.origin.replace('127.0.0.1', 'localhost');
    await v.client.call(channel, 'navigate', { url: `${otherSite}/bridge` });
    const cross = await v.event('page.navigation', (d) => d.kind === 'navigated' && String(d.url).startsWith(otherSite));
    expect(await v.client.call(channel, 'dom.query', { selector: '#status' })).toMatchObject({ text: 'idle' });
    await frameAfter(v, cross.data.seq as number);
    await v.client.call(channel, 'click', { selector: '#go' });
    expect(await v.client.call(channel, 'dom.query', { selector: '#status' })).toMatchObject({ text: 'clicked 1' });
    await v.client.call(channel, 'navigate', { url: `${site.origin}/other` });
    await v.event('page.navigation', (d) => d.kind === 'navigated' && (d.seq as number) > (cross.data.seq as number) && String(d.url).endsWith('/other'));
    v.stop();
    viewers.length = 0;
  });

  it('survives a gateway restart: the SDK reconnects, the handler is registered again, frames flow to a new viewer', async () => {
    const port = gw.port;
    await gw.close();
    gw = await startGateway({ port, maxMessageBytes: 1024 * 1024 });
    const v = await openViewer('usr_after_restart', true);
    // The bridge is the session's handler again (the SDK re-registered it on reconnecting).
    const answer = await eventuallyCall(() => v.client.call(channel, 'dom.query', { selector: '#title' }, { timeout: 3000 }));
    expect(answer).toMatchObject({ text: 'Other page' });
    await frameAfter(v, 0);
  });

  it('`signalbox session attach` runs the same bridge from the CLI, and detaches on SIGINT', async () => {
    const cliSession = `cli_${randomBytes(4).toString('hex')}`;
    const cliChannel = `session:${cliSession}`;
    const token = await gw.token({ sub: 'bridge_cli', channels: [cliChannel], publish: [], handle: [cliChannel], call: [] });
    const child = spawn(process.execPath, [CLI, 'session', 'attach', '--cdp', chrome.httpEndpoint, '--target', '/other', '--session', cliSession, '--url', `${gw.ws}/v1/ws/prps`, '--token', token, '--no-screencast'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(`on ${cliChannel}`)) resolve();
      });
      void exited.then((code) => reject(new Error(`the CLI exited (${code}) before attaching: ${out}${err}`)));
    });
    expect(out).toMatch(new RegExp(`attached to [0-9A-F]+ \\(${site.origin}/other\\) on ${cliChannel}`));
    const vt = await gw.token({ sub: 'usr_cli_viewer', channels: [cliChannel], publish: [], handle: [], call: [cliChannel] });
    const v = await new Viewer(cliChannel, { url: `${gw.ws}/v1/ws/prps`, token: vt }).start();
    viewers.push(v);
    expect(await v.client.call(cliChannel, 'dom.query', { selector: '#title' })).toMatchObject({ text: 'Other page' });
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('detached');
    expect(err).toBe('');
    // Detaching leaves the browser and its tab alone: the first bridge still drives it.
    expect(await bridge.page.title()).toBe('Other');
  });
});

/** Retries a call refused only because the handler is not registered yet (RPC_NO_HANDLER right after a restart). */
async function eventuallyCall<T>(call: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if ((err as { code?: string }).code !== 'RPC_NO_HANDLER' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
