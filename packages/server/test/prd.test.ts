/**
 * PRD-035 contract on `/ws`: a browser-style client (`/ws?token=`, no headers) using exactly the
 * document's message format and client code, talking to PRP clients on `/v1/ws/prps` and to the
 * HTTP API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ErrorCode } from '@signalbox/protocol';
import { connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import { awaitOffset, prdRequest, publications, publishWs, quietPeriod, subscribePrp, uniqueId } from './helpers/delivery-kit.js';

/** PRD-035 section 5: every server message has `type`, `data`, `timestamp` (and `id`). */
function expectPrdShape(m: Msg): void {
  expect(['subscribe', 'unsubscribe', 'message', 'ack', 'ping', 'pong', 'error']).toContain(m.type);
  expect('data' in m).toBe(true);
  expect(typeof m.id).toBe('string');
  expect(Number.isNaN(Date.parse(m.timestamp))).toBe(false);
}

describe('PRD-035 on /ws', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("the document's client code: subscribe to agent:123, send the example message, get an ack; a PRP subscriber receives it", async () => {
    const prpSub = await connectPrp(gw);
    await subscribePrp(prpSub, 'agent:123');

    // Section 9, as a browser would run it: token in the query string, JSON text frames.
    const received: Msg[] = [];
    const ws = new WebSocket(`${gw.ws}/ws?token=${encodeURIComponent(await gw.token())}`);
    const subscribed = new Promise<Msg>((resolve, reject) => {
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: 'subscribe', channel: 'agent:123' }));
      };
      ws.onmessage = (event) => {
        const msg = JSON.parse(String(event.data)) as Msg;
        received.push(msg);
        if (msg.type === 'ack' && msg.data?.action === 'subscribe') resolve(msg);
      };
      ws.onerror = () => reject(new Error('socket error'));
    });
    const subAck = await subscribed;
    expect(subAck).toMatchObject({ type: 'ack', channel: 'agent:123', data: { action: 'subscribe', subscribedChannels: ['agent:123'] } });
    expect(received[0]).toMatchObject({ type: 'ack', data: { action: 'connect' } });
    received.forEach(expectPrdShape);

    // Section 8: the example message.
    const example = { type: 'message', channel: 'agent:123', data: { action: 'respond', content: 'Hello' }, id: 'msg_456' };
    const acked = new Promise<Msg>((resolve) => {
      ws.onmessage = (event) => {
        const msg = JSON.parse(String(event.data)) as Msg;
        received.push(msg);
        if (msg.type === 'ack' && msg.replyTo === 'msg_456') resolve(msg);
      };
    });
    ws.send(JSON.stringify(example));
    const ack = await acked;
    expectPrdShape(ack);
    expect(ack).toMatchObject({
      type: 'ack', channel: 'agent:123', replyTo: 'msg_456',
      data: { action: 'message', id: 'msg_456', channel: 'agent:123', offset: 1, epoch: expect.any(String), duplicate: false },
    });

    const ev = await awaitOffset(prpSub, 'agent:123', 1);
    expect(ev).toMatchObject({ id: 'msg_456', type: 'message', channel: 'agent:123', offset: 1, epoch: ack.data.epoch, data: example.data });
    // The PRD sender, being subscribed, receives it too, in the PRD-035 shape.
    const own = await new Promise<Msg>((resolve) => {
      const found = received.find((m) => m.type === 'message');
      if (found) return resolve(found);
      ws.onmessage = (event) => {
        const msg = JSON.parse(String(event.data)) as Msg;
        if (msg.type === 'message') resolve(msg);
      };
    });
    expectPrdShape(own);
    expect(own).toMatchObject({ type: 'message', channel: 'agent:123', data: example.data, id: 'msg_456', event: 'message', offset: 1 });
    ws.close();
    await prpSub.close();
  });

  it('a PRP publish (WS and HTTP) reaches a PRD subscriber as {type:"message", channel, data, id, timestamp, event}', async () => {
    const channel = uniqueChannel('agent');
    const prd = await connectPrd(gw);
    const ack = await prdRequest(prd, { type: 'subscribe', channel });
    expect(ack).toMatchObject({ type: 'ack', channel, data: { action: 'subscribe', position: { offset: 0 } } });
    const prp = await connectPrp(gw);
    const wsAck = await publishWs(prp, channel, { agentId: 'agent_001', status: 'running' }, { type: 'agent.progress' });
    const http = await gw.publish({ channel, type: 'agent.assigned', data: { agentId: 'agent_001' } });
    await awaitOffset(prd, channel, 2);
    const got = publications(prd, channel);
    got.forEach(expectPrdShape);
    expect(got).toEqual([
      {
        type: 'message', channel, data: { agentId: 'agent_001', status: 'running' }, id: wsAck.data.id, timestamp: expect.any(String), event: 'agent.progress', offset: 1, epoch: wsAck.data.epoch,
        publisher: { via: 'ws', sub: 'usr_1', client: prp.messages[0]!.data.connectionId },
      },
      { type: 'message', channel, data: { agentId: 'agent_001' }, id: http.body.id, timestamp: expect.any(String), event: 'agent.assigned', offset: 2, epoch: wsAck.data.epoch, publisher: { via: 'http', key: 'default' } },
    ]);
    await Promise.all([prd.close(), prp.close()]);
  });

  it('ping -> pong naming the ping; a server ping can be answered with pong', async () => {
    const prd = await connectPrd(gw);
    const pong = await prdRequest(prd, { type: 'ping' });
    expectPrdShape(pong);
    expect(pong).toMatchObject({ type: 'pong', data: {} });
    const id = uniqueId('ping');
    const pong2 = await prdRequest(prd, { type: 'ping', id });
    expect(pong2.replyTo).toBe(id);
    // A `pong` from the client (answering a heartbeat `ping`) is accepted silently.
    const from = prd.messages.length;
    prd.send({ type: 'pong' });
    const after = await prdRequest(prd, { type: 'ping' });
    expect(prd.messages.slice(from).filter((m) => m.type === 'error')).toEqual([]);
    expect(after.type).toBe('pong');
    await prd.close();
  });

  it('errors are {type:"error", data:{code, message, details}} naming the request', async () => {
    const prd = await connectPrd(gw);
    const cases: { msg: Msg; code: string; details?: Msg }[] = [
      { msg: { type: 'teleport', channel: 'agent:1' }, code: ErrorCode.INVALID_ACTION, details: { action: 'teleport' } },
      { msg: { type: 'subscribe', channel: 'nope:1' }, code: ErrorCode.INVALID_CHANNEL, details: { channel: 'nope:1', action: 'subscribe' } },
      { msg: { type: 'subscribe', channel: 'agent:bad channel' }, code: ErrorCode.INVALID_CHANNEL },
      { msg: { type: 'message', channel: 'project:p1', data: { x: 1 } }, code: ErrorCode.PERMISSION_DENIED, details: { channel: 'project:p1', action: 'message' } },
      { msg: { type: 'message', channel: 'agent:1' }, code: ErrorCode.INVALID_MESSAGE, details: { action: 'message' } },
      { msg: { type: 'message', channel: 'agent:1', event: 'error', data: {} }, code: ErrorCode.INVALID_MESSAGE },
      { msg: { type: 'history', channel: 'agent:1', data: { since: { epoch: 'nope', offset: 1 } } }, code: ErrorCode.UNRECOVERABLE_POSITION, details: { reason: 'epoch_changed' } },
    ];
    for (const c of cases) {
      const reply = await prdRequest(prd, c.msg);
      expectPrdShape(reply);
      expect(reply.type).toBe('error');
      expect(reply.data).toEqual({ code: c.code, message: expect.any(String), details: expect.objectContaining({ requestId: reply.replyTo, ...(c.details ?? {}) }) });
      expect(reply.data.message.length).toBeGreaterThan(0);
    }
    // A frame that is not JSON: an error too (no request to name).
    const from = prd.messages.length;
    prd.sendRaw('{not json');
    const err = await prd.next((m) => m.type === 'error', 5000, from);
    expect(err.data).toMatchObject({ code: ErrorCode.INVALID_MESSAGE, message: expect.any(String), details: {} });
    // The connection is still usable.
    expect((await prdRequest(prd, { type: 'ping' })).type).toBe('pong');
    await prd.close();
  });

  it('unsubscribe stops delivery; the ack names the channel', async () => {
    const channel = uniqueChannel('agent');
    const prd = await connectPrd(gw);
    await prdRequest(prd, { type: 'subscribe', channel });
    await gw.publish({ channel, type: 'session.updated', data: { n: 1 } });
    await awaitOffset(prd, channel, 1);
    const ack = await prdRequest(prd, { type: 'unsubscribe', channel });
    expect(ack).toMatchObject({ type: 'ack', channel, data: { action: 'unsubscribe', unsubscribedChannels: [channel] } });
    await gw.publish({ channel, type: 'session.updated', data: { n: 2 } });
    // A marker on another subscribed channel proves delivery happened past that point.
    const other = uniqueChannel('agent');
    await prdRequest(prd, { type: 'subscribe', channel: other });
    await gw.publish({ channel: other, type: 'session.updated', data: {} });
    await awaitOffset(prd, other, 1);
    expect(publications(prd, channel).map((m) => m.offset)).toEqual([1]);
    await prd.close();
  });

  it('subscribe with data.since recovers in the PRD-035 dialect; history request too', async () => {
    const channel = uniqueChannel('agent');
    const publisher = await connectPrd(gw);
    const acks: Msg[] = [];
    for (let i = 0; i < 5; i++) acks.push(await prdRequest(publisher, { type: 'message', channel, data: { i } }));
    const epoch = acks[0]!.data.epoch as string;
    const prd = await connectPrd(gw);
    const ack = await prdRequest(prd, { type: 'subscribe', channel, data: { since: { epoch, offset: 2 } } });
    expect(ack.data).toMatchObject({ action: 'subscribe', recovered: true, missed: 3, position: { epoch, offset: 5 } });
    await awaitOffset(prd, channel, 5);
    await quietPeriod(50); // nothing beyond offset 5
    expect(publications(prd, channel).map((m) => m.data.i)).toEqual([2, 3, 4]);
    const hist = await prdRequest(prd, { type: 'history', channel, data: { since: { epoch, offset: 1 }, limit: 2 } });
    expect(hist).toMatchObject({ type: 'ack', channel, data: { action: 'history', position: { epoch, offset: 5 } } });
    expect(hist.data.publications.map((p: Msg) => [p.type, p.offset, p.data.i])).toEqual([['message', 2, 1], ['message', 3, 2]]);
    await Promise.all([publisher.close(), prd.close()]);
  });
});
