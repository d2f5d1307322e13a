/**
 * Helpers for the delivery-guarantee suites (recovery, ordering, idempotency, binary, PRD-035,
 * history): publication filters, stream assertions, the HTTP history endpoint, and a Broker
 * wrapper that withholds chosen publications from the hub so it must repair the gap.
 */
import type { Publication } from '@signalbox/protocol';
import { MemoryBroker } from '../../src/broker/memory.js';
import type { Broker, BrokerHandler, HistoryQuery, HistoryResult, PublishRequest, PublishResult } from '../../src/broker/types.js';
import { DEFAULT_NAMESPACES, type NamespaceConfig } from '../../src/index.js';
import { TEST_API_KEY, type Msg, type TestClient, type TestGateway } from './gateway.js';

export interface Position {
  epoch: string;
  offset: number;
}

/** A namespace entry for `startGateway({ namespaces })`; defaults like the config file's. */
export function namespace(name: string, o: Partial<NamespaceConfig> = {}): NamespaceConfig {
  return {
    name, type: 'private', historySize: 100, historyTtlMs: 3600_000, clientPublish: true, presence: false,
    maxSubscribers: 0, allowBare: false, allowIds: true, ...o,
  };
}

/** The default namespace table plus `extra`. */
export function namespacesWith(...extra: NamespaceConfig[]): NamespaceConfig[] {
  return [...DEFAULT_NAMESPACES, ...extra];
}

/** Is `m` a publication (channel event) on `channel`, in either dialect? */
export function isPublication(m: Msg, channel?: string): boolean {
  if (typeof m.offset !== 'number' || typeof m.epoch !== 'string' || typeof m.channel !== 'string') return false;
  if (channel !== undefined && m.channel !== channel) return false;
  // PRD-035 channel events are `message`s; PRP ones carry the event type but never `replyTo`.
  return m.replyTo === undefined && (m.type === 'message' || m.event === undefined);
}

/** Publications on `channel` received so far, from message index `from`. */
export function publications(client: TestClient, channel: string, from = 0): Msg[] {
  return client.messages.slice(from).filter((m) => isPublication(m, channel));
}

/** Awaits the publication with this offset on `channel`. */
export function awaitOffset(client: TestClient, channel: string, offset: number, timeoutMs = 10_000): Promise<Msg> {
  return client.next((m) => isPublication(m, channel) && m.offset >= offset, timeoutMs);
}

/**
 * Asserts the offsets are exactly `first, first+1, ...` (no gap, no duplicate, in order) and
 * returns a description of the first violation, or null.
 */
export function streamViolation(offsets: number[], first: number): string | null {
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i] !== first + i) {
      const prev = i > 0 ? offsets[i - 1] : undefined;
      const kind = prev !== undefined && offsets[i]! <= prev ? 'duplicate/reorder' : 'gap';
      return `${kind} at index ${i}: expected offset ${first + i}, got ${offsets[i]} (previous ${prev}); offsets ${offsets.slice(Math.max(0, i - 3), i + 3).join(',')}`;
    }
  }
  return null;
}

/** PRP subscribe with optional recovery position; resolves with the confirmation. */
export function subscribePrp(client: TestClient, channel: string, since?: Position): Promise<Msg> {
  return client.request('subscribe', { channels: [since ? { channel, since } : channel] });
}

/** The per-channel outcome in a PRP confirmation. */
export function outcomeOf(confirmation: Msg, channel: string): Msg {
  const c = (confirmation.data?.channels as Msg[] | undefined)?.find((x) => x.channel === channel);
  if (!c) throw new Error(`no outcome for ${channel} in ${JSON.stringify(confirmation)}`);
  return c;
}

let prdSeq = 0;
/** Sends a PRD-035 request with a fresh id and awaits its reply (`replyTo` = id). */
export async function prdRequest(client: TestClient, msg: Msg, timeoutMs = 5000): Promise<Msg> {
  const id = (msg.id as string | undefined) ?? `prd_${++prdSeq}_${Date.now().toString(36)}`;
  const from = client.messages.length;
  client.send({ ...msg, id });
  return client.next((m) => m.replyTo === id, timeoutMs, from);
}

let pubSeq = 0;
/** A request id unique across clients (WS request ids are idempotency keys per channel). */
export function uniqueId(prefix = 'p'): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${++pubSeq}`;
}

/** PRP WebSocket publish with a unique id; resolves with the ack (or error). */
export async function publishWs(client: TestClient, channel: string, data: unknown, opts: { id?: string; type?: string } = {}): Promise<Msg> {
  const id = opts.id ?? uniqueId('ws');
  const from = client.messages.length;
  client.send({ id, action: 'publish', payload: { channel, type: opts.type ?? 'test.event', data } });
  return client.next((m) => m.replyTo === id, 5000, from);
}

export interface HttpResult {
  status: number;
  body: Msg;
}

/** GET /v1/channels/{channel}/history with the API key. */
export async function historyHttp(gw: TestGateway, channel: string, q: { since?: Position; limit?: number } = {}): Promise<HttpResult> {
  const params = new URLSearchParams();
  if (q.since) {
    params.set('since_epoch', q.since.epoch);
    params.set('since_offset', String(q.since.offset));
  }
  if (q.limit !== undefined) params.set('limit', String(q.limit));
  const qs = params.toString();
  const res = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history${qs ? `?${qs}` : ''}`, {
    headers: { authorization: `Bearer ${TEST_API_KEY}` },
  });
  return { status: res.status, body: (await res.json()) as Msg };
}

/** The channel's current stream position, via the history endpoint. */
export async function positionOf(gw: TestGateway, channel: string): Promise<Position> {
  const r = await historyHttp(gw, channel, { limit: 0 });
  if (r.status !== 200) throw new Error(`history ${channel}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.position as Position;
}

/** Publishes `n` HTTP publications, `concurrency` in flight at a time; returns the responses in offset order. */
export async function publishManyHttp(gw: TestGateway, channel: string, n: number, concurrency = 16, tag = 'm'): Promise<Msg[]> {
  const out: Msg[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await gw.publish({ channel, type: 'test.event', data: { tag, i } });
      if (r.status !== 200) throw new Error(`publish ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      out.push(r.body);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out.sort((a, b) => (a.offset as number) - (b.offset as number));
}

/** Asserting absence: see {@link quietPeriod} in wait.ts (the one definition). */
export { quietPeriod } from './wait.js';

/**
 * A MemoryBroker whose publications to the hub can be withheld: `withhold(channel, offset)` makes
 * the next publication with that position never reach `onPublication` (it is still stored in
 * history), like a pub/sub message lost in transit.
 */
export class WithholdingBroker implements Broker {
  readonly kind: string = 'memory-withholding';
  readonly inner: Broker;
  private readonly withheld = new Map<string, () => void>();
  private readonly holds = new Map<string, { taken: () => void; released: Promise<void> }>();

  constructor(inner: Broker = new MemoryBroker()) {
    this.inner = inner;
  }

  /**
   * Makes the next history read of `channel` take its snapshot at once but answer only when
   * `release()` is called (a slow engine round trip, under the test's control).
   */
  holdHistory(channel: string): { taken: Promise<void>; release: () => void } {
    let taken!: () => void;
    let release!: () => void;
    const takenP = new Promise<void>((r) => (taken = r));
    const released = new Promise<void>((r) => (release = r));
    this.holds.set(channel, { taken, released });
    return { taken: takenP, release };
  }

  /** Resolves when the publication was withheld. */
  withhold(channel: string, offset: number): Promise<void> {
    return new Promise((resolve) => this.withheld.set(`${channel}#${offset}`, resolve));
  }

  start(handler: BrokerHandler): Promise<void> {
    return this.inner.start({
      onPublication: (pub: Publication) => {
        const key = `${pub.channel}#${pub.offset}`;
        const done = this.withheld.get(key);
        if (done) {
          this.withheld.delete(key);
          done();
          return;
        }
        handler.onPublication(pub);
      },
      onResync: (channels) => handler.onResync(channels),
      onReadyChange: (ready) => handler.onReadyChange?.(ready),
    });
  }

  publish(req: PublishRequest): Promise<PublishResult> {
    return this.inner.publish(req);
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const hold = this.holds.get(channel);
    if (!hold) return this.inner.history(channel, query);
    this.holds.delete(channel);
    const result = await this.inner.history(channel, query);
    hold.taken();
    await hold.released;
    return result;
  }

  subscribe(channel: string): Promise<void> {
    return this.inner.subscribe(channel);
  }

  unsubscribe(channel: string): Promise<void> {
    return this.inner.unsubscribe(channel);
  }

  clearHistory(channel: string): Promise<void> {
    return this.inner.clearHistory(channel);
  }

  isReady(): boolean {
    return this.inner.isReady();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A MemoryBroker whose history reads take a few milliseconds, like a remote engine's: the
 * position is read either before or after the delay (alternately), so live publications arrive
 * while a subscriber is catching up and the hub must merge them at the seam.
 */
export class SlowHistoryBroker extends WithholdingBroker {
  override readonly kind: string = 'memory-slow-history';
  private calls = 0;

  constructor(private readonly delayMs = 3) {
    super();
  }

  override async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const wait = () => new Promise((r) => setTimeout(r, 1 + (this.calls % this.delayMs)));
    if (this.calls++ % 2 === 0) {
      const result = await this.inner.history(channel, query);
      await wait();
      return result;
    }
    await wait();
    return this.inner.history(channel, query);
  }
}
