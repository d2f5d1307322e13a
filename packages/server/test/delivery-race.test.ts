/**
 * A subscribe racing a ~1,000 msg/s publisher, 200 times: at the seam between the confirmation
 * (or the recovered publications) and the live stream there is never a gap or a duplicate.
 *
 * Two channels are published to continuously by a WebSocket publisher: `hot` has a long-lived
 * observer (its stream stays open in the hub), `cold` has none (each round's subscriber opens the
 * stream afresh). Rounds cycle through {hot, cold} x {plain subscribe, subscribe with `since`}.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { SlowHistoryBroker, awaitOffset, isPublication, outcomeOf, positionOf, publications, streamViolation, subscribePrp, uniqueId, type Position } from './helpers/delivery-kit.js';

const ROUNDS = 200;
/** Publications each round's subscriber must see live before it unsubscribes (~25 ms at 1,000/s). */
const PER_ROUND = 25;
/** Publisher rate per channel; each timer tick tops the count up to RATE x elapsed time. */
const RATE = 1000;
const TICK_MS = 4;
const MAX_IN_FLIGHT = 100;
const CONNECTION_ROUNDS = 20;

const LIMITS = { publishRate: 100_000, publishBurst: 100_000, messageRate: 100_000, messageBurst: 100_000, subscribeRate: 100_000, subscribeBurst: 100_000 };

// The memory broker answers history within the same tick; the slow-history variant makes live
// publications arrive while each subscriber is still catching up (as with Redis).
describe.each([
  { engine: 'memory broker', broker: () => undefined },
  { engine: 'broker with slow history reads', broker: () => new SlowHistoryBroker() },
])('subscribe racing a 1,000 msg/s publisher ($engine)', ({ broker }) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway(LIMITS, { broker: broker() });
  });
  afterAll(() => gw?.close());

  it(`${ROUNDS} rounds, with and without since: first offset is position+1 (or since+1), then consecutive, none twice`, async () => {
    const hot = uniqueChannel('agent');
    const cold = uniqueChannel('agent');
    const observer = await connectPrp(gw);
    await subscribePrp(observer, hot);

    const publisher = await connectPrp(gw);
    const sent = { [hot]: 0, [cold]: 0 };
    let replies = 0;
    publisher.ws.on('message', () => replies++);
    const t0 = Date.now();
    // Pacing only (not synchronisation): a steady publish rate while rounds subscribe, with at most
    // MAX_IN_FLIGHT unanswered publishes (the gateway bounds a connection's pending requests).
    const timer = setInterval(() => {
      const due = Math.floor(((Date.now() - t0) * RATE) / 1000);
      // Alternate between the channels so neither starves when the in-flight budget is the limit.
      for (let progress = true; progress; ) {
        progress = false;
        for (const channel of [hot, cold]) {
          if (sent[channel]! >= due || sent[hot]! + sent[cold]! - replies >= MAX_IN_FLIGHT) continue;
          const n = sent[channel]!;
          sent[channel] = n + 1;
          publisher.send({ id: uniqueId('race'), action: 'publish', payload: { channel, type: 'race.tick', data: { n } } });
          progress = true;
        }
      }
    }, TICK_MS);

    const failures: string[] = [];
    let subscriber: TestClient | null = null;
    try {
      await awaitOffset(observer, hot, 50);
      for (let round = 0; round < ROUNDS; round++) {
        // Subscribe/unsubscribe on one connection, and a fresh connection every CONNECTION_ROUNDS.
        if (round % CONNECTION_ROUNDS === 0) {
          await subscriber?.close();
          subscriber = await connectPrp(gw);
        }
        const channel = round % 2 === 0 ? hot : cold;
        const withSince = round % 4 >= 2;
        const failure = await raceRound(gw, subscriber!, channel, withSince);
        if (failure) failures.push(`round ${round} (${channel === hot ? 'hot' : 'cold'}, ${withSince ? 'since' : 'plain'}): ${failure}`);
      }
    } finally {
      clearInterval(timer);
      await subscriber?.close();
    }
    const rate = sent[hot]! / ((Date.now() - t0) / 1000);
    expect(failures).toEqual([]);

    // The observer saw the whole hot stream, gap-free, throughout all rounds.
    const top = (await positionOf(gw, hot)).offset;
    await awaitOffset(observer, hot, top, 30_000);
    const offsets = publications(observer, hot).map((m) => m.offset);
    expect(streamViolation(offsets, 1)).toBeNull();
    // The publisher really ran near the intended rate while the rounds ran (with slack for a
    // shared, loaded machine: the property under test is the seam, not throughput).
    expect(rate).toBeGreaterThan(0.5 * RATE);
    expect(publisher.messages.filter((m) => m.type === 'error')).toEqual([]);
    await Promise.all([observer.close(), publisher.close()]);
  }, 120_000);
});

/** One subscribe and unsubscribe: returns a description of what went wrong, or null. */
async function raceRound(gw: TestGateway, client: TestClient, channel: string, withSince: boolean): Promise<string | null> {
  let since: Position | undefined;
  if (withSince) {
    const pos = await positionOf(gw, channel);
    since = { epoch: pos.epoch, offset: Math.max(0, pos.offset - 7) };
  }
  const from = client.messages.length;
  {
    // Generous reply timeouts: on a loaded machine the in-process gateway can lag the 2,000 msg/s load.
    const confirmation = await client.request('subscribe', { channels: [since ? { channel, since } : channel] }, 30_000);
    if (confirmation.type !== 'subscription.confirmed') return `subscribe failed: ${JSON.stringify(confirmation)}`;
    const outcome: Msg = outcomeOf(confirmation, channel);
    const confIdx = client.messages.indexOf(confirmation);
    let first: number;
    if (since) {
      if (outcome.recovered !== true) return `not recovered: ${JSON.stringify(outcome)}`;
      if (outcome.missed !== outcome.position.offset - since.offset) return `missed ${outcome.missed}, expected ${outcome.position.offset - since.offset}`;
      first = since.offset + 1;
    } else {
      if (outcome.recovered !== undefined) return `unexpected recovery fields: ${JSON.stringify(outcome)}`;
      first = outcome.position.offset + 1;
    }
    // Nothing of the channel may precede the confirmation.
    if (publications(client, channel, from).some((m) => client.messages.indexOf(m) < confIdx)) return 'publication before the confirmation';
    const target = Math.max(first, outcome.position.offset + 1) + PER_ROUND;
    await client.next((m) => isPublication(m, channel) && m.offset >= target, 30_000, confIdx);
    // The unsubscribe confirmation follows every publication sent to this subscription.
    const unsub = await client.request('unsubscribe', { channels: [channel] }, 30_000);
    if (unsub.type !== 'unsubscription.confirmed') return `unsubscribe failed: ${JSON.stringify(unsub)}`;
    const end = client.messages.indexOf(unsub);
    const got = client.messages.slice(confIdx + 1, end).filter((m) => typeof m.offset === 'number' && m.channel === channel);
    if (got.some((m) => m.epoch !== outcome.position.epoch)) return 'epoch changed mid-round';
    return streamViolation(got.map((m) => m.offset as number), first);
  }
}
