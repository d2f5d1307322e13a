/**
 * The one Redis connection factory: reconnect delays are exponential, capped and jittered, and a
 * connection's status changes are logged once each (not once per failed reconnect attempt).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisConnection, reconnectDelay, type RedisLogger } from '../src/redis/connection.js';
import { RedisServerProcess, describeWithRedisServer } from './helpers/redis-server.js';
import { until } from './helpers/wait.js';

describe('reconnectDelay', () => {
  it('grows exponentially from the base, is capped, and is jittered within [ceiling/2, ceiling]', () => {
    for (const [times, ceiling] of [[1, 50], [2, 100], [3, 200], [6, 1600], [7, 2000], [40, 2000]] as const) {
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const d = reconnectDelay(times, 50, 2000);
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
        seen.add(d);
      }
      // Jittered: nodes that lost the same Redis do not retry in lockstep.
      expect(seen.size).toBeGreaterThan(5);
    }
  });
});

class RecordingLogger implements RedisLogger {
  readonly lines: { level: string; obj: object; msg: string }[] = [];
  info(obj: object, msg: string): void {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg: string): void {
    this.lines.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg: string): void {
    this.lines.push({ level: 'error', obj, msg });
  }
}

describeWithRedisServer('RedisConnection status (private redis-server)', () => {
  let server: RedisServerProcess;
  beforeAll(async () => {
    server = await RedisServerProcess.start({ persistent: false });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('logs one line per status change: ready, lost (with the cause and the impact), ready again', { timeout: 30_000 }, async () => {
    const log = new RecordingLogger();
    const conn = new RedisConnection({ url: server.url, name: 'test-conn', logger: log, reconnectBaseMs: 20, reconnectMaxMs: 50, impact: 'tests paused' });
    let attempts = 0;
    conn.client.on('reconnecting', () => attempts++);
    try {
      await conn.connect();
      expect(conn.ready).toBe(true);
      await server.kill9();
      // Several failed reconnect attempts while Redis is down: still one "lost" line.
      await until(() => attempts >= 4, { label: '4 reconnect attempts' });
      await server.restart(false);
      await until(() => conn.ready, { label: 'the connection to be ready again', timeoutMs: 10_000 });
      expect(log.lines.map((l) => [l.level, l.msg])).toEqual([
        ['info', 'redis: test-conn ready'],
        ['warn', 'redis: test-conn connection lost; tests paused'],
        ['info', 'redis: test-conn ready'],
      ]);
      expect(log.lines[1]!.obj).toMatchObject({ redis: 'test-conn' });
      expect(conn.lastError).not.toBeNull();
      await conn.close();
      expect(conn.client.status).toBe('end');
      // Closing on purpose is not a loss.
      expect(log.lines.length).toBe(3);
    } finally {
      await conn.close();
    }
  });
});
