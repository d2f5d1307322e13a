/**
 * The web console in a real browser (Debian chromium via playwright-core): it connects with a
 * token over the bearer subprotocol, subscribes, shows an HTTP publication and the node's stats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS, describeWithChromium } from './helpers/chromium.js';
import { startGateway, TEST_API_KEY, uniqueChannel, type TestGateway } from './helpers/gateway.js';

describe('web console over HTTP', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('is served with a restrictive content security policy', async () => {
    const res = await fetch(`${gw.http}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await res.text()).toContain('Signalbox console');
  });
});

describeWithChromium('web console', (executablePath) => {
  let gw: TestGateway;
  let browser: Browser;
  beforeAll(async () => {
    gw = await startGateway();
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('connects, subscribes, and shows publications and live stats', async () => {
    const page = await browser.newPage();
    await page.goto(`${gw.http}/console`);
    await page.fill('#apiKey', TEST_API_KEY);
    await page.dispatchEvent('#apiKey', 'change');
    await page.fill('#token', await gw.token({ sub: 'operator' }));
    await page.click('#connect');
    await page.waitForSelector('#wsState.on >> text=/connected conn_/');

    const channel = uniqueChannel('project');
    await page.fill('#channel', channel);
    await page.click('#subscribe');
    await page.waitForSelector(`#log >> text=subscription.confirmed`);

    const res = await gw.publish({ channel, type: 'prp.created', data: { id: 'prp_console' } });
    expect(res.status).toBe(200);
    await page.waitForSelector(`#log >> text=prp.created ${channel}#1`);
    expect(await page.textContent('#log')).toContain('prp_console');

    // Stats come from /v1/stats with the API key; the channel shows with its subscriber.
    await page.waitForSelector(`#channels >> text=${channel}`);
    await page.waitForSelector('#ready.on');
    await page.close();
  });

});
