/**
 * The console's HTTP side: the built app served under a strict CSP, sign-in (admin key, admin
 * token, dev one-time code) into an HttpOnly SameSite=Strict session, the admin API authorized by
 * that session only with the CSRF rules met (custom header + same Origin), the session's WebSocket
 * token, and cross-site WebSocket hijacking refused (a cookie never authorizes an upgrade).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { CONSOLE_TOKEN_ISSUER, CONSOLE_TOKEN_KID } from '../src/auth/console-keys.js';
import { issueConsoleCode } from '../src/http/console-session.js';
import { runCli } from './helpers/core-process.js';
import { TEST_API_KEY, TEST_SECRET, TestClient, startGateway, type TestGateway } from './helpers/gateway.js';

const READ_ONLY_KEY = 'reader-key-0123456789abcdef';

describe('console over HTTP', () => {
  let gw: TestGateway;
  /** The gateway's own origin, as a browser on the console page sends it. */
  let origin: string;
  beforeAll(async () => {
    gw = await startGateway({ apiKeys: [{ name: 'reader', key: READ_ONLY_KEY, scopes: ['history'] }] });
    origin = gw.http;
  });
  afterAll(() => gw.close());

  /** A request as the console page makes it: its header and its Origin, plus whatever the test adds. */
  const req = (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    fetch(`${gw.http}${path}`, {
      method: init.method ?? 'GET',
      headers: { 'x-signalbox-console': '1', origin, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });

  const signIn = async (body: unknown = { key: TEST_API_KEY }): Promise<string> => {
    const res = await req('/console/session', { method: 'POST', body });
    expect(res.status).toBe(200);
    const set = res.headers.get('set-cookie') ?? '';
    return set.split(';')[0]!;
  };

  it('serves the built app with a CSP that allows nothing inline', async () => {
    const res = await fetch(`${gw.http}/console`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    const html = await res.text();
    expect(html).toContain('Signalbox console');
    expect(html).not.toMatch(/<script>|<style>|\sstyle=|\son[a-z]+=/i);
    const js = await fetch(`${gw.http}/console/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('text/javascript');
    expect((await fetch(`${gw.http}/console/app.css`)).status).toBe(200);
  });

  it('signs in with an admin key into an HttpOnly, SameSite=Strict, Path=/ cookie that authorizes the admin API', async () => {
    const res = await req('/console/session', { method: 'POST', body: { key: TEST_API_KEY } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'default', scopes: expect.arrayContaining(['admin']) });
    const set = res.headers.get('set-cookie') ?? '';
    expect(set).toMatch(/^sb_console=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=3600$/);
    expect(set).not.toContain(TEST_API_KEY);
    const cookie = set.split(';')[0]!;
    const who = await req('/console/session', { headers: { cookie } });
    expect(who.status).toBe(200);
    expect(await who.json()).toMatchObject({ signedIn: true, name: 'default' });
    expect(await (await req('/console/session')).json()).toEqual({ signedIn: false, reason: 'no_session' });
    const list = await req('/v1/connections', { headers: { cookie } });
    expect(list.status).toBe(200);
    expect(await list.json()).toMatchObject({ connections: [] });
  });

  it('refuses a key without the admin scope, and a wrong key', async () => {
    const res = await req('/console/session', { method: 'POST', body: { key: READ_ONLY_KEY } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.PERMISSION_DENIED);
    expect(res.headers.get('set-cookie')).toBeNull();
    const wrong = await req('/console/session', { method: 'POST', body: { key: 'not-a-key-0123456789' } });
    expect(wrong.status).toBe(401);
  });

  it('CSRF: a cross-origin sign-in or state-changing request is refused, and the cookie alone authorizes nothing', async () => {
    const cookie = await signIn();
    // Sign-in from a foreign page (login CSRF).
    const foreignSignIn = await req('/console/session', { method: 'POST', body: { key: TEST_API_KEY }, headers: { origin: 'http://evil.example' } });
    expect(foreignSignIn.status).toBe(403);
    // A state-changing admin request carrying the cookie from a foreign Origin.
    const foreignDelete = await req('/v1/connections/conn_x', { method: 'DELETE', headers: { cookie, origin: 'http://evil.example' } });
    expect(foreignDelete.status).toBe(403);
    expect(((await foreignDelete.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.PERMISSION_DENIED);
    // Same, with no Origin at all.
    const noOrigin = await fetch(`${gw.http}/v1/connections/conn_x`, { method: 'DELETE', headers: { cookie, 'x-signalbox-console': '1' } });
    expect(noOrigin.status).toBe(403);
    // What a cross-site form or <img> can send: the cookie, without the console's header.
    const cookieOnly = await fetch(`${gw.http}/v1/connections/conn_x`, { method: 'DELETE', headers: { cookie, origin } });
    expect(cookieOnly.status).toBe(403);
    const cookieOnlyGet = await fetch(`${gw.http}/v1/connections`, { headers: { cookie } });
    expect(cookieOnlyGet.status).toBe(403);
    // The browser says the request came from another site.
    const crossSite = await req('/v1/connections', { headers: { cookie, 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    // The same request, same-origin with the header: authorized (404: no such connection).
    const ok = await req('/v1/connections/conn_x', { method: 'DELETE', headers: { cookie } });
    expect(ok.status).toBe(404);
    // A minted WebSocket token is refused cross-origin too.
    expect((await req('/console/token', { method: 'POST', headers: { cookie, origin: 'http://evil.example' } })).status).toBe(403);
    // Sign-out from a foreign page is refused.
    expect((await req('/console/session', { method: 'DELETE', headers: { cookie, origin: 'http://evil.example' } })).status).toBe(403);
  });

  it('a forged or tampered cookie is refused', async () => {
    const cookie = await signIn();
    const [name, value] = cookie.split('=') as [string, string];
    const [body, sig] = value.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, e: Date.now() + 1e9 })).toString('base64url');
    expect((await req('/v1/connections', { headers: { cookie: `${name}=${forged}.${sig}` } })).status).toBe(401);
    expect((await req('/v1/connections', { headers: { cookie: `${name}=garbage` } })).status).toBe(401);
  });

  it("mints the session's short-lived WebSocket token, which connects", async () => {
    const cookie = await signIn();
    const res = await req('/console/token', { method: 'POST', headers: { cookie } });
    expect(res.status).toBe(200);
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: string };
    const ttl = Date.parse(expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(200_000);
    expect(ttl).toBeLessThanOrEqual(300_000);
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { protocols: ['signalbox.json', `bearer.${token}`] });
    const est = await client.nextType('connection.established');
    expect(est.data.connectionId).toMatch(/^conn_/);
    await client.close();
    // Without a session: no token.
    expect((await req('/console/token', { method: 'POST' })).status).toBe(401);
  });

  it('CSWSH: a WebSocket upgrade from a foreign Origin carrying the session cookie is not authorized by it', async () => {
    const cookie = await signIn();
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { origin: 'http://evil.example', cookie, 'x-signalbox-console': '1' } });
    const err = await client.nextType('error');
    expect(err.data.code).toBe(ErrorCode.AUTH_FAILED);
    expect((await client.closed).code).toBe(CloseCode.AUTH_FAILED);
    // Same-origin with the cookie: still no (only a token authenticates a WebSocket).
    const same = new TestClient(`${gw.ws}/ws`, { headers: { origin, cookie } });
    expect((await same.closed).code).toBe(CloseCode.AUTH_FAILED);
  });

  it('a one-time code signs in exactly once', async () => {
    const code = issueConsoleCode(gw.config);
    const first = await req('/console/session', { method: 'POST', body: { code } });
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ name: 'dev' });
    const again = await req('/console/session', { method: 'POST', body: { code } });
    expect(again.status).toBe(401);
    expect((await req('/console/session', { method: 'POST', body: { code: 'made-up-code' } })).status).toBe(401);
  });

  it('an admin token (`"admin": true`) signs in; a token without the claim does not', async () => {
    const key = new TextEncoder().encode(TEST_SECRET);
    const admin = await new SignJWT({ admin: true }).setProtectedHeader({ alg: 'HS256' }).setSubject('ops').setExpirationTime('10m').sign(key);
    const res = await req('/console/session', { method: 'POST', body: { token: admin } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'token:ops' });
    const plain = await gw.token({ sub: 'usr_1' });
    expect((await req('/console/session', { method: 'POST', body: { token: plain } })).status).toBe(403);
    expect((await req('/console/session', { method: 'POST', body: { token: 'x.y.z' } })).status).toBe(401);
  });

  it('a session ends when its key is no longer configured (another node with the same secret, a rotated key)', async () => {
    const cookie = await signIn();
    const sameKey = await startGateway();
    const rotated = await startGateway({ apiKey: 'rotated-key-0123456789abcdef' });
    try {
      const at = (g: TestGateway, path: string) => fetch(`${g.http}${path}`, { headers: { cookie, 'x-signalbox-console': '1' } });
      expect((await at(sameKey, '/v1/connections')).status).toBe(200);
      expect((await at(rotated, '/v1/connections')).status).toBe(401);
    } finally {
      await sameKey.close();
      await rotated.close();
    }
  });
});

describe('console sign-in attempts', () => {
  it('after 10 failed sign-ins from one address in a minute, even the right key is refused 429 for the rest of it', async () => {
    const gw = await startGateway();
    try {
      const attempt = (key: string) => fetch(`${gw.http}/console/session`, {
        method: 'POST', headers: { 'x-signalbox-console': '1', origin: gw.http, 'content-type': 'application/json' }, body: JSON.stringify({ key }),
      });
      // Successes do not count.
      for (let i = 0; i < 3; i++) expect((await attempt(TEST_API_KEY)).status).toBe(200);
      for (let i = 0; i < 10; i++) expect((await attempt(`wrong-key-${i}-0123456789`)).status).toBe(401);
      const refused = await attempt(TEST_API_KEY);
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.RATE_LIMITED);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await gw.close();
    }
  });
});

describe('signalbox serve in dev mode', () => {
  it('prints a console link whose one-time code signs in once', { timeout: 90_000 }, async () => {
    const proc = runCli(['serve'], { SIGNALBOX_PORT: '0', SIGNALBOX_LOG_LEVEL: 'warn' });
    try {
      const [, url] = (await proc.waitForStdout(/signed in once by this link[^\n]*:\n\s+(http:\/\/\S+)\n/)) as unknown as [string, string];
      const link = new URL(url);
      expect(link.pathname).toBe('/console');
      const code = /^#code=([A-Za-z0-9_-]+)$/.exec(link.hash)?.[1];
      expect(code).toBeDefined();
      const signIn = () => fetch(`${link.origin}/console/session`, {
        method: 'POST', headers: { 'x-signalbox-console': '1', origin: link.origin, 'content-type': 'application/json' }, body: JSON.stringify({ code }),
      });
      const first = await signIn();
      expect(first.status).toBe(200);
      expect(first.headers.get('set-cookie')).toMatch(/^sb_console=/);
      expect((await signIn()).status).toBe(401);
    } finally {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  });
});

/**
 * With public-key auth the gateway holds no key that could sign an application token, so the
 * console's WebSocket token is its own (auth/console-keys.ts): HS256 with the console key id,
 * checked against the console token key only.
 */
describe('console with public-key (ES256) auth', () => {
  const signInAndMint = async (gw: TestGateway): Promise<{ cookie: string; token: string }> => {
    const headers = { 'x-signalbox-console': '1', origin: gw.http, 'content-type': 'application/json' };
    const signed = await fetch(`${gw.http}/console/session`, { method: 'POST', headers, body: JSON.stringify({ key: TEST_API_KEY }) });
    expect(signed.status).toBe(200);
    const cookie = (signed.headers.get('set-cookie') ?? '').split(';')[0]!;
    const minted = await fetch(`${gw.http}/console/token`, { method: 'POST', headers: { 'x-signalbox-console': '1', origin: gw.http, cookie } });
    expect(minted.status).toBe(200);
    return { cookie, token: ((await minted.json()) as { token: string }).token };
  };
  const connect = async (gw: TestGateway, token: string) => {
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { protocols: ['signalbox.json', `bearer.${token}`] });
    const first = await client.next((m) => m.type === 'connection.established' || m.type === 'error');
    return { client, first };
  };

  let appKey: CryptoKey;
  let publicPem: string;
  let gw: TestGateway;
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    appKey = pair.privateKey as CryptoKey;
    publicPem = await exportSPKI(pair.publicKey);
    gw = await startGateway({ jwtSecret: undefined, jwtPublicKey: publicPem, jwtAlgorithms: ['ES256'] });
  });
  afterAll(() => gw.close());

  it("mints a console token that connects and reads private channels, while the application's ES256 tokens still work", async () => {
    const { token } = await signInAndMint(gw);
    const { client, first } = await connect(gw, token);
    expect(first.type).toBe('connection.established');
    const sub = await client.request('subscribe', { channels: ['user:someone_else'] });
    expect(sub.type).toBe('subscription.confirmed');
    await client.close();
    const app = await new SignJWT({ channels: ['project:*'] }).setProtectedHeader({ alg: 'ES256' }).setSubject('usr_1').setExpirationTime('5m').sign(appKey);
    const user = await connect(gw, app);
    expect(user.first.type).toBe('connection.established');
    await user.client.close();
  });

  it("refuses a token with the console's key id that the console key did not sign (even one signed by the application's key)", async () => {
    const bySomeSecret = await new SignJWT({ channels: ['*'] })
      .setProtectedHeader({ alg: 'HS256', kid: CONSOLE_TOKEN_KID }).setSubject('console:x').setIssuer(CONSOLE_TOKEN_ISSUER).setAudience(CONSOLE_TOKEN_ISSUER)
      .setExpirationTime('5m').sign(new TextEncoder().encode('a-guessed-secret-0123456789abcdef'));
    const byAppKey = await new SignJWT({ channels: ['*'] })
      .setProtectedHeader({ alg: 'ES256', kid: CONSOLE_TOKEN_KID }).setSubject('console:x').setIssuer(CONSOLE_TOKEN_ISSUER).setAudience(CONSOLE_TOKEN_ISSUER)
      .setExpirationTime('5m').sign(appKey);
    for (const forged of [bySomeSecret, byAppKey]) {
      const { client, first } = await connect(gw, forged);
      expect(first.type).toBe('error');
      expect(first.data.code).toBe(ErrorCode.AUTH_FAILED);
      expect((await client.closed).code).toBe(CloseCode.AUTH_FAILED);
    }
  });

  it('nodes sharing SIGNALBOX_CONSOLE_SECRET accept each other\'s console sessions and tokens; nodes without it do not', async () => {
    const shared = { jwtSecret: undefined, jwtPublicKey: publicPem, jwtAlgorithms: ['ES256'], consoleSecret: 'console-secret-0123456789abcdef' };
    const a = await startGateway(shared);
    const b = await startGateway(shared);
    try {
      const { cookie, token } = await signInAndMint(a);
      const onB = await connect(b, token);
      expect(onB.first.type).toBe('connection.established');
      await onB.client.close();
      const who = await fetch(`${b.http}/console/session`, { headers: { cookie, 'x-signalbox-console': '1', origin: b.http } });
      expect(((await who.json()) as { signedIn: boolean }).signedIn).toBe(true);
      // `gw` has no console secret: its keys are its own random ones.
      const elsewhere = await connect(gw, token);
      expect(elsewhere.first.type).toBe('error');
      await elsewhere.client.closed;
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a gateway that does not serve the console does not accept console tokens', async () => {
    const shared = { jwtSecret: undefined, jwtPublicKey: publicPem, jwtAlgorithms: ['ES256'], consoleSecret: 'console-secret-0123456789abcdef' };
    const withConsole = await startGateway(shared);
    const without = await startGateway({ ...shared, console: false });
    try {
      const { token } = await signInAndMint(withConsole);
      const { client, first } = await connect(without, token);
      expect(first.type).toBe('error');
      expect(first.data.code).toBe(ErrorCode.AUTH_FAILED);
      await client.closed;
    } finally {
      await Promise.all([withConsole.close(), without.close()]);
    }
  });
});
