#!/usr/bin/env node
// Interactive AI-agent conversation on `agent:{id}`: a user sends messages; the agent answers by
// streaming its reply a few words at a time (`chat.token`) and closes each turn with `chat.done`.
// Both sides are SDK clients on the same channel; every publish is acknowledged, and the channel's
// offsets keep the stream in order. The "agent" here is a stand-in that echoes in reverse: put
// your model call where it says so.
//
//   node examples/agent-chat.mjs
import { SignalboxClient } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const CHANNEL = 'agent:agent_001';

run(async () => {
  const gw = await setup();

  // ---- the agent process ----
  const agent = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('agent_001', { channels: [CHANNEL], handle: [CHANNEL] }) });
  await agent.connect();
  const inbox = agent.subscribe(CHANNEL);
  inbox.on('publication', async (m) => {
    if (m.type !== 'chat.message') return;
    const turn = m.id;
    // Your model goes here; stream its tokens as they come.
    const words = String(m.data.text).split(' ').reverse();
    for (let i = 0; i < words.length; i++) {
      await agent.publish(CHANNEL, { turn, index: i, text: words[i] }, { type: 'chat.token', id: `${turn}-token-${i}` });
    }
    await agent.publish(CHANNEL, { turn, tokens: words.length }, { type: 'chat.done', id: `${turn}-done` });
  });
  await next(inbox, 'subscribed');

  // ---- the user's client ----
  const user = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_alice', { channels: [CHANNEL], publish: [CHANNEL] }) });
  user.on('error', (err) => console.log('[user] error:', err.code, err.message));
  await user.connect();
  const chat = user.subscribe(CHANNEL);
  await next(chat, 'subscribed');

  let reply = [];
  let speaker = '';
  chat.on('publication', (m) => {
    // `publisher` is set by the gateway, not by the payload: only a holder of the agent's `handle`
    // grant can publish `chat.token` here, so the user's client can trust who streamed it.
    if (m.type === 'chat.token') {
      reply.push(m.data.text);
      speaker = m.publisher?.sub ?? '?';
    }
  });
  let turn = 0;
  // Message ids are idempotency keys: unique per run, so running the example again within the
  // dedup window (2 min) against the same gateway is not answered with the last run's acks.
  const runId = Date.now().toString(36);
  for (const text of ['hello agent how are you', 'stream me a short answer please']) {
    // The message id names the turn; the end of the reply is awaited from before it is sent.
    const id = `usr_alice-${runId}-turn-${++turn}`;
    const replied = next(chat, 'publication', (m) => m.type === 'chat.done' && m.data.turn === id);
    const ack = await user.publish(CHANNEL, { role: 'user', text }, { type: 'chat.message', id });
    console.log(`[user] > ${text}   (stored at offset ${ack.offset})`);
    const done = await replied;
    console.log(`[agent] < ${reply.join(' ')}   (${done.data.tokens} tokens streamed by ${speaker})`);
    if (reply.join(' ') !== text.split(' ').reverse().join(' ')) throw new Error('the streamed reply is out of order');
    reply = [];
  }
  // The user cannot speak as the agent: `chat.token` is reserved for the channel's producer.
  const forged = await user.publish(CHANNEL, { text: 'forged' }, { type: 'chat.token' }).catch((err) => err);
  console.log(`[user] a forged chat.token is refused: ${forged.code}`);
  user.disconnect();
  agent.disconnect();
  await gw.close();
});
