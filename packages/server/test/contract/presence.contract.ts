import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PresenceStore } from '../../src/presence/types.js';
import { eventually } from '../helpers/wait.js';

/** The PresenceStore contract, run against every implementation. */
export function presenceContract(factory: () => Promise<{ store: PresenceStore; cleanup(): Promise<void> }>): void {
  let store: PresenceStore;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await factory());
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });
  const channel = () => `room:${randomBytes(6).toString('hex')}`;

  it('adds, lists, refreshes and removes members', async () => {
    const ch = channel();
    expect(await store.list(ch)).toEqual([]);
    await store.add(ch, { clientId: 'c1', userId: 'alice', info: { name: 'Alice' } }, 60_000);
    await store.add(ch, { clientId: 'c2', userId: 'bob' }, 60_000);
    await store.add(ch, { clientId: 'c1', userId: 'alice', info: { name: 'Alice' } }, 60_000);
    const members = await store.list(ch);
    expect(members.map((m) => m.clientId).sort()).toEqual(['c1', 'c2']);
    expect(members.find((m) => m.clientId === 'c1')).toEqual({ clientId: 'c1', userId: 'alice', info: { name: 'Alice' } });
    await store.remove(ch, 'c1');
    expect((await store.list(ch)).map((m) => m.clientId)).toEqual(['c2']);
    await store.remove(ch, 'c2');
    await store.remove(ch, 'not-there');
    expect(await store.list(ch)).toEqual([]);
  });

  it('drops members not refreshed within their TTL', async () => {
    const ch = channel();
    await store.add(ch, { clientId: 'short', userId: 'u1' }, 50);
    await store.add(ch, { clientId: 'long', userId: 'u2' }, 60_000);
    // Polling the store: a TTL running out is time passing, not an event.
    let seen: string[] = [];
    const ids = await eventually(async () => {
      seen = (await store.list(ch)).map((m) => m.clientId);
      return seen.length === 1 ? seen : undefined;
    }, { label: 'the short-lived member to expire', timeoutMs: 5000, detail: () => `members: ${JSON.stringify(seen)}` });
    expect(ids).toEqual(['long']);
  });

  it('keeps channels apart', async () => {
    const a = channel();
    const b = channel();
    await store.add(a, { clientId: 'x', userId: 'u' }, 60_000);
    expect(await store.list(b)).toEqual([]);
  });
}
