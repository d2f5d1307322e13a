/**
 * The console's document editor (views/documents.ts + editor.ts: CodeMirror 6 on a Yjs document
 * through @signalbox/yjs) in Debian's chromium against a real gateway: two pages typing into the
 * same document at the same time end with the same text; each shows the other's caret and name
 * (and a selection); a page that goes offline, edits and comes back converges with the other; a
 * Node editor (@signalbox/yjs) sees the same text; the documents list shows the document; the
 * editor runs under the console's CSP (`style-src 'self'`): its styles are adopted style sheets in
 * its shadow root, no `<style>` element anywhere, no CSP violation reported, no error in the
 * browser log. Screenshots: test-output/console/document.png and documents.png (over
 * docs/console/ with UPDATE_SCREENSHOTS=1).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { msgpack } from '@signalbox/client/msgpack';
import { SignalboxClient } from '@signalbox/client/node';
import { SignalboxProvider } from '@signalbox/yjs';
import { CONSOLE_CSP } from '../src/http/console.js';
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
      await Promise.all([go(a.page, `#/documents/${id}`), go(b.page, `#/documents/${id}`)]);
      await Promise.all([a.page.waitForSelector('#doc-synced.on'), b.page.waitForSelector('#doc-synced.on')]);
      // Before anyone names themselves: who signed in (the API key's name).
      expect(await a.page.inputValue('input[name="editorName"]')).toMatch(/^console/);
      await setName(a.page, 'Ada');
      await setName(b.page, 'Bea');
    });
    afterAll(async () => {
      await a?.context.close();
      await b?.context.close();
    });

    it('both type at the same time and end with the same text, each with the other\'s caret and name', async () => {
      await a.page.click('#editor .cm-content');
      await a.page.keyboard.type('Release notes\n');
      await b.page.waitForFunction(() => document.querySelector('#editor')?.shadowRoot?.querySelectorAll('.cm-line').length === 2);
      // Ada at the end of line 1, Bea on line 2, typing at the same time.
      await a.page.keyboard.press('ArrowUp');
      await a.page.keyboard.press('End');
      await b.page.click('#editor .cm-content');
      await b.page.keyboard.press('Control+End');
      await Promise.all([
        a.page.keyboard.type(' - draft by Ada', { delay: 15 }),
        b.page.keyboard.type('Documents view: two people edit one text.', { delay: 15 }),
      ]);
      const want = 'Release notes - draft by Ada\nDocuments view: two people edit one text.';
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
      // Idle (4 s without a move), Bea's name fades to a flag so it does not hide Ada's text; it
      // shows again while the pointer is on that line.
      const nameOpacity = () => a.page.evaluate(() => {
        const c = document.querySelector('#editor')!.shadowRoot!.querySelector('.sb-caret');
        return c ? { idle: c.classList.contains('sb-idle'), name: getComputedStyle(c.querySelector('.sb-caret-name')!).opacity, flag: getComputedStyle(c, '::after').opacity } : null;
      });
      let last: Awaited<ReturnType<typeof nameOpacity>> = null;
      await eventually(async () => {
        last = await nameOpacity();
        return last?.idle && last.name === '0' && last.flag === '1' ? true : undefined;
      }, { label: "Bea's idle name to fade to a flag", timeoutMs: 15_000, detail: () => JSON.stringify(last) });
      await a.page.hover('#editor .cm-line >> nth=1');
      await eventually(async () => ((await nameOpacity())?.name === '1' ? true : undefined), { label: 'the name on hover' });
      await a.page.mouse.move(0, 0);
    });

    it('a page that goes offline, edits, and comes back converges with the other', async () => {
      // Offline: the network is gone (new connections fail) and its open connection is cut.
      const conn = await b.page.textContent('#doc-conn');
      expect(conn).toMatch(/^conn_/);
      await b.context.setOffline(true);
      expect((await fetch(`${gw.http}/v1/connections/${conn}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_API_KEY}` } })).status).toBe(200);
      await b.page.waitForSelector('#doc-status.wait');
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
      await b.page.waitForSelector('#doc-status.on', { timeout: 20_000 });
      const merged = await eventually(async () => {
        const [ta, tb] = await Promise.all([editorText(a.page), editorText(b.page)]);
        return ta === tb && ta.includes('[offline edit by Bea]') && ta.includes('[online edit by Ada]') ? ta : undefined;
      }, { label: 'the offline page to merge', timeoutMs: 20_000 });
      expect(merged, merged).toMatch(/^\[online edit by Ada\] /);
      expect(merged.endsWith(' [offline edit by Bea]')).toBe(true);
    });

    it("a Node editor on @signalbox/yjs sees the same text and the pages' carets; its edit and its y-codemirror.next caret show in both pages", async () => {
      const client = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: await gw.token({ sub: 'usr_node_editor' }), format: msgpack });
      const doc = new Y.Doc();
      const awareness = new Awareness(doc);
      const provider = new SignalboxProvider(client, `doc:${id}`, doc, { awareness });
      try {
        await client.connect();
        await provider.whenSynced();
        const text = doc.getText('codemirror');
        expect(text.toString()).toBe(await editorText(a.page));
        // Ada's caret, in y-codemirror.next's awareness fields: after her '[online edit by Ada] '.
        const adaHead = () => {
          for (const st of awareness.getStates().values()) {
            const s = st as { user?: { name?: string }; cursor?: { head?: unknown } };
            if (s.user?.name !== 'Ada' || !s.cursor?.head) continue;
            return Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(s.cursor.head), doc)?.index;
          }
          return undefined;
        };
        expect(await eventually(() => adaHead(), { label: "Ada's caret in the Node editor's awareness" })).toBe('[online edit by Ada] '.length);
        text.insert(text.length, ' (node)');
        // A caret set the way y-codemirror.next sets it, after "Release".
        const at = Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, '[online edit by Ada] Release'.length));
        awareness.setLocalState({ user: { name: 'node', color: '#30bced', colorLight: '#30bced33' }, cursor: { anchor: at, head: at } });
        await eventually(async () => ((await editorText(a.page)).endsWith(' (node)') && (await editorText(b.page)).endsWith(' (node)') ? true : undefined), { label: "the Node editor's edit in both pages", detail: () => text.toString() });
        for (const { page } of [a, b]) {
          await page.waitForSelector('#editor .sb-caret-name >> text=node');
          await page.waitForSelector('#doc-peers li >> text=node');
        }
      } finally {
        provider.destroy();
        client.disconnect();
      }
    });

    it('the documents list shows the document with its editors', async () => {
      await go(a.page, '#/documents');
      const row = await a.page.waitForSelector(`tr[data-doc="${id}"]`);
      expect(await row.textContent()).toContain(`doc:${id}`);
      await a.page.waitForSelector('#doc-summary >> text=/1 document/');
      await shot(a.page, 'documents');
      // Back to the editor from the list: the same text, synced again.
      await a.page.click(`tr[data-doc="${id}"] a`);
      await a.page.waitForSelector('#doc-synced.on');
      await eventually(async () => ((await editorText(a.page)) === (await editorText(b.page)) ? true : undefined), { label: 'the reopened editor to show the text' });
      // The name was kept in the browser: the reopened editor is Ada again, on both pages.
      expect(await a.page.inputValue('input[name="editorName"]')).toBe('Ada');
      await b.page.waitForSelector('#doc-peers li >> text=Ada');
    });

    it('fits at 400 px: the list and a document page do not overflow sideways, and the editor edits', async () => {
      const narrow = await openConsole(browser, gw.http, TEST_API_KEY, { width: 400 });
      const fits = () => narrow.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
      try {
        await go(narrow.page, '#/documents');
        await narrow.page.waitForSelector(`tr[data-doc="${id}"]`);
        expect(await fits()).toBe(true);
        await go(narrow.page, `#/documents/${id}`);
        await narrow.page.waitForSelector('#doc-synced.on');
        expect(await fits()).toBe(true);
        await narrow.page.click('#editor .cm-content');
        await narrow.page.keyboard.press('Control+End');
        await narrow.page.keyboard.type(' (phone)');
        await eventually(async () => ((await editorText(a.page)).endsWith(' (phone)') ? true : undefined), { label: "the narrow page's edit in Ada's" });
        expect(await fits()).toBe(true);
        expect(narrow.cspViolations).toEqual([]);
        expect(narrow.errors).toEqual([]);
      } finally {
        await narrow.context.close();
      }
    });

    it("runs under the console's CSP: adopted style sheets in its shadow root, no <style>, no violation, no error", async () => {
      const res = await fetch(`${gw.http}/console`);
      expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(CONSOLE_CSP).toContain("style-src 'self'");
      // The editor came as its own chunk, content-hashed and cached for good; an unknown one is a 404.
      const chunk = await a.page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).find((n) => /\/console\/chunks\/editor-[A-Za-z0-9_-]+\.js$/.test(n)));
      expect(chunk).toBeDefined();
      const got = await fetch(chunk!);
      expect(got.status).toBe(200);
      expect(got.headers.get('content-type')).toMatch(/^text\/javascript/);
      expect(got.headers.get('cache-control')).toContain('immutable');
      expect((await fetch(`${gw.http}/console/chunks/editor-NOPE.js`)).status).toBe(404);
      for (const { page } of [a, b]) {
        const styles = await page.evaluate(() => {
          const root = document.querySelector('#editor')?.shadowRoot;
          return {
            adopted: root?.adoptedStyleSheets.length ?? 0,
            styleElements: document.querySelectorAll('style').length + (root?.querySelectorAll('style').length ?? 0),
            // CodeMirror's own rules and remote-cursors.ts's are in the adopted sheets.
            caretRule: [...(root?.adoptedStyleSheets ?? [])].some((sh) => [...sh.cssRules].some((r) => r.cssText.includes('.sb-caret-name'))),
          };
        });
        expect(styles.adopted).toBeGreaterThan(0);
        expect(styles.caretRule).toBe(true);
        expect(styles.styleElements).toBe(0);
      }
      // Bea's caret on Ada's reopened page (her awareness state, sent again when Ada's editor
      // joined) is coloured by those rules, through its class, not by a style attribute.
      // (CodeMirror sets its own layout through element.style, which the CSP allows; a refused
      // style attribute would be a violation below.)
      await a.page.waitForSelector('#editor .sb-caret-name >> text=Bea');
      const caret = await a.page.evaluate(() => {
        const c = document.querySelector('#editor')!.shadowRoot!.querySelector('.sb-caret')!;
        const tag = c.querySelector('.sb-caret-name')!;
        return { style: c.getAttribute('style'), border: getComputedStyle(c).borderLeftColor, tag: getComputedStyle(tag).backgroundColor, position: getComputedStyle(tag).position };
      });
      expect(caret.style).toBeNull();
      expect(caret.position).toBe('absolute');
      expect(caret.tag).toMatch(/^rgb\(/);
      expect(caret.border).toBe(caret.tag);
      expect(a.cspViolations).toEqual([]);
      expect(b.cspViolations).toEqual([]);
      // Offline, the page logs its failed reconnects; nothing else.
      const offlineNoise = /WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED/;
      expect(a.errors.filter((e) => !offlineNoise.test(e))).toEqual([]);
      expect(b.errors.filter((e) => !offlineNoise.test(e))).toEqual([]);
      // The watch works: a <style> the CSP refuses is reported (so the empty lists above mean something).
      await b.page.evaluate(() => {
        const el = document.createElement('style');
        el.textContent = 'body { color: red; }';
        document.head.append(el);
      });
      await eventually(() => (b.cspViolations.some((v) => v.startsWith('style-src')) ? true : undefined), { label: 'the planted <style> to be reported', detail: () => JSON.stringify(b.cspViolations) });
    });
  });
});
