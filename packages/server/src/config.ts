/**
 * Gateway configuration: one table of settings, read from flags > env > config file > defaults.
 * A bad value stops the start with one line naming the setting (ConfigError).
 */
import { readFileSync } from 'node:fs';
import { ApiKeyring, parseApiKeys, type ApiKeySpec } from './auth/api-keys.js';
import { defaultHistoryBudget } from './broker/memory.js';
import { DEFAULT_NAMESPACES, parseNamespaces, type NamespaceConfig } from './channels/namespaces.js';


export interface GatewayConfig {
  host: string;
  port: number;
  jwtSecret: string | undefined;
  jwtPublicKey: string | undefined;
  jwksUrl: string | undefined;
  jwtAlgorithms: string[];
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  apiKey: string | undefined;
  apiKeys: ApiKeySpec[];
  allowedOrigins: string[];
  requireOrigin: boolean;
  broker: string;
  redisPrefix: string;
  redisTimeoutMs: number;
  heartbeatIntervalMs: number;
  metricsIntervalMs: number;
  drainTimeoutMs: number;
  handshakeTimeoutMs: number;
  tokenExpiryGraceMs: number;
  maxMessageBytes: number;
  maxJsonDepth: number;
  maxReplyBytes: number;
  historyMemoryBytes: number;
  maxSubscriptionsPerConnection: number;
  maxConnectionsPerIp: number;
  maxConnections: number;
  publishRate: number;
  publishBurst: number;
  newChannelRate: number;
  subscribeRate: number;
  subscribeBurst: number;
  messageRate: number;
  messageBurst: number;
  maxPendingRequests: number;
  outboundBufferBytes: number;
  slowConsumerGraceMs: number;
  idempotencyWindowMs: number;
  yjsCompactUpdates: number;
  yjsCompactBytes: number;
  rpcTimeoutMs: number;
  rpcMaxTimeoutMs: number;
  rpcMaxCallsInFlight: number;
  rpcCallRate: number;
  logLevel: string;
  trustProxy: boolean;
  writeThreads: number;
  turnBudgetBytes: number;
  console: boolean;
  consoleSessionTtlMs: number;
  consoleTokenTtlMs: number;
  consoleSecret: string | undefined;
  namespaces: NamespaceConfig[];
}

type Kind = 'string' | 'int' | 'duration' | 'bytes' | 'list' | 'bool' | 'keys';

export interface SettingSpec {
  key: Exclude<keyof GatewayConfig, 'namespaces'>;
  flag: string;
  env: string;
  kind: Kind;
  default: unknown;
  min?: number;
  max?: number;
  doc: string;
  secret?: boolean;
}

const S = (key: SettingSpec['key'], flag: string, env: string, kind: Kind, def: unknown, doc: string, extra: Partial<SettingSpec> = {}): SettingSpec =>
  ({ key, flag, env, kind, default: def, doc, ...extra });

/** Every setting: its flag, env variable, type, default and meaning. docs/configuration.md mirrors this table. */
export const SETTINGS: SettingSpec[] = [
  S('host', 'host', 'SIGNALBOX_HOST', 'string', '127.0.0.1', 'Address to listen on.'),
  S('port', 'port', 'SIGNALBOX_PORT', 'int', 8080, 'TCP port (0 = any free port).', { min: 0, max: 65535 }),
  S('jwtSecret', 'jwt-secret', 'SIGNALBOX_JWT_SECRET', 'string', undefined, 'HS256 secret for client tokens. Unset (and no public key/JWKS): dev mode, a dev secret (kept in `~/.signalbox/dev.json`) is used and a dev token printed.', { secret: true }),
  S('jwtPublicKey', 'jwt-public-key', 'SIGNALBOX_JWT_PUBLIC_KEY', 'string', undefined, 'PEM (SPKI) public key, or a path to one, for RS256/ES256/EdDSA tokens.'),
  S('jwksUrl', 'jwks-url', 'SIGNALBOX_JWKS_URL', 'string', undefined, 'JWKS URL to verify RS256/ES256/EdDSA tokens against.'),
  S('jwtAlgorithms', 'jwt-algorithms', 'SIGNALBOX_JWT_ALGORITHMS', 'list', undefined, 'Accepted JWT algorithms (pinned). Default: HS256 with a secret, RS256,ES256 with a key or JWKS.'),
  S('jwtIssuer', 'jwt-issuer', 'SIGNALBOX_JWT_ISSUER', 'string', undefined, 'Required `iss` claim, if set.'),
  S('jwtAudience', 'jwt-audience', 'SIGNALBOX_JWT_AUDIENCE', 'string', undefined, 'Required `aud` claim, if set.'),
  S('apiKey', 'api-key', 'SIGNALBOX_API_KEY', 'string', undefined, 'Bearer key for the HTTP API, named `default`, with every scope. Dev mode generates one.', { secret: true }),
  S('apiKeys', 'api-keys', 'SIGNALBOX_API_KEYS', 'keys', [], 'Named HTTP API keys, comma-separated `name:key` (every scope) or `name:key:scope+scope` (scopes: publish, history, presence, rpc, admin); in the config file also `[{"name", "key", "scopes"}]`. Publications show the key\'s name, never the key.', { secret: true }),
  S('allowedOrigins', 'allowed-origins', 'SIGNALBOX_ALLOWED_ORIGINS', 'list', [], 'Comma-separated Origin allow-list for WebSocket upgrades from browsers; empty allows any. `*` allows any. An upgrade without an Origin header is not from a browser and is admitted unless SIGNALBOX_REQUIRE_ORIGIN is set.'),
  S('requireOrigin', 'require-origin', 'SIGNALBOX_REQUIRE_ORIGIN', 'bool', false, 'With an Origin allow-list: refuse (403) upgrades that carry no Origin header, i.e. every non-browser client.'),
  S('broker', 'broker', 'SIGNALBOX_BROKER', 'string', 'memory', '`memory` (single node, embedded) or a Redis URL `redis://host:port` (several nodes).'),
  S('redisPrefix', 'redis-prefix', 'SIGNALBOX_REDIS_PREFIX', 'string', 'signalbox', 'Prefix of every Redis key and topic.'),
  S('redisTimeoutMs', 'redis-timeout', 'SIGNALBOX_REDIS_TIMEOUT', 'duration', 5000, 'A Redis command without a reply for this long fails (UNAVAILABLE) and the connection is re-made: a hung Redis is detected, not waited on.', { min: 100 }),
  S('metricsIntervalMs', 'metrics-interval', 'SIGNALBOX_METRICS_INTERVAL', 'duration', 1000, 'How often each node publishes a `metrics.node` publication (its live metrics) on the `metrics` channel; 0 turns it off.', { min: 0 }),
  S('heartbeatIntervalMs', 'heartbeat-interval', 'SIGNALBOX_HEARTBEAT_INTERVAL', 'duration', 25_000, 'Heartbeat event + WebSocket ping interval; a client silent for two intervals is terminated.', { min: 100 }),
  S('drainTimeoutMs', 'drain-timeout', 'SIGNALBOX_DRAIN_TIMEOUT', 'duration', 10_000, 'On SIGTERM/SIGINT, how long to wait for clients to close before exiting.', { min: 0 }),
  S('handshakeTimeoutMs', 'handshake-timeout', 'SIGNALBOX_HANDSHAKE_TIMEOUT', 'duration', 10_000, 'Time allowed for the HTTP upgrade request (enforced within a quarter of it, however slowly it trickles in) and for token verification.', { min: 100 }),
  S('tokenExpiryGraceMs', 'token-expiry-grace', 'SIGNALBOX_TOKEN_EXPIRY_GRACE', 'duration', 30_000, 'After `token_expired`, how long a client has to `refresh` before it is closed (4002).', { min: 0 }),
  S('maxMessageBytes', 'max-message-size', 'SIGNALBOX_MAX_MESSAGE_SIZE', 'bytes', 131_072, 'Largest client frame processed; larger ones get MESSAGE_TOO_LARGE (above 4x: the socket is closed with 1009).', { min: 256 }),
  // At most 96: the MessagePack codec (subscribers, and the Redis broker's storage) refuses nesting past 100, and a publication frame adds a level or two.
  S('maxJsonDepth', 'max-json-depth', 'SIGNALBOX_MAX_JSON_DEPTH', 'int', 32, 'Deepest nesting of arrays/objects accepted in a client message or an HTTP API JSON body (at most 96: what every codec and broker can store and deliver).', { min: 2, max: 96 }),
  S('maxReplyBytes', 'max-reply-size', 'SIGNALBOX_MAX_REPLY_SIZE', 'bytes', 1024 * 1024, 'Largest history reply (WebSocket: also at most half of SIGNALBOX_OUTBOUND_BUFFER); a longer page is cut after the last publication that fits and carries `next`, the position to continue from.', { min: 1024 }),
  S('historyMemoryBytes', 'history-memory', 'SIGNALBOX_HISTORY_MEMORY', 'bytes', defaultHistoryBudget(), 'Memory broker: most bytes the retained history of all channels may take together; over it, the channels published to least recently lose their oldest publications first (a recovery that needed them: `recovered: false`, `history_evicted`). Default 1/8 of the machine memory, at most 4 GiB.', { min: 1024 * 1024 }),
  S('maxSubscriptionsPerConnection', 'max-subscriptions', 'SIGNALBOX_MAX_SUBSCRIPTIONS', 'int', 200, 'Subscriptions one connection may hold (SUBSCRIPTION_LIMIT).', { min: 1 }),
  S('maxConnectionsPerIp', 'max-connections-per-ip', 'SIGNALBOX_MAX_CONNECTIONS_PER_IP', 'int', 1000, 'Per client IP: concurrent WebSocket connections (over it: HTTP 429 at the upgrade), and as many sockets again that have not finished a request head yet (over it: HTTP 429 and closed at TCP accept). 0 = unlimited.', { min: 0 }),
  S('maxConnections', 'max-connections', 'SIGNALBOX_MAX_CONNECTIONS', 'int', 0, 'Concurrent WebSocket connections on this node (0 = unlimited); over it: HTTP 503.', { min: 0 }),
  S('publishRate', 'publish-rate', 'SIGNALBOX_PUBLISH_RATE', 'int', 100, 'Client publishes per second per connection (token bucket refill).', { min: 1 }),
  S('publishBurst', 'publish-burst', 'SIGNALBOX_PUBLISH_BURST', 'int', 200, 'Client publish burst per connection (bucket size).', { min: 1 }),
  S('newChannelRate', 'new-channel-rate', 'SIGNALBOX_NEW_CHANNEL_RATE', 'int', 20, 'Publishes per second per connection to channels it has not published to lately (each may create a channel and its history; burst twice that); beyond: RATE_LIMITED.', { min: 1 }),
  S('subscribeRate', 'subscribe-rate', 'SIGNALBOX_SUBSCRIBE_RATE', 'int', 50, 'Channel subscriptions per second per connection.', { min: 1 }),
  S('subscribeBurst', 'subscribe-burst', 'SIGNALBOX_SUBSCRIBE_BURST', 'int', 200, 'Channel subscription burst per connection.', { min: 1 }),
  S('messageRate', 'message-rate', 'SIGNALBOX_MESSAGE_RATE', 'int', 200, 'Client frames per second per connection, of any kind.', { min: 1 }),
  S('messageBurst', 'message-burst', 'SIGNALBOX_MESSAGE_BURST', 'int', 400, 'Client frame burst per connection.', { min: 1 }),
  S('maxPendingRequests', 'max-pending-requests', 'SIGNALBOX_MAX_PENDING_REQUESTS', 'int', 256, 'Requests of one connection queued while earlier ones complete; beyond: RATE_LIMITED.', { min: 1 }),
  S('outboundBufferBytes', 'outbound-buffer', 'SIGNALBOX_OUTBOUND_BUFFER', 'bytes', 4 * 1024 * 1024, 'Per-connection outbound buffer; a client that stays above it longer than the grace period, or reaches 4x it, is closed with 4010 (slow consumer).', { min: 1024 }),
  S('slowConsumerGraceMs', 'slow-consumer-grace', 'SIGNALBOX_SLOW_CONSUMER_GRACE', 'duration', 5000, 'How long a connection may stay above its outbound buffer (e.g. while a large recovery drains) before it is closed with 4010.', { min: 0 }),
  S('idempotencyWindowMs', 'idempotency-window', 'SIGNALBOX_IDEMPOTENCY_WINDOW', 'duration', 120_000, 'How long a publish id is remembered for deduplication.', { min: 0 }),
  S('yjsCompactUpdates', 'yjs-compact-updates', 'SIGNALBOX_YJS_COMPACT_UPDATES', 'int', 500, 'Yjs documents (`doc:{id}`): compact a document into a snapshot after this many updates published through this node (0: not by count).', { min: 0 }),
  S('yjsCompactBytes', 'yjs-compact-bytes', 'SIGNALBOX_YJS_COMPACT_BYTES', 'bytes', 1024 * 1024, 'Yjs documents: compact after this many update bytes published through this node (0: not by size).', { min: 0 }),
  S('rpcTimeoutMs', 'rpc-timeout', 'SIGNALBOX_RPC_TIMEOUT', 'duration', 10_000, 'Timeout of an RPC call that names none (`timeoutMs`): past it the caller gets RPC_TIMEOUT.', { min: 1 }),
  S('rpcMaxTimeoutMs', 'rpc-max-timeout', 'SIGNALBOX_RPC_MAX_TIMEOUT', 'duration', 60_000, 'Longest `timeoutMs` an RPC call may ask for; longer is refused (INVALID_MESSAGE).', { min: 1 }),
  S('rpcMaxCallsInFlight', 'rpc-max-in-flight', 'SIGNALBOX_RPC_MAX_IN_FLIGHT', 'int', 64, 'RPC calls one connection may have waiting for their outcome; beyond: RATE_LIMITED.', { min: 1 }),
  S('rpcCallRate', 'rpc-rate', 'SIGNALBOX_RPC_RATE', 'int', 100, 'RPC calls per second per connection (burst twice that); beyond: RATE_LIMITED.', { min: 1 }),
  S('console', 'console', 'SIGNALBOX_CONSOLE', 'bool', true, 'Serve the web console at /console (docs/console.md) and its sign-in endpoints.'),
  S('consoleSessionTtlMs', 'console-session-ttl', 'SIGNALBOX_CONSOLE_SESSION_TTL', 'duration', 3_600_000, 'Lifetime of a console session (the HttpOnly cookie a sign-in with an admin key, admin token or dev code sets); then the console asks to sign in again.', { min: 60_000 }),
  S('consoleTokenTtlMs', 'console-token-ttl', 'SIGNALBOX_CONSOLE_TOKEN_TTL', 'duration', 300_000, "Lifetime of the JWT minted for the console's own WebSocket (POST /console/token); the console fetches a new one before it expires.", { min: 10_000 }),
  S('consoleSecret', 'console-secret', 'SIGNALBOX_CONSOLE_SECRET', 'string', undefined, "Secret the console's session cookies and WebSocket tokens are derived from (never used as a client-token key). Unset: SIGNALBOX_JWT_SECRET, else a random one per process. Set it on every node when several nodes with public-key or JWKS auth serve one console address.", { secret: true }),
  S('logLevel', 'log-level', 'SIGNALBOX_LOG_LEVEL', 'string', 'info', 'pino level: fatal, error, warn, info, debug, trace, silent.'),
  S('trustProxy', 'trust-proxy', 'SIGNALBOX_TRUST_PROXY', 'bool', false, 'Behind one load balancer: take the client IP (for the per-IP cap) from the last X-Forwarded-For entry, the one the balancer appended.'),
  S('turnBudgetBytes', 'turn-budget', 'SIGNALBOX_TURN_BUDGET', 'bytes', 16 * 1024 * 1024, 'Outbound bytes one event-loop turn may queue for its round of writes; past it, client sockets that send more are not read until that round is written, so a flood of publishes cannot hold up delivery (or the loop) for long.', { min: 65_536 }),
  S('writeThreads', 'write-threads', 'SIGNALBOX_WRITE_THREADS', 'int', 0, 'Opt-in: threads that help the main thread write large fan-out rounds (32+ sockets) to their sockets in parallel; 0 (the default) writes on the main thread only. Worth it only on a machine with an idle core for each (one gateway process on 2+ CPUs).', { min: 0, max: 16 }),
];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const BYTES_RE = /^(\d+)(b|kb|kib|k|mb|mib|m)?$/i;

function describe(spec: SettingSpec): string {
  return `${spec.env} (--${spec.flag})`;
}

function parseValue(spec: SettingSpec, raw: unknown): unknown {
  const fail = (why: string): never => {
    const shown = spec.secret ? '<hidden>' : JSON.stringify(raw);
    throw new ConfigError(`Invalid setting ${describe(spec)}: ${why}, got ${shown}`);
  };
  const bounds = (n: number) => {
    if (spec.min !== undefined && n < spec.min) fail(`must be at least ${spec.min}`);
    if (spec.max !== undefined && n > spec.max) fail(`must be at most ${spec.max}`);
    return n;
  };
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) fail('must be a non-empty string');
      return raw;
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return fail('must be true or false');
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) fail('must be an integer');
      return bounds(n);
    }
    case 'duration': {
      if (typeof raw === 'number') return bounds(raw);
      const m = typeof raw === 'string' ? DURATION_RE.exec(raw.trim()) : null;
      if (!m) return fail('must be a duration like 500ms, 25s, 5m, 1h (bare numbers are milliseconds)');
      const mult = { ms: 1, s: 1000, m: 60_000, h: 3600_000 }[(m[2] ?? 'ms') as 'ms'];
      return bounds(Math.round(Number(m[1]) * mult));
    }
    case 'bytes': {
      if (typeof raw === 'number') return bounds(raw);
      const m = typeof raw === 'string' ? BYTES_RE.exec(raw.trim()) : null;
      if (!m) return fail('must be a size like 65536, 64kb, 4mb');
      const unit = (m[2] ?? 'b').toLowerCase();
      const mult = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1;
      return bounds(Number(m[1]) * mult);
    }
    case 'keys':
      return parseApiKeys(raw, fail);
    case 'list':
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw;
      if (typeof raw !== 'string') return fail('must be a comma-separated list');
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  }
}

export interface LoadOptions {
  /** Parsed command-line flags (flag name -> raw value). */
  flags?: Record<string, string | boolean | undefined>;
  env?: NodeJS.ProcessEnv;
  /** Explicit overrides (highest precedence), for embedding and tests. */
  overrides?: Partial<GatewayConfig>;
}

/** Builds the configuration: overrides > flags > env > file (`--config` / SIGNALBOX_CONFIG) > defaults. */
export function loadConfig(opts: LoadOptions = {}): GatewayConfig {
  const env = opts.env ?? process.env;
  const flags = opts.flags ?? {};
  const filePath = (flags.config as string | undefined) ?? env.SIGNALBOX_CONFIG;
  let file: Record<string, unknown> = {};
  if (filePath) {
    try {
      file = JSON.parse(readFileSync(filePath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`Invalid setting SIGNALBOX_CONFIG (--config): cannot read JSON file ${filePath}: ${(err as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new ConfigError(`Invalid setting SIGNALBOX_CONFIG (--config): ${filePath} must hold a JSON object`);
    const known = new Set<string>([...SETTINGS.map((s) => s.key), 'namespaces']);
    for (const k of Object.keys(file)) if (!known.has(k)) throw new ConfigError(`Unknown setting "${k}" in config file ${filePath}`);
  }
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const override = opts.overrides?.[spec.key];
    const raw = override !== undefined ? override : flags[spec.flag] ?? env[spec.env] ?? file[spec.key];
    out[spec.key] = raw === undefined || raw === '' ? spec.default : parseValue(spec, raw);
  }
  const cfg = out as unknown as GatewayConfig;
  cfg.namespaces = opts.overrides?.namespaces ?? (file.namespaces !== undefined ? parseNamespaces(file.namespaces, (why) => {
    throw new ConfigError(`Invalid setting namespaces (config file): ${why}`);
  }) : DEFAULT_NAMESPACES);
  if (!cfg.jwtAlgorithms || cfg.jwtAlgorithms.length === 0) {
    cfg.jwtAlgorithms = cfg.jwtPublicKey || cfg.jwksUrl ? ['RS256', 'ES256'] : ['HS256'];
  }
  validate(cfg);
  return cfg;
}

const ALGS = new Set(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

function validate(cfg: GatewayConfig): void {
  const spec = (k: SettingSpec['key']) => describe(SETTINGS.find((s) => s.key === k)!);
  for (const a of cfg.jwtAlgorithms) {
    if (!ALGS.has(a)) throw new ConfigError(`Invalid setting ${spec('jwtAlgorithms')}: unknown algorithm "${a}" (none is never accepted)`);
  }
  const hmac = cfg.jwtAlgorithms.some((a) => a.startsWith('HS'));
  const asym = cfg.jwtAlgorithms.some((a) => !a.startsWith('HS'));
  if (hmac && asym) throw new ConfigError(`Invalid setting ${spec('jwtAlgorithms')}: do not mix HMAC and public-key algorithms`);
  if (asym && !cfg.jwtPublicKey && !cfg.jwksUrl) throw new ConfigError(`Invalid setting ${spec('jwtAlgorithms')}: ${cfg.jwtAlgorithms.join(',')} needs SIGNALBOX_JWT_PUBLIC_KEY or SIGNALBOX_JWKS_URL`);
  if (hmac && (cfg.jwtPublicKey || cfg.jwksUrl)) throw new ConfigError(`Invalid setting ${spec('jwtAlgorithms')}: a public key/JWKS is configured but the algorithms are HMAC; set e.g. RS256`);
  if (cfg.jwtSecret !== undefined && cfg.jwtSecret.length < 16) throw new ConfigError(`Invalid setting ${spec('jwtSecret')}: must be at least 16 characters`);
  if (cfg.jwksUrl !== undefined) {
    try {
      const u = new URL(cfg.jwksUrl);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('protocol');
    } catch {
      throw new ConfigError(`Invalid setting ${spec('jwksUrl')}: must be an http(s) URL`);
    }
  }
  if (cfg.broker !== 'memory' && !/^rediss?:\/\//.test(cfg.broker)) {
    throw new ConfigError(`Invalid setting ${spec('broker')}: must be "memory" or a redis:// URL, got "${cfg.broker}"`);
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(cfg.logLevel)) {
    throw new ConfigError(`Invalid setting ${spec('logLevel')}: must be one of fatal, error, warn, info, debug, trace, silent`);
  }
  if (cfg.apiKey !== undefined && cfg.apiKey.length < 16) throw new ConfigError(`Invalid setting ${spec('apiKey')}: must be at least 16 characters`);
  apiKeyring(cfg);
}

/** The HTTP API's keys: SIGNALBOX_API_KEY (`default`) and the named ones. A clash stops the start, naming the key, never showing it. */
export function apiKeyring(cfg: Pick<GatewayConfig, 'apiKey' | 'apiKeys'>): ApiKeyring {
  const spec = describe(SETTINGS.find((s) => s.key === 'apiKeys')!);
  return new ApiKeyring(cfg.apiKey, cfg.apiKeys, (why) => {
    throw new ConfigError(`Invalid setting ${spec}: ${why}`);
  });
}
