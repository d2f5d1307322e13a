/**
 * The built console in a real browser, for the tests that drive it: build it once, open a signed-in
 * page, move between views, take screenshots.
 *
 * Screenshots go to test-output/console/ on every run (open them to look), and replace the ones in
 * docs/console/ when UPDATE_SCREENSHOTS=1: the docs then change only when someone means them to.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? `${ROOT}docs/console/` : `${ROOT}test-output/console/`;

/** The same build as `npm run build`: the server serves what it wrote (packages/server/dist/console). */
export function buildConsole(): void {
  execFileSync(process.execPath, [`${ROOT}apps/console/build.mjs`], { stdio: 'pipe' });
}

/** A console page and what its browser logged. */
export interface ConsolePage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions of the page. */
  errors: string[];
  /**
   * Content-Security-Policy violations the page reported (`securitypolicyviolation` events, from
   * the document and every shadow root in it): `directive blocked-uri source:line`.
   */
  cspViolations: string[];
}

export interface OpenConsoleOptions {
  /** Viewport, 1366 x 900 unless given. */
  width?: number;
  height?: number;
  /** Playwright's default timeout for the page's actions and waits, 10 s unless given. */
  timeoutMs?: number;
}

/** A new browser context with the console open and signed in with `apiKey` (its connection up). */
export async function openConsole(browser: Browser, origin: string, apiKey: string, opts: OpenConsoleOptions = {}): Promise<ConsolePage> {
  const { width = 1366, height = 900, timeoutMs = 10_000 } = opts;
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const cspViolations: string[] = [];
  await context.exposeBinding('__signalboxCspViolation', (_source, v: string) => { cspViolations.push(v); });
  await context.addInitScript(() => {
    // composed: a violation inside a shadow root reaches the document's listener.
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __signalboxCspViolation(v: string): void }).__signalboxCspViolation(
        `${e.effectiveDirective} ${e.blockedURI || '(inline)'} ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin}/console`);
  await page.fill('#credential', apiKey);
  await page.press('#credential', 'Enter');
  await page.waitForSelector('#conn-state.on');
  return { context, page, errors, cspViolations };
}

/** Moves the page to another view (`#/channels`), as a click on a link would. */
export async function go(page: Page, hash: string): Promise<void> {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

/** Writes `SHOTS/<name>.png`: the viewport, as a user sees it. */
export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: false });
}
