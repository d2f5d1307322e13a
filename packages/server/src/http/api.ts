/**
 * HTTP API: publish, history, channels, health, readiness, metrics. API-key protected routes use
 * `Authorization: Bearer <key>`: SIGNALBOX_API_KEY, or a named key of SIGNALBOX_API_KEYS with the
 * route's scope. Errors: `{error: {code, message, details?}}`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CloseCode, ErrorCode, isValidEventType, isValidMessageId, isValidMethodName, jsonDepthExceeds, prpPublication, type StreamPosition } from '@signalbox/protocol';
import type { AdminService } from '../admin.js';
import type { ApiKeyring, ApiPrincipal, ApiScope } from '../auth/api-keys.js';
import type { Broker, PublishResult } from '../broker/types.js';
import type { NamespaceTable, ResolvedChannel } from '../channels/namespaces.js';
import type { ChannelOperations } from '../channels/operations.js';
import type { GatewayConfig } from '../config.js';
import { toGatewayError, type GatewayError } from '../errors.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { RpcRouter } from '../rpc/router.js';
import { registerConsole } from './console.js';

export interface ApiContext {
  config: GatewayConfig;
  keys: ApiKeyring;
  broker: Broker;
  hub: Hub;
  ops: ChannelOperations;
  rpc: RpcRouter;
  admin: AdminService;
  namespaces: NamespaceTable;
  metrics: Metrics;
  log: Logger;
  readiness(): { ready: boolean; reason?: string };
  stats(): Record<string, unknown>;
}

const MAX_PUBLISH_CHANNELS = 100;

function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, details?: Record<string, unknown>) {
  return reply.code(status).send({ error: { code, message, ...(details ? { details } : {}) } });
}

function errorBody(e: GatewayError): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
  return { error: { code: e.code, message: e.message, ...(Object.keys(e.details).length > 0 ? { details: e.details } : {}) } };
}

export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  /** A failed request's reply: the one error map decides code and status; an unexpected failure is logged, its cause never sent. */
  const sendFailure = (reply: FastifyReply, err: unknown, details: Record<string, unknown> = {}) => {
    const e = toGatewayError(err, details);
    if (e.unexpected) ctx.log.error({ err: e.cause ?? err }, 'http request failed');
    return reply.code(e.httpStatus).send(errorBody(e));
  };

  // Who called: set by the scope check before a handler runs.
  const principals = new WeakMap<FastifyRequest, ApiPrincipal>();
  const principal = (req: FastifyRequest): ApiPrincipal => principals.get(req)!;

  // The web console (apps/console, http/console.ts): its page, sign-in, and the session a request without a key may carry.
  const consoleRoutes = registerConsole(app, ctx);

  /** A preHandler admitting a valid key (or console session) that has `scope`: 401 without one, 403 without the scope. */
  const requireScope = (scope: ApiScope) => async (req: FastifyRequest, reply: FastifyReply) => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    // No key: a console session cookie may authorize, only with its CSRF rules met (http/console-session.ts).
    const session = m ? null : consoleRoutes.session(req);
    if (session && 'status' in session) return sendError(reply, session.status, session.code, session.message);
    if (!session && ctx.keys.size === 0) return sendError(reply, 401, ErrorCode.AUTH_FAILED, 'The HTTP API is disabled: set SIGNALBOX_API_KEY or SIGNALBOX_API_KEYS');
    const who = session ? session.principal : m ? ctx.keys.authenticate(m[1]!) : null;
    if (!who) return sendError(reply, 401, ErrorCode.AUTH_FAILED, 'Missing or invalid API key');
    if (!who.scopes.has(scope)) {
      return sendError(reply, 403, ErrorCode.PERMISSION_DENIED, `API key '${who.name}' does not have the '${scope}' scope`, { key: who.name, scope });
    }
    principals.set(req, who);
  };

  // JSON bodies get the WebSocket frames' nesting limit, checked on the text before it is parsed:
  // a body too deep to frame must be refused at the door, never stored with an offset.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const maxDepth = ctx.config.maxJsonDepth;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonDepthExceeds(body as string, maxDepth)) {
      done(Object.assign(new Error(`JSON nesting deeper than ${maxDepth} (SIGNALBOX_MAX_JSON_DEPTH)`), { statusCode: 400 }), undefined);
      return;
    }
    parseJson(req, body as string, done);
  });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413) return sendError(reply, 413, ErrorCode.MESSAGE_TOO_LARGE, 'Request body too large');
    if (status >= 400 && status < 500) return sendError(reply, status, ErrorCode.INVALID_MESSAGE, err.message);
    ctx.log.error({ err }, 'http handler failed');
    return sendError(reply, 500, ErrorCode.INTERNAL_ERROR, 'Internal error');
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, ErrorCode.INVALID_ACTION, `No route ${req.method} ${req.url.split('?')[0]}`));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = ctx.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/metrics', async (_req, reply) => {
    ctx.metrics.brokerReady.set(ctx.broker.isReady() ? 1 : 0);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.post('/v1/publish', { preHandler: requireScope('publish') }, async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, 'Body must be a JSON object {channel | channels, type, data, id?}');
    }
    const single = typeof body.channel === 'string';
    const names = single ? [body.channel as string] : body.channels;
    if (!Array.isArray(names) || names.length === 0 || names.some((c) => typeof c !== 'string')) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`channel` (string) or `channels` (non-empty array of strings) is required');
    }
    if (names.length > MAX_PUBLISH_CHANNELS) return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, `At most ${MAX_PUBLISH_CHANNELS} channels per publish`);
    const type = body.type ?? 'message';
    if (!isValidEventType(type)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`type` must be 1-64 characters [A-Za-z0-9_.:-], start with a letter, and not be a system event type', { type });
    }
    if (!('data' in body)) return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`data` is required');
    if (body.id !== undefined && !isValidMessageId(body.id)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`id` must be a string of 1-128 printable ASCII characters');
    }
    if (body.appendTo !== undefined && !isValidMessageId(body.appendTo)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`appendTo` must be a publication id (1-128 printable ASCII characters)');
    }
    if (body.appendTo !== undefined && !single) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`appendTo` goes with a single `channel`, not `channels`');
    }
    // On whose behalf a backend publishes: the publication names both the key and this subject.
    if (body.as !== undefined && (typeof body.as !== 'string' || body.as.length === 0 || body.as.length > 128)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`as` must be a subject of 1-128 characters');
    }
    const channels: ResolvedChannel[] = [];
    for (const name of new Set(names as string[])) {
      const r = ctx.namespaces.resolve(name);
      if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel: name });
      channels.push(r.channel);
    }
    // One id for the publication in every channel; it is also the idempotency key.
    let results: PublishResult[];
    try {
      const size = Number(req.headers['content-length']) || undefined;
      const appendTo = body.appendTo as string | undefined;
      results = await ctx.ops.publishTo(channels, { type, data: body.data, id: body.id as string | undefined, size, ...(appendTo !== undefined ? { appendTo } : {}) }, {
        via: 'http', key: principal(req).name, ...(body.as !== undefined ? { sub: body.as as string } : {}),
      });
    } catch (err) {
      return sendFailure(reply, err, { channel: channels[0]!.name, ...(body.id !== undefined ? { id: body.id } : {}) });
    }
    const publications = results.map((r) => ({ id: r.publication.id, channel: r.publication.channel, offset: r.publication.offset, epoch: r.publication.epoch, duplicate: r.duplicate }));
    return reply.code(200).send(single ? { ...publications[0], publications } : { id: publications[0]!.id, publications });
  });

  // Calls a channel's handler for a backend: 200 result, 404 no handler, 504 timeout, 502 the handler's error or its disappearance.
  app.post('/v1/rpc', { preHandler: requireScope('rpc') }, async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, 'Body must be a JSON object {channel, method, params?, timeoutMs?}');
    }
    if (typeof body.channel !== 'string') return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`channel` (string) is required');
    const r = ctx.namespaces.resolve(body.channel);
    if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel: body.channel });
    if (!isValidMethodName(body.method)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`method` must be a method name (1-64 characters [A-Za-z0-9_.:-], letter first)', { channel: r.channel.name });
    }
    const details = { channel: r.channel.name, method: body.method };
    const t = body.timeoutMs ?? ctx.config.rpcTimeoutMs;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 1 || t > ctx.config.rpcMaxTimeoutMs) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, `\`timeoutMs\` must be an integer from 1 to ${ctx.config.rpcMaxTimeoutMs} (SIGNALBOX_RPC_MAX_TIMEOUT)`, details);
    }
    // What a handler receives is what its socket may carry.
    const params = body.params ?? null;
    if (Buffer.byteLength(JSON.stringify(params)) > ctx.config.maxMessageBytes) {
      return sendError(reply, 413, ErrorCode.MESSAGE_TOO_LARGE, `\`params\` larger than ${ctx.config.maxMessageBytes} bytes (SIGNALBOX_MAX_MESSAGE_SIZE)`, details);
    }
    try {
      const result = await ctx.rpc.call(r.channel.name, body.method, params, { via: 'http', key: principal(req).name }, t);
      return { channel: r.channel.name, method: body.method, result };
    } catch (err) {
      return sendFailure(reply, err, details);
    }
  });

  app.get('/v1/channels/:channel/history', { preHandler: requireScope('history') }, async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const q = req.query as Record<string, string | undefined>;
    const r = ctx.namespaces.resolve(channel);
    if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel });
    let limit: number | undefined;
    if (q.limit !== undefined) {
      limit = Number(q.limit);
      if (!Number.isSafeInteger(limit) || limit < 0 || limit > 1000) return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`limit` must be an integer from 0 to 1000');
    }
    let since: StreamPosition | undefined;
    if (q.since_offset !== undefined || q.since_epoch !== undefined) {
      const offset = Number(q.since_offset);
      if (!q.since_epoch || !Number.isSafeInteger(offset) || offset < 0) {
        return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`since_epoch` and `since_offset` (non-negative integer) go together');
      }
      since = { epoch: q.since_epoch, offset };
    }
    try {
      const hist = await ctx.ops.history(r.channel, { since, limit, maxBytes: ctx.config.maxReplyBytes });
      return {
        channel, position: hist.position, earliestOffset: hist.earliestOffset, publications: hist.publications.map(prpPublication),
        ...(hist.next ? { next: hist.next } : {}),
      };
    } catch (err) {
      return sendFailure(reply, err, { channel });
    }
  });

  app.get('/v1/channels/:channel/presence', { preHandler: requireScope('presence') }, async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const r = ctx.namespaces.resolve(channel);
    if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel });
    try {
      return { channel, members: await ctx.ops.presence(r.channel) };
    } catch (err) {
      return sendFailure(reply, err, { channel });
    }
  });

  // ---- admin: cluster-wide, every node answering for its part ----
  const listLimit = (raw: string | undefined, reply: FastifyReply): number | null => {
    if (raw === undefined) return 100;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1 || n > 1000) {
      sendError(reply, 400, ErrorCode.INVALID_MESSAGE, '`limit` must be an integer from 1 to 1000');
      return null;
    }
    return n;
  };

  app.get('/v1/channels', { preHandler: requireScope('admin') }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = listLimit(q.limit, reply);
    if (limit === null) return reply;
    try {
      return await ctx.admin.channels(q.search, limit);
    } catch (err) {
      return sendFailure(reply, err);
    }
  });

  app.delete('/v1/channels/:channel/history', { preHandler: requireScope('admin') }, async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const r = ctx.namespaces.resolve(channel);
    if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel });
    try {
      await ctx.ops.clearHistory(r.channel);
      const hist = await ctx.ops.history(r.channel, { limit: 0 });
      return { channel, cleared: true, position: hist.position };
    } catch (err) {
      return sendFailure(reply, err, { channel });
    }
  });

  app.get('/v1/connections', { preHandler: requireScope('admin') }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = listLimit(q.limit, reply);
    if (limit === null) return reply;
    try {
      return await ctx.admin.connections({ subject: q.subject, channel: q.channel }, limit, q.cursor);
    } catch (err) {
      return sendFailure(reply, err);
    }
  });

  app.delete('/v1/connections/:id', { preHandler: requireScope('admin') }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const { reason } = req.query as { reason?: string };
    try {
      const r = await ctx.admin.disconnect(id, reason);
      if (!r.found) return sendError(reply, 404, ErrorCode.NOT_FOUND, `No connection '${id.slice(0, 64)}'`, { id, unavailable: r.unavailable });
      return { id, disconnected: true, node: r.node, closeCode: CloseCode.DISCONNECTED };
    } catch (err) {
      return sendFailure(reply, err, { id });
    }
  });

  app.delete('/v1/connections/:id/subscriptions/:channel', { preHandler: requireScope('admin') }, async (req, reply) => {
    const { id, channel } = req.params as { id: string; channel: string };
    try {
      const r = await ctx.admin.unsubscribe(id, channel);
      if (!r.found) return sendError(reply, 404, ErrorCode.NOT_FOUND, `No connection '${id.slice(0, 64)}'`, { id, channel, unavailable: r.unavailable });
      if (!r.removed) return sendError(reply, 404, ErrorCode.NOT_FOUND, `Connection '${id.slice(0, 64)}' is not subscribed to '${channel.slice(0, 160)}'`, { id, channel });
      return { id, channel, removed: true };
    } catch (err) {
      return sendFailure(reply, err, { id, channel });
    }
  });
  app.get('/v1/stats', { preHandler: requireScope('admin') }, async () => ctx.stats());
}
