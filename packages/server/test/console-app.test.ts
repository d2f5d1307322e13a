/**
 * The built console (apps/console, `node apps/console/build.mjs`) in Debian's chromium against a
 * real gateway: sign-in, live charts that move under load, connections listed and disconnected,
 * a channel page (history, live tail, presence on join/leave), the inspector's filter and pause,
 * a cut connection whose missed publication shows exactly once after the reconnect, a two-node
 * Redis cluster, 400 px and 1366 px layouts, keyboard navigation, and no error in the browser log.
 * Each view's screenshot is written to test-output/console/*.png, and with UPDATE_SCREENSHOTS=1 to
 * docs/console/*.png (referenced from docs/console.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CloseCode } from '@signalbox/protocol';
import { TcpProxy } from '../../client/test/helpers/tcp-proxy.js';
import { CHROMIUM_ARGS, describeWithChromium } from './helpers/chromium.js';
import { buildConsole, go, openConsole, shot } from './helpers/console-page.js';
import { CLUSTER_API_KEY, startNodes, type GatewayProcess } from './helpers/cluster.js';
import { TEST_API_KEY, connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix, REDIS_URL } from './helpers/redis.js';
import { eventually } from './helpers/wait.js';

const redis = await probeRedis();

/** The header fits on one line: its height is one row, and nothing in it wraps below. */
async function headerIsOneLine(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    const header = document.querySelector('header.top') as HTMLElement;
    const kids = [...header.children] as HTMLElement[];
    const top = header.getBoundingClientRect().top;
    return header.offsetHeight <= 48 && kids.every((k) => k.getBoundingClientRect().bottom <= top + header.offsetHeight + 0.5)
      && document.documentElement.scrollWidth <= window.innerWidth;
  });
}

const tileValue = (page: Page, metric: string) => page.textContent(`[data-metric="${metric}"]`);

describeWithChromium('console app in chromium', (executablePath) => {
  let browser: Browser;
  beforeAll(() => {
    buildConsole();
  });
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('one node', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ metricsIntervalMs: 300 });
    });
    afterAll(() => gw?.close());

    it('signs in without keeping the key, and the charts change when load is applied', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY);
      try {
        // The key is nowhere in the page or its storage; the cookie is invisible to scripts.
        expect(await page.evaluate(() => document.cookie)).toBe('');
        expect(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }))).not.toContain(TEST_API_KEY);
        expect(await page.content()).not.toContain(TEST_API_KEY);
        await page.waitForSelector('#nodes-summary >> text=/1 node reporting/');
        await page.waitForFunction(() => document.querySelector('[data-metric="connections"]')?.textContent === '1');
        // Before the load: no publications; the only deliveries are the metrics samples to the console itself (~3/s at 300 ms).
        expect(await tileValue(page, 'publicationsPerSecond')).toBe('0');
        const idle = Number(await tileValue(page, 'deliveriesPerSecond'));
        expect(idle).toBeLessThan(10);
        // Load: a subscriber and a stream of publications to it.
        const channel = uniqueChannel('room');
        const sub = await connectPrp(gw);
        await sub.request('subscribe', { channels: [channel] });
        let n = 0;
        await eventually(async () => {
          await Promise.all(Array.from({ length: 10 }, () => gw.publish({ channel, type: 'load.tick', data: { n: n++ } })));
          const deliveries = Number(await tileValue(page, 'deliveriesPerSecond'));
          const publications = Number(await tileValue(page, 'publicationsPerSecond'));
          return deliveries > idle + 20 && publications > 0 ? true : undefined;
        }, { label: 'the deliveries/s and publications/s charts to show the load', timeoutMs: 10_000, intervalMs: 50 });
        await page.waitForFunction(() => document.querySelector('[data-metric="connections"]')?.textContent === '2');
        await page.waitForFunction(() => document.querySelector('[data-metric="p99LatencyMs"]')?.textContent !== '–');
        // The charts are uPlot canvases, one per metric.
        expect(await page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(6);
        expect(await headerIsOneLine(page)).toBe(true);
        await sub.close();
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('lists a connected client in Connections and disconnects it from there', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY);
      try {
        const client = await connectPrp(gw, { token: await gw.token({ sub: 'usr_console_list' }) });
        const channel = uniqueChannel('room');
        await client.request('subscribe', { channels: [channel] });
        const id = (client.messages.find((m) => m.type === 'connection.established')!.data as { connectionId: string }).connectionId;
        await go(page, '#/connections');
        const row = page.locator(`tr[data-id="${id}"]`);
        await row.waitFor();
        expect(await row.textContent()).toContain('usr_console_list');
        expect(await row.textContent()).toContain(channel);
        // The subject filter narrows the list to it.
        await page.fill('input[name="subject"]', 'usr_console_list');
        await page.press('input[name="subject"]', 'Enter');
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 1);
        await shot(page, 'connections');
        // Paging: a dozen more connections of one subject, ten a page.
        const crowd = await Promise.all(Array.from({ length: 12 }, async () => connectPrp(gw, { token: await gw.token({ sub: 'usr_console_page' }) })));
        await page.fill('input[name="subject"]', 'usr_console_page');
        await page.selectOption('select[name="size"]', '10');
        const rows = () => page.locator('tbody tr[data-id]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id!));
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 10);
        const firstPage = await rows();
        await page.click('text=Next page »');
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 2);
        const secondPage = await rows();
        expect(new Set([...firstPage, ...secondPage]).size).toBe(12);
        expect(await page.isDisabled('text=Next page »')).toBe(true);
        await page.click('text=« First page');
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 10);
        await Promise.all(crowd.map((c) => c.close()));
        await page.fill('input[name="subject"]', 'usr_console_list');
        await page.selectOption('select[name="size"]', '50');
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 1);
        // The channel filter, alone: the one connection subscribed to the room.
        await page.fill('input[name="subject"]', '');
        await page.fill('input[name="channel"]', channel);
        await page.press('input[name="channel"]', 'Enter');
        await page.waitForFunction((cid) => {
          const ids = [...document.querySelectorAll('tbody tr[data-id]')].map((e) => (e as HTMLElement).dataset.id);
          return ids.length === 1 && ids[0] === cid;
        }, id);
        // Back to the subject filter (once unsubscribed, the channel filter would no longer list it).
        await page.fill('input[name="channel"]', '');
        await page.fill('input[name="subject"]', 'usr_console_list');
        await page.press('input[name="subject"]', 'Enter');
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length === 1);
        // Unsubscribe: the client is told, the chip goes.
        await page.click(`button[aria-label="Unsubscribe ${id} from ${channel}"]`);
        expect(await client.next((m) => m.type === 'subscription.removed')).toMatchObject({ data: { channel } });
        await page.locator(`tr[data-id="${id}"] .chip`).waitFor({ state: 'detached' });
        await page.click(`button[aria-label="Disconnect ${id}"]`);
        expect((await client.closed).code).toBe(CloseCode.DISCONNECTED);
        await row.waitFor({ state: 'detached' });
        await page.waitForSelector(`text=Disconnected ${id}`);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('a channel page shows history paging back, a live tail, and presence on join and leave', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY);
      try {
        const channel = uniqueChannel('room');
        for (let i = 1; i <= 25; i++) expect((await gw.publish({ channel, type: 'chat.message', data: { text: `old ${i}` } })).status).toBe(200);
        await go(page, `#/channel/${encodeURIComponent(channel)}`);
        // The console's own subscription joined (offset 26 of the room's stream): presence lists it.
        await page.waitForSelector('#tail li[data-type="presence.joined"][data-offset="26"]');
        await page.waitForSelector('#presence li >> text=this console');
        // The newest page of history (20), then the older one, then back.
        await page.click('text=Newest');
        await page.waitForSelector('#history li[data-offset="26"]');
        expect(await page.locator('#history li').count()).toBe(20);
        expect(await page.locator('#history li[data-offset="6"]').count()).toBe(0);
        await page.click('text=Older »');
        await page.waitForSelector('#history li[data-offset="1"]');
        expect(await page.locator('#history li').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.offset)))).toEqual([6, 5, 4, 3, 2, 1]);
        expect(await page.isDisabled('text=Older »')).toBe(true);
        await page.click('text=Newest');
        await page.waitForSelector('#history li[data-offset="26"]');
        // Someone joins: presence updates, and the join is in the live tail.
        const member = await connectPrp(gw, { token: await gw.token({ sub: 'usr_presence' }) });
        await member.request('subscribe', { channels: [channel] });
        await page.waitForSelector('#presence li >> text=usr_presence');
        await page.waitForSelector('#tail li[data-type="presence.joined"]');
        // A publication shows in the tail, once.
        expect((await gw.publish({ channel, type: 'chat.message', data: { text: 'live one' } })).status).toBe(200);
        await page.locator('#tail .j-str', { hasText: 'live one' }).waitFor();
        expect(await page.locator('#tail li[data-type="chat.message"]').count()).toBe(1);
        await shot(page, 'channel');
        // The channel list finds it, by a part of its name (the member is its subscriber: the console left it with the page).
        await go(page, '#/channels');
        await page.fill('input[name="search"]', channel.slice(5, 12));
        await page.waitForFunction((ch) => {
          const rows = [...document.querySelectorAll('table.channels tbody tr')] as HTMLElement[];
          return rows.length === 1 && rows[0]!.dataset.channel === ch && rows[0]!.children[1]!.textContent === '1';
        }, channel);
        await shot(page, 'channels');
        await page.click(`tr[data-channel="${channel}"] a`);
        await page.waitForSelector('#presence li >> text=usr_presence');
        // They leave: gone from presence.
        await member.close();
        await page.waitForSelector('#tail li[data-type="presence.left"]');
        await page.locator('#presence li >> text=usr_presence').waitFor({ state: 'detached' });
        // Clear history (after a confirmation): the page shows none retained, and neither does the API.
        page.once('dialog', (d) => void d.accept());
        await page.click('text=Clear history');
        await page.waitForSelector('text=History cleared.');
        await page.locator('#history li[data-type="chat.message"]').first().waitFor({ state: 'detached' });
        const after = await (await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } })).json() as { publications: unknown[] };
        expect(after.publications).toEqual([]);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('the inspector filters by type, pauses and resumes', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY);
      try {
        const channel = uniqueChannel('room');
        await go(page, '#/inspector');
        await page.fill('input[name="watch"]', channel);
        await page.press('input[name="watch"]', 'Enter');
        await page.waitForSelector(`#inspector-watching >> text=${channel}`);
        await page.waitForSelector(`#inspector-list li[data-type="subscription.confirmed"]`);
        await gw.publish({ channel, type: 'alpha.one', data: { n: 1 } });
        await gw.publish({ channel, type: 'beta.two', data: { n: 2 } });
        await page.waitForSelector('#inspector-list li[data-type="beta.two"]');
        await page.fill('input[name="type"]', 'alpha');
        await page.waitForFunction(() => [...document.querySelectorAll('#inspector-list li')].every((li) => (li as HTMLElement).dataset.type?.includes('alpha')));
        expect(await page.locator('#inspector-list li').count()).toBe(1);
        // The publisher filter: the HTTP key published it; nobody else did.
        await page.fill('input[name="publisher"]', 'usr_nobody');
        await page.waitForFunction(() => document.querySelectorAll('#inspector-list li').length === 0);
        await page.fill('input[name="publisher"]', 'key default');
        await page.waitForFunction(() => document.querySelectorAll('#inspector-list li').length === 1);
        // The JSON of a message is a collapsible tree; Copy puts the message on the clipboard.
        await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.http });
        await page.click('#inspector-list li[data-type="alpha.one"] button >> text=Copy');
        await page.waitForSelector('#inspector-list li[data-type="alpha.one"] button >> text=Copied');
        expect(JSON.parse(await page.evaluate(() => navigator.clipboard.readText()))).toMatchObject({ type: 'alpha.one', channel, data: { n: 1 } });
        await page.click('#inspector-list li[data-type="alpha.one"] summary');
        await page.waitForSelector('#inspector-list li[data-type="alpha.one"] .j-key >> text="n": ');
        await shot(page, 'inspector');
        // Paused: a new match is held, not shown; resumed: shown.
        await page.click('#inspector-pause');
        await gw.publish({ channel, type: 'alpha.three', data: { n: 3 } });
        await page.waitForSelector('#inspector-count >> text=/paused, 1 new held/');
        expect(await page.locator('#inspector-list li[data-type="alpha.three"]').count()).toBe(0);
        await page.click('#inspector-pause');
        await page.waitForSelector('#inspector-list li[data-type="alpha.three"]');
        expect(await page.locator('#inspector-list li').count()).toBe(2);
        // Export: the matching messages as NDJSON, one JSON object a line.
        const download = page.waitForEvent('download');
        await page.click('text=Export NDJSON');
        const file = await (await download).path();
        const { readFileSync } = await import('node:fs');
        const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { message: { type: string } });
        expect(lines.map((l) => l.message.type)).toEqual(['alpha.one', 'alpha.three']);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('publishes over WebSocket and HTTP, calls an RPC, and sends a raw frame', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY);
      try {
        const channel = uniqueChannel('room');
        const handler = await connectPrp(gw, { token: await gw.token({ sub: 'svc_echo' }) });
        const reg = await handler.request('rpc.handle', { channel });
        expect(reg.type).toBe('rpc.handling');
        const listener = await connectPrp(gw);
        await listener.request('subscribe', { channels: [channel] });
        await go(page, '#/publish');
        const pub = page.locator('form[aria-label="Publish"]');
        await pub.locator('input[name="channel"]').fill(channel);
        await pub.locator('input[name="type"]').fill('chat.message');
        await pub.locator('textarea').fill('{"text": "from the console"}');
        await pub.locator('button[type="submit"]').click();
        expect(await listener.next((m) => m.type === 'chat.message')).toMatchObject({ data: { text: 'from the console' }, publisher: { via: 'ws', sub: 'console:default' } });
        await pub.locator('select[name="via"]').selectOption('http');
        await pub.locator('button[type="submit"]').click();
        expect(await listener.next((m) => m.type === 'chat.message' && m.publisher?.via === 'http')).toMatchObject({ publisher: { key: 'console:default' } });
        // A refused publish is shown in the form that made it, not also in the toast.
        await pub.locator('select[name="via"]').selectOption('ws');
        await pub.locator('input[name="channel"]').fill('nowhere:x');
        await pub.locator('button[type="submit"]').click();
        await page.waitForSelector('form[aria-label="Publish"] >> text=/does not exist/');
        expect(await page.locator('.toast').isHidden()).toBe(true);
        await pub.locator('input[name="channel"]').fill(channel);
        // The handler answers the console's call.
        const call = page.locator('form[aria-label="Call"]');
        await call.locator('input[name="channel"]').fill(channel);
        await call.locator('input[name="method"]').fill('echo');
        await call.locator('textarea').fill('{"x": 41}');
        const answered = handler.next((m) => m.type === 'rpc.request').then((req) => {
          handler.send({ id: 'r1', action: 'rpc.reply', payload: { callId: req.data.callId, result: { x: req.data.params.x + 1 } } });
        });
        await call.locator('button[type="submit"]').click();
        await answered;
        await page.waitForSelector('#call-result .j-num >> text=42');
        // Raw frames: what is typed goes out as is.
        await page.click('text=Open raw socket');
        await page.waitForSelector('#raw-log >> text=/connection.established/');
        await page.fill('textarea[name="frame"]', '{"id": "raw_1", "action": "ping"}');
        await page.click('text=Send frame');
        await page.waitForSelector('#raw-log >> text=/"replyTo":"raw_1"/');
        await shot(page, 'publish');
        await handler.close();
        await listener.close();
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('works at 400 px: the header stays on one line, no view overflows sideways, and it is keyboard-usable', async () => {
      const { page, errors, context } = await openConsole(browser, gw.http, TEST_API_KEY, { width: 400 });
      try {
        for (const route of ['overview', 'connections', 'channels', 'inspector', 'publish']) {
          await go(page, `#/${route}`);
          await page.waitForSelector(`header nav a[data-route="${route}"][aria-current="page"]`);
          expect(await headerIsOneLine(page), route).toBe(true);
        }
        await go(page, '#/overview');
        await page.waitForSelector('#nodes-summary >> text=/node reporting/');
        await page.waitForFunction(() => document.querySelectorAll('.chart canvas').length >= 6);
        await page.waitForFunction(() => Number(document.querySelector('.chart')?.getAttribute('data-points')) >= 3);
        await shot(page, 'overview-400px');
        // Keyboard: tab to the navigation, Enter opens a view.
        await page.focus('header .brand');
        await page.keyboard.press('Tab');
        await page.keyboard.press('Tab');
        expect(await page.evaluate(() => (document.activeElement as HTMLElement).dataset.route)).toBe('connections');
        await page.keyboard.press('Enter');
        await page.waitForSelector('h1 >> text=Connections');
        expect(await page.evaluate(() => document.activeElement?.id)).toBe('view');
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });

    it('the sign-in page, and the one-time dev link', async () => {
      const context = await browser.newContext({ viewport: { width: 1366, height: 700 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      try {
        await page.goto(`${gw.http}/console`);
        await page.waitForSelector('#credential');
        await shot(page, 'sign-in');
        const { issueConsoleCode } = await import('../src/http/console-session.js');
        const code = issueConsoleCode(gw.config);
        // A fresh page: the link is opened, not a hash change of a page already loaded.
        await page.close();
        const linked = await context.newPage();
        linked.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
        await linked.goto(`${gw.http}/console#code=${code}`);
        await linked.waitForSelector('#conn-state.on');
        // The code left the address bar; used once, it does not sign in again.
        expect(new URL(linked.url()).hash).toBe('#/overview');
        expect(errors).toEqual([]);
        const other = await browser.newContext();
        const second = await other.newPage();
        await second.goto(`${gw.http}/console#code=${code}`);
        await second.waitForSelector('.signin >> text=/One-time link: Unknown, used or expired/');
        await other.close();
      } finally {
        await context.close();
      }
    });
  });

  describe('a cut connection', () => {
    let gw: TestGateway;
    let proxy: TcpProxy;
    beforeAll(async () => {
      gw = await startGateway();
      proxy = await TcpProxy.start(gw.port);
    });
    afterAll(async () => {
      await proxy?.close();
      await gw?.close();
    });

    it('shows the publication it missed exactly once after it reconnects', async () => {
      const origin = `http://127.0.0.1:${proxy.port}`;
      const { page, errors, context } = await openConsole(browser, origin, TEST_API_KEY);
      try {
        const channel = uniqueChannel('room');
        await go(page, `#/channel/${encodeURIComponent(channel)}`);
        await page.waitForSelector('#tail li[data-type="presence.joined"]');
        // Hold the reconnect's token until the test has published: the publication lands while the console is away.
        let release!: () => void;
        const gate = new Promise<void>((resolve) => { release = resolve; });
        let held = 0;
        await page.route('**/console/token', async (route) => {
          held++;
          await gate;
          await route.continue();
        });
        proxy.drop();
        await page.waitForSelector('#conn-state:not(.on)');
        await eventually(() => (held > 0 ? true : undefined), { label: 'the console to ask for a token to reconnect' });
        expect((await gw.publish({ channel, type: 'chat.message', data: { text: 'missed while away' } })).status).toBe(200);
        release();
        await page.waitForSelector('#conn-state.on');
        const missed = page.locator('#tail .j-str', { hasText: 'missed while away' });
        await missed.waitFor();
        await page.waitForSelector('text=Resubscribed; missed publications recovered.');
        expect(await missed.count()).toBe(1);
        // A live publication after it, then count again: nothing arrived twice, late.
        expect((await gw.publish({ channel, type: 'chat.message', data: { text: 'after the reconnect' } })).status).toBe(200);
        await page.locator('#tail .j-str', { hasText: 'after the reconnect' }).waitFor();
        expect(await missed.count()).toBe(1);
        // The inspector saw each once too.
        await go(page, '#/inspector');
        await page.fill('input[name="channel"]', channel);
        await page.fill('input[name="type"]', 'chat.message');
        await page.waitForFunction(() => document.querySelectorAll('#inspector-list li').length === 2);
        expect(await page.locator('#inspector-list li[data-type="chat.message"]').count()).toBe(2);
        await page.unroute('**/console/token');
        // The browser reports the reset WebSocket itself; nothing else may be in the log.
        expect(errors.filter((e) => !/WebSocket connection to .* failed/.test(e))).toEqual([]);
      } finally {
        await context.close();
      }
    });
  });

  describeWithRedis('two nodes on Redis', redis, () => {
    let nodes: GatewayProcess[];
    const prefix = uniquePrefix('console');
    beforeAll(async () => {
      nodes = await startNodes(2, { broker: REDIS_URL, prefix, env: { SIGNALBOX_METRICS_INTERVAL: '500ms' } });
    }, 90_000);
    afterAll(async () => {
      await Promise.all((nodes ?? []).map((n) => n.kill()));
      await deleteKeys(REDIS_URL, prefix);
    });

    it('the overview shows both nodes, each and summed', async () => {
      const { page, errors, context } = await openConsole(browser, nodes[0]!.http, CLUSTER_API_KEY);
      try {
        await page.waitForSelector('#nodes-summary >> text=/2 nodes reporting/', { timeout: 15_000 });
        expect(await page.locator('table.nodes tbody tr').count()).toBe(2);
        // A client on the other node: the cluster's connections tile counts both.
        const { SignalboxClient } = await import('../../client/src/node.js');
        const { clusterToken } = await import('./helpers/cluster.js');
        const other = new SignalboxClient({ url: nodes[1]!.wsUrl(), token: await clusterToken('usr_other_node') });
        await other.connect();
        await page.waitForFunction(() => document.querySelector('[data-metric="connections"]')?.textContent === '2', undefined, { timeout: 15_000 });
        // Some traffic across the nodes while the charts fill (a subscriber on node 2, publications through node 1).
        const channel = uniqueChannel('room');
        other.subscribe(channel);
        let n = 0;
        await eventually(async () => {
          await Promise.all(Array.from({ length: 5 }, () => fetch(`${nodes[0]!.http}/v1/publish`, {
            method: 'POST', headers: { authorization: `Bearer ${CLUSTER_API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ channel, type: 'load.tick', data: { n: n++ } }),
          })));
          return Number(await page.getAttribute('.chart', 'data-points')) >= 12 ? true : undefined;
        }, { label: 'a dozen seconds of samples on the charts', timeoutMs: 20_000, intervalMs: 100 });
        // Each chart: one series per node, and the cluster's.
        await page.waitForFunction(() => document.querySelector('.chart .u-legend')?.textContent?.includes('cluster'), undefined, { timeout: 15_000 }).catch(async (err) => {
          throw new Error(`${(err as Error).message}\n${await page.innerHTML('.charts')}`.slice(0, 3000));
        });
        await shot(page, 'overview');
        await go(page, '#/connections');
        await page.waitForSelector('text=/nodes answering: 2/');
        await page.waitForSelector('td >> text=usr_other_node');
        other.disconnect();
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    });
  });
});
