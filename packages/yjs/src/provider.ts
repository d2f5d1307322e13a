/**
 * SignalboxProvider: a Y.Doc (and its Awareness) bound to a `doc:{id}` channel.
 *
 * - Local updates are published as bytes (`yjs.update`) on the document channel, one publish at a
 *   time (what comes while one waits for its ack is merged into the next); the gateway gives each
 *   the stream's next offset and keeps it (compacted into a `yjs.snapshot`) as history.
 * - On join, and whenever a resubscribe could not recover exactly, the provider reads the
 *   channel's history from its start (snapshot + tail) and applies it: Yjs updates are idempotent
 *   and commutative, so applying one twice, or live ones before older history, is harmless.
 * - Local updates made while not connected (or whose publish failed) are kept, merged into one
 *   update, and published once the subscription is back: offline edits merge on reconnect.
 * - Awareness travels on `awareness:{id}` (history 0, latest-wins by Yjs client id): states are
 *   never stored, and a peer whose connection leaves the document's presence is removed at once.
 */
import * as Y from 'yjs';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness';
import type { HistoryOptions, HistoryResult, PublicationMessage, StateChange, SubscribedEvent } from '@signalbox/client';

/** What the provider uses of a `Subscription` (structural, so any build of `@signalbox/client` fits). */
export interface ProviderSubscription {
  readonly state: string;
  on(type: 'publication', handler: (m: PublicationMessage) => void): unknown;
  on(type: 'subscribed', handler: (e: SubscribedEvent) => void): unknown;
  off(type: 'publication', handler: (m: PublicationMessage) => void): unknown;
  off(type: 'subscribed', handler: (e: SubscribedEvent) => void): unknown;
}

/** What the provider uses of a `SignalboxClient` (structural). Use `format: msgpack` so updates travel as bytes. */
export interface ProviderClient {
  readonly isConnected: boolean;
  subscribe(channel: string): unknown;
  unsubscribe(channels: string | readonly string[]): void;
  publish(channel: string, data: unknown, options: { type: string }): Promise<unknown>;
  history(channel: string, options: HistoryOptions): Promise<HistoryResult>;
  on(type: '$state', handler: (change: StateChange) => void): unknown;
  off(type: '$state', handler: (change: StateChange) => void): unknown;
}

/** Event type of a Yjs update publication. */
export const UPDATE_TYPE = 'yjs.update';
/** Event type of the gateway's compacted snapshot (all updates up to its offset, merged). */
export const SNAPSHOT_TYPE = 'yjs.snapshot';
/**
 * Publish refusals that sending the same update again cannot change: the token may not publish
 * (`PERMISSION_DENIED`), the update is not acceptable (`INVALID_MESSAGE`, `MESSAGE_TOO_LARGE`), or
 * the client cannot send bytes (`BYTES_NEED_MSGPACK`: a JSON-format client). Reported as `error`.
 */
const REFUSED = new Set(['PERMISSION_DENIED', 'INVALID_CHANNEL', 'INVALID_MESSAGE', 'MESSAGE_TOO_LARGE', 'BYTES_NEED_MSGPACK']);
/** Delay before an update whose publish failed (timeout, full queue) is sent again while connected. */
const RETRY_MS = 250;

/** Event type of an awareness publication (`{client, update}`). */
export const AWARENESS_TYPE = 'yjs.awareness';

export type ProviderStatus = 'connecting' | 'connected' | 'disconnected';

export interface SignalboxProviderOptions {
  /** The document's Awareness; default a new one on the doc. `null`: no awareness. */
  awareness?: Awareness | null;
  /** Most bytes per published update; a larger offline backlog is sent in several. Default 48 KiB. */
  maxUpdateBytes?: number;
}

type Listener<T> = (value: T) => void;
interface ProviderEvents {
  status: { status: ProviderStatus };
  synced: boolean;
  sync: boolean;
  /** While a compacted snapshot downloads: parts and bytes received so far, of how many. */
  'sync-progress': SyncProgress;
  error: Error;
}

export interface SyncProgress {
  part: number;
  parts: number;
  bytes: number;
  size: number;
}

/** Reassembles a snapshot's parts (`{snapshot, part, parts, size, bytes}`, in offset order). */
class SnapshotAssembler {
  #id: string | null = null;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  /** A part came that does not continue the snapshot begun (its start is missing). */
  broken = false;
  progress: SyncProgress | null = null;

  add(data: unknown): Uint8Array | null {
    const d = data as { snapshot?: unknown; part?: unknown; parts?: unknown; size?: unknown; bytes?: unknown } | null;
    const bytes = bytesOf(d?.bytes);
    if (!d || typeof d.snapshot !== 'string' || typeof d.part !== 'number' || typeof d.parts !== 'number' || typeof d.size !== 'number' || !bytes) return null;
    if (d.part === 0) {
      this.#id = d.snapshot;
      this.#parts = [];
      this.#bytes = 0;
    }
    if (this.#id !== d.snapshot || d.part !== this.#parts.length) {
      this.broken = true;
      return null;
    }
    this.#parts.push(bytes);
    this.#bytes += bytes.byteLength;
    this.progress = { part: d.part + 1, parts: d.parts, bytes: this.#bytes, size: d.size };
    if (this.#parts.length < d.parts) return null;
    const out = new Uint8Array(this.#bytes);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    this.#id = null;
    this.#parts = [];
    this.#bytes = 0;
    return out;
  }
}

/** What the stream holds of one Yjs client: clocks `0 … covered` without a hole, and the ranges read beyond a hole. */
interface Coverage {
  covered: number;
  later: [from: number, to: number][];
}

/** The channel holding a document's awareness: `awareness:{id}` for `doc:{id}`. */
export function awarenessChannel(docChannel: string): string {
  const i = docChannel.indexOf(':');
  return `awareness:${i === -1 ? docChannel : docChannel.slice(i + 1)}`;
}

/**
 * An update's bytes as the client delivered them: raw over MessagePack, `{"$base64": ...}` over
 * JSON (docs/protocol.md, Binary data), so the provider works on a client of either format.
 */
function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  if (data !== null && typeof data === 'object' && typeof (data as { $base64?: unknown }).$base64 === 'string') {
    try {
      const bin = atob((data as { $base64: string }).$base64);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    } catch {
      return null; // not base64: not an update
    }
  }
  return null;
}

export class SignalboxProvider {
  readonly doc: Y.Doc;
  readonly awareness: Awareness | null;
  readonly channel: string;
  readonly awarenessChannel: string;
  #status: ProviderStatus = 'disconnected';
  #synced = false;
  #destroyed = false;
  readonly #client: ProviderClient;
  readonly #sub: ProviderSubscription;
  readonly #awarenessSub: ProviderSubscription | null;
  readonly #maxUpdateBytes: number;
  /** Local updates not yet acknowledged by the gateway (kept while offline, resent on reconnect). */
  #pending: Uint8Array[] = [];
  /** How many publishes are in flight. */
  #inFlight = 0;
  /** Incremented at each (re)sync, so a slow history read of an old one is not mistaken for the current. */
  #syncRun = 0;
  /** Yjs client ids seen from each gateway connection on the awareness channel. */
  readonly #peers = new Map<string, Set<number>>();
  readonly #listeners = new Map<keyof ProviderEvents, Set<Listener<never>>>();
  readonly #offs: Array<() => void> = [];
  #liveSnapshot = new SnapshotAssembler();
  /**
   * While a (re)sync reads the document: what the stream has shown of each Yjs client (history
   * and live), so that what this editor holds and the stream lacks (history lost, evicted or
   * expired while the editor had the document open) can be sent back once it is read.
   */
  #remote: Map<number, Coverage> | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(client: ProviderClient, channel: string, doc: Y.Doc, options: SignalboxProviderOptions = {}) {
    this.#client = client;
    this.channel = channel;
    this.doc = doc;
    this.awareness = options.awareness === null ? null : options.awareness ?? new Awareness(doc);
    this.awarenessChannel = awarenessChannel(channel);
    this.#maxUpdateBytes = options.maxUpdateBytes ?? 48 * 1024;

    const onUpdate = (update: Uint8Array, origin: unknown): void => {
      if (origin === this) return;
      this.#pending.push(update);
      // One update publish at a time: what is typed while it waits for its ack goes, merged, in
      // the next one, so a fast typist on a slow link sends one update per round trip, not a queue.
      if (this.#inFlight === 0 && this.#sub.state === 'subscribed' && this.#synced) this.#flush();
    };
    doc.on('update', onUpdate);
    this.#offs.push(() => doc.off('update', onUpdate));

    const onState = (change: StateChange): void => {
      if (change.to === 'connected') this.#setStatus('connecting');
      else if (change.to !== 'connecting') {
        this.#setStatus(change.to === 'reconnecting' || change.to === 'disconnected' || change.to === 'closed' ? 'disconnected' : this.#status);
        this.#setSynced(false);
        // Peers' awareness is not refreshed while we are away; drop it rather than show stale cursors.
        if (this.awareness) this.#dropPeers();
      }
    };
    client.on('$state', onState);
    this.#offs.push(() => client.off('$state', onState));

    this.#sub = client.subscribe(channel) as ProviderSubscription;
    const onSubscribed = (e: SubscribedEvent): void => this.#onSubscribed(e);
    const onPublication = (m: PublicationMessage): void => this.#onPublication(m);
    this.#sub.on('subscribed', onSubscribed);
    this.#sub.on('publication', onPublication);
    this.#offs.push(() => { this.#sub.off('subscribed', onSubscribed); this.#sub.off('publication', onPublication); });

    if (this.awareness) {
      const awareness = this.awareness;
      const sub = client.subscribe(this.awarenessChannel) as ProviderSubscription;
      this.#awarenessSub = sub;
      const onAwarenessPub = (m: PublicationMessage): void => this.#onAwareness(m);
      const onAwarenessSubscribed = (): void => this.#publishAwareness();
      sub.on('publication', onAwarenessPub);
      sub.on('subscribed', onAwarenessSubscribed);
      const onLocalAwareness = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown): void => {
        if (origin === this) return;
        const changed = [...added, ...updated, ...removed].filter((id) => id === doc.clientID);
        if (changed.length > 0) this.#publishAwareness();
      };
      awareness.on('update', onLocalAwareness);
      this.#offs.push(() => {
        sub.off('publication', onAwarenessPub);
        sub.off('subscribed', onAwarenessSubscribed);
        awareness.off('update', onLocalAwareness);
      });
    } else {
      this.#awarenessSub = null;
    }
    if (client.isConnected) this.#setStatus('connecting');
  }

  /** `connected` once the subscription is live; `disconnected` while the client is away. */
  get status(): ProviderStatus {
    return this.#status;
  }

  /** True once the document holds everything the gateway had at the last (re)subscribe, and local edits are sent. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Local updates not yet acknowledged by the gateway. */
  get pendingUpdates(): number {
    return this.#pending.length + this.#inFlight;
  }

  on<K extends keyof ProviderEvents>(type: K, fn: Listener<ProviderEvents[K]>): this {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(fn as Listener<never>);
    return this;
  }

  off<K extends keyof ProviderEvents>(type: K, fn: Listener<ProviderEvents[K]>): this {
    this.#listeners.get(type)?.delete(fn as Listener<never>);
    return this;
  }

  /** Resolves once {@link synced} is true (at once if it is). */
  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => {
      const fn = (s: boolean): void => { if (s) { this.off('synced', fn); resolve(); } };
      this.on('synced', fn);
    });
  }

  /** Stops syncing: removes this client's awareness state and leaves both channels. The Y.Doc is kept. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.awareness) {
      removeAwarenessStates(this.awareness, [this.doc.clientID], 'destroy');
      this.#publishAwareness([this.doc.clientID]);
    }
    for (const off of this.#offs) off();
    clearTimeout(this.#retryTimer);
    this.#client.unsubscribe(this.#awarenessSub ? [this.channel, this.awarenessChannel] : this.channel);
    this.#setStatus('disconnected');
    this.#listeners.clear();
  }

  #emit<K extends keyof ProviderEvents>(type: K, value: ProviderEvents[K]): void {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) (fn as Listener<ProviderEvents[K]>)(value);
  }

  #setStatus(status: ProviderStatus): void {
    if (status === this.#status) return;
    this.#status = status;
    this.#emit('status', { status });
  }

  #setSynced(synced: boolean): void {
    if (synced === this.#synced) return;
    this.#synced = synced;
    this.#emit('synced', synced);
    this.#emit('sync', synced);
  }

  #onSubscribed(e: SubscribedEvent): void {
    this.#setStatus('connected');
    this.#liveSnapshot = new SnapshotAssembler();
    // Recovered exactly: the missed publications follow as ordinary ones; nothing to read.
    if (e.recovered === true) {
      ++this.#syncRun;
      this.#synced = false;
      this.#setSynced(true);
      this.#flush();
      return;
    }
    this.#resync();
  }

  /** Reads the whole retained stream (a compacted snapshot first, then the tail) and applies it. */
  async #readHistory(run: number): Promise<void> {
    let since: { epoch: string; offset: number } | undefined;
    let updates: Uint8Array[] = [];
    let snapshot = new SnapshotAssembler();
    // Publications per page: as many as fitted in the last page when the gateway cut it for size
    // (snapshot parts), so the gateway does not read the whole rest of a large snapshot from its
    // broker for every page it sends; doubled again (up to 1,000) while pages are not cut.
    let limit = 1000;
    for (;;) {
      if (run !== this.#syncRun || this.#destroyed) return;
      let page;
      try {
        page = await this.#client.history(this.channel, since ? { since, limit } : { limit: 0 });
      } catch (err) {
        // The stream was compacted, before this read or while it paged (a new snapshot now stands
        // where it was reading): read on from its earliest retained publication, the snapshot.
        // What was applied already is applied again, harmlessly.
        const details = (err as { details?: { earliestOffset?: unknown; position?: { epoch?: unknown } } }).details;
        const earliest = details?.earliestOffset;
        if (since && typeof earliest === 'number' && earliest > since.offset + 1) {
          since = { epoch: since.epoch, offset: earliest - 1 };
          snapshot = new SnapshotAssembler();
          limit = 1000;
          continue;
        }
        throw err;
      }
      if (!since) {
        // First call: only the position, to learn the epoch; then read forward from the start.
        if (!page.position || page.position.offset === 0) break;
        since = { epoch: page.position.epoch, offset: 0 };
        continue;
      }
      for (const p of page.publications) {
        if (p.type === UPDATE_TYPE) {
          const b = bytesOf(p.data);
          if (b) updates.push(b);
        } else if (p.type === SNAPSHOT_TYPE) {
          const whole = snapshot.add(p.data);
          if (snapshot.progress) this.#emit('sync-progress', snapshot.progress);
          if (whole) updates.push(whole);
        }
      }
      // Applied page by page, in one transaction each (mergeUpdates over thousands is far slower).
      if (updates.length > 0) {
        const batch = updates;
        for (const u of batch) this.#noteRemote(u);
        Y.transact(this.doc, () => { for (const u of batch) Y.applyUpdate(this.doc, u, this); }, this);
        updates = [];
      }
      limit = page.next ? Math.max(1, page.publications.length) : Math.min(1000, limit * 2);
      const last = page.publications[page.publications.length - 1];
      const next = page.next ?? (last && page.position && last.offset < page.position.offset ? { epoch: last.epoch, offset: last.offset } : undefined);
      if (!next) break;
      since = next;
    }
  }

  #onPublication(m: PublicationMessage): void {
    if (m.type === SNAPSHOT_TYPE) {
      // Parts of a snapshot come live only through a recovery from inside the range it replaced:
      // the snapshot is then incomplete here, so read the document again from its start.
      const whole = this.#liveSnapshot.add(m.data);
      if (whole) {
        this.#noteRemote(whole);
        Y.applyUpdate(this.doc, whole, this);
      }
      else if (this.#liveSnapshot.broken) {
        this.#liveSnapshot = new SnapshotAssembler();
        this.#resync();
      }
      return;
    }
    if (m.type !== UPDATE_TYPE) {
      if (m.type === 'presence.left' && this.awareness) {
        const member = (m.data as { member?: { clientId?: unknown } } | undefined)?.member;
        if (typeof member?.clientId === 'string') this.#dropPeer(member.clientId);
      }
      if (m.type === 'presence.joined' && this.awareness) this.#publishAwareness();
      return;
    }
    const b = bytesOf(m.data);
    if (b) {
      this.#noteRemote(b);
      Y.applyUpdate(this.doc, b, this);
    }
  }

  #noteRemote(update: Uint8Array): void {
    const remote = this.#remote;
    if (!remote) return;
    const { from, to } = Y.parseUpdateMeta(update);
    for (const [client, start] of from) {
      let c = remote.get(client);
      if (!c) remote.set(client, (c = { covered: 0, later: [] }));
      c.later.push([start, to.get(client) ?? start]);
      // Extend the prefix held from clock 0 by every range that now joins it.
      c.later.sort((x, y) => x[0] - y[0]);
      let i = 0;
      while (i < c.later.length && c.later[i]![0] <= c.covered) c.covered = Math.max(c.covered, c.later[i++]![1]);
      if (i > 0) c.later.splice(0, i);
    }
  }

  /**
   * Once the document is read: what this editor holds beyond what the stream holds from each
   * client's first item on (a stream that lost its start, or everything, holds nothing of it), as
   * one update, or null. It includes the pending local updates.
   */
  #lacking(remote: Map<number, Coverage>): Uint8Array | null {
    const held = new Map<number, number>();
    for (const [client, c] of remote) held.set(client, c.covered);
    for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(this.doc))) {
      if (clock > (held.get(client) ?? 0)) return Y.encodeStateAsUpdate(this.doc, Y.encodeStateVector(held));
    }
    return null;
  }

  /** Reads the whole document again (as on join). */
  #resync(): void {
    const run = ++this.#syncRun;
    this.#setSynced(false);
    const remote = (this.#remote = new Map());
    void this.#readHistory(run).then(
      () => {
        if (run !== this.#syncRun || this.#destroyed) return;
        this.#remote = null;
        // The stream lacks what this editor has (its history was lost, evicted or expired while the
        // document was open here, or never got our offline edits): send it back, pending edits included.
        const lacking = this.#lacking(remote);
        if (lacking) this.#pending = [lacking];
        this.#setSynced(true);
        this.#flush();
      },
      (err: unknown) => {
        if (run === this.#syncRun) this.#emit('error', err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /** Publishes the pending local updates, merged, in pieces of at most `maxUpdateBytes`. */
  #flush(): void {
    if (this.#pending.length === 0 || this.#destroyed) return;
    const batch = this.#pending;
    this.#pending = [];
    const merged = batch.length === 1 ? batch[0]! : Y.mergeUpdates(batch);
    // A merged backlog larger than a message may be is sent as the original updates, grouped.
    const parts = merged.byteLength <= this.#maxUpdateBytes || batch.length === 1 ? [merged] : this.#group(batch);
    for (const part of parts) this.#publish(part);
  }

  #group(batch: Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    let cur: Uint8Array[] = [];
    let size = 0;
    for (const u of batch) {
      if (cur.length > 0 && size + u.byteLength > this.#maxUpdateBytes) {
        out.push(Y.mergeUpdates(cur));
        cur = [];
        size = 0;
      }
      cur.push(u);
      size += u.byteLength;
    }
    if (cur.length > 0) out.push(Y.mergeUpdates(cur));
    return out;
  }

  #publish(update: Uint8Array): void {
    this.#inFlight++;
    this.#client.publish(this.channel, update, { type: UPDATE_TYPE }).then(
      () => {
        this.#inFlight--;
        if (this.#inFlight === 0 && this.#sub.state === 'subscribed' && this.#synced) this.#flush();
      },
      (err: unknown) => {
        this.#inFlight--;
        const code = (err as { code?: string }).code;
        if (code !== undefined && REFUSED.has(code)) {
          // Refused for what it is (read-only token, not bytes, too large): sending it again cannot help.
          this.#emit('error', err instanceof Error ? err : new Error(String(err)));
          if (this.#inFlight === 0 && this.#sub.state === 'subscribed' && this.#synced) this.#flush();
          return;
        }
        // Not stored (offline queue full, timeout, closed): kept, and sent again on the next
        // (re)subscribe, or shortly if the connection is still up.
        this.#pending.unshift(update);
        this.#retrySoon();
      },
    );
  }

  #retrySoon(): void {
    if (this.#retryTimer !== undefined || this.#destroyed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#inFlight === 0 && this.#sub.state === 'subscribed' && this.#synced && this.#client.isConnected) this.#flush();
    }, RETRY_MS);
  }

  #publishAwareness(clients?: number[]): void {
    const awareness = this.awareness;
    if (!awareness || !this.#awarenessSub || this.#awarenessSub.state !== 'subscribed') return;
    const ids = clients ?? (awareness.getLocalState() === null ? [] : [this.doc.clientID]);
    if (ids.length === 0) return;
    const update = encodeAwarenessUpdate(awareness, ids);
    this.#client.publish(this.awarenessChannel, { client: this.doc.clientID, update }, { type: AWARENESS_TYPE }).catch(() => {
      // Awareness is ephemeral: a lost state is renewed within 15 s (and on the next change).
    });
  }

  #onAwareness(m: PublicationMessage): void {
    if (m.type !== AWARENESS_TYPE || !this.awareness) return;
    const data = m.data as { client?: unknown; update?: unknown } | undefined;
    const update = bytesOf(data?.update);
    if (!update || typeof data?.client !== 'number' || data.client === this.doc.clientID) return;
    const publisher = m.publisher;
    if (publisher?.via === 'ws') {
      let set = this.#peers.get(publisher.client);
      if (!set) this.#peers.set(publisher.client, (set = new Set()));
      set.add(data.client);
    }
    applyAwarenessUpdate(this.awareness, update, this);
  }

  #dropPeer(connectionId: string): void {
    const ids = this.#peers.get(connectionId);
    this.#peers.delete(connectionId);
    if (ids && this.awareness) removeAwarenessStates(this.awareness, [...ids], this);
  }

  #dropPeers(): void {
    for (const id of [...this.#peers.keys()]) this.#dropPeer(id);
  }
}
