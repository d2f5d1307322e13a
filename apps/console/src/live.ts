/**
 * The console's one WebSocket: a `@signalbox/client` (it reconnects, resubscribes from the last
 * position and drops what it already delivered, so a view never misses or doubles a publication),
 * authenticated by a short-lived token minted for the session (`POST /console/token`, fetched again
 * before it expires and on every reconnect). Views share it: subscriptions are reference-counted,
 * and every message it sees is recorded for the Inspector.
 */
import { SignalboxClient, type ServerMessage, type SignalboxClientOptions, type StateChange, type Subscription } from '@signalbox/client';
import { api } from './api.js';
import { addSample, emptyState, isNodeSample, type MetricsState } from './metrics-model.js';

/** One message the console saw, numbered in arrival order. */
export interface SeenMessage {
  seq: number;
  /** When it arrived (ms since the epoch). */
  at: number;
  msg: ServerMessage;
}

/** Messages kept for the Inspector; older ones fall off. */
export const INSPECTOR_CAPACITY = 5000;

type Listener<T> = (value: T) => void;

/** A tiny multi-listener signal. */
export class Signal<T> {
  private readonly listeners = new Set<Listener<T>>();
  on(fn: Listener<T>): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  emit(value: T): void {
    for (const fn of this.listeners) {
      try {
        fn(value);
      } catch (err) {
        // One view's bug must not stop the others; shown in the page, not thrown into the SDK.
        reportError(err);
      }
    }
  }
}

/** Actions whose errors reject the request's promise, which the calling view handles. */
const ANSWERED_IN_VIEW = new Set(['publish', 'history', 'presence', 'rpc.call']);

/** Errors of the app itself, shown in its status bar. */
export const appErrors = new Signal<string>();
export function reportError(err: unknown): void {
  appErrors.emit(err instanceof Error ? err.message : String(err));
}

/** How the console's clients reach the gateway: this origin, a token minted for the session. */
export function clientOptions(): SignalboxClientOptions {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return {
    url: `${scheme}://${location.host}/v1/ws/prps`,
    getToken: async () => (await api<{ token: string }>('/console/token', { method: 'POST' })).token,
    // A console on a developer's machine: come back quickly after a restart.
    reconnectInterval: 250,
    maxReconnectInterval: 5000,
  };
}

/**
 * Closed by an administrator (4003, possibly this very console) or by the server: a console is a
 * viewer, it comes back. Not when retrying cannot help: a refused token (the session ends, the API
 * says 401) or an upgrade refused outright (an Origin allow-list without the console's origin).
 */
export function comeBack(client: SignalboxClient, stopped: () => boolean): void {
  client.on('$state', (change) => {
    const hopeless = change.reason === 'disconnect_called' || change.reason === 'auth_failed' || change.reason === 'upgrade_refused';
    if (!stopped() && (change.to === 'closed' || change.to === 'disconnected') && !hopeless) {
      setTimeout(() => { if (!stopped()) client.connect().catch(() => {}); }, 1000);
    }
  });
}

export class Live {
  readonly client: SignalboxClient;
  /** Every message seen, bounded. */
  readonly seen: SeenMessage[] = [];
  readonly onMessage = new Signal<SeenMessage>();
  readonly onState = new Signal<StateChange>();
  /** The last five minutes of `metrics.node` samples, kept while the page is open. */
  readonly metrics: MetricsState = emptyState();
  readonly onMetrics = new Signal<MetricsState>();
  private seq = 0;
  private readonly refs = new Map<string, number>();
  private stopped = false;

  constructor() {
    this.client = new SignalboxClient(clientOptions());
    this.client.on('*', (msg) => this.record(msg));
    this.client.on('$state', (change) => this.onState.emit(change));
    comeBack(this.client, () => this.stopped);
    this.client.on('error', (err) => {
      // An error that answers a publish, a query or a call also rejects that request, and the view
      // that made it shows it there: not a second time in the toast.
      if (err.replyTo !== undefined && ANSWERED_IN_VIEW.has(String(err.details.action))) return;
      reportError(`${err.code}: ${err.message}`);
    });
    // Metrics are kept from the start, whatever the view, so the Overview has the last minutes.
    const metrics = this.acquire('metrics');
    metrics.on('publication', (pub) => {
      if (pub.type !== 'metrics.node' || !isNodeSample(pub.data)) return;
      addSample(this.metrics, pub.data);
      this.onMetrics.emit(this.metrics);
    });
  }

  start(): void {
    this.client.connect().catch(() => {});
  }

  stop(): void {
    this.stopped = true;
    this.client.disconnect();
  }

  private record(msg: ServerMessage): void {
    const entry: SeenMessage = { seq: ++this.seq, at: Date.now(), msg };
    this.seen.push(entry);
    if (this.seen.length > INSPECTOR_CAPACITY) this.seen.splice(0, this.seen.length - INSPECTOR_CAPACITY);
    this.onMessage.emit(entry);
  }

  /** Channels the Inspector watches: subscribed for as long as the page is open, whatever the view. */
  readonly watched = new Set<string>();

  watch(channel: string): void {
    if (this.watched.has(channel)) return;
    this.watched.add(channel);
    this.acquire(channel);
  }

  unwatch(channel: string): void {
    if (!this.watched.delete(channel)) return;
    this.release(channel);
  }

  /** Subscribes (or shares the subscription to) `channel`; pair with {@link release}. */
  acquire<T = unknown>(channel: string): Subscription<T> {
    this.refs.set(channel, (this.refs.get(channel) ?? 0) + 1);
    return this.client.getSubscription<T>(channel) ?? this.client.subscribe<T>(channel);
  }

  /** Drops one reference; the last one unsubscribes. */
  release(channel: string): void {
    const n = (this.refs.get(channel) ?? 0) - 1;
    if (n > 0) {
      this.refs.set(channel, n);
      return;
    }
    this.refs.delete(channel);
    this.client.unsubscribe(channel);
  }
}
