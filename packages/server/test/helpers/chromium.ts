/**
 * Debian's chromium for the browser tests (through playwright-core). Where it is missing: under
 * CI=true the suite fails (the repo's scripts/install-test-deps.sh installs it); elsewhere it is
 * skipped with one line saying so, never silently.
 */
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';

export const CHROMIUM_PATH: string | undefined = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

/** Flags for headless chromium in a container. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** `describe` when chromium is there; a failing test under CI; a skip with one warning line elsewhere. */
export function describeWithChromium(name: string, body: (executablePath: string) => void): void {
  if (CHROMIUM_PATH) {
    describe(name, () => body(CHROMIUM_PATH));
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs chromium', () => {
        throw new Error('chromium not found: run scripts/install-test-deps.sh');
      });
    });
  } else {
    console.warn(`[${name}] SKIPPED: no chromium (bash scripts/install-test-deps.sh installs Debian's)`);
    describe.skip(name, () => body(''));
  }
}
