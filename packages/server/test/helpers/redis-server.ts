/**
 * A private redis-server process for fault tests: its own loopback port and data directory,
 * killed (SIGKILL), paused (SIGSTOP) and restarted at will. Every instance must be `stop()`ped;
 * a process-exit hook kills any that a crashed test left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'vitest';
import { IN_CI } from './redis.js';

/** redis-server binary: REDIS_SERVER_BIN, /usr/bin/redis-server, /usr/local/bin/redis-server, else null. */
export function findRedisServerBinary(): string | null {
  const candidates = [process.env.REDIS_SERVER_BIN, '/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  return candidates.find((c): c is string => !!c && existsSync(c)) ?? null;
}

/** A loopback TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServerOptions {
  /** Persist every write (appendonly yes, appendfsync always), so a restart keeps the data. */
  persistent: boolean;
  /** How long to wait for "Ready to accept connections". Default 10 s. */
  startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class RedisServerProcess {
  readonly url: string;
  private child: ChildProcess | null = null;
  private paused = false;

  private constructor(
    readonly bin: string,
    readonly port: number,
    readonly dir: string,
    private readonly opts: RedisServerOptions,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start(opts: RedisServerOptions): Promise<RedisServerProcess> {
    const bin = findRedisServerBinary();
    if (!bin) throw new Error('redis-server not found (set REDIS_SERVER_BIN)');
    const dir = mkdtempSync(path.join(tmpdir(), 'signalbox-redis-'));
    const server = new RedisServerProcess(bin, await freePort(), dir, opts);
    await server.spawn();
    return server;
  }

  /** Kills the process with SIGKILL (no shutdown, no save) and waits until it is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (this.paused) child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
    this.paused = false;
  }

  /** Starts again on the same port. `keepData: false` wipes the data directory first. */
  async restart(keepData: boolean): Promise<void> {
    if (this.child) throw new Error('redis-server still running; kill9() first');
    if (!keepData) rmSync(this.dir, { recursive: true, force: true });
    await this.spawn();
  }

  /** SIGSTOP: the process keeps its sockets (TCP up) but answers nothing — a hung Redis. */
  pause(): void {
    this.child?.kill('SIGSTOP');
    this.paused = !!this.child;
  }

  resume(): void {
    this.child?.kill('SIGCONT');
    this.paused = false;
  }

  /** Kills the process (resuming it first if paused) and removes its data directory. */
  async stop(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawn(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', this.opts.persistent ? 'yes' : 'no',
      '--appendfsync', 'always',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--loglevel', 'notice',
    ];
    // restart(false) wiped the directory.
    mkdirSync(this.dir, { recursive: true });
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      live.add(child);
      let output = '';
      const timer = setTimeout(() => fail(new Error(`redis-server on port ${this.port} not ready within ${this.opts.startTimeoutMs ?? 10_000} ms:\n${output}`)), this.opts.startTimeoutMs ?? 10_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (/Ready to accept connections/.test(output)) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          // Keep draining so a chatty server never blocks on a full pipe.
          child.stdout?.resume();
          resolve();
        }
      };
      const fail = (err: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
      child.once('exit', (code, signal) => {
        live.delete(child);
        if (this.child === child) this.child = null;
        clearTimeout(timer);
        // Rejecting an already-settled promise is a no-op: this only matters during startup.
        reject(new Error(`redis-server exited (code ${code}, signal ${signal}) before it was ready:\n${output}`));
      });
    });
  }
}

/**
 * `describe` that needs a redis-server binary (for a private server the test may kill): runs when
 * there is one; fails under CI=true when not; skips elsewhere, saying why.
 */
export function describeWithRedisServer(name: string, body: () => void): void {
  if (findRedisServerBinary()) {
    describe(name, body);
  } else if (IN_CI) {
    describe(name, () => {
      it('needs redis-server (CI=true)', () => {
        throw new Error('redis-server binary not found (looked at REDIS_SERVER_BIN, /usr/bin, /usr/local/bin); required under CI=true.');
      });
    });
  } else {
    console.warn(`[skip] ${name}: redis-server binary not found (set REDIS_SERVER_BIN).`);
    describe.skipIf(true)(name, body);
  }
}
