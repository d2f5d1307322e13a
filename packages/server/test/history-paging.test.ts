/**
 * History replies are bounded in bytes (issue 13, defect 2): a page larger than
 * SIGNALBOX_MAX_REPLY_SIZE is cut after the last publication that fits and carries `next`;
 * following `next` reads every publication exactly once, in order, over WebSocket (both dialects),
 * HTTP and the SDK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignalboxClient } from '../../client/src/node.js';
import { connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';

const COUNT = 20;

describe('history pages bounded in bytes', () => {
  let gw: TestGateway;
  let channel: string;
  beforeAll(async () => {
    gw = await startGateway({ maxReplyBytes: 4096 });
    channel = uniqueChannel('project');
    for (let i = 1; i <= COUNT; i++) expect((await gw.publish({ channel, type: 'big', data: { i, pad: 'x'.repeat(1000) } })).status).toBe(200);
  });
  afterAll(() => gw.close());

  async function follow(read: (since?: { epoch: string; offset: number }) => Promise<{ publications: Msg[]; next?: { epoch: string; offset: number } }>): Promise<{ offsets: number[]; pages: number }> {
    const offsets: number[] = [];
    let since: { epoch: string; offset: number } | undefined;
    let pages = 0;
    for (;;) {
      const page = await read(since);
      pages++;
      expect(page.publications.length).toBeGreaterThan(0);
      expect(page.publications.length).toBeLessThanOrEqual(4);
      offsets.push(...page.publications.map((p) => p.offset as number));
      if (!page.next) break;
      expect(page.next.offset).toBe(page.publications.at(-1)!.offset);
      since = page.next;
      if (pages > COUNT) throw new Error('no end');
    }
    return { offsets, pages };
  }

  const all = Array.from({ length: COUNT }, (_, i) => i + 1);

  it('PRP over WebSocket', async () => {
    const c = await connectPrp(gw);
    const r = await follow(async (since) => (await c.request('history', { channel, limit: COUNT, ...(since ? { since } : {}) })).data);
    expect(r.offsets).toEqual(all);
    expect(r.pages).toBeGreaterThan(4);
    await c.close();
  });

  it('PRD-035 over WebSocket', async () => {
    const c = await connectPrd(gw);
    let n = 0;
    const r = await follow(async (since) => {
      const id = `h${++n}`;
      c.send({ type: 'history', id, channel, data: { limit: COUNT, ...(since ? { since } : {}) } });
      return (await c.next((m) => m.replyTo === id)).data;
    });
    expect(r.offsets).toEqual(all);
    await c.close();
  });

  it('HTTP', async () => {
    const r = await follow(async (since) => {
      const q = since ? `&since_epoch=${since.epoch}&since_offset=${since.offset}` : '';
      const res = await fetch(`${gw.http}/v1/channels/${channel}/history?limit=${COUNT}${q}`, { headers: { authorization: `Bearer ${gw.config.apiKey}` } });
      expect(res.status).toBe(200);
      return (await res.json()) as { publications: Msg[]; next?: { epoch: string; offset: number } };
    });
    expect(r.offsets).toEqual(all);
  });

  it('the SDK returns `next`', async () => {
    const client = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: await gw.token() });
    await client.connect();
    const r = await follow(async (since) => {
      const page = await client.history(channel, { limit: COUNT, ...(since ? { since } : {}) });
      return { publications: page.publications as unknown as Msg[], ...(page.next ? { next: page.next } : {}) };
    });
    expect(r.offsets).toEqual(all);
    client.disconnect();
  });

  it('a page that fits has no `next`', async () => {
    const c = await connectPrp(gw);
    const r = await c.request('history', { channel, limit: 2 });
    expect(r.data.publications).toHaveLength(2);
    expect(r.data.next).toBeUndefined();
    await c.close();
  });
});
