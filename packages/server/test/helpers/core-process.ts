/**
 * Runs the built CLI (`packages/server/dist/cli.js`) as a real child process and lets a test
 * await lines of its output. Needs a build (`npx tsc -b packages/server`; `npm test` builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI every process-level test runs (this harness and helpers/cluster.ts). */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in stdout (already printed or future). */
  waitForStdout(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The process has exited and its output has been read to the end. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * A clean environment: no SIGNALBOX_* or npm variables leak in from the test runner, and HOME is
 * a fresh empty folder unless the test passes one (dev mode keeps its credentials under HOME: a
 * test must neither read the user's nor leave its own for another test).
 */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { HOME: freshHome() };
  for (const k of ['PATH', 'TMPDIR', 'SYSTEMROOT']) if (process.env[k] !== undefined) base[k] = process.env[k];
  return { ...base, ...env };
}

/** An empty folder to serve as a CLI process's HOME. */
export function freshHome(): string {
  return mkdtempSync(join(tmpdir(), 'signalbox-home-'));
}

export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: build first (npx tsc -b packages/server)`);
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stderr!.on('data', (chunk: string) => (err += chunk));
  // 'close', not 'exit': after 'exit' the stdio pipes may still hold unread output.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitForStdout(re, timeoutMs = 60_000) {
      const m = re.exec(out);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        const onExit = () => reject(new Error(`process exited while waiting for ${re}; stdout:\n${out}\nstderr:\n${err}`));
        child.once('exit', onExit);
        waiters.push({
          re,
          resolve: (match) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(match);
          },
        });
      });
    },
  };
}

/** Runs a CLI command to completion. */
export async function runCliToEnd(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const p = runCli(args, env);
  const { code, signal } = await p.exited;
  return { code, signal, stdout: p.stdout(), stderr: p.stderr() };
}
