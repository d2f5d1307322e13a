/**
 * The y-websocket-compatible endpoint, `/yjs/{doc}?token=…` (docs/collaborative-editing.md,
 * "y-websocket endpoint"): the unmodified `y-websocket` provider (`serverUrl` `ws://host:port/yjs`,
 * room name the document id) edits `doc:{doc}` like `@signalbox/yjs`, with the same token and
 * grants. No Y.Doc per connection:
 *
 * - The connection subscribes to `doc:{doc}` and `awareness:{doc}` through the hub like any
 *   subscriber (ordering, cross-node delivery, slow-consumer rules), joins the document's presence,
 *   then reads the document's retained stream (compacted snapshot + tail) and merges it
 *   (`mergeValid`, on the merge thread when large). Subscribed first, read second: anything published in between arrives twice,
 *   which Yjs ignores, and nothing can fall between the two.
 * - A client's SyncStep1 is answered with SyncStep2 = `diffUpdate(merged, its state vector)`, and
 *   the endpoint sends its own SyncStep1 (`encodeStateVectorFromUpdate(merged)`), so the client
 *   sends what the gateway lacks. A later SyncStep1 (y-websocket's `resyncInterval`) reads the
 *   stream again.
 * - The client's SyncStep2 and Update messages are published as `yjs.update` on the document
 *   through ChannelOperations (history, compaction, limits, publisher identity), one publish in
 *   flight per connection, updates arriving meanwhile merged into the next. A publish that fails
 *   closes the connection with a transient code: y-websocket reconnects and its sync exchange
 *   sends the update again.
 * - Live `yjs.update` publications are sent as sync Update messages (the connection's own are not
 *   echoed). Awareness messages become one `yjs.awareness` publication per Yjs client
 *   (`{client, update}`, SignalboxProvider's format); awareness publications become awareness
 *   messages. On close the states the client announced are published as removed.
 * - Read-only (the token may read `doc:{doc}` but not publish `yjs.update` to it): the client's
 *   updates and awareness are ignored, as y-websocket servers do with read-only connections; the
 *   client is not told (y-protocols has no refusal message).
 *
 * Bounds: a message over SIGNALBOX_MAX_MESSAGE_SIZE, a malformed message or update, or an unknown
 * message type closes the socket with a 44xx code and a reason (y-websocket does not reconnect
 * after 4400-4499); outbound as for every connection (4010). Over SIGNALBOX_MESSAGE_RATE, or with
 * more than a message's worth of updates waiting to be stored, the socket is not read for a while
 * (TCP slows the client down); past 4x that, it is closed (4029, y-websocket reconnects and syncs).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import * as Y from 'yjs';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { Bytes, CloseCode, ErrorCode, decodeMsgpack, type PresenceMember, type Publisher } from '@signalbox/protocol';
import { AuthError, type Authenticator, type Credentials } from '../auth/jwt.js';
import type { Broker } from '../broker/types.js';
import type { NamespaceTable, ResolvedChannel } from '../channels/namespaces.js';
import type { ChannelOperations } from '../channels/operations.js';
import type { GatewayConfig } from '../config.js';
import { toGatewayError } from '../errors.js';
import type { EncIndex } from '../frames.js';
import type { Hub, Subscriber } from '../hub/hub.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { TokenBucket } from '../ratelimit.js';
import type { WriteBatcher } from '../transport/batcher.js';
import type { TransportHandler } from '../transport/types.js';
import { WsTransport } from '../transport/ws-transport.js';
import { collectUpdates } from './compactor.js';
import type { MergeThread } from './merge-pool.js';
import { UPDATE_TYPE } from './wire.js';

/** The endpoint's path: `/yjs/{doc}`. */
export const YJS_PATH_PREFIX = '/yjs/';
/** Event type of an awareness publication (SignalboxProvider's). */
export const AWARENESS_TYPE = 'yjs.awareness';

// y-protocols message types (y-websocket's framing: a varUint type, then the message).
const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const MESSAGE_AUTH = 2;
const MESSAGE_QUERY_AWARENESS = 3;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;

/**
 * Close codes of this endpoint. y-websocket does not reconnect after 4400-4499 (the server's
 * decision, like HTTP 4xx) and reconnects after anything else.
 */
export const YjsCloseCode = {
  /** A message that is not y-protocols (bad framing, unknown type, an update or state that does not decode). */
  BAD_MESSAGE: 4400,
  /** Token missing, invalid or expired. */
  AUTH_FAILED: 4401,
  /** The token does not grant reading the document. */
  PERMISSION_DENIED: 4403,
  /** No such document (not a valid `doc:{id}` channel). */
  NOT_FOUND: 4404,
  /** A message over SIGNALBOX_MAX_MESSAGE_SIZE. */
  TOO_LARGE: 4413,
} as const;

/** Frames kept while the token is verified. */
const MAX_PREAUTH_FRAMES = 64;
/** Yjs client ids one connection may announce awareness for (a y-websocket provider has one). */
const MAX_OWN_CLIENTS = 8;
/** Peers' awareness states remembered per connection (to answer a query, to remove a peer that left). */
const MAX_PEER_STATES = 1024;
/** Entries in one awareness message. */
const MAX_AWARENESS_ENTRIES = 256;
/** How often y-websocket hears from us at least: it drops a connection silent for 30 s. */
const KEEPALIVE_MS = 10_000;
/** The empty awareness update (no clients): a message y-websocket applies as nothing. */
const KEEPALIVE = (() => {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, MESSAGE_AWARENESS);
  encoding.writeVarUint8Array(e, new Uint8Array([0]));
  return encoding.toUint8Array(e);
})();

export interface YjsEndpointDeps {
  config: GatewayConfig;
  hub: Hub;
  ops: ChannelOperations;
  broker: Broker;
  namespaces: NamespaceTable;
  auth: Authenticator;
  metrics: Metrics;
  log: Logger;
  batcher: WriteBatcher;
  /** Per-IP accounting of the upgrade admission. */
  opened(ip: string, socket: Duplex): void;
  closed(ip: string): void;
  /** Called when a connection is gone (the node's drain waits for them). */
  onClosed(): void;
  /** Where a joiner's read of the document is merged (the compactor's merge thread: large merges off the event loop). */
  merger: MergeThread;
}

/** The y-websocket connections of a node. */
export class YjsEndpoint {
  readonly #conns = new Set<YjsConnection>();
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: YjsEndpointDeps) {
    const tick = Math.min(KEEPALIVE_MS, deps.config.heartbeatIntervalMs);
    this.#timer = setInterval(() => this.#tick(), tick);
    this.#timer.unref();
  }

  get size(): number {
    return this.#conns.size;
  }

  /** An upgraded socket for `/yjs/{doc}`. */
  open(ws: WebSocket, socket: Duplex, info: { ip: string; token: string | null; doc: string }): void {
    const conn = new YjsConnection(this.deps, new WsTransport(ws, socket, this.deps.batcher), ws, info, () => {
      this.#conns.delete(conn);
      this.deps.closed(info.ip);
      this.deps.metrics.connections.labels('yjs', 'binary').dec();
      this.deps.onClosed();
    });
    this.#conns.add(conn);
    this.deps.opened(info.ip, socket);
    this.deps.metrics.connections.labels('yjs', 'binary').inc();
    this.deps.metrics.connectionsOpened.labels('yjs').inc();
    conn.start();
  }

  /** Starts the closing handshake of every connection (drain). */
  closeAll(code: number, reason: string): void {
    for (const c of this.#conns) c.close(code, reason);
  }

  /** Destroys what is left (end of a drain). */
  terminateAll(): void {
    for (const c of [...this.#conns]) c.terminate();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    const now = Date.now();
    for (const c of this.#conns) c.tick(now);
  }
}

/** A publication as a subscriber of encoding 2 (PRP, MessagePack) receives it, decoded once per frame. */
interface Delivered {
  type: string;
  data: unknown;
  publisher?: Publisher;
}
const decodedFrames = new WeakMap<Buffer, Delivered | null>();

function decodeFrame(frame: Buffer): Delivered | null {
  let d = decodedFrames.get(frame);
  if (d !== undefined) return d;
  try {
    const len = frame[1]! & 0x7f;
    const header = len < 126 ? 2 : len === 126 ? 4 : 10;
    const v = decodeMsgpack(frame.subarray(header)) as Record<string, unknown>;
    d = typeof v === 'object' && v !== null && typeof v.type === 'string' ? { type: v.type, data: v.data, publisher: v.publisher as Publisher | undefined } : null;
  } catch {
    d = null;
  }
  decodedFrames.set(frame, d);
  return d;
}

/** One entry of an awareness update: a Yjs client's state (JSON text, `null` when removed) at a clock. */
interface AwarenessEntry {
  client: number;
  clock: number;
  state: string;
}

function readAwareness(update: Uint8Array): AwarenessEntry[] {
  const d = decoding.createDecoder(update);
  const n = decoding.readVarUint(d);
  if (n > MAX_AWARENESS_ENTRIES) throw new Error(`more than ${MAX_AWARENESS_ENTRIES} clients in one awareness update`);
  const out: AwarenessEntry[] = [];
  for (let i = 0; i < n; i++) {
    const client = decoding.readVarUint(d);
    const clock = decoding.readVarUint(d);
    const state = decoding.readVarString(d);
    out.push({ client, clock, state });
  }
  return out;
}

function encodeAwareness(entries: readonly AwarenessEntry[]): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, entries.length);
  for (const x of entries) {
    encoding.writeVarUint(e, x.client);
    encoding.writeVarUint(e, x.clock);
    encoding.writeVarString(e, x.state);
  }
  return encoding.toUint8Array(e);
}

function message(type: number, write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, type);
  write(e);
  return encoding.toUint8Array(e);
}

function syncMessage(step: number, payload: Uint8Array): Uint8Array {
  return message(MESSAGE_SYNC, (e) => {
    encoding.writeVarUint(e, step);
    encoding.writeVarUint8Array(e, payload);
  });
}

function awarenessMessage(update: Uint8Array): Uint8Array {
  return message(MESSAGE_AWARENESS, (e) => encoding.writeVarUint8Array(e, update));
}

/** A Yjs update with nothing in it (no structs, no deletions): not worth a publication. */
function isEmptyUpdate(u: Uint8Array): boolean {
  return u.byteLength === 2 && u[0] === 0 && u[1] === 0;
}

function asBytes(u: Uint8Array): Bytes {
  // A copy: the frame's buffer is not ours to keep in history.
  const copy = u.slice();
  return new Bytes(copy.buffer, copy.byteOffset, copy.byteLength);
}

class Refused extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

type State = 'authenticating' | 'open' | 'closing' | 'closed';

class YjsConnection implements Subscriber, TransportHandler {
  readonly id = `conn_${randomBytes(9).toString('base64url')}`;
  /** Frames come as PRP MessagePack publications: binary Yjs data travels as bytes. */
  readonly encIdx: EncIndex = 2;
  #state: State = 'authenticating';
  #creds: Credentials | null = null;
  #doc: ResolvedChannel | null = null;
  #awareness: ResolvedChannel | null = null;
  #canWrite = false;
  #canWriteAwareness = false;
  #publisher: Publisher | null = null;
  #preauth: { data: Buffer; isBinary: boolean }[] | null = [];
  /** Channels held in the hub. */
  readonly #subs = new Set<string>();
  /** Resolves once subscribed and joined (step 1 answers wait for it); rejects if that failed. */
  #ready: Promise<void> | null = null;
  /** The document read from history, shared by the step 1s answered while it is read. */
  #load: Promise<Uint8Array> | null = null;
  /** Our own SyncStep1 went out (once per connection, after the first answer). */
  #sentStep1 = false;
  /** Announced in the document's presence (so its leave is announced too). */
  #joined = false;
  /** Client updates not yet published, and whether a publish is in flight. */
  #queue: Uint8Array[] = [];
  #queueBytes = 0;
  #publishing = false;
  /** The socket is not read until the queue is stored. */
  #heldForQueue = false;
  /** Awareness states this client announced: the last entry of each of its Yjs clients. */
  readonly #own = new Map<number, AwarenessEntry>();
  /**
   * Peers' awareness states sent to this client (by Yjs client id), with the connection that
   * published each; removed ones are kept (state `null`) so that the client's relay of a removal
   * is not taken for its own.
   */
  readonly #peers = new Map<number, { entry: AwarenessEntry; conn: string | null }>();
  readonly #messages: TokenBucket;
  readonly #step1s = new TokenBucket(2, 10);
  #alive = true;
  #lastPing = Date.now();
  #overSince = 0;
  #expiryTimer: NodeJS.Timeout | null = null;
  #authTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: YjsEndpointDeps,
    private readonly transport: WsTransport,
    private readonly ws: WebSocket,
    private readonly info: { ip: string; token: string | null; doc: string },
    private readonly onGone: () => void,
  ) {
    this.#messages = new TokenBucket(deps.config.messageRate, deps.config.messageBurst);
  }

  start(): void {
    this.transport.attach(this);
    const token = this.info.token;
    if (token === null) {
      this.close(YjsCloseCode.AUTH_FAILED, 'missing token: pass it as ?token= (WebsocketProvider params)');
      return;
    }
    this.#authTimer = setTimeout(() => this.close(CloseCode.AUTH_TIMEOUT, 'token verification timed out'), this.deps.config.handshakeTimeoutMs);
    this.deps.auth.verify(token).then(
      (creds) => this.#authenticated(creds),
      (err: unknown) => {
        if (this.#state !== 'authenticating') return;
        const e = err instanceof AuthError ? err : new AuthError(ErrorCode.AUTH_FAILED, 'Token verification failed');
        if (e.retryable) this.close(CloseCode.AUTH_TIMEOUT, 'token verification unavailable');
        else this.close(YjsCloseCode.AUTH_FAILED, e.code === ErrorCode.TOKEN_EXPIRED ? 'token expired' : `auth failed: ${e.message}`);
      },
    );
  }

  #authenticated(creds: Credentials): void {
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    if (this.#state !== 'authenticating') return;
    const { namespaces } = this.deps;
    const name = `doc:${this.info.doc}`;
    const doc = namespaces.check(creds, name, 'read');
    if (!doc.ok) {
      this.close(doc.code === ErrorCode.PERMISSION_DENIED ? YjsCloseCode.PERMISSION_DENIED : YjsCloseCode.NOT_FOUND, doc.message);
      return;
    }
    this.#creds = creds;
    this.#doc = doc.channel;
    this.#canWrite = namespaces.check(creds, name, 'publish', UPDATE_TYPE).ok;
    const aw = namespaces.check(creds, `awareness:${this.info.doc}`, 'read');
    if (aw.ok) {
      this.#awareness = aw.channel;
      this.#canWriteAwareness = namespaces.check(creds, aw.channel.name, 'publish', AWARENESS_TYPE).ok;
    }
    this.#publisher = { via: 'ws', sub: creds.sub, client: this.id };
    this.#state = 'open';
    this.#armExpiry();
    this.#ready = this.#join();
    // Failures are handled in #join; step 1 answers only wait for it.
    this.#ready.catch(() => {});
    const queued = this.#preauth ?? [];
    this.#preauth = null;
    for (const f of queued) this.#handle(f.data, f.isBinary);
  }

  /** Subscribes to the document and its awareness (hub), then joins the document's presence. */
  async #join(): Promise<void> {
    const { hub } = this.deps;
    const channels = [this.#doc!, ...(this.#awareness ? [this.#awareness] : [])];
    for (const ch of channels) {
      const max = ch.namespace.maxSubscribers;
      if (max > 0 && hub.subscriberCount(ch.name) >= max) {
        this.close(CloseCode.RATE_LIMITED, `channel '${ch.name}' has the maximum of ${max} subscribers`);
        throw new Error('subscriber limit');
      }
    }
    for (const ch of channels) this.#subs.add(ch.name);
    const prepared = await Promise.allSettled(channels.map((ch) => hub.prepare(this, ch.name, ch.namespace)));
    const failed = prepared.find((r) => r.status === 'rejected');
    if (failed || this.#state !== 'open') {
      for (const [i, r] of prepared.entries()) if (r.status === 'fulfilled') hub.abandon(this, channels[i]!.name);
      this.#subs.clear();
      if (failed) {
        this.deps.log.warn({ err: failed.reason, conn: this.id }, 'yjs endpoint: subscribe failed');
        this.close(CloseCode.INTERNAL_ERROR, 'document unavailable: reconnect');
      }
      throw new Error('not subscribed');
    }
    for (const r of prepared) if (r.status === 'fulfilled' && this.#state === 'open') hub.activate(this, r.value);
    if (this.#state !== 'open') throw new Error('closed');
    // After the awareness subscription: peers answer a join by publishing their states again.
    if (this.#doc!.namespace.presence) {
      this.#joined = true;
      this.#announce('joined');
    }
  }

  #member(): PresenceMember {
    const c = this.#creds!;
    return { clientId: this.id, userId: c.sub, ...(c.info !== undefined ? { info: c.info } : {}) };
  }

  #announce(change: 'joined' | 'left'): void {
    this.deps.ops.announce(this.#doc!, change, this.#member(), this.deps.config.heartbeatIntervalMs * 3)
      .catch((err: unknown) => this.deps.log.warn({ err, channel: this.#doc!.name }, `presence ${change} failed`));
  }

  // ---- inbound ----

  onFrame(data: Buffer, isBinary: boolean): void {
    this.deps.metrics.messagesIn.inc(1, 'yjs');
    this.deps.metrics.bytesIn += data.length;
    if (this.#state === 'authenticating') {
      if (this.#preauth === null) return;
      if (this.#preauth.length >= MAX_PREAUTH_FRAMES) {
        this.close(CloseCode.PROTOCOL_VIOLATION, 'too many messages before authentication');
        return;
      }
      this.#preauth.push({ data, isBinary });
      return;
    }
    this.#handle(data, isBinary);
    this.transport.inputHandled();
  }

  #handle(data: Buffer, isBinary: boolean): void {
    if (this.#state !== 'open') return;
    try {
      const max = this.deps.config.maxMessageBytes;
      if (data.length > max) throw new Refused(YjsCloseCode.TOO_LARGE, `message of ${data.length} bytes exceeds the limit of ${max} bytes (SIGNALBOX_MAX_MESSAGE_SIZE)`);
      if (!isBinary) throw new Refused(YjsCloseCode.BAD_MESSAGE, 'text frame: y-websocket messages are binary');
      this.#message(data);
      if (!this.#messages.take()) this.#throttle();
    } catch (err) {
      if (err instanceof Refused) this.close(err.code, err.message);
      else this.close(YjsCloseCode.BAD_MESSAGE, `malformed message: ${(err as Error).message}`);
    }
  }

  #message(data: Buffer): void {
    const d = decoding.createDecoder(data);
    const type = decoding.readVarUint(d);
    switch (type) {
      case MESSAGE_SYNC: {
        const step = decoding.readVarUint(d);
        const payload = decoding.readVarUint8Array(d);
        if (step === SYNC_STEP1) this.#step1(payload);
        else if (step === SYNC_STEP2 || step === SYNC_UPDATE) this.#update(payload);
        else throw new Refused(YjsCloseCode.BAD_MESSAGE, `unknown sync message type ${step}`);
        return;
      }
      case MESSAGE_AWARENESS:
        this.#awarenessIn(decoding.readVarUint8Array(d));
        return;
      case MESSAGE_QUERY_AWARENESS:
        this.#answerQuery();
        return;
      case MESSAGE_AUTH:
        // Only servers send auth messages (permission denied).
        throw new Refused(YjsCloseCode.BAD_MESSAGE, 'auth messages are sent by servers only');
      default:
        throw new Refused(YjsCloseCode.BAD_MESSAGE, `unknown message type ${type}`);
    }
  }

  /**
   * Over SIGNALBOX_MESSAGE_RATE: the socket is not read for a while (TCP slows the client down).
   * Not closed: y-websocket sends a message per transaction, and a burst of them is normal.
   */
  #throttle(): void {
    if (this.ws.isPaused || this.#state !== 'open') return;
    this.ws.pause();
    const wait = Math.max(10, Math.ceil(1000 / this.deps.config.messageRate) * 8);
    setTimeout(() => { if (this.#state === 'open' && !this.#heldForQueue) this.ws.resume(); }, wait).unref();
  }

  /** SyncStep1: answer with what the client lacks; the first one also gets our own step 1. */
  #step1(stateVector: Uint8Array): void {
    if (!this.#step1s.take()) throw new Refused(CloseCode.RATE_LIMITED, 'too many sync step 1 messages');
    // Checked now, so a bad one closes before any read.
    Y.decodeStateVector(stateVector);
    const sv = stateVector.slice();
    void this.#loaded().then(
      (merged) => {
        if (this.#state !== 'open') return;
        let diff: Uint8Array;
        try {
          diff = Y.diffUpdate(merged, sv);
        } catch (err) {
          this.close(YjsCloseCode.BAD_MESSAGE, `malformed state vector: ${(err as Error).message}`);
          return;
        }
        // A catch-up burst, bounded by the document: not held against the outbound limit.
        this.transport.send(syncMessage(SYNC_STEP2, diff), true);
        if (!this.#sentStep1) {
          this.#sentStep1 = true;
          this.transport.send(syncMessage(SYNC_STEP1, Y.encodeStateVectorFromUpdate(merged)), true);
        }
      },
      (err: unknown) => {
        if (this.#state !== 'open') return;
        this.deps.log.warn({ err, conn: this.id, channel: this.#doc?.name }, 'yjs endpoint: reading the document failed');
        this.close(CloseCode.INTERNAL_ERROR, 'document unavailable: reconnect');
      },
    );
  }

  /** The document's retained stream, merged; read after the subscription is live. One read at a time. */
  #loaded(): Promise<Uint8Array> {
    if (this.#load) return this.#load;
    const load = this.#ready!.then(async () => {
      const hist = await this.deps.broker.history(this.#doc!.name, {}).catch((err: unknown) => { throw toGatewayError(err); });
      return this.deps.merger.merge(collectUpdates(hist.publications));
    });
    this.#load = load;
    // The next step 1 reads again (whatever came since arrived live).
    const clear = (): void => { if (this.#load === load) this.#load = null; };
    load.then(clear, clear);
    return load;
  }

  /** A client update (SyncStep2 or Update): published, unless the token is read-only. */
  #update(update: Uint8Array): void {
    // Read-only: ignored, as y-websocket servers do (y-protocols cannot refuse an update).
    if (!this.#canWrite) return;
    Y.decodeUpdate(update); // throws on garbage: closed as a bad message
    if (isEmptyUpdate(update)) return;
    const max = this.deps.config.maxMessageBytes;
    if (this.#queueBytes + update.byteLength > max * 4) throw new Refused(CloseCode.RATE_LIMITED, 'updates arrive faster than they can be stored: reconnect');
    this.#queue.push(update.slice());
    this.#queueBytes += update.byteLength;
    if (this.#queueBytes > max && !this.ws.isPaused) {
      this.ws.pause();
      this.#heldForQueue = true;
    }
    this.#publishNext();
  }

  /** One publish in flight; what arrived meanwhile goes out merged, in pieces of at most the message size. */
  #publishNext(): void {
    if (this.#publishing || this.#queue.length === 0 || this.#state !== 'open') return;
    const max = this.deps.config.maxMessageBytes;
    let n = 0;
    let bytes = 0;
    while (n < this.#queue.length && (n === 0 || bytes + this.#queue[n]!.byteLength <= max)) bytes += this.#queue[n++]!.byteLength;
    const batch = this.#queue.splice(0, n);
    this.#queueBytes -= bytes;
    const update = batch.length === 1 ? batch[0]! : Y.mergeUpdates(batch);
    this.#publishing = true;
    this.deps.ops.publish(this.#doc!, { type: UPDATE_TYPE, data: asBytes(update), size: update.byteLength }, this.#publisher!).then(
      () => {
        this.#publishing = false;
        if (this.#heldForQueue && this.#queueBytes <= max && this.#state === 'open') {
          this.#heldForQueue = false;
          this.ws.resume();
        }
        this.#publishNext();
      },
      (err: unknown) => {
        this.#publishing = false;
        const e = toGatewayError(err);
        if (e.unexpected) this.deps.log.error({ err: e.cause ?? err, conn: this.id }, 'yjs endpoint: publish failed');
        // The client believes the update sent: closing makes it reconnect, and its sync exchange sends it again.
        const permanent = e.code === ErrorCode.PERMISSION_DENIED || e.code === ErrorCode.INVALID_MESSAGE || e.code === ErrorCode.MESSAGE_TOO_LARGE;
        this.close(permanent ? YjsCloseCode.BAD_MESSAGE : CloseCode.INTERNAL_ERROR, `update not stored (${e.code}): ${e.message}`);
      },
    );
  }

  /** An awareness message: one publication per Yjs client this connection speaks for. */
  #awarenessIn(update: Uint8Array): void {
    const entries = readAwareness(update);
    for (const x of entries) {
      if (x.state !== 'null') JSON.parse(x.state); // peers parse it: garbage closes here, not there
    }
    if (!this.#awareness || !this.#canWriteAwareness) return;
    for (const x of entries) {
      // A peer's state this client relays back (y-websocket re-sends every change it applies): not its own.
      if (this.#peers.has(x.client)) continue;
      if (!this.#own.has(x.client) && this.#own.size >= MAX_OWN_CLIENTS) continue;
      if (x.state === 'null') this.#own.delete(x.client);
      else this.#own.set(x.client, x);
      this.#publishAwareness(x);
    }
  }

  #publishAwareness(x: AwarenessEntry): void {
    const ch = this.#awareness;
    if (!ch) return;
    const data = { client: x.client, update: new Bytes(encodeAwareness([x]).buffer as ArrayBuffer) };
    this.deps.ops.publish(ch, { type: AWARENESS_TYPE, data }, this.#publisher!).catch(() => {
      // Ephemeral: a lost state is renewed by the client within 15 s.
    });
  }

  /** messageQueryAwareness: every state we know (the peers' and the client's own). */
  #answerQuery(): void {
    const entries = [...[...this.#peers.values()].map((p) => p.entry).filter((x) => x.state !== 'null'), ...this.#own.values()];
    this.#send(awarenessMessage(encodeAwareness(entries)));
  }

  // ---- outbound (Subscriber) ----

  deliver(frame: Buffer): void {
    if (this.#state !== 'open') return;
    const pub = decodeFrame(frame);
    if (!pub) return;
    // Our own publications: the client has them.
    if (pub.publisher?.via === 'ws' && pub.publisher.client === this.id) return;
    if (pub.type === UPDATE_TYPE) {
      if (pub.data instanceof Uint8Array) this.#send(syncMessage(SYNC_UPDATE, pub.data));
    } else if (pub.type === AWARENESS_TYPE) {
      this.#peerAwareness(pub);
    } else if (pub.type === 'presence.joined') {
      // A newcomer sees our client's cursor at once, not at its next 15 s renewal.
      if (this.#presenceId(pub) !== this.id) for (const x of this.#own.values()) this.#publishAwareness(x);
    } else if (pub.type === 'presence.left') {
      const gone = this.#presenceId(pub);
      if (gone !== null) this.#dropPeersOf(gone);
    }
    // `yjs.snapshot` parts never come live to a subscriber that did not ask to recover.
  }

  deliverLatest(_channel: string, _key: string, frame: Buffer): void {
    this.deliver(frame);
  }

  #presenceId(pub: Delivered): string | null {
    const member = (pub.data as { member?: { clientId?: unknown } } | undefined)?.member;
    return typeof member?.clientId === 'string' ? member.clientId : null;
  }

  #peerAwareness(pub: Delivered): void {
    const data = pub.data as { client?: unknown; update?: unknown } | undefined;
    if (!(data?.update instanceof Uint8Array) || typeof data.client !== 'number') return;
    let entries: AwarenessEntry[];
    try {
      entries = readAwareness(data.update);
    } catch {
      return;
    }
    const conn = pub.publisher?.via === 'ws' ? pub.publisher.client : null;
    for (const x of entries) {
      if (this.#own.has(x.client)) continue;
      // Re-inserted: the oldest entry is the one evicted.
      if (!this.#peers.delete(x.client) && this.#peers.size >= MAX_PEER_STATES) this.#peers.delete(this.#peers.keys().next().value!);
      this.#peers.set(x.client, { entry: x, conn });
    }
    this.#send(awarenessMessage(data.update));
  }

  /** A peer's connection left the document: its awareness states are removed here as SignalboxProvider removes them. */
  #dropPeersOf(conn: string): void {
    const removed: AwarenessEntry[] = [];
    for (const [client, p] of this.#peers) {
      if (p.conn !== conn || p.entry.state === 'null') continue;
      p.entry = { client, clock: p.entry.clock + 1, state: 'null' };
      removed.push(p.entry);
    }
    if (removed.length > 0) this.#send(awarenessMessage(encodeAwareness(removed)));
  }

  lose(channel: string, why: 'resync' | 'overflow'): void {
    this.deps.log.info({ conn: this.id, channel, why }, 'y-websocket connection must reconnect');
    this.close(why === 'overflow' ? CloseCode.SLOW_CONSUMER : CloseCode.RESYNC_REQUIRED, why === 'overflow' ? 'slow consumer: reconnect' : 'resync required: reconnect');
  }

  /** A live message, held against the outbound limit (closed as a slow consumer past it, as every connection). */
  #send(msg: Uint8Array): void {
    if (this.#state !== 'open') return;
    const cfg = this.deps.config;
    const limit = cfg.outboundBufferBytes;
    const t = this.transport;
    if (t.bufferedUpperBound > limit && t.bufferedAmount > limit) {
      const now = Date.now();
      if (this.#overSince === 0) this.#overSince = now;
      if (t.bufferedAmount > limit * 4 || now - this.#overSince > cfg.slowConsumerGraceMs) {
        this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: reconnect');
        return;
      }
    } else this.#overSince = 0;
    t.send(msg, true);
  }

  // ---- liveness, expiry ----

  /** Endpoint tick: keepalive for y-websocket's watchdog; ping, presence refresh and slow-consumer check each heartbeat interval. */
  tick(now: number): void {
    if (this.#state !== 'open') return;
    this.#send(KEEPALIVE);
    const hb = this.deps.config.heartbeatIntervalMs;
    if (now - this.#lastPing < hb) return;
    this.#lastPing = now;
    if (!this.#alive) {
      this.deps.log.info({ conn: this.id }, 'heartbeat timeout; terminating');
      this.terminate();
      return;
    }
    this.#alive = false;
    try {
      this.ws.ping();
    } catch {
      // Closing: the close event follows.
    }
    if (this.#overSince !== 0 && now - this.#overSince > this.deps.config.slowConsumerGraceMs && this.transport.bufferedAmount > this.deps.config.outboundBufferBytes) {
      this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: reconnect');
      return;
    }
    if (this.#joined && this.#subs.size > 0) this.deps.ops.refreshPresence(this.#doc!, this.#member(), hb * 3);
  }

  /** y-websocket cannot refresh a token in place: the connection closes at `exp` (4401, no automatic reconnect). */
  #armExpiry(): void {
    const exp = this.#creds?.expiresAt;
    if (exp == null) return;
    // setTimeout's limit is about 24.8 days; a later expiry re-arms.
    const delay = Math.min(exp - Date.now(), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() >= exp) this.close(YjsCloseCode.AUTH_FAILED, 'token expired');
      else this.#armExpiry();
    }, Math.max(0, delay));
  }

  // ---- closing ----

  close(code: number, reason: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.transport.close(code, reason);
    this.#release();
  }

  terminate(): void {
    this.transport.terminate();
    this.onTransportClosed(1006);
  }

  onPong(): void {
    this.#alive = true;
  }

  onSocketError(err: Error): void {
    this.deps.log.debug({ err, conn: this.id }, 'socket error');
  }

  onTransportClosed(code: number): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#release();
    this.deps.metrics.connectionsClosed.labels(String(code)).inc();
    this.onGone();
  }

  /** Leaves the channels and presence, and removes the awareness states this client announced. */
  #release(): void {
    if (this.#authTimer) clearTimeout(this.#authTimer);
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#authTimer = this.#expiryTimer = null;
    this.#preauth = null;
    this.#queue = [];
    this.#queueBytes = 0;
    if (this.#subs.size === 0) return;
    for (const name of this.#subs) this.deps.hub.abandon(this, name);
    this.#subs.clear();
    for (const x of this.#own.values()) this.#publishAwareness({ client: x.client, clock: x.clock + 1, state: 'null' });
    this.#own.clear();
    if (this.#joined) this.#announce('left');
  }
}
