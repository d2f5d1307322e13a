// HS256 JWTs minted with node:crypto (no dependency), as the Signalbox gateway verifies them.
import { createHmac } from 'node:crypto';

const b64u = (b) => Buffer.from(b).toString('base64url');

export function mintJwt(secret, claims) {
  const head = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64u(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export function benchToken(secret, sub, ttlSec = 3600) {
  // Read and publish are separate grants: the bench publisher needs `publish`.
  return mintJwt(secret, { sub, exp: Math.floor(Date.now() / 1000) + ttlSec, channels: ['*'], publish: ['*'] });
}
