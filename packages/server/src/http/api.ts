/**
 * HTTP API: publish, history, channels, health, readiness, metrics. API-key protected routes use
 * `Authorization: Bearer <SIGNALBOX_API_KEY>`. Errors: `{error: {code, message, details?}}`.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, isValidEventType, isValidMessageId, jsonDepthExceeds, prpPublication, type StreamPosition } from '@signalbox/protocol';
import type { Broker, PublishResult } from '../broker/types.js';
import type { NamespaceTable, ResolvedChannel } from '../channels/namespaces.js';
import type { ChannelOperations } from '../channels/operations.js';
import type { GatewayConfig } from '../config.js';
import { toGatewayError, type GatewayError } from '../errors.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

export interface ApiContext {
  config: GatewayConfig;
  apiKey: string | undefined;
  broker: Broker;
  hub: Hub;
  ops: ChannelOperations;
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

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  /** A failed request's reply: the one error map decides code and status; an unexpected failure is logged, its cause never sent. */
  const sendFailure = (reply: FastifyReply, err: unknown, details: Record<string, unknown> = {}) => {
    const e = toGatewayError(err, details);
    if (e.unexpected) ctx.log.error({ err: e.cause ?? err }, 'http request failed');
    return reply.code(e.httpStatus).send(errorBody(e));
  };

  const keyDigest = ctx.apiKey ? digest(ctx.apiKey) : null;

  const requireKey = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!keyDigest) return sendError(reply, 401, ErrorCode.AUTH_FAILED, 'The HTTP API is disabled: set SIGNALBOX_API_KEY');
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    // Compare digests so the comparison is constant-time whatever the presented length.
    if (!m || !timingSafeEqual(digest(m[1]!), keyDigest)) return sendError(reply, 401, ErrorCode.AUTH_FAILED, 'Missing or invalid API key');
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

  // The web console: one static page (apps/console), talking to this API and the WebSocket endpoint.
  const consolePage = loadConsole();
  app.get('/console', async (_req, reply) => {
    if (!consolePage) return sendError(reply, 404, ErrorCode.INVALID_ACTION, 'The console is not installed (apps/console/index.html not found)');
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'")
      .header('x-frame-options', 'DENY')
      .send(consolePage);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = ctx.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/metrics', async (_req, reply) => {
    ctx.metrics.brokerReady.set(ctx.broker.isReady() ? 1 : 0);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.post('/v1/publish', { preHandler: requireKey }, async (req, reply) => {
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
    const channels: ResolvedChannel[] = [];
    for (const name of new Set(names as string[])) {
      const r = ctx.namespaces.resolve(name);
      if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel: name });
      channels.push(r.channel);
    }
    // One id for the publication in every channel; it is also the idempotency key.
    let results: PublishResult[];
    try {
      results = await ctx.ops.publishTo(channels, { type, data: body.data, id: body.id as string | undefined }, { via: 'api' });
    } catch (err) {
      return sendFailure(reply, err);
    }
    const publications = results.map((r) => ({ id: r.publication.id, channel: r.publication.channel, offset: r.publication.offset, epoch: r.publication.epoch, duplicate: r.duplicate }));
    return reply.code(200).send(single ? { ...publications[0], publications } : { id: publications[0]!.id, publications });
  });

  app.get('/v1/channels/:channel/history', { preHandler: requireKey }, async (req, reply) => {
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
      const hist = await ctx.ops.history(r.channel, { since, limit });
      return { channel, position: hist.position, earliestOffset: hist.earliestOffset, publications: hist.publications.map(prpPublication) };
    } catch (err) {
      return sendFailure(reply, err, { channel });
    }
  });

  app.get('/v1/channels/:channel/presence', { preHandler: requireKey }, async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const r = ctx.namespaces.resolve(channel);
    if (!r.ok) return sendError(reply, 400, r.code, r.message, { channel });
    try {
      return { channel, members: await ctx.ops.presence(r.channel) };
    } catch (err) {
      return sendFailure(reply, err, { channel });
    }
  });

  app.get('/v1/channels', { preHandler: requireKey }, async () => ({ channels: ctx.hub.channelStats() }));
  app.get('/v1/stats', { preHandler: requireKey }, async () => ctx.stats());
}

function loadConsole(): string | null {
  try {
    // Same depth from src/http and dist/http: packages/server/{src,dist}/http -> repo root.
    return readFileSync(new URL('../../../../apps/console/index.html', import.meta.url), 'utf8');
  } catch {
    return null;
  }
}
