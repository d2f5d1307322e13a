// Gateways as child processes on loopback, for the benches that start their own (agent, rpc, yjs):
// `signalbox serve` from the build, a free port, one JWT secret shared by every node of the run,
// the nodes SIGKILLed if the bench exits without stopping them.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../packages/server/dist/cli.js', import.meta.url));
/** The JWT secret of every node this process starts (mint tokens with it). */
export const SECRET = randomBytes(24).toString('hex');
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts a node on `broker` ('memory' or a redis:// URL) with Redis key prefix `prefix`, default
 * settings but no live metrics and no per-IP cap (the bench's clients share one address), plus
 * `env`; resolves with `{port, child}` once `/readyz` answers 200.
 */
export async function startNode(broker, prefix, env = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, SIGNALBOX_HOST: '127.0.0.1', SIGNALBOX_PORT: String(port), SIGNALBOX_BROKER: broker,
      SIGNALBOX_REDIS_PREFIX: prefix, SIGNALBOX_JWT_SECRET: SECRET, SIGNALBOX_LOG_LEVEL: 'warn', SIGNALBOX_METRICS_INTERVAL: '0',
      SIGNALBOX_MAX_CONNECTIONS_PER_IP: '0', ...env,
    },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) return { port, child };
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`node on ${port} did not start`);
}

/** SIGTERM (the node drains) and wait for it to exit. */
export function stopNode(node) {
  node.child.kill('SIGTERM');
  return new Promise((r) => (node.child.exitCode !== null ? r() : node.child.once('exit', r)));
}
