/**
 * The console's two keys: one signs its session cookies, one its WebSocket tokens. Both are
 * derived (HKDF, each with its own label) from one secret, never the secret itself, so neither a
 * cookie nor a console token can be used as, or to forge, a client token of the application's.
 *
 * The secret is `SIGNALBOX_CONSOLE_SECRET` when set, else the HS256 `SIGNALBOX_JWT_SECRET`, else a
 * random one per process. Nodes of a cluster that share the secret accept each other's console
 * sessions and tokens; with public-key or JWKS auth and several nodes behind one address, set
 * `SIGNALBOX_CONSOLE_SECRET` on every node (docs/console.md).
 *
 * Console tokens are the gateway's own: HS256 with the key id {@link CONSOLE_TOKEN_KID} and
 * issuer/audience `signalbox-console`. The authenticator checks them against the console token key
 * only, whatever the application's algorithms are, so the console works with RS256/ES256/EdDSA
 * and JWKS deployments too, where the gateway holds no key that could sign an application token.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { GatewayConfig } from '../config.js';
import type { MintOptions } from './jwt.js';

export const CONSOLE_TOKEN_KID = 'signalbox-console-v1';
export const CONSOLE_TOKEN_ISSUER = 'signalbox-console';

export interface ConsoleKeys {
  /** Signs session cookies (HMAC-SHA256). */
  cookie: Buffer;
  /** Signs and verifies console WebSocket tokens (HS256). */
  token: Uint8Array;
  /** Whether the keys come from a configured secret (shared by every node that has it) or are this process's own. */
  shared: boolean;
}

/** Per config object, so the node's authenticator and its console (built from one config) agree on a random key. */
const byConfig = new WeakMap<object, ConsoleKeys>();

export function consoleKeys(config: Pick<GatewayConfig, 'consoleSecret' | 'jwtSecret'>): ConsoleKeys {
  let keys = byConfig.get(config);
  if (keys === undefined) {
    const secret = config.consoleSecret ?? config.jwtSecret;
    const root = secret !== undefined ? secret : randomBytes(32);
    const derive = (label: string) => Buffer.from(hkdfSync('sha256', root, 'signalbox', label, 32));
    keys = { cookie: derive('console-session-v1'), token: new Uint8Array(derive('console-token-v1')), shared: secret !== undefined };
    byConfig.set(config, keys);
  }
  return keys;
}

/** Mints a console WebSocket token (see the module comment): what `POST /console/token` returns. */
export async function mintConsoleToken(keys: ConsoleKeys, opts: MintOptions & { ttlSeconds: number }): Promise<string> {
  const claims: Record<string, unknown> = {};
  for (const k of ['channels', 'publish', 'handle', 'call'] as const) if (opts[k]) claims[k] = opts[k];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: CONSOLE_TOKEN_KID })
    .setSubject(opts.sub)
    .setIssuer(CONSOLE_TOKEN_ISSUER)
    .setAudience(CONSOLE_TOKEN_ISSUER)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + opts.ttlSeconds)
    .sign(keys.token);
}
