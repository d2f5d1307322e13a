/**
 * The console's session debugger (apps/console/src/views/sessions.ts) in Debian's chromium against
 * a real gateway, with both real sources: a page using the in-page SDK (`@signalbox/session`'s
 * one-script-tag bundle) in one tab, and the CDP bridge attached to a separate headless Chromium.
 * Driven by Playwright, the view shows the bridge's live screen (frames drawn, and redrawn), sends a
 * click on that screen and keys that the remote page receives (read back with a `dom.query` from
 * the command bar), receives the page's log lines, failed requests and errors with stacks, shows
 * what happened before it attached exactly once even when the history read overlaps live events,
 * shows every event it missed while its connection was cut exactly once after the reconnect (at
 * 400 px, without sideways overflow), reads back what is left and marks the hole when the history
 * was cleared meanwhile, two viewers see each other, and a panel keeps its newest
 * 2,000 rows and says how many fell off. Screenshots: test-output/console/sessions.png and session.png (over
 * docs/console/ with UPDATE_SCREENSHOTS=1, helpers/console-page.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SignalboxClient } from '@signalbox/client/node';
import { attachBridge, BinaryPublishWebSocket, type Bridge } from '../../session/src/node.js';
import { buildBundle, closedPort, startPageServer, type PageServer } from '../../session/test/helpers/page-server.js';
import { launchCdpBrowser, type CdpBrowser } from '../../session/test/helpers/cdp-browser.js';
import { CHROMIUM_ARGS, describeWithChromium } from './helpers/chromium.js';
import { buildConsole, go, openConsole, shot, type OpenConsoleOptions } from './helpers/console-page.js';
import { TEST_API_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { eventually } from './helpers/wait.js';

/** The debugger's pages wait longer than the helper's default (frames, a second browser). */
const open = (browser: Browser, origin: string, opts: OpenConsoleOptions = {}) => openConsole(browser, origin, TEST_API_KEY, { timeoutMs: 15_000, ...opts });

/** The offsets of a panel's rows whose text contains `text`. */
function rowsWith(page: Page, list: string, text: string): Promise<string[]> {
  return page.locator(`#${list} li`, { hasText: text }).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.offset ?? ''));
}

/** Runs a command from the command bar and returns the status line of its result. */
async function runCommand(page: Page, method: string, params: unknown): Promise<string> {
  await page.selectOption('#command-method', method);
  await page.fill('#command-params', JSON.stringify(params));
  await page.click('form[aria-label="Command"] button[type="submit"]');
  const status = page.locator('#command-result .status');
  await status.waitFor();
  return (await status.textContent()) ?? '';
}

describeWithChromium('the console\'s session debugger in chromium', (executablePath) => {
  let gw: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let chrome: CdpBrowser;
  let bridge: Bridge;
  let bridgeClient: SignalboxClient;
  const bridgeSession = `cb_${randomBytes(5).toString('hex')}`;
  const pages: Page[] = [];

  /** A tab with the in-page SDK on a new session (its token: read + handle on it only). */
  async function openSdkPage(opts: Record<string, unknown> = {}): Promise<{ page: Page; session: string }> {
    const session = `cp_${randomBytes(5).toString('hex')}`;
    const channel = `session:${session}`;
    const token = await gw.token({ sub: 'usr_visitor', channels: [channel], publish: [], handle: [channel], call: [] });
    const page = await browser.newPage();
    pages.push(page);
    page.on('pageerror', () => {}); // the uncaught error is the point
    const q = new URLSearchParams({ ws: `${gw.ws}/v1/ws/prps`, token, session, opts: JSON.stringify(opts) });
    await page.goto(`${site.origin}/?${q}`);
    await page.waitForFunction(() => (window as unknown as { ready?: Promise<boolean> }).ready);
    await page.evaluate(() => (window as unknown as { ready: Promise<boolean> }).ready);
    return { page, session };
  }

  beforeAll(() => {
    buildConsole();
  });
  beforeAll(async () => {
    // Frames are JSON for the console ({"$base64"}): room for them in a message.
    // Rates raised for the page that logs 2,100 lines at once (the bounded-memory test).
    gw = await startGateway({ maxMessageBytes: 1024 * 1024, publishRate: 10_000, messageRate: 10_000 });
    site = await startPageServer(await buildBundle());
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    chrome = await launchCdpBrowser(executablePath, `${site.origin}/bridge`);
    const channel = `session:${bridgeSession}`;
    const token = await gw.token({ sub: 'bridge_1', channels: [channel], publish: [], handle: [channel], call: [] });
    bridgeClient = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token, WebSocket: BinaryPublishWebSocket, reconnectInterval: 50, maxReconnectInterval: 200 });
    await bridgeClient.connect();
    bridge = await attachBridge({ client: bridgeClient, cdp: chrome.wsEndpoint, target: '/bridge', session: bridgeSession, screencast: { maxFps: 8, maxWidth: 800, maxHeight: 600, quality: 60 }, watchIntervalMs: 200 });
    await bridge.commands.ready;
  }, 60_000);
  afterAll(async () => {
    await bridge?.stop();
    bridgeClient?.disconnect();
    await chrome?.close();
    for (const p of pages) await p.close().catch(() => {});
    await browser?.close();
    await site?.close();
    await gw?.close();
  });

  it('shows the bridge\'s live screen; a click and keys on it reach the remote page, read back with dom.query', async () => {
    // Tall enough for the screenshot to show the panels under the screen.
    const { page, errors, context } = await open(browser, gw.http, { height: 1250 });
    try {
      await go(page, `#/sessions/${bridgeSession}`);
      // (1) A frame is drawn (the bridge screencasts once a viewer is there), then redrawn: the page's spinner moves.
      await page.waitForFunction(() => Number(document.querySelector('#session-screen')?.getAttribute('data-frames')) >= 1, undefined, { timeout: 20_000 });
      const size = await page.$eval('#session-screen', (c) => {
        const canvas = c as HTMLCanvasElement;
        const r = canvas.getBoundingClientRect();
        return { width: canvas.width, height: canvas.height, shownWidth: r.width, shownHeight: r.height };
      });
      expect(size.width).toBeGreaterThan(100);
      expect(size.height).toBeGreaterThan(100);
      expect(size.shownWidth).toBeGreaterThan(100);
      const first = Number(await page.getAttribute('#session-screen', 'data-seq'));
      await page.waitForFunction((s) => Number(document.querySelector('#session-screen')?.getAttribute('data-seq')) > s, first);
      // Pixels, not a blank canvas: the page is white with a black-on-white button.
      const painted = await page.$eval('#session-screen', (c) => {
        const canvas = c as HTMLCanvasElement;
        const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let light = 0;
        for (let i = 0; i < px.length; i += 4 * 97) if (px[i]! > 200) light++;
        return light;
      });
      expect(painted).toBeGreaterThan(0);
      await page.waitForSelector('#session-source >> text=CDP bridge');
      await page.waitForSelector('#session-viewers li[data-self]');

      // A navigation: the network panel has the document the bridge saw, the console the navigation, the screen the new page.
      expect(await runCommand(page, 'navigate', { url: `${site.origin}/bridge` })).toContain('ok');
      await page.locator('#session-network li', { hasText: '/bridge' }).first().waitFor();
      await page.locator('#session-console li[data-level="page"]', { hasText: '/bridge' }).first().waitFor();
      const afterNav = Number(await page.getAttribute('#session-screen', 'data-frames'));
      await page.waitForFunction((n) => Number(document.querySelector('#session-screen')?.getAttribute('data-frames')) > n, afterNav);

      // (3) A click on the screen where the page's #go button is (CSS px 160, 100 of the remote viewport).
      const at = async (x: number, y: number) => page.$eval('#session-screen', (c, p) => {
        const canvas = c as HTMLCanvasElement;
        const r = canvas.getBoundingClientRect();
        const dw = Number(canvas.dataset.deviceWidth);
        const dh = Number(canvas.dataset.deviceHeight);
        return { x: r.left + (p.x / dw) * r.width, y: r.top + (p.y / dh) * r.height };
      }, { x, y });
      const go1 = await at(160, 100);
      await page.mouse.click(go1.x, go1.y);
      await page.waitForSelector('#session-input.ok >> text=/click at 1[56]\\d, (9\\d|10\\d)/');
      expect(await runCommand(page, 'dom.query', { selector: '#status' })).toContain('dom.query: ok');
      await page.locator('#command-result .j-str', { hasText: /^"clicked 1"$/ }).waitFor();
      // The page's console.log of that click arrives through the bridge.
      await page.locator('#session-console li', { hasText: 'clicked 1' }).waitFor();
      // Keys: click into the remote #name input (CSS px 150, 190), type.
      const input = await at(150, 190);
      await page.mouse.click(input.x, input.y);
      await page.waitForSelector('#session-input.ok >> text=/click at/');
      await page.keyboard.type('Ada');
      await page.waitForSelector('#session-input.ok >> text=type "a"');
      expect(await runCommand(page, 'evaluate', { expression: 'document.getElementById("name").value' })).toContain('ok');
      await page.locator('#command-result .j-str', { hasText: /^"Ada"$/ }).waitFor();
      // The audit trail: each command with its caller (the console's own identity) and outcome.
      await page.locator('#session-audit li', { hasText: 'evaluate' }).filter({ hasText: 'by console:default' }).waitFor();
      expect(await page.locator('#session-audit li', { hasText: 'click' }).count()).toBeGreaterThanOrEqual(2);
      await shot(page, 'session');
      // Every offset accounted for (frames held while the history loaded included): no hole reported.
      expect(await page.locator('#session-console li', { hasText: 'missing here' }).count()).toBe(0);
      // The documented refusal, as the command bar shows it, and in the audit trail.
      expect(await runCommand(page, 'click', { selector: '#nothing-here' })).toMatch(/RPC_FAILED \/ NOT_FOUND/);
      await page.locator('#session-audit li', { hasText: '#nothing-here' }).filter({ hasText: 'NOT_FOUND' }).waitFor();
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('shows a page\'s history once, its live log lines, failed requests and errors; two viewers see each other', async () => {
    const { page: sdk, session } = await openSdkPage();
    const deadPort = await closedPort();
    await sdk.evaluate(async (port) => {
      for (let i = 1; i <= 3; i++) console.log(`before attach ${i}`);
      await fetch('/api/broken', { method: 'POST', body: 'x' });
      await fetch(`http://127.0.0.1:${port}/nothing`).catch(() => {});
      setTimeout(() => { throw new RangeError('uncaught in a timer'); }, 0);
      await fetch('/api/ok');
    }, deadPort);
    // Wait until the page flushed them (its own history holds them).
    await eventually(async () => {
      const r = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(`session:${session}`)}/history?limit=100`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
      const body = await r.json() as { publications: { type: string }[] };
      return body.publications.some((p) => p.type === 'error.uncaught') && body.publications.filter((p) => p.type === 'network.request').length === 3 ? true : undefined;
    }, { label: 'the page\'s events in its history' });

    const a = await open(browser, gw.http);
    const b = await open(browser, gw.http);
    try {
      // Hold the first viewer's history read until the page has logged more lines live: those are then
      // both in the history it reads and in the live stream it held meanwhile; each must show once.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => { release = resolve; });
      let held = 0;
      await a.page.route((url) => url.pathname.endsWith('/history') && url.pathname.includes(session), async (route) => {
        held++;
        await gate;
        await route.continue();
      });
      await go(a.page, `#/sessions/${session}`);
      await eventually(() => (held > 0 ? true : undefined), { label: 'the view to read the history' });
      await sdk.evaluate(() => { for (let i = 1; i <= 3; i++) console.log(`overlap ${i}`); });
      // The live lines reached the gateway (and so the viewer's subscription) before the history is let go.
      await eventually(async () => {
        const r = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(`session:${session}`)}/history?limit=100`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
        const body = await r.json() as { publications: { data: { args?: unknown[] } }[] };
        return body.publications.some((p) => p.data?.args?.[0] === 'overlap 3') ? true : undefined;
      }, { label: 'the overlap lines in the history' });
      await a.page.waitForFunction(() => document.querySelector('#session-state')?.textContent === 'live');
      release();
      await a.page.locator('#session-console li', { hasText: 'overlap 3' }).waitFor();
      await a.page.waitForSelector('#session-history >> text=/from before this viewer attached/');
      for (const text of ['before attach 1', 'before attach 2', 'before attach 3', 'overlap 1', 'overlap 2', 'overlap 3']) {
        expect(await rowsWith(a.page, 'session-console', text), text).toHaveLength(1);
      }
      await a.page.unroute((url) => url.pathname.endsWith('/history') && url.pathname.includes(session));
      // (2) A line the page writes now arrives live.
      await sdk.evaluate(() => console.warn('live warning from the page'));
      await a.page.locator('#session-console li[data-level="warn"]', { hasText: 'live warning from the page' }).waitFor();
      // Console filters: by level, by text.
      await a.page.selectOption('select[name="level"]', 'warn');
      await a.page.waitForFunction(() => [...document.querySelectorAll('#session-console li')].every((li) => (li as HTMLElement).dataset.level === 'warn'));
      expect(await a.page.locator('#session-console li').count()).toBe(1);
      await a.page.selectOption('select[name="level"]', 'all');
      await a.page.fill('input[name="console-filter"]', 'overlap 2');
      await a.page.waitForFunction(() => document.querySelectorAll('#session-console li').length === 1);
      await a.page.fill('input[name="console-filter"]', '');
      // Network: three requests, two failed (a 500 and a refused connection); the filter keeps those.
      await a.page.waitForFunction(() => document.querySelectorAll('#session-network li').length === 3);
      await a.page.check('input[name="failed-only"]');
      await a.page.waitForFunction(() => document.querySelectorAll('#session-network li').length === 2);
      await a.page.locator('#session-network li[data-status="500"]', { hasText: '/api/broken' }).waitFor();
      await a.page.locator('#session-network li[data-status="0"]', { hasText: 'Failed to fetch' }).waitFor();
      await a.page.uncheck('input[name="failed-only"]');
      // The uncaught error, with its stack.
      await a.page.locator('#session-errors li', { hasText: 'RangeError: uncaught in a timer' }).waitFor();
      expect(await a.page.locator('#session-errors li pre.stack').textContent()).toContain('uncaught in a timer');
      // In-page commands: dom.query answers the page's real text.
      expect(await runCommand(a.page, 'dom.query', { selector: '#title' })).toContain('ok');
      await a.page.waitForSelector('#command-result .j-str >> text=/Checkout/');

      // (5) A second viewer: each lists the other.
      await go(b.page, `#/sessions/${session}`);
      await b.page.waitForSelector('#session-viewers li[data-self]');
      const idA = await a.page.getAttribute('#session-viewers li[data-self]', 'data-client');
      const idB = await b.page.getAttribute('#session-viewers li[data-self]', 'data-client');
      expect(idA).not.toBe(idB);
      await a.page.waitForSelector(`#session-viewers li[data-client="${idB}"]`);
      await b.page.waitForSelector(`#session-viewers li[data-client="${idA}"]`);
      expect(await a.page.locator('#session-viewers li').count()).toBe(2);
      expect(await b.page.locator('#session-viewers li').count()).toBe(2);
      // The second one also got the history, each line once.
      for (const text of ['before attach 1', 'overlap 3', 'live warning from the page']) expect(await rowsWith(b.page, 'session-console', text), text).toHaveLength(1);
      // The audit trail tells who joined.
      await b.page.locator('#session-audit li', { hasText: 'viewer joined' }).first().waitFor();

      // The list: both sessions watched (this one by two viewers, the bridge's by none now: not listed or listed with its viewers).
      await go(a.page, '#/sessions');
      const row = a.page.locator(`tr[data-session="${session}"]`);
      await row.waitFor();
      await a.page.waitForFunction((s) => document.querySelectorAll(`tr[data-session="${s}"] .viewers [data-client]`).length === 1, session);
      expect(await row.locator('.tag.src').textContent()).toBe('page');
      expect(await row.textContent()).toContain('usr_visitor');
      // The first viewer left the session page: only the second is on it.
      await b.page.waitForFunction(() => document.querySelectorAll('#session-viewers li').length === 1);
      // Back: a fresh mount reads the history again, and still shows each once.
      await go(b.page, '#/sessions');
      await go(a.page, `#/sessions/${session}`);
      await a.page.locator('#session-console li', { hasText: 'live warning from the page' }).waitFor();
      expect(await rowsWith(a.page, 'session-console', 'overlap 1')).toHaveLength(1);
      await go(b.page, `#/sessions/${session}`);
      await a.page.waitForFunction(() => document.querySelectorAll('#session-viewers li').length === 2);
      // A viewer that is not a console (a support engineer's script, read + call only) on the bridge's session: listed too.
      const supportToken = await gw.token({ sub: 'usr_support', channels: [`session:${bridgeSession}`], publish: [], handle: [], call: [`session:${bridgeSession}`] });
      const support = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: supportToken });
      await support.connect();
      support.subscribe(`session:${bridgeSession}`);
      await go(a.page, '#/sessions');
      await a.page.waitForFunction((s) => document.querySelectorAll(`tr[data-session="${s}"] .viewers [data-client]`).length === 1, session);
      const bridgeRow = a.page.locator(`tr[data-session="${bridgeSession}"]`);
      await bridgeRow.locator('.viewers', { hasText: 'usr_support' }).waitFor();
      await bridgeRow.locator('.tag.src', { hasText: 'bridge' }).waitFor();
      expect(await bridgeRow.textContent()).toContain('bridge_1');
      await shot(a.page, 'sessions');
      // Its only viewer goes: the session stays listed (its bridge is connected: the channel's RPC
      // handler, which the channel list counts), with nobody watching.
      support.disconnect();
      await bridgeRow.locator('.viewers', { hasText: 'usr_support' }).waitFor({ state: 'detached' });
      expect(await bridgeRow.count()).toBe(1);
      // eval is refused (the page did not enable it), with the documented code, in the bar and the audit trail.
      expect(await runCommand(b.page, 'eval', { expression: '1 + 1' })).toMatch(/RPC_FAILED \/ COMMAND_DISABLED/);
      await b.page.locator('#session-audit li', { hasText: 'eval' }).filter({ hasText: 'COMMAND_DISABLED' }).waitFor();
      expect(a.errors).toEqual([]);
      expect(b.errors).toEqual([]);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });

  it('after its connection is cut, shows every event it missed exactly once', async () => {
    const { page: sdk, session } = await openSdkPage();
    // At 400 px (a phone): the panels stack, nothing overflows sideways.
    const { page, errors, context } = await open(browser, gw.http, { width: 400 });
    try {
      await sdk.evaluate(() => console.log('first line', { a: 'x'.repeat(300) }));
      await sdk.evaluate(() => fetch('/api/ok?q=' + 'y'.repeat(300)));
      await go(page, `#/sessions/${session}`);
      await page.locator('#session-console li', { hasText: 'first line' }).waitFor();
      await page.locator('#session-network li', { hasText: '/api/ok' }).waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      const connectionId = await page.getAttribute('#session-viewers li[data-self]', 'data-client');
      expect(connectionId).toMatch(/\S/);
      // Hold the reconnect's token until the page has logged: those lines land while the console is away.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => { release = resolve; });
      let held = 0;
      await page.route('**/console/token', async (route) => {
        held++;
        await gate;
        await route.continue();
      });
      const cut = await fetch(`${gw.http}/v1/connections/${connectionId}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } });
      expect(cut.status).toBe(200);
      await page.waitForSelector('#conn-state:not(.on)');
      await eventually(() => (held > 0 ? true : undefined), { label: 'the console to ask for a token to reconnect' });
      await sdk.evaluate(() => { for (let i = 1; i <= 5; i++) console.log(`missed ${i}`); });
      await eventually(async () => {
        const r = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(`session:${session}`)}/history?limit=100`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
        const body = await r.json() as { publications: { data: { args?: unknown[] } }[] };
        return body.publications.some((p) => p.data?.args?.[0] === 'missed 5') ? true : undefined;
      }, { label: 'the missed lines in the history' });
      release();
      await page.waitForSelector('#conn-state.on');
      await page.locator('#session-console li', { hasText: 'missed 5' }).waitFor();
      await page.waitForSelector('#session-state >> text=live (recovered)');
      await sdk.evaluate(() => console.log('after the reconnect'));
      await page.locator('#session-console li', { hasText: 'after the reconnect' }).waitFor();
      for (const text of ['first line', 'missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5', 'after the reconnect']) {
        expect(await rowsWith(page, 'session-console', text), text).toHaveLength(1);
      }
      // Offsets on screen are strictly increasing: nothing out of order, nothing twice.
      const offsets = (await page.locator('#session-console li').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.offset))));
      expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
      expect(new Set(offsets).size).toBe(offsets.length);
      expect(await page.locator('#session-console li', { hasText: 'missing here' }).count()).toBe(0);
      await page.unroute('**/console/token');
      expect(errors.filter((e) => !/WebSocket connection to .* failed/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('when a resubscribe cannot recover (history cleared meanwhile), reads back what is left and says what is missing', async () => {
    const { page: sdk, session } = await openSdkPage();
    const channel = `session:${session}`;
    const { page, errors, context } = await open(browser, gw.http);
    const inHistory = async (text: string) => eventually(async () => {
      const r = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history?limit=100`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
      const body = await r.json() as { publications: { data: { args?: unknown[] } }[] };
      return body.publications.some((p) => p.data?.args?.[0] === text) ? true : undefined;
    }, { label: `'${text}' in the history` });
    try {
      await sdk.evaluate(() => console.log('seen line'));
      await go(page, `#/sessions/${session}`);
      await page.locator('#session-console li', { hasText: 'seen line' }).waitFor();
      const connectionId = await page.getAttribute('#session-viewers li[data-self]', 'data-client');
      let release!: () => void;
      const gate = new Promise<void>((resolve) => { release = resolve; });
      let held = 0;
      await page.route('**/console/token', async (route) => {
        held++;
        await gate;
        await route.continue();
      });
      expect((await fetch(`${gw.http}/v1/connections/${connectionId}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } })).status).toBe(200);
      await eventually(() => (held > 0 ? true : undefined), { label: 'the console to ask for a token to reconnect' });
      await sdk.evaluate(() => { console.log('lost 1'); console.log('lost 2'); });
      await inHistory('lost 2');
      // An administrator clears the session's history: 'lost 1' and 'lost 2' are gone for good.
      expect((await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } })).status).toBe(200);
      await sdk.evaluate(() => console.log('kept after the clear'));
      await inHistory('kept after the clear');
      release();
      await page.waitForSelector('#session-state >> text=live (gap read back)');
      await page.locator('#session-console li', { hasText: 'kept after the clear' }).waitFor();
      await page.locator('#session-console li', { hasText: /events? missing here: no longer in the history/ }).waitFor();
      await page.waitForSelector('#session-history >> text=/could not recover/');
      expect(await rowsWith(page, 'session-console', 'lost ')).toHaveLength(0);
      expect(await rowsWith(page, 'session-console', 'kept after the clear')).toHaveLength(1);
      expect(await rowsWith(page, 'session-console', 'seen line')).toHaveLength(1);
      await sdk.evaluate(() => console.log('live again'));
      await page.locator('#session-console li', { hasText: 'live again' }).waitFor();
      expect(await rowsWith(page, 'session-console', 'kept after the clear')).toHaveLength(1);
      await page.unroute('**/console/token');
      expect(errors.filter((e) => !/WebSocket connection to .* failed/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('keeps at most 2,000 rows a panel, and says how many fell off', async () => {
    const { page: sdk, session } = await openSdkPage({ maxEventsPerSecond: 10_000, maxBuffer: 10_000 });
    const { page, errors, context } = await open(browser, gw.http);
    try {
      await go(page, `#/sessions/${session}`);
      await page.waitForSelector('#session-viewers li[data-self]');
      // 2,100 lines, 200 at a time (the page's SDK keeps at most 256 publishes in flight), each batch seen before the next.
      for (let from = 1; from <= 2100; from += 200) {
        const to = Math.min(2100, from + 199);
        await sdk.evaluate(([a, b]) => { for (let i = a!; i <= b!; i++) console.log(`line ${i}`); }, [from, to]);
        await page.locator('#session-console li', { hasText: new RegExp(`line ${to}$`) }).waitFor();
      }
      expect(await page.locator('#session-console li').count()).toBe(2000);
      expect(await page.textContent('.cap-note[data-for="session-console"]')).toMatch(/^2000 kept \(at most 2,000\), 10\d older dropped$/);
        const texts = await page.locator('#session-console li').evaluateAll((els) => els.map((e) => /line (\d+)$/.exec(e.textContent ?? '')?.[1] ?? ''));
      // The newest 2,000, every one of them, in order (no source drop note in between: nothing was refused).
      expect(texts).toEqual(Array.from({ length: 2000 }, (_, i) => String(101 + i)));
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
