import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPrp, startGateway, TEST_API_KEY, type TestGateway } from './helpers/gateway.js';

describe('presence channels', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // The default table: `room:` is its presence namespace.
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('lists members and announces joins and leaves on the channel stream, in order', async () => {
    const channel = 'room:r1';
    const alice = await connectPrp(gw, { token: await gw.token({ sub: 'alice', channels: ['room:*'], info: { name: 'Alice' } }) });
    const bob = await connectPrp(gw, { token: await gw.token({ sub: 'bob', channels: ['room:r1'] }) });
    await alice.request('subscribe', { channels: [channel] });
    const aliceJoined = await alice.next((m) => m.type === 'presence.joined' && m.data.member.userId === 'alice');
    expect(aliceJoined.data.member).toMatchObject({ userId: 'alice', info: { name: 'Alice' } });
    await bob.request('subscribe', { channels: [channel] });
    const bobJoined = await alice.next((m) => m.type === 'presence.joined' && m.data.member.userId === 'bob');
    expect(bobJoined.offset).toBeGreaterThan(aliceJoined.offset);

    const list = await bob.request('presence', { channel });
    expect(list.type).toBe('presence');
    expect(list.data.members.map((m: { userId: string }) => m.userId).sort()).toEqual(['alice', 'bob']);

    const res = await fetch(`${gw.http}/v1/channels/${channel}/presence`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
    expect(((await res.json()) as { members: unknown[] }).members).toHaveLength(2);

    await bob.close();
    const left = await alice.next((m) => m.type === 'presence.left' && m.data.member.userId === 'bob');
    expect(left.offset).toBeGreaterThan(bobJoined.offset);
    const after = await alice.request('presence', { channel });
    expect(after.data.members.map((m: { userId: string }) => m.userId)).toEqual(['alice']);
    await alice.close();
  });

  it('refuses presence on a namespace without it', async () => {
    const c = await connectPrp(gw);
    const reply = await c.request('presence', { channel: 'project:p1' });
    expect(reply).toMatchObject({ type: 'error', data: { code: 'PERMISSION_DENIED' } });
    await c.close();
  });
});
