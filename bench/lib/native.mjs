// The native subscriber reader (bench/native/reader.c), used by `--client native`: built with the
// machine's C compiler on first use (bench/native/build/, git-ignored), and driven by gen.mjs
// over its stdin/stdout, one JSON line per command.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.join(here, '../native/reader.c');
export const READER = path.join(here, '../native/build/reader');

/** Compiles the reader if it is missing or older than its source. Throws with the compiler's output. */
export function ensureReader() {
  if (existsSync(READER) && statSync(READER).mtimeMs >= statSync(SOURCE).mtimeMs) return READER;
  mkdirSync(path.dirname(READER), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, ['-O2', '-Wall', '-o', READER, SOURCE], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`--client native needs a C compiler (${cc}): ${err.stderr?.toString() || err.message}`, { cause: err });
  }
  return READER;
}

/**
 * Starts the reader on the given socket file descriptors (they become its fds 3, 4, ...).
 * Returns { pid, command(line) -> Promise<object>, stop() }.
 */
export function startReader(fds, proto) {
  const child = spawn(READER, [String(fds.length), proto], { stdio: ['pipe', 'pipe', 'inherit', ...fds] });
  const waiting = [];
  let buf = '';
  let failed = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.resolve(JSON.parse(line));
    }
  });
  child.on('exit', (code, sig) => {
    failed = new Error(`native reader exited (${code ?? sig})`);
    for (const w of waiting.splice(0)) w.reject(failed);
  });
  const command = (line) => new Promise((resolve, reject) => {
    if (failed) return reject(failed);
    waiting.push({ resolve, reject });
    child.stdin.write(`${line}\n`);
  });
  // The reader's first line, {"ready":n}, says it has every descriptor in its epoll set.
  const ready = new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  return {
    pid: child.pid,
    ready,
    command,
    stop() {
      if (!failed) child.stdin.end('quit\n');
    },
  };
}
