/**
 * One client's connection: authentication, the command loop, subscriptions, token expiry and
 * refresh, limits. Talks only to a Transport. Commands of one connection run strictly in order,
 * so replies (and publish offsets) follow request order.
 */
import {
  CloseCode, ErrorCode, decodeJsonFrame, decodeMsgpackFrame, decodePrdCommand, decodePrpCommand, isDecodeError,
  isValidEventType, type Command, type Dialect, type Encoding, type ErrorInfo, type PresenceMember, type Publication, type Publisher, type ServerEvent,
  type StreamPosition, type SubscribeOutcome,
} from '@signalbox/protocol';
import { AuthError, type Authenticator, type Credentials } from './auth/jwt.js';
import type { NamespaceTable, ResolvedChannel } from './channels/namespaces.js';
import type { ChannelOperations } from './channels/operations.js';
import type { GatewayConfig } from './config.js';
import { encIndex, encodeEvent, publicationFrame, type EncIndex } from './frames.js';
import { toGatewayError } from './errors.js';
import type { Hub, PreparedSubscription, Subscriber } from './hub/hub.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { RpcRouter } from './rpc/router.js';
import { TokenBucket } from './ratelimit.js';
import type { Transport, TransportHandler } from './transport/types.js';
import { SERVER_VERSION } from './version.js';

export interface ConnectionContext {
  config: GatewayConfig;
  hub: Hub;
  /** Publish, history, presence: the operations this connection's requests ask for. */
  ops: ChannelOperations;
  namespaces: NamespaceTable;
  auth: Authenticator;
  /** Request/reply to channel handlers, on this node and across nodes. */
  rpc: RpcRouter;
  metrics: Metrics;
  log: Logger;
  /** Called once when the connection is gone. */
  onClosed(conn: Connection): void;
}

export interface ConnectionInfo {
  id: string;
  ip: string;
  dialect: Dialect;
  encoding: Encoding;
}

type State = 'authenticating' | 'open' | 'closing' | 'closed';

/** Most frames queued while the token is being verified. */
const MAX_PREAUTH_FRAMES = 64;
/** The command queue of a connection with nothing queued: one promise shared by all of them. */
const IDLE: Promise<void> = Promise.resolve();
const FEATURES = ['subscribe', 'unsubscribe', 'heartbeat', 'publish', 'history', 'recovery', 'refresh', 'presence', 'msgpack', 'append'];

/** Socket backlog past which latest-wins frames are kept back (at most a quarter of the outbound buffer). */
const LATEST_BACKLOG = 64 * 1024;
/** Latest-wins keys one connection keeps back at most (channels x keys). */
const MAX_LATEST_KEPT = 4096;

export class Connection implements Subscriber, TransportHandler {
  readonly id: string;
  readonly ip: string;
  readonly dialect: Dialect;
  readonly encoding: Encoding;
  readonly encIdx: EncIndex;
  private readonly binary: boolean;
  private state: State = 'authenticating';
  private creds: Credentials | null = null;
  /** Channels held (live or being prepared). */
  private readonly subs = new Map<string, ResolvedChannel>();
  /** Frames received before the token is verified; null afterwards. */
  private preauth: { data: Buffer; isBinary: boolean }[] | null = [];
  /** The tail of the command queue; back to the shared IDLE when nothing is queued. */
  private chain: Promise<void> = IDLE;
  private pending = 0;
  private readonly messageBucket: TokenBucket;
  /** Made on the first publish (full, as it would be by then): most connections only subscribe. */
  private publishBucket: TokenBucket | null = null;
  private callBucket: TokenBucket | null = null;
  private newChannelBucket: TokenBucket | null = null;
  /** Latest-wins frames kept back while the socket is behind (see deliverLatest), by channel and key. */
  private latest: Map<string, Buffer> | null = null;
  private latestArmed = false;
  /** Channels this connection published to lately (see admitNewChannel). */
  private recentChannels: Set<string> | null = null;
  /** RPC calls of this connection waiting for their outcome. */
  private rpcInFlight = 0;
  private readonly subscribeBucket: TokenBucket;
  /** Invalid messages tolerated before the socket is closed (4008); created on the first one. */
  private violationBucket: TokenBucket | null = null;
  /** Rate-limit hits tolerated before the socket is closed (4029); created on the first one. */
  private rateStrikeBucket: TokenBucket | null = null;
  private authTimer: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;
  /** Cleared on each heartbeat tick, set by a pong (the answer to the tick's ping). */
  alive = true;
  /** Since when the outbound buffer has been over its limit (ms), or 0. */
  private overSince = 0;
  /** config.outboundBufferBytes, kept here: it is read for every delivery. */
  private readonly outboundLimit: number;
  private overTimer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: ConnectionContext, private readonly transport: Transport, info: ConnectionInfo) {
    this.id = info.id;
    this.ip = info.ip;
    this.dialect = info.dialect;
    this.encoding = info.encoding;
    this.encIdx = encIndex(info.dialect, info.encoding);
    this.binary = info.encoding === 'msgpack';
    const c = ctx.config;
    this.outboundLimit = c.outboundBufferBytes;
    this.messageBucket = new TokenBucket(c.messageRate, c.messageBurst);
    this.subscribeBucket = new TokenBucket(c.subscribeRate, c.subscribeBurst);
  }

  get subject(): string | null {
    return this.creds?.sub ?? null;
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** When the socket was accepted (ms since the epoch). */
  readonly connectedAt = Date.now();

  /** The channels held. */
  get channels(): string[] {
    return [...this.subs.keys()];
  }

  /** Bytes queued for the socket, not yet taken by the kernel. */
  get bytesBuffered(): number {
    return this.transport.bufferedAmount;
  }

  /** Removes one subscription by the server's decision (admin API): the client is told `subscription.removed`. */
  removeSubscription(name: string): boolean {
    if (!this.subs.has(name)) return false;
    this.send({ kind: 'unsubscribed_by_server', channel: name, code: ErrorCode.PERMISSION_DENIED, message: 'Removed by an administrator' });
    this.release(name);
    return true;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Verifies the token the client presented at the upgrade; frames received meanwhile wait in order. */
  authenticate(token: string | null): void {
    if (token === null) {
      this.failAuth(new AuthError(ErrorCode.AUTH_FAILED, 'Missing token: send it as Authorization: Bearer, ?token=, or the bearer.<jwt> subprotocol'));
      return;
    }
    this.authTimer = setTimeout(() => {
      if (this.state !== 'authenticating') return;
      this.sendError(ErrorCode.AUTH_FAILED, 'Token verification timed out', {});
      this.close(CloseCode.AUTH_TIMEOUT, 'auth timeout');
    }, this.ctx.config.handshakeTimeoutMs);
    this.ctx.auth.verify(token).then(
      (creds) => {
        this.clearAuthTimer();
        if (this.state !== 'authenticating') return;
        this.creds = creds;
        this.state = 'open';
        this.scheduleExpiry();
        this.send({ kind: 'established', connectionId: this.id, serverVersion: SERVER_VERSION, features: FEATURES });
        const queued = this.preauth ?? [];
        this.preauth = null;
        for (const f of queued) this.process(f.data, f.isBinary);
      },
      (err: unknown) => {
        this.clearAuthTimer();
        if (this.state !== 'authenticating') return;
        this.failAuth(err instanceof AuthError ? err : new AuthError(ErrorCode.AUTH_FAILED, 'Token verification failed'));
      },
    );
  }

  private failAuth(err: AuthError): void {
    this.preauth = null;
    this.sendError(err.code, err.message, {});
    if (err.code === ErrorCode.TOKEN_EXPIRED) this.close(CloseCode.TOKEN_EXPIRED, 'token expired');
    // Not a verdict on the token (e.g. the key set is down): 4004 tells the client to retry, 4001 would make it give up.
    else if (err.retryable) this.close(CloseCode.AUTH_TIMEOUT, 'token verification unavailable');
    else this.close(CloseCode.AUTH_FAILED, 'auth failed');
  }

  private clearAuthTimer(): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
  }

  // ---- inbound ----

  /** A frame from the socket. Never throws. */
  onFrame(data: Buffer, isBinary: boolean): void {
    // Not a sign of life: only a pong answering the server's ping is (onPong). A peer that sends
    // but never reads (nor answers pings) must not be kept alive by its own traffic.
    this.ctx.metrics.messagesIn.inc(1, this.dialect);
    this.ctx.metrics.bytesIn += data.length;
    if (this.state === 'authenticating') {
      if (this.preauth === null) return;
      if (this.preauth.length >= MAX_PREAUTH_FRAMES) {
        this.close(CloseCode.PROTOCOL_VIOLATION, 'too many messages before authentication');
        return;
      }
      this.preauth.push({ data, isBinary });
      return;
    }
    if (this.state !== 'open') return;
    try {
      this.process(data, isBinary);
    } catch (err) {
      this.ctx.log.error({ err, conn: this.id }, 'unexpected error handling a frame');
      this.sendError(ErrorCode.INTERNAL_ERROR, 'Internal error', {});
    }
    this.transport.inputHandled();
  }

  private process(data: Buffer, isBinary: boolean): void {
    if (this.state !== 'open') return;
    const cfg = this.ctx.config;
    if (data.length > cfg.maxMessageBytes) {
      // Named by its request when it has one (a frame up to 4x the limit is here whole), so the
      // client can fail that request at once rather than wait for its timeout and send it again.
      this.violation(ErrorCode.MESSAGE_TOO_LARGE, `Message of ${data.length} bytes exceeds the limit of ${cfg.maxMessageBytes} bytes`, this.peekRequest(data, isBinary));
      return;
    }
    if (!this.messageBucket.take()) {
      this.rateLimited('Too many messages', this.peekRequest(data, isBinary));
      return;
    }
    const frame = isBinary ? decodeMsgpackFrame(data, { maxDepth: cfg.maxJsonDepth }) : decodeJsonFrame(data.toString('utf8'), { maxDepth: cfg.maxJsonDepth });
    if (!frame.ok) {
      this.violation(ErrorCode.INVALID_MESSAGE, frame.message, {});
      return;
    }
    const cmd = this.dialect === 'prp' ? decodePrpCommand(frame.value) : decodePrdCommand(frame.value);
    if (isDecodeError(cmd)) {
      this.violation(cmd.code, cmd.message, { requestId: cmd.requestId, action: cmd.action });
      return;
    }
    if (cmd.kind === 'pong') return;
    if (cmd.kind === 'ping' && this.pending === 0) {
      this.send({ kind: 'pong', replyTo: cmd.requestId });
      return;
    }
    if (this.pending >= cfg.maxPendingRequests) {
      this.rateLimited('Too many requests in flight', { requestId: cmd.requestId, action: actionName(this.dialect, cmd) });
      return;
    }
    // Nothing in flight: start at once (one promise, not a chain of three); else queue behind the tail.
    const bytes = data.length;
    this.chain = ++this.pending === 1 ? this.run(cmd, bytes) : this.chain.then(() => this.run(cmd, bytes));
  }

  /** Runs one command (`bytes`: the size of the frame it came in); never rejects. */
  private async run(cmd: Command, bytes: number): Promise<void> {
    try {
      if (this.state === 'open') await this.execute(cmd, bytes);
    } catch (err) {
      this.ctx.log.error({ err, conn: this.id, action: cmd.kind }, 'request failed');
      this.sendError(ErrorCode.INTERNAL_ERROR, 'Internal error', { requestId: cmd.requestId, action: actionName(this.dialect, cmd) });
    } finally {
      // Nothing queued behind this command: let its promise go.
      if (--this.pending === 0) this.chain = IDLE;
    }
  }

  /** Best effort: the id and action of a frame that will not be processed, so that its error still names the request. */
  private peekRequest(data: Buffer, isBinary: boolean): ErrorInfo['details'] {
    const limits = { maxDepth: this.ctx.config.maxJsonDepth };
    const frame = isBinary ? decodeMsgpackFrame(data, limits) : decodeJsonFrame(data.toString('utf8'), limits);
    if (!frame.ok) return {};
    const cmd = this.dialect === 'prp' ? decodePrpCommand(frame.value) : decodePrdCommand(frame.value);
    return isDecodeError(cmd) ? { requestId: cmd.requestId, action: cmd.action } : { requestId: cmd.requestId, action: actionName(this.dialect, cmd) };
  }

  private async execute(cmd: Command, bytes: number): Promise<void> {
    switch (cmd.kind) {
      case 'subscribe':
        return this.subscribe(cmd);
      case 'unsubscribe':
        return this.unsubscribe(cmd);
      case 'publish':
        return this.publish(cmd, bytes);
      case 'history':
        return this.history(cmd);
      case 'presence':
        return this.presence(cmd);
      case 'refresh':
        return this.refresh(cmd);
      case 'ping':
        this.send({ kind: 'pong', replyTo: cmd.requestId });
        return;
      case 'pong':
        return;
      case 'rpc_handle':
        return this.rpcHandle(cmd);
      case 'rpc_unhandle':
        return this.rpcUnhandle(cmd);
      case 'rpc_call':
        // Not awaited: a call in flight must not hold up this connection's other requests.
        this.rpcCall(cmd);
        return;
      case 'rpc_reply':
        this.ctx.rpc.reply(this, cmd.callId, cmd);
        return;
    }
  }

  // ---- RPC ----------------------------------------------------------------------------------

  /** A call routed to this connection as the channel's handler. */
  deliverCall(call: { callId: string; channel: string; method: string; params: unknown; caller: Publisher; timeoutMs: number }): void {
    this.send({ kind: 'rpc_request', ...call });
  }

  /** Resolves an RPC request's channel and checks the token's `handle` or `call` grant (else the error is sent). */
  private rpcChannel(cmd: Extract<Command, { channel: string }>, grant: 'handle' | 'call', extra: ErrorInfo['details'] = {}): { details: ErrorInfo['details']; channel: ResolvedChannel | null } {
    const details: ErrorInfo['details'] = { requestId: cmd.requestId, action: actionName(this.dialect, cmd), channel: cmd.channel, ...extra };
    const r = this.ctx.namespaces.resolve(cmd.channel);
    if (!r.ok) {
      this.sendError(r.code, r.message, details);
      return { details, channel: null };
    }
    if (!this.creds![grant].matches(r.channel.name)) {
      const what = grant === 'handle' ? 'handling' : 'calling the handler of';
      this.sendError(ErrorCode.PERMISSION_DENIED, `Token does not grant ${what} channel '${r.channel.name}' (\`${grant}\` claim)`, details);
      return { details, channel: null };
    }
    return { details, channel: r.channel };
  }

  private async rpcHandle(cmd: Extract<Command, { kind: 'rpc_handle' }>): Promise<void> {
    const { details, channel } = this.rpcChannel(cmd, 'handle');
    if (!channel) return;
    const handled = this.ctx.rpc.handled(this);
    if (!handled.includes(channel.name) && handled.length >= MAX_HANDLED_CHANNELS) {
      this.sendError(ErrorCode.SUBSCRIPTION_LIMIT, `A connection may handle at most ${MAX_HANDLED_CHANNELS} channels`, details);
      return;
    }
    try {
      await this.ctx.rpc.register(this, channel.name, cmd.methods);
      this.send({ kind: 'rpc_handling', replyTo: cmd.requestId, channel: channel.name, methods: cmd.methods });
    } catch (err) {
      this.sendFailure(err, details);
    }
  }

  private async rpcUnhandle(cmd: Extract<Command, { kind: 'rpc_unhandle' }>): Promise<void> {
    const { details, channel } = this.rpcChannel(cmd, 'handle');
    if (!channel) return;
    try {
      await this.ctx.rpc.unregister(this, channel.name);
      this.send({ kind: 'rpc_unhandled', replyTo: cmd.requestId, channel: channel.name });
    } catch (err) {
      this.sendFailure(err, details);
    }
  }

  private rpcCall(cmd: Extract<Command, { kind: 'rpc_call' }>): void {
    const { details, channel } = this.rpcChannel(cmd, 'call', { method: cmd.method });
    if (!channel) return;
    const cfg = this.ctx.config;
    const timeoutMs = cmd.timeoutMs ?? cfg.rpcTimeoutMs;
    if (timeoutMs > cfg.rpcMaxTimeoutMs) {
      this.violation(ErrorCode.INVALID_MESSAGE, `\`timeoutMs\` may be at most ${cfg.rpcMaxTimeoutMs} (SIGNALBOX_RPC_MAX_TIMEOUT)`, details);
      return;
    }
    if (this.rpcInFlight >= cfg.rpcMaxCallsInFlight) {
      this.rateLimited(`Too many calls in flight (at most ${cfg.rpcMaxCallsInFlight}, SIGNALBOX_RPC_MAX_IN_FLIGHT)`, details);
      return;
    }
    if (!(this.callBucket ??= new TokenBucket(cfg.rpcCallRate, cfg.rpcCallRate * 2)).take()) {
      this.rateLimited('Too many calls', details);
      return;
    }
    this.rpcInFlight++;
    const caller: Publisher = { via: 'ws', sub: this.creds!.sub, client: this.id };
    this.ctx.rpc.call(channel.name, cmd.method, cmd.params, caller, timeoutMs).then(
      (result) => this.send({ kind: 'rpc_result', replyTo: cmd.requestId, channel: channel.name, method: cmd.method, result }),
      (err: unknown) => this.sendFailure(err, details),
    ).finally(() => {
      this.rpcInFlight--;
    });
  }

  private async subscribe(cmd: Extract<Command, { kind: 'subscribe' }>): Promise<void> {
    const action = actionName(this.dialect, cmd);
    const d = (channel: string) => ({ requestId: cmd.requestId, action, channel });
    const cfg = this.ctx.config;
    const already: SubscribeOutcome[] = [];
    const wanted: { ch: ResolvedChannel; since?: StreamPosition }[] = [];
    const seen = new Set<string>();
    for (const req of cmd.channels) {
      if (seen.has(req.channel)) continue;
      seen.add(req.channel);
      const check = this.ctx.namespaces.check(this.creds!, req.channel, 'read');
      if (!check.ok) {
        this.sendError(check.code, check.message, d(req.channel));
        continue;
      }
      if (this.subs.has(req.channel)) {
        const position = this.ctx.hub.position(req.channel);
        if (position) already.push({ channel: req.channel, position });
        continue;
      }
      if (this.subs.size + wanted.length >= cfg.maxSubscriptionsPerConnection) {
        this.sendError(ErrorCode.SUBSCRIPTION_LIMIT, `Connection holds the maximum of ${cfg.maxSubscriptionsPerConnection} subscriptions`, d(req.channel));
        continue;
      }
      const max = check.channel.namespace.maxSubscribers;
      if (max > 0 && this.ctx.hub.subscriberCount(req.channel) >= max) {
        this.sendError(ErrorCode.SUBSCRIPTION_LIMIT, `Channel '${req.channel}' has the maximum of ${max} subscribers`, d(req.channel));
        continue;
      }
      if (!this.subscribeBucket.take()) {
        this.rateLimited(`Too many subscriptions per second; '${req.channel}' was not subscribed`, d(req.channel));
        continue;
      }
      wanted.push({ ch: check.channel, since: req.since });
    }
    for (const w of wanted) this.subs.set(w.ch.name, w.ch);
    const results = await Promise.allSettled(wanted.map((w) => this.ctx.hub.prepare(this, w.ch.name, w.ch.namespace, w.since)));
    const prepared: PreparedSubscription[] = [];
    results.forEach((r, i) => {
      const ch = wanted[i]!.ch;
      if (r.status === 'fulfilled') prepared.push(r.value);
      else {
        this.subs.delete(ch.name);
        this.sendFailure(r.reason, d(ch.name));
      }
    });
    if (this.state !== 'open') {
      for (const p of prepared) this.ctx.hub.abandon(this, p.stream.name);
      return;
    }
    // Confirmation first, then each channel's missed publications and live stream (synchronously: no interleaving).
    this.send({ kind: 'subscribed', replyTo: cmd.requestId, channels: [...already, ...prepared.map((p) => p.outcome)] });
    for (const p of prepared) {
      if (this.state !== 'open') break;
      if (!this.subs.has(p.stream.name)) continue;
      this.ctx.hub.activate(this, p);
      const ch = this.subs.get(p.stream.name);
      if (ch?.namespace.presence && this.subs.has(ch.name)) this.presenceJoin(ch);
    }
  }

  private async unsubscribe(cmd: Extract<Command, { kind: 'unsubscribe' }>): Promise<void> {
    const action = actionName(this.dialect, cmd);
    const done: string[] = [];
    for (const channel of cmd.channels) {
      const r = this.ctx.namespaces.resolve(channel);
      if (!r.ok) {
        this.sendError(r.code, r.message, { requestId: cmd.requestId, action, channel });
        continue;
      }
      this.release(channel);
      done.push(channel);
    }
    this.send({ kind: 'unsubscribed', replyTo: cmd.requestId, channels: done });
  }

  private async publish(cmd: Extract<Command, { kind: 'publish' }>, bytes: number): Promise<void> {
    const { details, channel } = this.channelRequest(cmd, 'publish', cmd.type);
    if (!channel) return;
    if (!isValidEventType(cmd.type)) {
      this.violation(ErrorCode.INVALID_MESSAGE, 'Event `type` must be 1-64 characters [A-Za-z0-9_.:-], start with a letter, and not be a system event type', details);
      return;
    }
    const cfg = this.ctx.config;
    if (!(this.publishBucket ??= new TokenBucket(cfg.publishRate, cfg.publishBurst)).take()) {
      this.rateLimited('Too many publishes', details);
      return;
    }
    if (!this.admitNewChannel(channel.name)) {
      this.rateLimited(`Publishing to too many different channels (at most ${cfg.newChannelRate}/s, SIGNALBOX_NEW_CHANNEL_RATE)`, details);
      return;
    }
    try {
      const msg = { type: cmd.type, data: cmd.data, id: cmd.requestId, size: bytes, ...(cmd.appendTo !== undefined ? { appendTo: cmd.appendTo } : {}) };
      const r = await this.ctx.ops.publish(channel, msg, { via: 'ws', sub: this.creds!.sub, client: this.id });
      const p = r.publication;
      this.send({ kind: 'ack', replyTo: cmd.requestId, publication: { id: p.id, channel: p.channel, offset: p.offset, epoch: p.epoch }, duplicate: r.duplicate });
    } catch (err) {
      this.sendFailure(err, details);
    }
  }

  /**
   * A publish to a channel this connection has not published to lately takes a token from the
   * new-channel bucket: each such publish may create a channel (and its history), so one
   * connection cannot spread memory over thousands of channels at the publish rate.
   */
  private admitNewChannel(name: string): boolean {
    const recent = (this.recentChannels ??= new Set());
    if (recent.has(name)) return true;
    const cfg = this.ctx.config;
    if (!(this.newChannelBucket ??= new TokenBucket(cfg.newChannelRate, cfg.newChannelRate * 2)).take()) return false;
    // Bounded memory: past RECENT_CHANNELS names, start over (those channels then count again).
    if (recent.size >= RECENT_CHANNELS) recent.clear();
    recent.add(name);
    return true;
  }

  /** The error details of a single-channel request, and its channel if the token may use it (else the error is sent). */
  private channelRequest(cmd: Extract<Command, { channel: string }>, op: 'read' | 'publish', type?: string): { details: ErrorInfo['details']; channel: ResolvedChannel | null } {
    const details: ErrorInfo['details'] = { requestId: cmd.requestId, action: actionName(this.dialect, cmd), channel: cmd.channel };
    const check = op === 'publish' ? this.ctx.namespaces.check(this.creds!, cmd.channel, op, type!) : this.ctx.namespaces.check(this.creds!, cmd.channel, op);
    if (check.ok) return { details, channel: check.channel };
    if (op === 'publish' && check.code === ErrorCode.PERMISSION_DENIED) details.type = type;
    this.sendError(check.code, check.message, details);
    return { details, channel: null };
  }

  private async history(cmd: Extract<Command, { kind: 'history' }>): Promise<void> {
    const { details, channel } = this.channelRequest(cmd, 'read');
    if (!channel) return;
    try {
      const maxBytes = Math.min(this.ctx.config.maxReplyBytes, Math.floor(this.outboundLimit / 2));
      const hist = await this.ctx.ops.history(channel, { since: cmd.since, limit: cmd.limit, maxBytes, encodable: (p) => this.canEncode(p) });
      this.send({ kind: 'history', replyTo: cmd.requestId, channel: cmd.channel, publications: hist.publications, position: hist.position, ...(hist.next ? { next: hist.next } : {}) });
    } catch (err) {
      this.sendFailure(err, details);
    }
  }

  /** Whether this connection's dialect and encoding can carry the publication. */
  private canEncode(pub: Publication): boolean {
    try {
      publicationFrame(pub, this.encIdx);
      return true;
    } catch {
      return false;
    }
  }

  private async presence(cmd: Extract<Command, { kind: 'presence' }>): Promise<void> {
    const { details, channel } = this.channelRequest(cmd, 'read');
    if (!channel) return;
    try {
      this.send({ kind: 'presence', replyTo: cmd.requestId, channel: cmd.channel, members: await this.ctx.ops.presence(channel) });
    } catch (err) {
      this.sendFailure(err, details);
    }
  }

  // ---- presence ----

  private member(): PresenceMember {
    return { clientId: this.id, userId: this.creds!.sub, ...(this.creds!.info !== undefined ? { info: this.creds!.info } : {}) };
  }

  private presenceTtl(): number {
    return this.ctx.config.heartbeatIntervalMs * 3;
  }

  /** Records the member and announces it on the channel's stream (so join/leave are ordered and recoverable). */
  private presenceJoin(ch: ResolvedChannel): void {
    this.ctx.ops.announce(ch, 'joined', this.member(), this.presenceTtl())
      .catch((err: unknown) => this.ctx.log.warn({ err, channel: ch.name }, 'presence join failed'));
  }

  private presenceLeave(ch: ResolvedChannel): void {
    this.ctx.ops.announce(ch, 'left', this.member(), this.presenceTtl())
      .catch((err: unknown) => this.ctx.log.warn({ err, channel: ch.name }, 'presence leave failed'));
  }

  private async refresh(cmd: Extract<Command, { kind: 'refresh' }>): Promise<void> {
    const details = { requestId: cmd.requestId, action: actionName(this.dialect, cmd) };
    let creds: Credentials;
    try {
      creds = await this.ctx.auth.verify(cmd.token);
    } catch (err) {
      const e = err instanceof AuthError ? err : new AuthError(ErrorCode.AUTH_FAILED, 'Token verification failed');
      this.sendError(e.code, `Refresh refused: ${e.message}`, details);
      return;
    }
    if (creds.sub !== this.creds!.sub) {
      this.sendError(ErrorCode.AUTH_FAILED, 'Refresh refused: the new token is for another subject', details);
      return;
    }
    if (this.state !== 'open') return;
    this.creds = creds;
    this.scheduleExpiry();
    // Subscriptions the new token no longer grants are removed.
    for (const [name, ch] of this.subs) {
      if (!this.ctx.namespaces.canRead(creds, ch)) {
        this.release(name);
        this.send({ kind: 'unsubscribed_by_server', channel: name, code: ErrorCode.PERMISSION_DENIED, message: 'The refreshed token does not grant this channel' });
      }
    }
    this.send({ kind: 'refreshed', replyTo: cmd.requestId, expiresAt: creds.expiresAt === null ? null : new Date(creds.expiresAt).toISOString() });
  }

  // ---- token expiry ----

  /**
   * Arms the expiry timer when `exp` is within two heartbeat intervals; a later expiry is left to
   * the heartbeat visits (which call this again), so idle connections with long-lived tokens hold
   * no timer.
   */
  private scheduleExpiry(): void {
    this.clearExpiryTimers();
    this.armExpiryIfNear();
  }

  private armExpiryIfNear(): void {
    const exp = this.creds?.expiresAt;
    if (exp == null || this.expiryTimer !== null || this.graceTimer !== null) return;
    const delay = exp - Date.now();
    if (delay > 2 * this.ctx.config.heartbeatIntervalMs) return;
    this.expiryTimer = setTimeout(() => this.onExpired(exp), Math.max(delay, 0));
  }

  private onExpired(exp: number): void {
    this.expiryTimer = null;
    if (this.state !== 'open') return;
    const grace = this.ctx.config.tokenExpiryGraceMs;
    this.send({ kind: 'token_expired', expiredAt: new Date(exp).toISOString(), graceMs: grace });
    this.graceTimer = setTimeout(() => this.close(CloseCode.TOKEN_EXPIRED, 'token expired'), grace);
  }

  private clearExpiryTimers(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.expiryTimer = this.graceTimer = null;
  }

  // ---- outbound ----

  /** Hot path: a complete publication frame, shared with every subscriber of the same encoding. */
  deliver(frame: Buffer, catchUp = false): void {
    if (this.state !== 'open') return;
    if (catchUp) {
      this.transport.sendFrame(frame);
      return;
    }
    if (this.admit()) this.transport.sendFrame(frame);
  }

  /**
   * Latest-wins delivery (a `delivery: latest` namespace). In step with the socket, frames go out
   * as usual. Once the socket holds more than a little (LATEST_BACKLOG), frames are kept back, one
   * per channel and key, the newest replacing the one before and moving behind the others so a
   * channel's offsets still only grow; when the socket drains, what was kept goes out. A dashboard
   * that cannot keep up gets the newest values, not a backlog, and is not closed as a slow consumer
   * for it.
   */
  deliverLatest(channel: string, key: string, frame: Buffer): void {
    if (this.state !== 'open') return;
    let kept = this.latest;
    if (kept === null) {
      if (this.transport.bufferedUpperBound <= this.latestBacklog()) {
        if (this.admit()) this.transport.sendFrame(frame);
        return;
      }
      kept = this.latest = new Map();
    }
    const k = `${channel}\u0000${key}`;
    if (kept.has(k)) kept.delete(k);
    else if (kept.size >= MAX_LATEST_KEPT) {
      // More keys than a connection keeps: this one goes out as usual, against the outbound limit.
      if (this.admit()) this.transport.sendFrame(frame);
      return;
    }
    kept.set(k, frame);
    if (!this.latestArmed) {
      this.latestArmed = true;
      this.transport.whenDrained(this.sendLatest);
    }
  }

  private latestBacklog(): number {
    return Math.min(LATEST_BACKLOG, this.outboundLimit / 4);
  }

  private readonly sendLatest = (): void => {
    this.latestArmed = false;
    const kept = this.latest;
    if (this.state !== 'open' || kept === null) return;
    if (this.transport.bufferedAmount > this.latestBacklog()) {
      this.latestArmed = true;
      this.transport.whenDrained(this.sendLatest);
      return;
    }
    this.latest = null;
    for (const f of kept.values()) {
      if (!this.admit()) return;
      this.transport.sendFrame(f);
    }
  };

  /** A pong: the peer answered the heartbeat's ping. */
  onPong(): void {
    this.alive = true;
  }

  /**
   * May one more frame be queued? Every frame to the peer counts against its outbound buffer
   * (deliveries, replies, errors, pongs): a peer that does not read is closed as a slow consumer
   * whatever it made the gateway send. False once it has been closed.
   */
  private admit(): boolean {
    const t = this.transport;
    const limit = this.outboundLimit;
    // The exact figure reaches into the socket's stream state; the bound is two fields away.
    const buffered = t.bufferedUpperBound > limit ? t.bufferedAmount : 0;
    if (buffered > limit) return this.overBuffer(buffered);
    if (this.overSince !== 0) {
      this.overSince = 0;
      if (this.overTimer) clearTimeout(this.overTimer);
      this.overTimer = null;
    }
    return true;
  }

  /**
   * Above the outbound buffer: tolerated for `slowConsumerGraceMs` (a large recovery burst that
   * the client drains), up to a hard cap of 4x the buffer. Returns false when the connection was
   * closed as a slow consumer (4010); it recovers on reconnect.
   */
  private overBuffer(buffered: number): boolean {
    const cfg = this.ctx.config;
    const now = Date.now();
    if (this.overSince === 0) {
      this.overSince = now;
      // Decide at the end of the grace period even if nothing more is delivered by then.
      this.overTimer = setTimeout(() => this.checkBuffer(), cfg.slowConsumerGraceMs + 1);
    }
    if (buffered > cfg.outboundBufferBytes * 4 || now - this.overSince > cfg.slowConsumerGraceMs) {
      this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: reconnect and recover');
      return false;
    }
    return true;
  }

  private checkBuffer(): void {
    this.overTimer = null;
    if (this.state !== 'open' || this.overSince === 0) return;
    if (this.transport.bufferedAmount > this.ctx.config.outboundBufferBytes) this.overBuffer(this.transport.bufferedAmount);
    else this.overSince = 0;
  }

  lose(channel: string, why: 'resync' | 'overflow'): void {
    this.ctx.log.info({ conn: this.id, channel, why }, 'subscriber must reconnect and recover');
    this.close(why === 'overflow' ? CloseCode.SLOW_CONSUMER : CloseCode.RESYNC_REQUIRED, why === 'overflow' ? 'slow consumer: reconnect and recover' : 'resync required: reconnect and recover');
  }

  send(ev: ServerEvent): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (this.state === 'open' && !this.admit()) return;
    this.transport.send(encodeEvent(ev, this.encIdx), this.binary);
  }

  /** Sends a pre-built broadcast frame (heartbeat). */
  sendRaw(frame: Buffer): void {
    if (this.state === 'open' && this.admit()) this.transport.sendFrame(frame);
  }

  sendError(code: ErrorCode, message: string, details: ErrorInfo['details']): void {
    this.ctx.metrics.errors.labels(code).inc();
    const clean: ErrorInfo['details'] = {};
    for (const [k, v] of Object.entries(details)) if (v !== undefined) clean[k] = v;
    this.send({ kind: 'error', replyTo: details.requestId, error: { code, message, details: clean } });
  }

  /** A request that failed: its error, naming the request; an unexpected failure is logged, its cause never sent. */
  private sendFailure(err: unknown, details: ErrorInfo['details']): void {
    const e = toGatewayError(err);
    if (e.unexpected) this.ctx.log.error({ err: e.cause ?? err, conn: this.id }, 'request failed');
    this.sendError(e.code, e.message, { ...details, ...e.details });
  }

  /** An invalid message: answered, and counted towards the protocol-violation close. */
  private violation(code: ErrorCode, message: string, details: ErrorInfo['details']): void {
    this.sendError(code, message, details);
    this.violationBucket ??= new TokenBucket(1, 20);
    if (!this.violationBucket.take()) this.close(CloseCode.PROTOCOL_VIOLATION, 'too many invalid messages');
  }

  private rateLimited(message: string, details: ErrorInfo['details']): void {
    this.sendError(ErrorCode.RATE_LIMITED, message, details);
    this.rateStrikeBucket ??= new TokenBucket(2, 100);
    if (!this.rateStrikeBucket.take()) this.close(CloseCode.RATE_LIMITED, 'rate limit exceeded repeatedly');
  }

  /**
   * Heartbeat tick: terminate a peer that answered nothing since the last tick, else send it
   * `frame`, a WebSocket ping followed by the heartbeat event (one shared buffer).
   */
  heartbeat(frame: Buffer): void {
    if (this.state === 'closed') return;
    if (!this.alive) {
      this.ctx.log.info({ conn: this.id }, 'heartbeat timeout; terminating');
      this.transport.terminate();
      return;
    }
    this.alive = false;
    this.sendRaw(frame);
    this.armExpiryIfNear();
    if (this.state === 'open') {
      for (const ch of this.subs.values()) {
        if (ch.namespace.presence) this.ctx.ops.refreshPresence(ch, this.member(), this.presenceTtl());
      }
    }
  }

  /** Destroys the socket at once (end of a drain). */
  terminate(): void {
    this.transport.terminate();
    this.onTransportClosed(CloseCode.SERVICE_RESTART);
  }

  /** Starts a closing handshake; `onTransportClosed` completes it. */
  close(code: number, reason: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.transport.close(code, reason);
    this.releaseSubscriptions();
  }

  onSocketError(err: Error): void {
    this.ctx.log.debug({ err, conn: this.id }, 'socket error');
  }

  /** The socket is gone (closed by either side, or terminated). */
  onTransportClosed(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearAuthTimer();
    this.clearExpiryTimers();
    if (this.overTimer) clearTimeout(this.overTimer);
    this.preauth = null;
    this.releaseSubscriptions();
    this.ctx.rpc.connectionClosed(this);
    this.ctx.metrics.connectionsClosed.labels(String(code)).inc();
    this.ctx.onClosed(this);
  }

  /** Leaves one channel: hub, presence. */
  private release(name: string): void {
    const ch = this.subs.get(name);
    if (!ch) return;
    this.subs.delete(name);
    this.ctx.hub.abandon(this, name);
    if (ch.namespace.presence && this.creds) this.presenceLeave(ch);
  }

  private releaseSubscriptions(): void {
    for (const name of [...this.subs.keys()]) this.release(name);
  }
}

/** Channel names a connection remembers having published to. */
const RECENT_CHANNELS = 256;

/** Channels one connection may handle. */
const MAX_HANDLED_CHANNELS = 100;

const RPC_ACTIONS: Partial<Record<Command['kind'], string>> = { rpc_handle: 'rpc.handle', rpc_unhandle: 'rpc.unhandle', rpc_call: 'rpc.call', rpc_reply: 'rpc.reply' };

function actionName(dialect: Dialect, cmd: Command): string {
  const rpc = RPC_ACTIONS[cmd.kind];
  if (rpc !== undefined) return rpc;
  if (dialect === 'prp') return cmd.kind;
  return cmd.kind === 'publish' ? 'message' : cmd.kind;
}
