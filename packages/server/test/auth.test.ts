/**
 * Authentication over real sockets: the three ways to present a token (Authorization header,
 * `?token=`, `bearer.<jwt>` subprotocol), every way a token can be refused, pinned algorithms
 * (HS256, RS256 public key, JWKS), and frames sent before verification completes.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { TestClient, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import {
  claims, enc, nowSeconds, rsaPair, signAsym, signHmac, startJwksServer, unsecuredJwt, type JwksServer, type RsaPair,
} from './helpers/core-util.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

type Via = 'header' | 'query' | 'subprotocol';

// Two RSA key pairs for the whole file, made once at load: key generation is CPU-heavy on a loaded machine.
const KEY_A = rsaPair();
const KEY_B = rsaPair();

function connectVia(gw: TestGateway, via: Via, token: string | null, path = '/v1/ws/prps'): TestClient {
  const base = `${gw.ws}${path}`;
  if (token === null) return new TestClient(base);
  switch (via) {
    case 'header':
      return new TestClient(base, { headers: { authorization: `Bearer ${token}` } });
    case 'query':
      return new TestClient(`${base}?token=${encodeURIComponent(token)}`);
    case 'subprotocol':
      return new TestClient(base, { protocols: ['signalbox.json', `bearer.${token}`] });
  }
}

/** A refused token: exactly one `error` with the code, then the close code, and nothing else. */
async function expectRefused(client: TestClient, code: string, closeCode: number): Promise<Msg> {
  const closed = await client.closed;
  expect(closed.code).toBe(closeCode);
  expect(client.messages).toHaveLength(1);
  const err = client.messages[0]!;
  expect(err).toMatchObject({ type: 'error', data: { code } });
  expect(typeof err.data.message).toBe('string');
  expect(typeof err.id).toBe('string');
  expect(typeof err.timestamp).toBe('string');
  return err;
}

describe('auth with an HS256 secret', () => {
  let gw: TestGateway;
  let other: RsaPair;
  beforeAll(async () => {
    gw = await startGateway();
    other = KEY_B;
  });
  afterAll(() => gw.close());

  it.each<Via>(['header', 'query', 'subprotocol'])('accepts a valid token via %s', async (via) => {
    const client = connectVia(gw, via, await signHmac(claims()));
    const est = await client.nextType('connection.established');
    expect(est.data.connectionId).toMatch(/^conn_/);
    expect((await client.request('ping')).type).toBe('pong');
    await client.close();
  });

  it('selects and echoes a subprotocol when the token comes as bearer.<jwt> offered with signalbox.json', async () => {
    const client = connectVia(gw, 'subprotocol', await signHmac(claims()));
    await client.opened;
    expect(client.ws.protocol).toBe('signalbox.json');
    await client.nextType('connection.established');
    await client.close();
  });

  it('echoes a lone bearer.<jwt> subprotocol (browsers fail the handshake when none is selected)', async () => {
    const token = await signHmac(claims());
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { protocols: [`bearer.${token}`] });
    await client.opened;
    expect(client.ws.protocol).toBe(`bearer.${token}`);
    await client.nextType('connection.established');
    await client.close();
  });

  it('refuses a connection without any token: one AUTH_FAILED error, then 4001', async () => {
    await expectRefused(new TestClient(`${gw.ws}/v1/ws/prps`), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    await expectRefused(new TestClient(`${gw.ws}/v1/ws/prps`, { protocols: ['signalbox.json'] }), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    await expectRefused(new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: 'Basic dXNyOnB3' } }), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
  });

  const refusals: { name: string; token: () => Promise<string>; code: string; close: number }[] = [
    { name: 'a garbage token', token: async () => 'not-a-jwt', code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'three garbage segments', token: async () => 'aaa.bbb.ccc', code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'a wrong signature (other secret)', token: () => signHmac(claims(), { secret: 'another-secret-0123456789abcdef' }), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    {
      name: 'a tampered payload',
      token: async () => {
        const [h, , s] = (await signHmac(claims({ channels: ['project:p1'] }))).split('.');
        return `${h}.${Buffer.from(JSON.stringify(claims({ channels: ['*'] }))).toString('base64url')}.${s}`;
      },
      code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED,
    },
    { name: 'an expired token', token: () => signHmac(claims({ iat: nowSeconds() - 7200, exp: nowSeconds() - 60 })), code: ErrorCode.TOKEN_EXPIRED, close: CloseCode.TOKEN_EXPIRED },
    { name: 'alg: none', token: async () => unsecuredJwt(claims()), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'HS512 when only HS256 is allowed', token: () => signHmac(claims(), { alg: 'HS512' }), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'an RS256 token on an HS256 gateway', token: () => signAsym(claims(), other.privateKey, 'RS256'), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'a token without sub', token: () => signHmac(claims({ sub: undefined })), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'an empty sub', token: () => signHmac(claims({ sub: '' })), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'a malformed channels claim', token: () => signHmac(claims({ channels: 'project:*' })), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'an oversized token', token: () => signHmac(claims({ pad: 'x'.repeat(9000) })), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
    { name: 'a token not yet valid (nbf in the future)', token: () => signHmac(claims({ nbf: nowSeconds() + 600 })), code: ErrorCode.AUTH_FAILED, close: CloseCode.AUTH_FAILED },
  ];
  const matrix = refusals.flatMap((r) => (['header', 'query', 'subprotocol'] as Via[]).map((via) => ({ ...r, via })));

  it.each(matrix)('refuses $name via $via: one $code error, then close $close, nothing else', async ({ token, via, code, close }) => {
    const t = await token();
    const err = await expectRefused(connectVia(gw, via, t), code, close);
    // The token is never echoed back.
    expect(JSON.stringify(err)).not.toContain(t);
  });

  it('handles frames sent right after the upgrade, before the token is verified, in order', async () => {
    const token = await signHmac(claims({ channels: ['project:*', 'agent:*'] }));
    const project = uniqueChannel('project');
    const agent = uniqueChannel('agent');
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
    // Sent synchronously from the 'open' handler: they reach the server before verification ends.
    client.ws.once('open', () => {
      client.send({ id: 'a1', action: 'subscribe', payload: { channels: [project] } });
      client.send({ id: 'a2', action: 'ping' });
      client.send({ id: 'a3', action: 'publish', payload: { channel: agent, type: 'agent.progress', data: { progress: 1 } } });
      client.send({ id: 'a4', action: 'unsubscribe', payload: { channels: [project] } });
      for (let i = 0; i < 20; i++) client.send({ id: `p${i}`, action: 'ping' });
    });
    await client.next((m) => m.replyTo === 'p19');
    // (Heartbeats may interleave if this gateway has been up for a heartbeat interval.)
    const seq = client.messages.filter((m) => m.type !== 'heartbeat').map((m) => `${m.type}:${m.replyTo ?? ''}`);
    expect(seq).toEqual([
      'connection.established:', 'subscription.confirmed:a1', 'pong:a2', 'ack:a3', 'unsubscription.confirmed:a4',
      ...Array.from({ length: 20 }, (_, i) => `pong:p${i}`),
    ]);
    await client.close();
  });
});

describe('auth with issuer and audience pinned', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ jwtIssuer: 'https://idp.example', jwtAudience: 'signalbox' });
  });
  afterAll(() => gw.close());

  it('accepts the right iss/aud and refuses a wrong or missing one', async () => {
    const ok = connectVia(gw, 'header', await signHmac(claims({ iss: 'https://idp.example', aud: 'signalbox' })));
    await ok.nextType('connection.established');
    await ok.close();
    for (const extra of [{ iss: 'https://evil.example', aud: 'signalbox' }, { iss: 'https://idp.example', aud: 'other' }, {}]) {
      await expectRefused(connectVia(gw, 'header', await signHmac(claims(extra))), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    }
  });
});

describe('auth with an RS256 public key', { timeout: 60_000 }, () => {
  let gw: TestGateway;
  let pair: RsaPair;
  let stranger: RsaPair;
  beforeAll(async () => {
    pair = KEY_A;
    stranger = KEY_B;
    gw = await startGateway({ jwtSecret: undefined, jwtPublicKey: pair.publicPem, jwtAlgorithms: ['RS256'] });
  });
  afterAll(() => gw.close());

  it('accepts an RS256 token signed by the matching private key', async () => {
    const client = connectVia(gw, 'header', await signAsym(claims(), pair.privateKey));
    await client.nextType('connection.established', 30_000);
    await client.close();
  });

  it('refuses HS256 signed with the public key as secret (algorithm confusion)', async () => {
    const forged = await signHmac(claims(), { secret: enc.encode(pair.publicPem) });
    await expectRefused(connectVia(gw, 'header', forged), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
  });

  it('refuses a token signed by another key, alg none, a non-pinned algorithm, and an expired RS256 token', async () => {
    await expectRefused(connectVia(gw, 'query', await signAsym(claims(), stranger.privateKey)), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    await expectRefused(connectVia(gw, 'query', unsecuredJwt(claims())), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    await expectRefused(connectVia(gw, 'query', await signAsym(claims(), pair.privateKey, 'PS256')), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    await expectRefused(connectVia(gw, 'subprotocol', await signHmac(claims())), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    const expired = await signAsym(claims({ iat: nowSeconds() - 100, exp: nowSeconds() - 10 }), pair.privateKey);
    await expectRefused(connectVia(gw, 'subprotocol', expired), ErrorCode.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED);
  });
});

// Key-set fetches and RSA verification can be slow on a loaded machine: generous limits.
describe('auth with a JWKS URL', { timeout: 60_000 }, () => {
  let pair: RsaPair;
  let jwks: JwksServer;
  const kid = `k_${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    pair = KEY_A;
    jwks = await startJwksServer(pair.publicKey, kid);
  });
  afterAll(() => jwks.close());

  it('verifies tokens against the key set; an unknown kid or another key is refused', async () => {
    const gw = await startGateway({ jwtSecret: undefined, jwksUrl: jwks.url, jwtAlgorithms: ['RS256'] });
    try {
      const ok = connectVia(gw, 'header', await signAsym(claims(), pair.privateKey, 'RS256', kid));
      await ok.nextType('connection.established', 30_000);
      expect(jwks.hits).toBeGreaterThanOrEqual(1);
      await ok.close();
      const stranger = KEY_B;
      await expectRefused(connectVia(gw, 'header', await signAsym(claims(), stranger.privateKey, 'RS256', kid)), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
      await expectRefused(connectVia(gw, 'header', await signAsym(claims(), pair.privateKey, 'RS256', 'unknown-kid')), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
      await expectRefused(connectVia(gw, 'header', await signHmac(claims())), ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED);
    } finally {
      await gw.close();
    }
  });

  it('with a slow key set, queues frames sent before verification and handles them in order', async () => {
    const slow = await startJwksServer(pair.publicKey, kid, 400);
    const gw = await startGateway({ jwtSecret: undefined, jwksUrl: slow.url, jwtAlgorithms: ['RS256'] });
    try {
      const token = await signAsym(claims(), pair.privateKey, 'RS256', kid);
      const channel = uniqueChannel('agent');
      const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
      await client.opened;
      // The JWKS answer is 400 ms away: all of these wait in the pre-auth queue.
      client.send({ id: 's1', action: 'subscribe', payload: { channels: [channel] } });
      client.send({ id: 's2', action: 'publish', payload: { channel, type: 'agent.progress', data: { progress: 45 } } });
      client.send({ id: 's3', action: 'ping' });
      client.send({ id: 's4', action: 'unsubscribe', payload: { channels: [channel] } });
      client.send({ id: 's5', action: 'ping' });
      await client.next((m) => m.replyTo === 's5', 30_000);
      expect(client.messages[0]!.type).toBe('connection.established');
      const replies = client.messages.filter((m) => m.replyTo).map((m) => `${m.type}:${m.replyTo}`);
      expect(replies).toEqual(['subscription.confirmed:s1', 'ack:s2', 'pong:s3', 'unsubscription.confirmed:s4', 'pong:s5']);
      // The publication itself reached the (still subscribed) publisher between s1 and s4.
      const pubIdx = client.messages.findIndex((m) => m.type === 'agent.progress');
      expect(pubIdx).toBeGreaterThan(client.messages.findIndex((m) => m.replyTo === 's1'));
      expect(pubIdx).toBeLessThan(client.messages.findIndex((m) => m.replyTo === 's4'));
      expect(slow.hits).toBe(1);
      await client.close();
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  it('closes a flood of frames sent before verification with 4008', async () => {
    const slow = await startJwksServer(pair.publicKey, kid, 600);
    const gw = await startGateway({ jwtSecret: undefined, jwksUrl: slow.url, jwtAlgorithms: ['RS256'] });
    try {
      const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${await signAsym(claims(), pair.privateKey, 'RS256', kid)}` } });
      await client.opened;
      for (let i = 0; i < 100; i++) client.send({ id: `f${i}`, action: 'ping' });
      const closed = await client.closed;
      expect(closed.code).toBe(CloseCode.PROTOCOL_VIOLATION);
      expect(client.messages.filter((m) => m.type === 'pong')).toHaveLength(0);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  it('a key set that cannot be reached or answers an error closes with 4004 (retry later), not 4001 (token refused)', async () => {
    // The token may well be valid: telling the client it was refused (4001) would stop its reconnects for good.
    const down = await startJwksServer(pair.publicKey, kid);
    const deadUrl = down.url;
    await down.close();
    const broken = createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('upstream failure');
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}/jwks.json`;
    try {
      for (const url of [deadUrl, brokenUrl]) {
        const gw = await startGateway({ jwtSecret: undefined, jwksUrl: url, jwtAlgorithms: ['RS256'] });
        try {
          const client = connectVia(gw, 'header', await signAsym(claims(), pair.privateKey, 'RS256', kid));
          const closed = await client.closed;
          expect(closed.code, url).toBe(CloseCode.AUTH_TIMEOUT);
          expect(client.messages).toHaveLength(1);
          expect(client.messages[0]).toMatchObject({ type: 'error', data: { code: ErrorCode.AUTH_FAILED } });
        } finally {
          await gw.close();
        }
      }
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  });

  it('closes with 4004 when the key set does not answer within the handshake timeout', async () => {
    const stuck = await startJwksServer(pair.publicKey, kid, 20_000);
    const gw = await startGateway({ jwtSecret: undefined, jwksUrl: stuck.url, jwtAlgorithms: ['RS256'], handshakeTimeoutMs: 300 });
    try {
      const client = connectVia(gw, 'header', await signAsym(claims(), pair.privateKey, 'RS256', kid));
      const closed = await client.closed;
      expect(closed.code).toBe(CloseCode.AUTH_TIMEOUT);
      expect(client.messages).toHaveLength(1);
      expect(client.messages[0]).toMatchObject({ type: 'error', data: { code: ErrorCode.AUTH_FAILED } });
    } finally {
      await gw.close();
      await stuck.close();
    }
  });
});
