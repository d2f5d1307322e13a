/**
 * JWT verification (jose) with pinned algorithms. Claims: `sub` (required), `exp`, and four
 * separate grants, each a list of channel patterns (`*`, `project:*`, `agent:agent_001`):
 * `channels` (what the holder may read), `publish` (where it may publish), `handle` (channels it
 * produces: it may register as their RPC handler and publish their reserved event types) and
 * `call` (channels whose handler it may call); optional `info` (shown to presence members).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ChannelPatterns, ErrorCode, isChannelPatternList } from '@signalbox/protocol';
import type { GatewayConfig } from '../config.js';
import { ConfigError } from '../config.js';
import { CONSOLE_TOKEN_ISSUER, CONSOLE_TOKEN_KID } from './console-keys.js';

export interface Credentials {
  /** Token subject: the user (or service) id. */
  sub: string;
  /** Patterns the holder may read, from the `channels` claim (empty when absent). */
  channels: ChannelPatterns;
  /** Patterns the holder may publish to, from the `publish` claim (empty when absent). */
  publish: ChannelPatterns;
  /** Channels the holder produces (RPC handler, reserved event types), from the `handle` claim. */
  handle: ChannelPatterns;
  /** Channels whose handler the holder may call, from the `call` claim. */
  call: ChannelPatterns;
  /** `exp` in milliseconds since the epoch, or null for a token without expiry. */
  expiresAt: number | null;
  /** Optional `info` claim, shown in presence. */
  info?: unknown;
}

export class AuthError extends Error {
  /** The token was not judged (its key set could not be read): the client should retry later, same token. */
  readonly retryable: boolean;

  constructor(readonly code: typeof ErrorCode.AUTH_FAILED | typeof ErrorCode.TOKEN_EXPIRED, message: string, opts: { retryable?: boolean } = {}) {
    super(message);
    this.name = 'AuthError';
    this.retryable = opts.retryable ?? false;
  }
}

/** The JWKS could not be fetched or parsed: says nothing about the token. */
class KeySetUnavailableError extends Error {}

/** jose codes of a failed key-set fetch (HTTP error, bad JSON, timeout, not a key set); other JOSE errors judge the token. */
const KEY_SET_FETCH_FAILURES = new Set(['ERR_JOSE_GENERIC', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID']);

type KeySource = Uint8Array | KeyObject | JWTVerifyGetKey;

/** Distinct `channels` claims remembered; past this the cache starts over. */
const PATTERN_CACHE_MAX = 1024;

export class Authenticator {
  private readonly key: KeySource;
  /**
   * Compiled `channels` claims by their text: tokens are usually minted per role, so thousands of
   * connections share a handful of claims, and share one immutable ChannelPatterns for each.
   */
  private readonly patterns = new Map<string, ChannelPatterns>();
  private readonly algorithms: string[];
  private readonly issuer: string | undefined;
  private readonly audience: string | undefined;

  /**
   * @param consoleTokenKey when set, tokens whose header names the console's key id are checked
   *   against this key (HS256, issuer and audience `signalbox-console`) instead of the
   *   application's keys: the console's own WebSocket tokens (auth/console-keys.ts).
   */
  constructor(
    cfg: Pick<GatewayConfig, 'jwtSecret' | 'jwtPublicKey' | 'jwksUrl' | 'jwtAlgorithms' | 'jwtIssuer' | 'jwtAudience' | 'handshakeTimeoutMs'>,
    private readonly consoleTokenKey?: Uint8Array,
  ) {
    this.algorithms = cfg.jwtAlgorithms;
    this.issuer = cfg.jwtIssuer;
    this.audience = cfg.jwtAudience;
    if (cfg.jwksUrl) {
      const remote = createRemoteJWKSet(new URL(cfg.jwksUrl), { timeoutDuration: cfg.handshakeTimeoutMs, cooldownDuration: 30_000 });
      this.key = async (header, token) => {
        try {
          return await remote(header, token);
        } catch (err) {
          if (err instanceof joseErrors.JOSEError && !KEY_SET_FETCH_FAILURES.has(err.code)) throw err;
          throw new KeySetUnavailableError(err instanceof Error ? err.message : String(err), { cause: err });
        }
      };
    } else if (cfg.jwtPublicKey) {
      const pem = cfg.jwtPublicKey.includes('-----BEGIN') ? cfg.jwtPublicKey : readPem(cfg.jwtPublicKey);
      try {
        this.key = createPublicKey(pem);
      } catch (err) {
        throw new ConfigError(`Invalid setting SIGNALBOX_JWT_PUBLIC_KEY (--jwt-public-key): not a PEM public key (${(err as Error).message})`);
      }
    } else if (cfg.jwtSecret) {
      this.key = new TextEncoder().encode(cfg.jwtSecret);
    } else {
      throw new ConfigError('Invalid setting SIGNALBOX_JWT_SECRET (--jwt-secret): no secret, public key or JWKS configured');
    }
  }

  /** Verifies a token; rejects with AuthError (AUTH_FAILED or TOKEN_EXPIRED). Never echoes the token. */
  async verify(token: string): Promise<Credentials> {
    if (typeof token !== 'string' || token.length === 0) throw new AuthError(ErrorCode.AUTH_FAILED, 'Missing token');
    if (token.length > 8192) throw new AuthError(ErrorCode.AUTH_FAILED, 'Token too long');
    let payload: JWTPayload;
    try {
      const result = this.consoleTokenKey !== undefined && isConsoleToken(token)
        ? await jwtVerify(token, this.consoleTokenKey, CONSOLE_TOKEN_CHECKS)
        : this.key instanceof Uint8Array || isKeyObject(this.key)
          ? await jwtVerify(token, this.key, { algorithms: this.algorithms, issuer: this.issuer, audience: this.audience, requiredClaims: ['sub'] })
          : await jwtVerify(token, this.key, { algorithms: this.algorithms, issuer: this.issuer, audience: this.audience, requiredClaims: ['sub'] });
      payload = result.payload;
    } catch (err) {
      throw toAuthError(err);
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 128) throw new AuthError(ErrorCode.AUTH_FAILED, 'Invalid `sub` claim');
    const grant = (claim: 'channels' | 'publish' | 'handle' | 'call'): ChannelPatterns => {
      const v = (payload as Record<string, unknown>)[claim];
      if (v === undefined) return this.compile([]);
      if (!isChannelPatternList(v)) throw new AuthError(ErrorCode.AUTH_FAILED, `Invalid \`${claim}\` claim: must be an array of channel patterns`);
      return this.compile(v);
    };
    return {
      sub,
      channels: grant('channels'),
      publish: grant('publish'),
      handle: grant('handle'),
      call: grant('call'),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
      info: (payload as Record<string, unknown>).info,
    };
  }

  private compile(claim: readonly string[]): ChannelPatterns {
    if (claim.length > 64) return new ChannelPatterns(claim); // rare and large: not worth keeping
    const key = claim.join('\n'); // patterns never contain a newline (isChannelPatternList)
    let p = this.patterns.get(key);
    if (p === undefined) {
      if (this.patterns.size >= PATTERN_CACHE_MAX) this.patterns.clear();
      p = new ChannelPatterns(claim);
      this.patterns.set(key, p);
    }
    return p;
  }
}

const CONSOLE_TOKEN_CHECKS = { algorithms: ['HS256'], issuer: CONSOLE_TOKEN_ISSUER, audience: CONSOLE_TOKEN_ISSUER, requiredClaims: ['sub', 'exp'] };

/** Whether the token's header names the console's key id (a malformed header is not: the normal path judges it). */
function isConsoleToken(token: string): boolean {
  try {
    return decodeProtectedHeader(token).kid === CONSOLE_TOKEN_KID;
  } catch {
    return false;
  }
}

function isKeyObject(k: KeySource): k is KeyObject {
  return typeof k === 'object' && k !== null && 'asymmetricKeyType' in k;
}

function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Invalid setting SIGNALBOX_JWT_PUBLIC_KEY (--jwt-public-key): cannot read ${path}: ${(err as Error).message}`);
  }
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof KeySetUnavailableError) return new AuthError(ErrorCode.AUTH_FAILED, 'Key set unavailable; retry later', { retryable: true });
  if (err instanceof joseErrors.JWTExpired) return new AuthError(ErrorCode.TOKEN_EXPIRED, 'Token expired');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new AuthError(ErrorCode.AUTH_FAILED, 'Token algorithm not allowed');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new AuthError(ErrorCode.AUTH_FAILED, 'Token signature verification failed');
  if (err instanceof joseErrors.JWTClaimValidationFailed) return new AuthError(ErrorCode.AUTH_FAILED, `Token claim invalid: ${err.claim}`);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new AuthError(ErrorCode.AUTH_FAILED, 'No matching key for token');
  if (err instanceof joseErrors.JWKSTimeout) return new AuthError(ErrorCode.AUTH_FAILED, 'Key set unavailable (timeout)', { retryable: true });
  if (err instanceof joseErrors.JOSEError) return new AuthError(ErrorCode.AUTH_FAILED, 'Malformed token');
  return new AuthError(ErrorCode.AUTH_FAILED, 'Token verification failed');
}

export interface MintOptions {
  sub: string;
  /** Read grant. */
  channels?: string[];
  /** Publish grant. */
  publish?: string[];
  /** Producer / RPC handler grant. */
  handle?: string[];
  /** RPC call grant. */
  call?: string[];
  ttlSeconds?: number;
  info?: unknown;
  /** The `"admin": true` claim: the token may sign in to the console. */
  admin?: boolean;
}

/** Mints an HS256 token (for `signalbox token`, dev mode, and tests). */
export async function mintToken(secret: string, opts: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  for (const k of ['channels', 'publish', 'handle', 'call'] as const) if (opts[k]) claims[k] = opts[k];
  if (opts.info !== undefined) claims.info = opts.info;
  if (opts.admin === true) claims.admin = true;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuedAt();
  if (opts.ttlSeconds !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + opts.ttlSeconds);
  return jwt.sign(new TextEncoder().encode(secret));
}
