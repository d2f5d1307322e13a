/**
 * Multi-node harness: real gateway processes (`node packages/server/dist/cli.js serve`) on
 * loopback sharing one Redis, a paced HTTP publisher that retries the same id on failure, and SDK
 * subscribers that record every publication they are handed.
 *
 * Needs a build (`npx tsc -b packages/server`); the tests never build. Nothing here sleeps to
 * synchronise: waits are for events or for a condition polled against a deadline. Every process
 * spawned here is killed by `stop()`/`kill()`, and by a process-exit hook if a test crashed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SignalboxClient, type PublicationMessage, type StateChange, type Subscription } from '../../../client/src/node.js';
import { mintToken } from '../../src/auth/jwt.js';
import { CLI_PATH } from './core-process.js';
import { freePort } from './redis-server.js';
import { until } from './wait.js';

export const CLUSTER_SECRET = 'cluster-test-secret-0123456789abcdef';
export const CLUSTER_API_KEY = 'cluster-test-api-key-0123456789';

const spawned = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of spawned) child.kill('SIGKILL');
});

/** Resolves after `ms` (pacing only, never to wait for something to happen: that is `until`, helpers/wait.ts). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface GatewayProcessOptions {
  /** `redis://127.0.0.1:port` */
  broker: string;
  /** SIGNALBOX_REDIS_PREFIX, unique per test. */
  prefix: string;
  /** Extra SIGNALBOX_* variables. */
  env?: Record<string, string>;
  /** How long to wait for `/readyz` 200, per attempt (3 attempts). Default 30 s. */
  readyTimeoutMs?: number;
}

/** One gateway node as a child process. */
export class GatewayProcess {
  readonly http: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';

  private constructor(
    readonly name: string,
    readonly port: number,
    readonly child: ChildProcess,
  ) {
    this.http = `http://127.0.0.1:${port}`;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const keep = (chunk: Buffer): void => {
      // The last 64 kB of output, for failure messages.
      this.out = (this.out + chunk.toString()).slice(-65_536);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /**
   * Spawns a node on a free port and waits until `/readyz` answers 200. A node that exits (a port
   * taken between the probe and the bind) or is not ready in time is killed and replaced by a fresh
   * one on another port, up to 3 attempts: on a starved machine a node spawned early in a test
   * worker's life has been seen to sit idle without listening (see the commit message).
   */
  static async start(name: string, opts: GatewayProcessOptions): Promise<GatewayProcess> {
    if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: build first (npx tsc -b packages/server)`);
    const failures: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const node = GatewayProcess.spawn(name, await freePort(), opts);
      try {
        await node.waitReady(200, opts.readyTimeoutMs ?? 30_000);
        return node;
      } catch (err) {
        await node.kill();
        failures.push(`attempt ${attempt}: ${err instanceof Error ? err.message : String(err)}`);
        if (attempt >= 3) throw new Error(`${name} did not start:\n${failures.join('\n')}`, { cause: err });
      }
    }
  }

  private static spawn(name: string, port: number, opts: GatewayProcessOptions): GatewayProcess {
    const env: NodeJS.ProcessEnv = {};
    for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, {
      SIGNALBOX_HOST: '127.0.0.1',
      SIGNALBOX_PORT: String(port),
      SIGNALBOX_BROKER: opts.broker,
      SIGNALBOX_REDIS_PREFIX: opts.prefix,
      SIGNALBOX_JWT_SECRET: CLUSTER_SECRET,
      SIGNALBOX_API_KEY: CLUSTER_API_KEY,
      SIGNALBOX_MAX_CONNECTIONS_PER_IP: '0',
      SIGNALBOX_LOG_LEVEL: 'warn',
      SIGNALBOX_HEARTBEAT_INTERVAL: '2s',
      SIGNALBOX_DRAIN_TIMEOUT: '1s',
      // The CLI shuts itself down when its parent changes (it watches for this under npm): a test
      // worker that is killed outright leaves no gateway behind.
      npm_lifecycle_event: 'cluster-test',
      ...opts.env,
    });
    const child = spawn(process.execPath, [CLI_PATH, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    spawned.add(child);
    child.once('exit', () => spawned.delete(child));
    return new GatewayProcess(name, port, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** ws://127.0.0.1:port/v1/ws/prps (or another path). */
  wsUrl(path = '/v1/ws/prps'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  output(): string {
    return this.out;
  }

  /** Sends `signal` (default SIGKILL) and waits until the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.alive) this.child.kill(signal);
    await this.exited;
  }

  /** GET /readyz: the status, or 0 when the node does not answer. */
  async readyz(): Promise<number> {
    try {
      const res = await fetch(`${this.http}/readyz`, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  }

  async waitReady(status: 200 | 503, timeoutMs = 30_000): Promise<void> {
    await until(async () => {
      if (!this.alive) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.out}`);
      return (await this.readyz()) === status;
    }, { label: `${this.name} /readyz ${status}`, timeoutMs, intervalMs: 50, detail: () => `${this.name} pid ${this.pid} port ${this.port} alive ${this.alive}; output:\n${this.out}` });
  }

  /** POST /v1/publish with the API key. */
  async publish(body: Record<string, unknown>, timeoutMs = 10_000): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.http}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLUSTER_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** GET /v1/stats. */
  async stats(): Promise<{ connections: number; brokerReady: boolean }> {
    const res = await fetch(`${this.http}/v1/stats`, { headers: { authorization: `Bearer ${CLUSTER_API_KEY}` }, signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { connections: number; brokerReady: boolean };
  }
}

/** Starts `count` nodes in parallel; if one fails, the others are killed. */
export async function startNodes(count: number, opts: GatewayProcessOptions): Promise<GatewayProcess[]> {
  const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => GatewayProcess.start(`node${String.fromCharCode(65 + i)}`, opts)));
  const nodes = results.filter((r): r is PromiseFulfilledResult<GatewayProcess> => r.status === 'fulfilled').map((r) => r.value);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw failed.reason;
  }
  return nodes;
}

export function clusterToken(sub = 'usr_cluster'): Promise<string> {
  return mintToken(CLUSTER_SECRET, { sub, channels: ['*'], publish: ['*'], handle: ['*'], call: ['*'], ttlSeconds: 3600 });
}

// ---- Publisher -----------------------------------------------------------------------------------

export interface PublishedAck {
  seq: number;
  id: string;
  offset: number;
  epoch: string;
  duplicate: boolean;
  node: string;
}

export interface HttpPublisherOptions {
  /** Most publishes started per second. */
  rate: number;
  /**
   * Publishes in flight at once. 1: strictly one after the other, so offsets follow seq order. More
   * keeps the rate on a loaded machine; the offset order is then the ack order, which the checks use.
   */
  window?: number;
  type?: string;
  /** A message still failing after this long fails the publisher. Default 60 s. */
  perMessageTimeoutMs?: number;
}

/**
 * Publishes `count` messages on `channel` over HTTP, paced at `rate` per second, round-robin over
 * the nodes `targets()` returns. Message `seq` has id `${idPrefix}${seq}` and data `{seq}`. A failed
 * publish (refused connection, 5xx, timeout) is retried with the SAME id on the next node: the id is
 * the idempotency key, so a publish whose first attempt did land is not stored twice.
 */
export class HttpPublisher {
  /** seq -> ack. */
  readonly acks = new Map<number, PublishedAck>();
  /** Failed attempts, by status (0: no answer). */
  readonly failures = new Map<number, number>();
  /** Seqs whose first attempt failed: their outcome was unknown for a while. */
  readonly retried = new Set<number>();
  readonly done: Promise<void>;
  private error: unknown = null;
  private stopped = false;
  private rr = 0;

  constructor(
    private readonly targets: () => GatewayProcess[],
    readonly channel: string,
    readonly count: number,
    readonly idPrefix: string,
    private readonly opts: HttpPublisherOptions,
  ) {
    this.done = this.run();
    this.done.catch(() => {});
  }

  idOf(seq: number): string {
    return `${this.idPrefix}${seq}`;
  }

  get acked(): number {
    return this.acks.size;
  }

  get failureCount(): number {
    let n = 0;
    for (const v of this.failures.values()) n += v;
    return n;
  }

  /** Acks in stream order: by epoch (in the order epochs were first acknowledged), then offset. */
  streamOrder(): PublishedAck[] {
    const epochs = new Map<string, number>();
    for (const a of [...this.acks.values()].sort((x, y) => x.seq - y.seq)) if (!epochs.has(a.epoch)) epochs.set(a.epoch, epochs.size);
    return [...this.acks.values()].sort((x, y) => epochs.get(x.epoch)! - epochs.get(y.epoch)! || x.offset - y.offset);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Resolves once `n` messages are acknowledged (fails if the publisher fails first). */
  waitAcked(n: number, timeoutMs: number): Promise<void> {
    return until(() => {
      if (this.error) throw this.error;
      return this.acks.size >= n;
    }, { label: `${n} acked publishes`, timeoutMs, intervalMs: 50, detail: () => `acked ${this.acks.size}, failures ${JSON.stringify([...this.failures])}` });
  }

  private async run(): Promise<void> {
    const t0 = Date.now();
    const interval = 1000 / this.opts.rate;
    const window = this.opts.window ?? 1;
    const inFlight = new Set<Promise<void>>();
    for (let seq = 1; seq <= this.count; seq++) {
      while (inFlight.size >= window) await Promise.race(inFlight);
      if (this.error) throw this.error;
      if (this.stopped) break;
      const due = t0 + (seq - 1) * interval;
      const now = Date.now();
      if (due > now) await delay(due - now);
      const p: Promise<void> = this.publishOne(seq).then(
        () => void inFlight.delete(p),
        (err: unknown) => {
          this.error ??= err;
          inFlight.delete(p);
        },
      );
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    if (this.error) throw this.error;
  }

  private async publishOne(seq: number): Promise<void> {
    const id = this.idOf(seq);
    const deadline = Date.now() + (this.opts.perMessageTimeoutMs ?? 60_000);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return;
      const nodes = this.targets();
      const node = nodes.length > 0 ? nodes[this.rr++ % nodes.length] : undefined;
      let status = 0;
      if (node) {
        try {
          const res = await node.publish({ channel: this.channel, id, type: this.opts.type ?? 'tick', data: { seq } }, 5000);
          status = res.status;
          if (status === 200) {
            const b = res.body as { offset: number; epoch: string; duplicate: boolean };
            this.acks.set(seq, { seq, id, offset: b.offset, epoch: b.epoch, duplicate: b.duplicate, node: node.name });
            return;
          }
        } catch {
          status = 0;
        }
      }
      this.failures.set(status, (this.failures.get(status) ?? 0) + 1);
      this.retried.add(seq);
      if (Date.now() > deadline) throw new Error(`publish ${id} kept failing (last status ${status})`);
      // Back off a little, so an outage is not a busy loop.
      await delay(Math.min(200, 20 * (attempt + 1)));
    }
  }
}

// ---- Subscribers -----------------------------------------------------------------------------------

export type SubscriberEvent =
  | { kind: 'pub'; seq: number; id: string; offset: number; epoch: string }
  | { kind: 'recovery_failed'; reason: string };

/**
 * One SDK client subscribed to one channel; records every publication its subscription hands over
 * (in order) and every `recovery_failed`.
 */
export class RecordingSubscriber {
  readonly client: SignalboxClient;
  readonly sub: Subscription;
  readonly events: SubscriberEvent[] = [];
  /** `subscribed` events after the first, and whether each recovered. */
  readonly resubscribes: { recovered: boolean | undefined; reason?: string }[] = [];
  readonly states: StateChange[] = [];
  /** Publications whose data.seq does not match their id: must stay empty. */
  readonly malformed: PublicationMessage[] = [];
  readonly subscribed: Promise<void>;
  /** Position of the last publication handed over. */
  last: { epoch: string; offset: number } | null = null;
  pubCount = 0;

  constructor(
    readonly label: string,
    urls: string[],
    token: string,
    channel: string,
    private readonly idPrefix: string,
  ) {
    this.client = new SignalboxClient({
      url: urls,
      token,
      reconnectInterval: 100,
      maxReconnectInterval: 1000,
      connectTimeout: 15_000,
      pingInterval: 5000,
      pongTimeout: 5000,
    });
    this.client.on('error', () => {});
    this.client.on('$state', (s) => {
      this.states.push(s);
    });
    this.sub = this.client.subscribe(channel);
    let first: () => void = () => {};
    this.subscribed = new Promise((resolve) => (first = resolve));
    this.sub.on('subscribed', (e) => {
      if (e.resubscribed) this.resubscribes.push({ recovered: e.recovered, ...(e.reason ? { reason: e.reason } : {}) });
      first();
    });
    this.sub.on('recovery_failed', (e) => {
      this.events.push({ kind: 'recovery_failed', reason: e.reason });
    });
    this.sub.on('publication', (m) => {
      const seq = (m.data as { seq?: unknown } | null)?.seq;
      if (typeof seq !== 'number' || m.id !== `${this.idPrefix}${seq}`) {
        this.malformed.push(m);
        return;
      }
      this.events.push({ kind: 'pub', seq, id: m.id, offset: m.offset, epoch: m.epoch });
      this.last = { epoch: m.epoch, offset: m.offset };
      this.pubCount++;
    });
  }

  connect(): Promise<void> {
    return this.client.connect();
  }

  /** Has the subscriber been handed the publication at `position`? */
  reached(position: { epoch: string; offset: number }): boolean {
    return this.last !== null && this.last.epoch === position.epoch && this.last.offset >= position.offset;
  }

  close(): void {
    this.client.disconnect();
  }
}

/** Creates `count` subscribers, subscriber i trying the URLs starting at `urls[i % urls.length]` (so they spread over the nodes). */
export async function startSubscribers(count: number, urls: string[], channel: string, idPrefix: string): Promise<RecordingSubscriber[]> {
  const token = await clusterToken();
  const subs: RecordingSubscriber[] = [];
  for (let i = 0; i < count; i++) {
    const k = i % urls.length;
    subs.push(new RecordingSubscriber(`sub${i}@${k}`, [...urls.slice(k), ...urls.slice(0, k)], token, channel, idPrefix));
  }
  // Connect in batches: 500 simultaneous upgrades on a 2-core machine only slow each other down.
  for (let i = 0; i < subs.length; i += 100) {
    const batch = subs.slice(i, i + 100);
    batch.forEach((s) => void s.connect().catch(() => {}));
    await until(async () => {
      await Promise.race([Promise.all(batch.map((s) => s.subscribed)), delay(200)]);
      return batch.every((s) => s.sub.state === 'subscribed');
    }, {
      label: `subscribers ${i}..${i + batch.length - 1} subscribed`,
      timeoutMs: 120_000,
      intervalMs: 50,
      detail: () => batch.filter((s) => s.sub.state !== 'subscribed').map((s) => `${s.label}: ${s.client.state} ${JSON.stringify(s.states.slice(-3))}`).slice(0, 10).join('\n'),
    });
  }
  return subs;
}

/**
 * Checks one subscriber's record against the publisher's acknowledged stream (`order`: acks in
 * stream order, see {@link HttpPublisher.streamOrder}).
 *
 * `exact`: the record is exactly `order`, publication by publication (id, epoch, offset): every
 * message once, in order, and no `recovery_failed`.
 *
 * `announced`: no silent gap. The record's positions only go forward (epoch order, then offset);
 * between two consecutive publications the offset is +1 in the same epoch unless a
 * `recovery_failed` came in between; a publication at an acknowledged position carries the id
 * acknowledged there; the record starts at the first acknowledged publication and ends at the last;
 * and every acknowledged publication missing from the record lies in a gap announced by
 * `recovery_failed`. An id may be seen again after `recovery_failed` only if it was in `retried`
 * (its first attempt's outcome was unknown, and a Redis that lost its data lost the id too).
 */
export function checkRecord(events: SubscriberEvent[], order: PublishedAck[], mode: 'exact' | { announced: true; retried: ReadonlySet<number> }): string[] {
  const problems: string[] = [];
  if (order.length === 0) return ['nothing was acknowledged'];
  const epochIdx = new Map<string, number>();
  for (const a of order) if (!epochIdx.has(a.epoch)) epochIdx.set(a.epoch, epochIdx.size);
  const key = (epoch: string, offset: number): [number, number] => [epochIdx.get(epoch) ?? -1, offset];
  const cmp = (x: [number, number], y: [number, number]): number => x[0] - y[0] || x[1] - y[1];
  const ackAt = new Map(order.map((a) => [`${a.epoch}/${a.offset}`, a]));
  const pubs = events.filter((e): e is SubscriberEvent & { kind: 'pub' } => e.kind === 'pub');
  const markers = events.length - pubs.length;

  if (mode === 'exact') {
    if (markers > 0) problems.push(`${markers} recovery_failed: ${JSON.stringify(events.filter((e) => e.kind === 'recovery_failed'))}`);
    const n = Math.max(pubs.length, order.length);
    for (let i = 0; i < n && problems.length < 5; i++) {
      const got = pubs[i];
      const want = order[i];
      if (!got || !want || got.id !== want.id || got.epoch !== want.epoch || got.offset !== want.offset) {
        problems.push(`#${i}: got ${got ? `${got.id}@${got.epoch}/${got.offset}` : 'nothing'}, expected ${want ? `${want.id}@${want.epoch}/${want.offset}` : 'nothing'}`);
      }
    }
    return problems;
  }

  // Runs of publications not separated by recovery_failed.
  const runs: { first: [number, number]; last: [number, number] }[] = [];
  const seenIds = new Set<string>();
  let prev: (SubscriberEvent & { kind: 'pub' }) | null = null;
  let announced = false;
  for (const [i, e] of events.entries()) {
    if (e.kind === 'recovery_failed') {
      announced = true;
      continue;
    }
    const k = key(e.epoch, e.offset);
    if (k[0] < 0) problems.push(`#${i}: epoch ${e.epoch} of ${e.id} was never acknowledged`);
    const acked = ackAt.get(`${e.epoch}/${e.offset}`);
    if (acked && acked.id !== e.id) problems.push(`#${i}: ${e.id} at ${e.epoch}/${e.offset}, where ${acked.id} was acknowledged`);
    if (seenIds.has(e.id) && !(announced && mode.retried.has(e.seq))) problems.push(`#${i}: ${e.id} seen again`);
    seenIds.add(e.id);
    if (prev === null || announced) {
      if (prev !== null && cmp(k, key(prev.epoch, prev.offset)) <= 0) problems.push(`#${i}: ${e.epoch}/${e.offset} after ${prev.epoch}/${prev.offset}: went back`);
      runs.push({ first: k, last: k });
    } else {
      if (e.epoch !== prev.epoch || e.offset !== prev.offset + 1) problems.push(`#${i}: ${e.epoch}/${e.offset} after ${prev.epoch}/${prev.offset} without recovery_failed`);
      runs[runs.length - 1]!.last = k;
    }
    prev = e;
    announced = false;
  }
  if (runs.length === 0) return [...problems, 'no publication at all'];
  const firstAck = key(order[0]!.epoch, order[0]!.offset);
  const lastAck = key(order[order.length - 1]!.epoch, order[order.length - 1]!.offset);
  if (cmp(runs[0]!.first, firstAck) !== 0) problems.push(`starts at ${runs[0]!.first}, expected ${firstAck}`);
  if (cmp(runs[runs.length - 1]!.last, lastAck) !== 0) problems.push(`ends at ${runs[runs.length - 1]!.last}, expected ${lastAck}`);
  const inRecord = new Set(pubs.map((p) => `${p.epoch}/${p.offset}`));
  for (const a of order) {
    if (inRecord.has(`${a.epoch}/${a.offset}`)) continue;
    const k = key(a.epoch, a.offset);
    const covered = runs.some((r, i) => i + 1 < runs.length && cmp(r.last, k) < 0 && cmp(k, runs[i + 1]!.first) < 0);
    if (!covered) problems.push(`${a.id} (${a.epoch}/${a.offset}) missing, and not in an announced gap`);
    if (problems.length > 10) break;
  }
  return problems;
}

/** Problems of every subscriber, for one readable assertion. */
export function checkAll(subs: RecordingSubscriber[], check: (s: RecordingSubscriber) => string[], max = 20): string[] {
  const out: string[] = [];
  for (const s of subs) {
    const p = check(s);
    if (s.malformed.length > 0) p.push(`${s.malformed.length} malformed publications, first ${JSON.stringify(s.malformed[0])}`);
    for (const line of p.slice(0, 3)) out.push(`${s.label}: ${line}`);
    if (out.length >= max) break;
  }
  return out;
}

export { describeWithRedisServer } from './redis-server.js';
