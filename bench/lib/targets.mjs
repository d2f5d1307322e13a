// Server-side adapters: start a target (its own process or processes), publish into it, stop it.
// Every target exposes the same shape to the scenarios:
//   { name, pids, host, ports, publisher (child speaking {cmd:'publish'}), ctx (for generators), stop() }
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { forkReady, prioritise } from './ipc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const SIGNALBOX_CLI = path.join(repoRoot, 'packages/server/dist/cli.js');
export const TARGETS = ['signalbox', 'ws-coalesce', 'ws-naive', 'socketio', 'signalbox-base'];
/**
 * `signalbox-base`: another build of the gateway (BENCH_BASE_CLI=/path/to/packages/server/dist/cli.js),
 * to measure a change before and after in the same run: `--target signalbox-base,signalbox,ws-coalesce`.
 * BENCH_BASE_ENV="SIGNALBOX_METRICS_INTERVAL=0 ..." sets settings of that target only (the same build
 * with a setting changed, side by side).
 */
const BASE_CLI = process.env.BENCH_BASE_CLI;
const BASE_ENV = Object.fromEntries((process.env.BENCH_BASE_ENV ?? '').split(/\s+/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
export const PEERS = ['ws-coalesce', 'ws-naive', 'socketio'];

// Server processes started by this coordinator: killed if the coordinator exits or is interrupted
// before it stops them (gateways are spawned without IPC, so they would otherwise outlive it).
const live = new Set();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Node flags for the measured server processes only (gateways and peers, not the generators):
 * BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" or "--trace-gc". The Signalbox
 * publisher process takes its own, BENCH_PUBLISHER_NODE_ARGS.
 */
function serverNodeArgs() {
  return (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

export function signalboxAvailable() {
  return existsSync(SIGNALBOX_CLI);
}

/**
 * @param {string} name one of TARGETS
 * @param {object} o heartbeatMs, gateways (signalbox cluster size), broker (redis URL), namespace,
 *   publishMode ('ws' | 'http'), env (extra env for signalbox), peerPublisher ('internal' | 'external')
 */
export async function startTarget(name, o = {}) {
  if (name === 'signalbox') return startSignalbox(o);
  if (name === 'signalbox-base') {
    if (!BASE_CLI || !existsSync(BASE_CLI)) throw new Error('signalbox-base needs BENCH_BASE_CLI, the cli.js of the build to compare with');
    return startSignalbox({ ...o, cli: BASE_CLI, name: 'signalbox-base', env: BASE_ENV });
  }
  if (!PEERS.includes(name)) throw new Error(`unknown target ${name}`);
  const child = await forkReady(path.join(repoRoot, 'bench/servers', `${name}.mjs`), {
    env: { BENCH_PORT: '0', BENCH_HEARTBEAT_MS: String(o.heartbeatMs ?? 0) },
    execArgv: serverNodeArgs(),
  });
  track(child);
  // peerPublisher 'external': publications come from another process over a WebSocket, as they
  // do for Signalbox; 'internal' (default): the paced loop runs inside the peer's own process.
  const external = o.peerPublisher === 'external'
    ? track(await forkReady(path.join(repoRoot, 'bench/servers/peer-publisher.mjs'), { env: { BENCH_PORT: String(child.ready.port), BENCH_TARGET: name } }))
    : null;
  return {
    name,
    host: '127.0.0.1',
    ports: [child.ready.port],
    pids: [child.pid],
    publisher: external ?? child,
    ...(external ? { publisherPid: external.pid } : {}),
    ctx: {},
    channelPrefix: 'bench-',
    async stop() {
      if (external) {
        external.kill('SIGTERM');
        await onceExit(external, 3000);
      }
      child.kill('SIGTERM');
      await onceExit(child, 3000);
    },
  };
}

function onceExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function waitReady(port, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`signalbox on :${port} not ready (GET /readyz) in ${ms} ms`);
}

async function startSignalbox(o) {
  if (!signalboxAvailable()) {
    throw new Error(`Signalbox gateway not built (${path.relative(repoRoot, SIGNALBOX_CLI)} missing): run npm run build`);
  }
  const n = o.gateways ?? 1;
  const jwtSecret = randomBytes(24).toString('hex');
  const apiKey = randomBytes(24).toString('hex');
  const ns = o.namespace ?? 'session';
  const big = '100000000';
  const procs = [];
  const ports = [];
  for (let k = 0; k < n; k++) {
    const port = await freePort();
    const env = {
      ...process.env,
      SIGNALBOX_HOST: '127.0.0.1',
      SIGNALBOX_PORT: String(port),
      SIGNALBOX_JWT_SECRET: jwtSecret,
      SIGNALBOX_API_KEY: apiKey,
      SIGNALBOX_MAX_CONNECTIONS_PER_IP: '0',
      SIGNALBOX_LOG_LEVEL: 'warn',
      // The benchmark publisher is one connection publishing far above the default per-client limits.
      SIGNALBOX_PUBLISH_RATE: big,
      SIGNALBOX_PUBLISH_BURST: big,
      SIGNALBOX_NEW_CHANNEL_RATE: big,
      SIGNALBOX_MESSAGE_RATE: big,
      SIGNALBOX_MESSAGE_BURST: big,
      SIGNALBOX_MAX_PENDING_REQUESTS: '1000000',
      SIGNALBOX_MAX_SUBSCRIPTIONS: '1000',
      ...(o.heartbeatMs ? { SIGNALBOX_HEARTBEAT_INTERVAL: `${o.heartbeatMs}ms` } : {}),
      ...(o.broker ? { SIGNALBOX_BROKER: o.broker } : {}),
      ...(o.env ?? {}),
      ...(o.env ?? {}),
    };
    const child = spawn(process.execPath, [...serverNodeArgs(), o.cli ?? SIGNALBOX_CLI, 'serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    prioritise(child.pid);
    track(child);
    procs.push(child);
    ports.push(port);
  }
  const stopAll = async () => {
    for (const c of procs) c.kill('SIGTERM');
    await Promise.all(procs.map((c) => onceExit(c, 15_000)));
  };
  try {
    await Promise.all(ports.map((p) => waitReady(p)));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const publisher = await forkReady(path.join(repoRoot, 'bench/servers/signalbox-publisher.mjs'), {
    env: {
      BENCH_PORT: String(ports[0]),
      BENCH_JWT_SECRET: jwtSecret,
      BENCH_API_KEY: apiKey,
      BENCH_PUBLISH_MODE: o.publishMode ?? 'ws',
    },
    execArgv: (process.env.BENCH_PUBLISHER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  });
  return {
    name: o.name ?? 'signalbox',
    host: '127.0.0.1',
    ports,
    pids: procs.map((c) => c.pid),
    publisher,
    publisherPid: publisher.pid,
    ctx: { jwtSecret },
    channelPrefix: `${ns}:bench-`,
    async stop() {
      publisher.kill('SIGTERM');
      await onceExit(publisher, 3000);
      await stopAll();
    },
  };
}
