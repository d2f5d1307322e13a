/**
 * A real headless Chromium as the platform would run one: its own process, started with
 * `--remote-debugging-port=0`, its DevTools endpoint read from what it prints. The bridge attaches
 * to it over CDP like to any browser it did not start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_ARGS } from '../../../server/test/helpers/chromium.js';

export interface CdpBrowser {
  /** ws://127.0.0.1:port/devtools/browser/… */
  wsEndpoint: string;
  /** http://127.0.0.1:port */
  httpEndpoint: string;
  close(): Promise<void>;
}

/** Starts Chromium headless on `url` with remote debugging on a free port. */
export async function launchCdpBrowser(executablePath: string, url: string): Promise<CdpBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'sb-cdp-'));
  const child: ChildProcess = spawn(executablePath, [
    ...CHROMIUM_ARGS, '--headless=new', '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1', `--user-data-dir=${profile}`,
    '--window-size=800,600', url,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const wsEndpoint = await new Promise<string>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools endpoint within 15 s:\n${err.slice(-2000)}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited (${code}) before listening:\n${err.slice(-2000)}`));
    });
  });
  return {
    wsEndpoint,
    httpEndpoint: new URL(wsEndpoint).origin.replace(/^ws/, 'http'),
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await exited;
      }
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      } catch {
        // A helper process may still be writing its profile; the OS cleans tmp.
      }
    },
  };
}
