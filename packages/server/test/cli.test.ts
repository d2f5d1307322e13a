/**
 * The CLI as a real process (`node packages/server/dist/cli.js`): the dev-mode banner prints a
 * token and an API key that work; a bad setting stops the start with one line naming it; SIGTERM
 * drains (clients get 1012) and exits; `signalbox token` mints a token with exactly the asked grants.
 */
import { describe, expect, it, type TestContext, vi } from 'vitest';
import { decodeJwt } from 'jose';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { mintToken } from '../src/index.js';
import { TEST_SECRET, TestClient, connectPrp, startGateway } from './helpers/gateway.js';
import { createServer } from 'node:net';
import { freshHome, runCli, runCliToEnd, type CliProcess } from './helpers/core-process.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/** `signalbox serve` on a port the OS picks (the banner names it); killed when the test ends. */
async function serve(ctx: TestContext, env: Record<string, string>): Promise<{ proc: CliProcess; port: number }> {
  const proc = runCli(['serve'], { SIGNALBOX_PORT: '0', SIGNALBOX_LOG_LEVEL: 'warn', ...env });
  ctx.onTestFinished(async () => {
    proc.kill('SIGKILL');
    await proc.exited;
  });
  const m = await proc.waitForStdout(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(m[1]) };
}

// Each test starts its own process; they are independent, so run them side by side. Starting
// node and loading the gateway can take many seconds on a loaded machine: generous time limits.
describe.concurrent('signalbox serve', { timeout: 90_000 }, () => {
  it('dev mode: prints a token that works and an API key that publishes', async (ctx) => {
    const { proc, port } = await serve(ctx, {});
    const banner = await proc.waitForStdout(/Dev token[^\n]*:\n\s+(\S+)\n\s+API key \(generated\):\n\s+(\S+)/);
    const [, token, apiKey] = banner as unknown as [string, string, string];
    expect(proc.stdout()).toContain('DEV MODE');
    expect(decodeJwt(token)).toMatchObject({ sub: 'dev', channels: ['*'] });
    const client = new TestClient(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
    await client.nextType('connection.established');
    expect((await client.request('subscribe', { channels: ['project:proj_123456'] })).data.subscribedChannels).toEqual(['project:proj_123456']);
    const res = await fetch(`http://127.0.0.1:${port}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'project:proj_123456', type: 'prp.created', data: { id: 'prp_789012' } }),
    });
    expect(res.status).toBe(200);
    expect(await client.nextType('prp.created')).toMatchObject({ channel: 'project:proj_123456', data: { id: 'prp_789012' } });
    // The dev secret is random per run: a token signed with anything else is refused.
    const stranger = new TestClient(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${await startlessToken()}` } });
    expect((await stranger.closed).code).toBe(CloseCode.AUTH_FAILED);
    proc.kill('SIGTERM');
    expect((await client.closed).code).toBe(CloseCode.SERVICE_RESTART);
    expect((await proc.exited).code).toBe(0);
  });

  it.each<[Record<string, string>, string]>([
    [{ SIGNALBOX_PORT: 'abc' }, 'SIGNALBOX_PORT'],
    [{ SIGNALBOX_HEARTBEAT_INTERVAL: 'often' }, 'SIGNALBOX_HEARTBEAT_INTERVAL'],
    [{ SIGNALBOX_JWT_SECRET: 'short-secret' }, 'SIGNALBOX_JWT_SECRET'],
    [{ SIGNALBOX_JWT_ALGORITHMS: 'none' }, 'SIGNALBOX_JWT_ALGORITHMS'],
  ])('a bad setting %o exits non-zero with one line naming %s', async (env, name) => {
    const r = await runCliToEnd(['serve'], { SIGNALBOX_LOG_LEVEL: 'warn', ...env });
    expect(r, JSON.stringify(r)).toMatchObject({ code: 1, signal: null, stdout: '' });
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    // A secret value is never echoed.
    if (env.SIGNALBOX_JWT_SECRET) expect(r.stderr).not.toContain(env.SIGNALBOX_JWT_SECRET);
  });

  it('an unknown flag exits non-zero with one line', async () => {
    const r = await runCliToEnd(['serve', '--no-such-flag'], {});
    expect(r, JSON.stringify(r)).toMatchObject({ code: 1, signal: null });
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('no-such-flag');
  });

  it('with a secret (no dev banner, API 401 without SIGNALBOX_API_KEY), SIGTERM: a connected client gets 1012 and the process exits after draining', async (ctx) => {
    const { proc, port } = await serve(ctx, { SIGNALBOX_JWT_SECRET: TEST_SECRET, SIGNALBOX_DRAIN_TIMEOUT: '1s' });
    expect(proc.stdout()).not.toContain('DEV MODE');
    const res = await fetch(`http://127.0.0.1:${port}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
    const token = await mintToken(TEST_SECRET, { sub: 'usr_1', channels: ['*'], ttlSeconds: 600 });
    const client = new TestClient(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
    await client.nextType('connection.established');
    await client.request('subscribe', { channels: ['project:proj_123456'] });
    proc.kill('SIGTERM');
    expect((await client.closed).code).toBe(CloseCode.SERVICE_RESTART);
    // Exit code 0 is the drain path; the fallback hard exit (drain timeout + 3 s) would exit 1.
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM with a client that never closes: the process still exits via the drain timeout', async (ctx) => {
    const { proc, port } = await serve(ctx, { SIGNALBOX_JWT_SECRET: TEST_SECRET, SIGNALBOX_DRAIN_TIMEOUT: '1s' });
    const token = await mintToken(TEST_SECRET, { sub: 'usr_1', channels: ['*'], ttlSeconds: 600 });
    const stuck = new TestClient(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
    await stuck.nextType('connection.established');
    stuck.ws.pause();
    proc.kill('SIGTERM');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    stuck.ws.resume();
    expect((await stuck.closed).code).toBe(CloseCode.SERVICE_RESTART);
  });
});

/** A well-formed token signed with a secret no gateway here uses. */
async function startlessToken(): Promise<string> {
  return mintToken('some-other-secret-0123456789', { sub: 'dev', channels: ['*'], ttlSeconds: 600 });
}

describe.concurrent('signalbox token', { timeout: 90_000 }, () => {
  it('mints a token the gateway accepts with exactly the asked grants', async () => {
    const r = await runCliToEnd(['token', '--sub', 'usr_1', '--channels', 'project:*,agent:agent_001', '--publish', 'agent:agent_001,session:s1', '--ttl', '1h'], { SIGNALBOX_JWT_SECRET: TEST_SECRET });
    expect(r, JSON.stringify(r)).toMatchObject({ code: 0, signal: null });
    const token = r.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const payload = decodeJwt(token);
    expect(payload.sub).toBe('usr_1');
    expect(payload.channels).toEqual(['project:*', 'agent:agent_001']);
    expect(payload.publish).toEqual(['agent:agent_001', 'session:s1']);
    expect(payload).not.toHaveProperty('handle');
    expect(payload).not.toHaveProperty('call');
    expect(payload.exp! - payload.iat!).toBe(3600);
    const gw = await startGateway();
    try {
      const client = await connectPrp(gw, { token });
      const from = client.messages.length;
      client.send({ id: 'g1', action: 'subscribe', payload: { channels: ['project:proj_123456', 'agent:agent_001', 'agent:agent_002', 'prp:prp_789012', 'user:usr_1', 'session:s1'] } });
      const confirmed = await client.next((m) => m.type === 'subscription.confirmed' && m.replyTo === 'g1', 5000, from);
      expect(confirmed.data.subscribedChannels).toEqual(['project:proj_123456', 'agent:agent_001', 'user:usr_1']);
      const refused = client.messages.slice(from).filter((m) => m.type === 'error').map((m) => [m.data.details.channel, m.data.code]);
      expect(refused).toEqual([
        ['agent:agent_002', ErrorCode.PERMISSION_DENIED],
        ['prp:prp_789012', ErrorCode.PERMISSION_DENIED],
        ['session:s1', ErrorCode.PERMISSION_DENIED],
      ]);
      // Publishing: where --publish grants it, whether or not the token may read there; never a producer's type without --handle.
      expect((await client.request('publish', { channel: 'agent:agent_001', type: 'chat.message', data: { text: 'hi' } })).type).toBe('ack');
      expect((await client.request('publish', { channel: 'session:s1', type: 'note', data: {} })).type).toBe('ack');
      expect((await client.request('publish', { channel: 'agent:agent_001', type: 'agent.progress', data: { progress: 45 } })).data.code).toBe(ErrorCode.PERMISSION_DENIED);
      expect((await client.request('publish', { channel: 'agent:agent_002', type: 'chat.message', data: {} })).data.code).toBe(ErrorCode.PERMISSION_DENIED);
      await client.close();
    } finally {
      await gw.close();
    }
  });

  it('--admin mints a token that signs in to the console; without it the token does not', async () => {
    const [admin, plain] = await Promise.all([
      runCliToEnd(['token', '--sub', 'ops_1', '--admin', '--ttl', '10m'], { SIGNALBOX_JWT_SECRET: TEST_SECRET }),
      runCliToEnd(['token', '--sub', 'ops_1', '--ttl', '10m'], { SIGNALBOX_JWT_SECRET: TEST_SECRET }),
    ]);
    expect(admin, JSON.stringify(admin)).toMatchObject({ code: 0, signal: null });
    expect(decodeJwt(admin.stdout.trim()).admin).toBe(true);
    expect(decodeJwt(plain.stdout.trim())).not.toHaveProperty('admin');
    const gw = await startGateway();
    try {
      const signIn = (token: string) => fetch(`${gw.http}/console/session`, {
        method: 'POST', headers: { 'x-signalbox-console': '1', origin: gw.http, 'content-type': 'application/json' }, body: JSON.stringify({ token }),
      });
      expect((await signIn(admin.stdout.trim())).status).toBe(200);
      expect((await signIn(plain.stdout.trim())).status).toBe(403);
    } finally {
      await gw.close();
    }
  });

  it('without a secret exits non-zero with one line naming SIGNALBOX_JWT_SECRET', async () => {
    const r = await runCliToEnd(['token', '--sub', 'usr_1'], {});
    expect(r, JSON.stringify(r)).toMatchObject({ code: 1, signal: null, stdout: '' });
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('SIGNALBOX_JWT_SECRET');
  });
});

describe.concurrent('dev mode from a second terminal', { timeout: 90_000 }, () => {
  it('`signalbox token` and `signalbox publish` use the dev credentials of `signalbox serve` (same HOME)', async (ctx) => {
    const HOME = freshHome();
    const { proc, port } = await serve(ctx, { HOME });
    expect(proc.stdout()).toContain('work from another terminal');
    const minted = await runCliToEnd(['token', '--sub', 'usr_2', '--channels', 'project:*'], { HOME });
    expect(minted, JSON.stringify(minted)).toMatchObject({ code: 0 });
    const client = new TestClient(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${minted.stdout.trim()}` } });
    await client.nextType('connection.established');
    await client.request('subscribe', { channels: ['project:p2'] });
    const pub = await runCliToEnd(['publish', '--channel', 'project:p2', '--type', 'prp.created', '--data', '{"id":"prp_2"}', '--url', `http://127.0.0.1:${port}`], { HOME });
    expect(pub, JSON.stringify(pub)).toMatchObject({ code: 0 });
    expect(await client.nextType('prp.created')).toMatchObject({ channel: 'project:p2', data: { id: 'prp_2' } });
    await client.close();
    // Another HOME has no dev credentials, so no token can be minted there.
    const stranger = await runCliToEnd(['token', '--sub', 'usr_2'], {});
    expect(stranger.code).toBe(1);
  });
});

describe.concurrent('CLI usage and startup failures', { timeout: 90_000 }, () => {
  it.each(['serve', 'token', 'publish', 'listen'])('`signalbox %s --help` prints its usage and exits 0', async (command) => {
    const r = await runCliToEnd([command, '--help'], {});
    expect(r, JSON.stringify(r)).toMatchObject({ code: 0, signal: null, stderr: '' });
    expect(r.stdout).toContain(`Usage: signalbox ${command}`);
  });

  it('a port in use stops the start with one line naming the port and the setting, no stack trace', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runCliToEnd(['serve'], { SIGNALBOX_PORT: String(port), SIGNALBOX_LOG_LEVEL: 'warn' });
      expect(r, JSON.stringify(r)).toMatchObject({ code: 1, signal: null });
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('SIGNALBOX_PORT');
      expect(lines[0]).toContain(`127.0.0.1:${port} is already in use`);
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });
});
