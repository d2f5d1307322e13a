/**
 * The console's document editor (views/documents.ts + editor.ts: CodeMirror 6 on a Yjs document
 * through @signalbox/yjs) in Debian's chromium against a real gateway: two pages typing into the
 * same document at the same time end with the same text; each shows the other's caret and name;
 * a page that goes offline, edits and comes back converges with the other; a Node editor
 * (@signalbox/yjs) sees the same text; the documents list shows the document; no error in the
 * browser log (the editor runs under the console's CSP, nothing inline).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import * as Y from 'yjs';
import { msgpack } from '@signalbox/client/msgpack';
import { SignalboxClient } from '@signalbox/client/node';
import { SignalboxProvider } from '@signalbox/yjs';
import { CHROMIUM_ARGS, describeWithChromium } from './helpers/chromium.js';
import { buildConsole, go, openConsole, shot, type ConsolePage } from './helpers/console-page.js';
import { TEST_API_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { eventually } from './helpers/wait.js';

/** The editor's text as its lines show it (the editor is in #editor's shadow root). */
const editorText = (page: Page) => page.evaluate(() => {
  const lines = [...(document.querySelector('#editor')?.shadowRoot?.querySelectorAll('.cm-line') ?? [])] as HTMLElement[];
  // Without the others' carets (widgets in the line that carry their names).
  return lines.map((l) => {
    const copy = l.cloneNode(true) as HTMLElement;
    for (const c of copy.querySelectorAll('.sb-caret')) c.remove();
    return copy.textContent ?? '';
  }).join('\n');
});

async function setName(page: Page, name: string): Promise<void> {
  await page.fill('input[name="editorName"]', name);
  await page.press('input[name="editorName"]', 'Tab');
}

describeWithChromium('console document editor in chromium', (executablePath) => {
  let browser: Browser;
  let gw: TestGateway;
  beforeAll(async () => {
    buildConsole();
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    gw = await startGateway();
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  describe('two pages on one document', () => {
    let a: ConsolePage;
    let b: ConsolePage;
    const id = `notes_${randomBytes(4).toString('hex')}`;
    beforeAll(async () => {
      [a, b] = await Promise.all([openConsole(browser, gw.http, TEST_API_KEY), openConsole(browser, gw.http, TEST_API_KEY)]);
      await Promise.all([go(a.page, `#/document/${id}`), go(b.page, `#/document/${id}`)]);
      await Promise.all([a.page.waitForSelector('#doc-synced.ok'), b.page.waitForSelector('#doc-synced.ok')]);
      await setName(a.page, 'Ada');
      await setName(b.page, 'Bea');
    });
    afterAll(async () => {
      await a?.context.close();
      await b?.context.close();
    });

    it('both type at the same time and end with the same text, each with the other\'s caret and name', async () => {
      await a.page.click('#editor .cm-content');
      await a.page.keyboard.type('Title\n');
      await b.page.waitForFunction(() => document.querySelector('#editor')?.shadowRoot?.querySelectorAll('.cm-line').length === 2);
      // Ada at the end of line 1, Bea on line 2, typing at the same time.
      await a.page.keyboard.press('ArrowUp');
      await a.page.keyboard.press('End');
      await b.page.click('#editor .cm-content');
      await b.page.keyboard.press('Control+End');
      await Promise.all([
        a.page.keyboard.type(' - by Ada', { delay: 15 }),
        b.page.keyboard.type('Bea writes here.', { delay: 15 }),
      ]);
      const want = 'Title - by Ada\nBea writes here.';
      let seen: string[] = [];
      await eventually(async () => {
        seen = await Promise.all([editorText(a.page), editorText(b.page)]);
        return seen[0] === want && seen[1] === want ? true : undefined;
      }, { label: 'both pages to show both edits', detail: () => JSON.stringify(seen) });
      // Each sees the other's caret, named, and lists the other as editing.
      await a.page.waitForSelector('#editor .sb-caret-name >> text=Bea');
      await b.page.waitForSelector('#editor .sb-caret-name >> text=Ada');
      await a.page.waitForSelector('#doc-peers li >> text=Bea');
      await b.page.waitForSelector('#doc-peers li >> text=Ada');
      // A selection shows on the other page, in the selecting editor's colour class.
      await b.page.keyboard.down('Shift');
      for (let i = 0; i < 5; i++) await b.page.keyboard.press('ArrowLeft');
      await b.page.keyboard.up('Shift');
      await a.page.waitForSelector('#editor .sb-selection');
      await shot(a.page, 'document');
    });

    it('a page that goes offline, edits, and comes back converges with the other', async () => {
      // Offline: the network is gone (new connections fail) and its open connection is cut.
      const conn = await b.page.textContent('#doc-conn');
      expect(conn).toMatch(/^conn_/);
      await b.context.setOffline(true);
      expect((await fetch(`${gw.http}/v1/connections/${conn}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } })).status).toBe(200);
      await b.page.waitForSelector('#doc-status.warn');
      await b.page.click('#editor .cm-content');
      await b.page.keyboard.press('Control+End');
      await b.page.keyboard.type(' [offline edit by Bea]');
      await a.page.click('#editor .cm-content');
      await a.page.keyboard.press('Control+Home');
      await a.page.keyboard.type('[online edit by Ada] ');
      // Apart: neither has the other's edit.
      expect(await editorText(a.page)).not.toContain('offline edit');
      expect(await editorText(b.page)).not.toContain('online edit');
      await b.context.setOffline(false);
      await b.page.waitForSelector('#doc-status.ok', { timeout: 20_000 });
      const merged = await eventually(async () => {
        const [ta, tb] = await Promise.all([editorText(a.page), editorText(b.page)]);
        return ta === tb && ta.includes('[offline edit by Bea]') && ta.includes('[online edit by Ada]') ? ta : undefined;
      }, { label: 'the offline page to merge', timeoutMs: 20_000 });
      expect(merged, merged).toMatch(/^\[online edit by Ada\] /);
      expect(merged.endsWith(' [offline edit by Bea]')).toBe(true);
    });

    it('a Node editor on @signalbox/yjs sees the same text, and its edit shows in both pages', async () => {
      const client = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: await gw.token({ sub: 'usr_node_editor' }), format: msgpack });
      const doc = new Y.Doc();
      const provider = new SignalboxProvider(client, `doc:${id}`, doc);
      try {
        await client.connect();
        await provider.whenSynced();
        const text = doc.getText('codemirror');
        expect(text.toString()).toBe(await editorText(a.page));
        text.insert(text.length, ' (node)');
        await eventually(async () => ((await editorText(a.page)).endsWith(' (node)') && (await editorText(b.page)).endsWith(' (node)') ? true : undefined), { label: "the Node editor's edit in both pages", detail: () => text.toString() });
      } finally {
        provider.destroy();
        client.disconnect();
      }
    });

    it('the documents list shows the document with its editors; no error in either browser log', async () => {
      await go(a.page, '#/documents');
      await a.page.waitForSelector(`tr[data-doc="${id}"]`);
      expect(a.errors.filter((e) => !/WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED/.test(e))).toEqual([]);
      expect(b.errors.filter((e) => !/WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED/.test(e))).toEqual([]);
    });
  });
});
