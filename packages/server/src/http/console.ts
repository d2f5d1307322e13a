/**
 * The web console's routes: the app itself (built by apps/console/build.mjs into this package's
 * dist/console, served at /console with a CSP that allows nothing inline), sign-in
 * (`/console/session`) and the short-lived WebSocket token of a session (`/console/token`).
 * Documented in docs/console.md and docs/http-api.md ("Console").
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '@signalbox/protocol';
import type { ApiKeyring, ApiPrincipal } from '../auth/api-keys.js';
import { mintConsoleToken, consoleKeys } from '../auth/console-keys.js';
import { AuthError, Authenticator } from '../auth/jwt.js';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { ConsoleAuth, SESSION_COOKIE, isRefusal, type ConsoleSession, type SessionRefusal } from './console-session.js';

/** The page's policy: scripts, styles and connections from this origin only; nothing inline, no frames, no forms. */
export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** What the console needs from the node. */
export interface ConsoleContext {
  config: GatewayConfig;
  keys: ApiKeyring;
  log: Logger;
}

/** The built app's files, by URL path under /console/. */
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'app.js.map': 'application/json',
  'app.css.map': 'application/json',
};

/** Why a session does not authorize a request, in words (never naming a key or cookie value). */
const REFUSALS: Record<SessionRefusal['reason'], string> = {
  no_session: 'Not signed in to the console',
  bad_session: 'Console session invalid: sign in again',
  expired: 'Console session expired: sign in again',
  key_revoked: 'The API key this console session was made with is no longer configured with the admin scope',
  header: 'Console requests must carry the X-Signalbox-Console header',
  origin: 'Cross-origin console request refused',
};

/** Failed sign-ins one client address may make per {@link SIGN_IN_WINDOW_MS}; then 429 until the window ends. */
export const SIGN_IN_FAILURES = 10;
const SIGN_IN_WINDOW_MS = 60_000;
/** Addresses tracked at most; past it the table starts over (a flood of addresses cannot grow memory). */
const SIGN_IN_TRACKED = 10_000;

/** The result of looking for a session on an API request. */
export type SessionLookup = { principal: ApiPrincipal } | { status: 401 | 403; code: ErrorCode; message: string } | null;

export interface ConsoleRoutes {
  /**
   * For the HTTP API's scope check: a request without a Bearer key is authorized by a console
   * session cookie only with the CSRF rules met. Null when the request carries no session cookie.
   */
  session(req: FastifyRequest): SessionLookup;
}

function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string) {
  return reply.code(status).send({ error: { code, message } });
}

function loadBuilt(): Map<string, Buffer> | null {
  // Same depth from src/http and dist/http: packages/server/{src,dist}/http -> packages/server/dist/console.
  const dir = new URL('../../dist/console/', import.meta.url);
  try {
    const files = new Map<string, Buffer>([['index.html', readFileSync(new URL('index.html', dir))]]);
    for (const name of Object.keys(ASSETS)) {
      try {
        files.set(name, readFileSync(new URL(name, dir)));
      } catch {
        if (!name.endsWith('.map')) throw new Error(`console build incomplete: ${name} missing`);
      }
    }
    // Code-split chunks (the document editor): content-hashed names under chunks/.
    let chunks: string[] = [];
    try {
      chunks = readdirSync(new URL('chunks/', dir)).filter((f) => CHUNK_NAME.test(f));
    } catch {
      // a build without chunks
    }
    for (const name of chunks) files.set(`chunks/${name}`, readFileSync(new URL(`chunks/${name}`, dir)));
    return files;
  } catch {
    return null;
  }
}

/** What a chunk file of the build is called (esbuild's `[name]-[hash].js`, and its map). */
const CHUNK_NAME = /^[A-Za-z0-9_-]+\.js(\.map)?$/;

/** Registers /console, /console/* and the session endpoints; returns the session lookup the API uses. */
export function registerConsole(app: FastifyInstance, ctx: ConsoleContext): ConsoleRoutes {
  const { config } = ctx;
  const auth = new ConsoleAuth(config);
  const verifier = new Authenticator(config);
  const files = config.console ? loadBuilt() : null;
  const secure = (req: FastifyRequest) => req.protocol === 'https';

  const notInstalled = (reply: FastifyReply) => sendError(reply, 404, ErrorCode.NOT_FOUND, config.console
    ? 'The console is not built (run `npm run build`: it writes packages/server/dist/console)'
    : 'The console is turned off (SIGNALBOX_CONSOLE=false)');

  const page = async (_req: FastifyRequest, reply: FastifyReply) => {
    const html = files?.get('index.html');
    if (!html) return notInstalled(reply);
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CONSOLE_CSP)
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(html);
  };
  app.get('/console', page);
  app.get('/console/', page);
  for (const [name, type] of Object.entries(ASSETS)) {
    app.get(`/console/${name}`, async (_req, reply) => {
      const body = files?.get(name);
      if (!body) return notInstalled(reply);
      return reply.header('content-type', type).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(body);
    });
  }
  app.get<{ Params: { name: string } }>('/console/chunks/:name', async (req, reply) => {
    const name = req.params.name;
    const body = CHUNK_NAME.test(name) ? files?.get(`chunks/${name}`) : undefined;
    if (!body) return files ? sendError(reply, 404, ErrorCode.NOT_FOUND, 'No such console file') : notInstalled(reply);
    // Content-hashed: a new build has new names, so a chunk never changes under its name.
    return reply.header('content-type', name.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8')
      .header('x-content-type-options', 'nosniff').header('cache-control', 'public, max-age=31536000, immutable').send(body);
  });

  const cookie = (value: string, maxAgeSeconds: number, req: FastifyRequest) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure(req) ? '; Secure' : ''}`;

  const refuse = (reply: FastifyReply, r: SessionRefusal) =>
    sendError(reply, r.status, r.status === 401 ? ErrorCode.AUTH_FAILED : ErrorCode.PERMISSION_DENIED, REFUSALS[r.reason]);

  const sessionOf = (req: FastifyRequest): ConsoleSession | SessionRefusal => auth.check(req.method, req.headers, secure(req));
  const describe = (s: ConsoleSession) => ({ name: s.name, scopes: s.scopes, expiresAt: new Date(s.expiresAt).toISOString() });

  // Sign in: {key} (an API key with the admin scope), {token} (a JWT with `"admin": true`) or {code} (dev one-time code).
  // Guessing keys or codes: each address gets a few failures a minute.
  const failures = new Map<string, { count: number; until: number }>();
  const blocked = (ip: string): number => {
    const f = failures.get(ip);
    if (!f || f.until <= Date.now()) return 0;
    return f.count >= SIGN_IN_FAILURES ? f.until : 0;
  };
  const failed = (reply: FastifyReply, req: FastifyRequest, status: number, code: ErrorCode, message: string) => {
    const now = Date.now();
    let f = failures.get(req.ip);
    if (!f || f.until <= now) {
      if (failures.size >= SIGN_IN_TRACKED) failures.clear();
      failures.set(req.ip, (f = { count: 0, until: now + SIGN_IN_WINDOW_MS }));
    }
    f.count++;
    return sendError(reply, status, code, message);
  };

  app.post('/console/session', async (req, reply) => {
    const csrf = auth.checkRequest(req.method, req.headers, secure(req));
    if (csrf) return refuse(reply, csrf);
    const until = blocked(req.ip);
    if (until) {
      return reply.header('retry-after', String(Math.ceil((until - Date.now()) / 1000))).code(429)
        .send({ error: { code: ErrorCode.RATE_LIMITED, message: `More than ${SIGN_IN_FAILURES} failed sign-ins from this address in a minute; retry later` } });
    }
    const body = req.body as Record<string, unknown> | undefined;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, 'Body must be a JSON object {key} | {token} | {code}');
    }
    const ttl = config.consoleSessionTtlMs;
    let session: ConsoleSession;
    if (typeof body.key === 'string') {
      const who = ctx.keys.size > 0 ? ctx.keys.authenticate(body.key) : null;
      if (!who) return failed(reply, req, 401, ErrorCode.AUTH_FAILED, 'Invalid API key');
      if (!who.scopes.has('admin')) return failed(reply, req, 403, ErrorCode.PERMISSION_DENIED, `API key '${who.name}' does not have the 'admin' scope`);
      session = auth.forKey(who.name, body.key, [...who.scopes], ttl);
    } else if (typeof body.token === 'string') {
      try {
        const creds = await verifier.verify(body.token);
        if (!isAdminToken(body.token)) return failed(reply, req, 403, ErrorCode.PERMISSION_DENIED, 'The token has no `"admin": true` claim');
        // The session may not outlive the token it was made from.
        session = auth.forSubject(`token:${creds.sub}`, Math.min(ttl, creds.expiresAt === null ? ttl : creds.expiresAt - Date.now()));
      } catch (err) {
        // A key set that could not be read says nothing about the token: not counted as a failure.
        if (err instanceof AuthError) return err.retryable ? sendError(reply, 401, err.code, err.message) : failed(reply, req, 401, err.code, err.message);
        throw err;
      }
    } else if (typeof body.code === 'string') {
      if (!auth.redeemCode(body.code)) return failed(reply, req, 401, ErrorCode.AUTH_FAILED, 'Unknown, used or expired sign-in code');
      session = auth.forSubject('dev', ttl);
    } else {
      return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, 'One of `key`, `token` or `code` (string) is required');
    }
    ctx.log.info({ console: session.name }, 'console signed in');
    return reply.header('set-cookie', cookie(auth.seal(session), Math.floor(ttl / 1000), req)).header('cache-control', 'no-store').send(describe(session));
  });

  // Who is signed in: 200 either way (the page asks before it knows; a 401 would be a console error in every browser).
  app.get('/console/session', async (req, reply) => {
    const s = sessionOf(req);
    reply.header('cache-control', 'no-store');
    if (isRefusal(s)) return s.status === 401 ? reply.send({ signedIn: false, reason: s.reason }) : refuse(reply, s);
    return reply.send({ signedIn: true, ...describe(s) });
  });

  // Sign out: the cookie is dropped (CSRF rules too, so a foreign page cannot sign the console out).
  app.delete('/console/session', async (req, reply) => {
    const csrf = auth.checkRequest(req.method, req.headers, secure(req));
    if (csrf) return refuse(reply, csrf);
    return reply.header('set-cookie', cookie('', 0, req)).send({ signedOut: true });
  });

  // The console's own WebSocket token: short-lived, read/publish/call on every channel, minted per session.
  app.post('/console/token', async (req, reply) => {
    const s = sessionOf(req);
    if (isRefusal(s)) return refuse(reply, s);
    const ttlSeconds = Math.max(1, Math.floor(Math.min(config.consoleTokenTtlMs, s.expiresAt - Date.now()) / 1000));
    const token = await mintConsoleToken(consoleKeys(config), { sub: `console:${s.name}`, channels: ['*'], publish: ['*'], call: ['*'], ttlSeconds });
    return reply.header('cache-control', 'no-store').send({ token, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() });
  });

  return {
    session(req) {
      const s = sessionOf(req);
      if (!isRefusal(s)) return { principal: ConsoleAuth.principal(s) };
      if (s.reason === 'no_session') return null;
      return { status: s.status, code: s.status === 401 ? ErrorCode.AUTH_FAILED : ErrorCode.PERMISSION_DENIED, message: REFUSALS[s.reason] };
    },
  };
}

/** Whether a (verified) token's payload has `"admin": true`. */
function isAdminToken(token: string): boolean {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    return payload.admin === true;
  } catch {
    return false;
  }
}
