/**
 * The in-page source in real Chromium: a page served on 127.0.0.1 loads the one-script-tag bundle,
 * starts a session on a real gateway, and makes real console calls, a real failing fetch, a real
 * uncaught error and unhandled rejection; a debugger (Node SDK, read + call only) receives each
 * with the right fields, queries the DOM, is refused `eval` unless the page enabled it, and every
 * command is in the stream with its caller. Redacted headers, URL parameters and text never leave
 * the page: the gateway's own history of the session does not contain them.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SignalboxError } from '@signalbox/client/node';
import { startGateway, type TestGateway } from '../../server/test/helpers/gateway.js';
import { describeWithChromium, CHROMIUM_ARGS } from '../../server/test/helpers/chromium.js';
import { buildBundle, closedPort, startPageServer, type PageServer } from './helpers/page-server.js';
import { Viewer } from './helpers/viewer.js';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describeWithChromium('@signalbox/session in a real page', (executablePath) => {
  let gw: TestGateway;
  let site: PageServer;
  let browser: Browser;
  const pages: Page[] = [];
  const viewers: Viewer[] = [];

  beforeAll(async () => {
    gw = await startGateway();
    site = await startPageServer(await buildBundle());
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    for (const v of viewers) v.stop();
    await browser?.close();
    await site?.close();
    await gw?.close();
  });

  /** Opens the test page on a new session; the page's token: read + handle on its session only. */
  async function openPage(opts: Record<string, unknown> = {}): Promise<{ page: Page; session: string; channel: string }> {
    const session = `s_${randomBytes(6).toString('hex')}`;
    const channel = `session:${session}`;
    const token = await gw.token({ sub: 'usr_visitor', channels: [channel], publish: [], handle: [channel], call: [] });
    const page = await browser.newPage();
    pages.push(page);
    page.on('pageerror', () => {}); // the uncaught error is the point; playwright only observes it
    const q = new URLSearchParams({ ws: `${gw.ws}/v1/ws/prps`, token, session, opts: JSON.stringify(opts) });
    await page.goto(`${site.origin}/?${q}`);
    await page.waitForFunction(() => (window as unknown as { ready?: Promise<boolean> }).ready);
    await page.evaluate(() => (window as unknown as { ready: Promise<boolean> }).ready);
    return { page, session, channel };
  }

  /** A debugger: read + call on the session, and no publish or handle grant. */
  async function openViewer(channel: string, sub = 'usr_support'): Promise<Viewer> {
    const token = await gw.token({ sub, channels: [channel], publish: [], handle: [], call: [channel] });
    const v = await new Viewer(channel, { url: `${gw.ws}/v1/ws/prps`, token }).start();
    viewers.push(v);
    return v;
  }

  it('console calls, a failing fetch, an uncaught error and a rejection reach the debugger with their fields', async () => {
    const { page, channel } = await openPage();
    const dbg = await openViewer(channel);
    const started = await dbg.event('page.started');
    expect(started.publisher).toMatchObject({ via: 'ws', sub: 'usr_visitor' });
    expect(started.data).toMatchObject({ source: 'page', commands: ['dom.query'] });
    const deadPort = await closedPort();

    await page.evaluate(async (port) => {
      const cyclic: Record<string, unknown> = { name: 'order', items: [1, 2, 3] };
      cyclic.self = cyclic;
      console.log('checkout step', 2, cyclic, document.getElementById('pay'), 'x'.repeat(100_000));
      console.error(new TypeError('card declined'));
      await fetch('/api/broken', { method: 'POST', body: 'abc' });
      await fetch(`http://127.0.0.1:${port}/nothing`).catch(() => {});
      setTimeout(() => { throw new RangeError('uncaught in a timer'); }, 0);
      void Promise.reject(new Error('nobody caught this'));
    }, deadPort);

    const log = await dbg.event('console.log');
    expect(log.data.level).toBe('log');
    const args = log.data.args as unknown[];
    expect(args[0]).toBe('checkout step');
    expect(args[1]).toBe(2);
    expect(args[2]).toMatchObject({ name: 'order', items: [1, 2, 3], self: { $type: 'cycle' } });
    expect(args[3]).toEqual({ $type: 'node', value: '<button#pay>' });
    expect(typeof args[4]).toBe('string');
    expect((args[4] as string).length).toBeLessThan(3000);
    expect(log.data.truncated).toBe(true);

    const err = await dbg.event('console.error');
    expect((err.data.args as unknown[])[0]).toMatchObject({ $type: 'error', name: 'TypeError', message: 'card declined' });
    expect(String(((err.data.args as unknown[])[0] as { stack: string }).stack)).toContain('card declined');

    const broken = await dbg.event('network.request', (d) => String(d.url).endsWith('/api/broken'));
    expect(broken.data).toMatchObject({ api: 'fetch', method: 'POST', status: 500, ok: false, requestSize: 3, responseSize: '{"error":"broken"}'.length, error: null, url: `${site.origin}/api/broken` });
    expect(broken.data.durationMs).toBeGreaterThanOrEqual(0);
    expect((broken.data.responseHeaders as Record<string, string>)['set-cookie'] ?? '[redacted]').toBe('[redacted]');

    const failed = await dbg.event('network.request', (d) => String(d.url).includes(`:${deadPort}/`));
    expect(failed.data).toMatchObject({ api: 'fetch', method: 'GET', status: 0, ok: false, responseSize: null });
    expect(String(failed.data.error)).toMatch(/TypeError: Failed to fetch/);

    const uncaught = await dbg.event('error.uncaught');
    expect(uncaught.data).toMatchObject({ message: 'Uncaught RangeError: uncaught in a timer', name: 'RangeError' });
    expect(String(uncaught.data.stack)).toContain('RangeError: uncaught in a timer');

    const rejection = await dbg.event('error.unhandledrejection');
    expect(rejection.data).toMatchObject({ message: 'nobody caught this', name: 'Error' });
    expect(String(rejection.data.stack)).toContain('nobody caught this');

    // Every event is the page's: published by its connection, never by the viewer.
    for (const p of dbg.pubs.filter((p) => p.type !== 'presence.joined')) expect(p.publisher).toMatchObject({ sub: 'usr_visitor' });
  });

  it('XMLHttpRequest, navigations and visibility are reported', async () => {
    const { page, channel } = await openPage();
    const dbg = await openViewer(channel);
    await page.evaluate(() => new Promise<void>((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', '/api/items?id=7');
      xhr.setRequestHeader('content-type', 'text/plain');
      xhr.onloadend = () => resolve();
      xhr.send('hello');
    }));
    const xhr = await dbg.event('network.request', (d) => d.api === 'xhr');
    expect(xhr.data).toMatchObject({ method: 'PUT', status: 200, ok: true, requestSize: 5, url: `${site.origin}/api/items?id=7`, error: null });
    expect(xhr.data.responseSize).toBe(JSON.stringify({ ok: true, got: 5 }).length);

    await page.evaluate(() => {
      history.pushState({}, '', '/cart?step=3');
      location.hash = 'summary';
    });
    const pushed = await dbg.event('page.navigation', (d) => d.kind === 'pushState');
    expect(pushed.data.url).toBe(`${site.origin}/cart?step=3`);
    expect((await dbg.event('page.navigation', (d) => d.kind === 'hashchange')).data.url).toBe(`${site.origin}/cart?step=3#summary`);

    // Headless Chromium does not hide a tab by itself: the event is dispatched, the state the page reports is the real one.
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    expect((await dbg.event('page.visibility')).data.state).toBe('visible');
  });

  it('dom.query returns the page text; eval is refused unless enabled; every command is audited with its caller', async () => {
    const { channel } = await openPage();
    const dbg = await openViewer(channel);
    const q = await dbg.client.call<Record<string, unknown>>(channel, 'dom.query', { selector: '#title' }, { timeout: 5000 });
    expect(q).toMatchObject({ found: true, count: 1, tag: 'h1', text: 'Checkout step 2' });
    expect(q.html).toBe('<h1 id="title">Checkout <small>step 2</small></h1>');
    expect(await dbg.client.call(channel, 'dom.query', { selector: '#missing' })).toMatchObject({ found: false });
    await expect(dbg.client.call(channel, 'dom.query', { selector: '##' })).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'INVALID_SELECTOR' } });

    const refused = await dbg.client.call(channel, 'eval', { expression: '1 + 1' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SignalboxError);
    expect(refused).toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'COMMAND_DISABLED' } });
    expect((refused as Error).message).toMatch(/"eval" is not enabled/);
    await expect(dbg.client.call(channel, 'storage.get', { key: 'a' })).rejects.toMatchObject({ details: { handlerCode: 'COMMAND_DISABLED' } });

    const audit = await dbg.event('debug.command', (d) => d.method === 'eval');
    expect(audit.data).toMatchObject({ params: { expression: '1 + 1' }, caller: { via: 'ws', sub: 'usr_support' } });
    expect(audit.publisher).toMatchObject({ sub: 'usr_visitor' });
    const result = await dbg.event('debug.result', (d) => d.callId === audit.data.callId);
    expect(result.data).toMatchObject({ ok: false, error: { code: 'COMMAND_DISABLED' } });
    expect((await dbg.event('debug.command', (d) => d.method === 'dom.query')).data.caller).toMatchObject({ sub: 'usr_support' });

    // The viewer cannot speak as the page: publishing a page event type is refused.
    await expect(dbg.client.publish(channel, { level: 'log', args: ['forged'] }, { type: 'console.log' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('eval, storage.get and navigation run when the page enabled them', async () => {
    const { page, channel } = await openPage({ commands: { eval: true, storage: true, navigate: [''] } });
    const dbg = await openViewer(channel);
    expect(await dbg.client.call(channel, 'eval', { expression: 'document.title + " " + (6 * 7)' })).toEqual({ value: 'Checkout 42', truncated: false });
    expect(await dbg.client.call(channel, 'eval', { expression: 'Promise.resolve({ a: [1, 2] })' })).toEqual({ value: { a: [1, 2] }, truncated: false });
    await expect(dbg.client.call(channel, 'eval', { expression: 'throw new Error("inner")' })).rejects.toMatchObject({ details: { handlerCode: 'COMMAND_FAILED' } });
    await page.evaluate(() => localStorage.setItem('cart', '3 items'));
    expect(await dbg.client.call(channel, 'storage.get', { key: 'cart' })).toEqual({ area: 'local', key: 'cart', value: '3 items' });
    // Allowed origins only ([''] allows none).
    await expect(dbg.client.call(channel, 'location.navigate', { url: `${site.origin}/other` })).rejects.toMatchObject({ details: { handlerCode: 'COMMAND_DISABLED' } });
  });

  it('location.navigate to an allowed origin navigates the page', async () => {
    const { page, channel } = await openPage({ commands: { navigate: [site.origin] } });
    const dbg = await openViewer(channel);
    await expect(dbg.client.call(channel, 'location.navigate', { url: 'javascript:alert(1)' })).rejects.toMatchObject({ details: { handlerCode: 'INVALID_PARAMS' } });
    expect(await dbg.client.call(channel, 'location.navigate', { url: '/other?token=t' })).toEqual({ navigating: `${site.origin}/other?token=%5Bredacted%5D` });
    await page.waitForURL(`${site.origin}/other?token=t`);
    expect(await page.textContent('#title')).toBe('Other page');
  });

  it('a redacted header, URL parameter or text never leaves the page: the gateway history does not hold it', async () => {
    const { page, channel } = await openPage({ redact: { headers: ['x-api-key'], patterns: ['card=\\d+'] }, commands: { eval: true } });
    await page.evaluate(async () => {
      await fetch('/api/orders?token=sekret-url-1&page=2', { headers: { Authorization: 'Bearer sekret-auth-1', 'X-Api-Key': 'sekret-key-1', 'X-Trace': 'trace-ok' } });
      console.log('paying with card=4242424242424242 now');
      history.pushState({}, '', '/done#access_token=sekret-hash-1&state=ok');
    });
    // The page really sent them: the server got every secret.
    const got = site.requests.find((r) => r.path === '/api/orders')!;
    expect(got.headers.authorization).toBe('Bearer sekret-auth-1');
    expect(got.headers['x-api-key']).toBe('sekret-key-1');

    const dbg = await openViewer(channel);
    const net = await dbg.event('network.request', (d) => String(d.url).includes('/api/orders'));
    expect(net.data.url).toBe(`${site.origin}/api/orders?token=%5Bredacted%5D&page=2`);
    expect(net.data.requestHeaders).toMatchObject({ authorization: '[redacted]', 'x-api-key': '[redacted]', 'x-trace': 'trace-ok' });
    expect((net.data.responseHeaders as Record<string, string>)['set-cookie'] ?? '[redacted]').toBe('[redacted]');
    expect((await dbg.event('console.log')).data.args).toEqual(['paying with [redacted] now']);
    expect((await dbg.event('page.navigation', (d) => d.kind === 'pushState')).data.url).toBe(`${site.origin}/done#access_token=%5Bredacted%5D&state=ok`);
    const dom = await dbg.client.call<{ text: string }>(channel, 'dom.query', { selector: '#secret' });
    expect(dom.text).toBe('[redacted]');
    expect(await dbg.client.call(channel, 'eval', { expression: 'document.getElementById("secret").textContent' })).toEqual({ value: '[redacted]', truncated: false });
    await dbg.event('debug.result', (d) => d.method === 'eval');

    // What the gateway stored for the session, read back as any later viewer would.
    const { publications } = await dbg.client.history(channel, { limit: 100 });
    const stored = JSON.stringify(publications);
    expect(publications.map((p) => p.type)).toEqual(expect.arrayContaining(['page.started', 'network.request', 'console.log', 'debug.command', 'debug.result']));
    for (const secret of ['sekret-auth-1', 'sekret-key-1', 'sekret-url-1', 'sekret-hash-1', 'sekret-cookie', '4242424242424242']) expect(stored).not.toContain(secret);
  });

  it('the per-second cap publishes the first events and counts the rest in one page.dropped', async () => {
    const { page, channel } = await openPage({ maxEventsPerSecond: 5, capture: { network: false, navigation: false, visibility: false } });
    const dbg = await openViewer(channel);
    // Well within one second: the first 5 go out, 15 are dropped and counted.
    await page.evaluate(() => { for (let i = 1; i <= 20; i++) console.log('line', i); });
    const dropped = await dbg.event('page.dropped');
    expect(dropped.data).toMatchObject({ count: 15, reason: 'rate' });
    const lines = dbg.pubs.filter((p) => p.type === 'console.log').map((p) => (p.data.args as unknown[])[1]);
    expect(lines).toEqual([1, 2, 3, 4, 5]);
  });

  it('with onlyWhileWatched nothing is captured until a viewer is on the session; onWatched and the badge tell the user', async () => {
    const { page, channel } = await openPage({ capture: { onlyWhileWatched: true }, badge: true, watchIntervalMs: 100 });
    await page.evaluate(() => console.log('before anyone watched'));
    await page.evaluate(() => (window as unknown as { session: { flush(): void } }).session.flush());
    const dbg = await openViewer(channel);
    await page.waitForFunction(() => (window as unknown as { session: { watched: boolean } }).session.watched);
    await page.evaluate(() => console.log('while watched'));
    expect((await dbg.event('console.log')).data.args).toEqual(['while watched']);
    expect(dbg.pubs.some((p) => JSON.stringify(p.data).includes('before anyone watched'))).toBe(false);
    const { publications } = await dbg.client.history(channel, { limit: 100 });
    expect(JSON.stringify(publications)).not.toContain('before anyone watched');

    const badge = page.locator('[data-signalbox-session-badge]');
    await badge.waitFor();
    expect(await badge.textContent()).toBe('\u25CF Support is viewing this session (1)');
    expect(await page.evaluate(() => (window as unknown as { watchedCalls: number[] }).watchedCalls)).toEqual([0, 1]);
    await page.screenshot({ path: join(tmpdir(), 'signalbox-session-badge.png') });

    dbg.stop();
    await page.waitForFunction(() => !(window as unknown as { session: { watched: boolean } }).session.watched);
    await badge.waitFor({ state: 'detached' });
  });
});
