#!/usr/bin/env node
// An agent conversation on `agent:{id}` with the SDK's agent runtime (docs/agents.md):
//
// - the agent process serves the channel with `serveAgent`: each input becomes a run, and its
//   answer is streamed from a text stream (an `AsyncIterable<string>`: here a deterministic local
//   generator standing in for a model; an OpenAI/Anthropic SDK stream plugs in the same way);
// - the user's tab follows it with `Conversation`: `send()`, deltas, the agent's state;
// - a second tab opens in the middle of the answer: it gets the answer so far as ONE message (the
//   gateway folds the appends), then the live deltas, and ends with the same text;
// - the user cancels a second run halfway: the agent's AbortSignal fires, the run ends
//   `cancelled` with the text produced so far;
// - the user cannot speak as the agent: `agent.*` events are reserved for the channel's producer.
//
//   node examples/agent-chat.mjs
import { Conversation, SignalboxClient, serveAgent } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const CHANNEL = 'agent:agent_001';

/** A stand-in for a model: a long, deterministic answer, `perSecond` tokens a second, until `signal` fires. */
async function* model(prompt, tokens, perSecond, signal) {
  const words = `Signalbox streams this answer as appends to one message, so a tab that opens late reads it folded and then follows along. ${prompt}`.split(' ');
  const start = Date.now();
  for (let i = 0; i < tokens; i++) {
    if (signal.aborted) return;
    const wait = start + (i * 1000) / perSecond - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    yield `${words[i % words.length]} `;
  }
}

run(async () => {
  const gw = await setup();

  // ---- the agent process: the channel's producer (a `handle` grant) ----
  const agentClient = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('agent_001', { channels: [CHANNEL], handle: [CHANNEL] }) });
  await agentClient.connect();
  let stoppedBySignal = false;
  const agent = serveAgent(agentClient, {
    channel: CHANNEL,
    turnPolicy: 'queue',
    handler: async (input, run) => {
      run.signal.addEventListener('abort', () => { stoppedBySignal = true; });
      const tokens = input.text.startsWith('long') ? 2000 : 600;
      // Any AsyncIterable<string> (an LLM SDK's text stream): batched into appends every 40 ms.
      await run.stream(model(input.text, tokens, 300, run.signal));
    },
  });
  await agent.ready;

  // ---- the user's first tab ----
  const userToken = await gw.token('usr_alice', { channels: [CHANNEL], call: [CHANNEL], publish: [CHANNEL] });
  const tab1Client = new SignalboxClient({ url: gw.wsUrl(), token: userToken });
  await tab1Client.connect();
  const tab1 = new Conversation(tab1Client, CHANNEL);
  await tab1.ready;
  const states = [];
  tab1.on('state', (s) => { if (states.at(-1) !== s.state) states.push(s.state); });
  let deltas = 0;
  tab1.on('delta', () => { deltas++; });

  const first = await tab1.send('Tell me how streaming works.');
  console.log(`[tab 1] > Tell me how streaming works.   (accepted as ${first.runId}, ${first.status})`);

  // ---- a second tab opens halfway through the answer ----
  await next(tab1, 'delta', (e) => e.runId === first.runId && e.answer.length >= 1500);
  const tab2Client = new SignalboxClient({ url: gw.wsUrl(), token: userToken });
  await tab2Client.connect();
  const page = await tab2Client.history(CHANNEL);
  const folded = page.publications.filter((m) => m.type === 'agent.answer');
  console.log(`[tab 2] joined mid-answer: the answer so far is ${folded.length} message in the history (${folded[0].data.text.length} chars), no delta on its own: ${page.publications.every((m) => m.type !== 'agent.delta')}`);
  const tab2 = new Conversation(tab2Client, CHANNEL);
  await tab2.ready;
  let liveAfterJoin = 0;
  tab2.on('delta', () => { liveAfterJoin++; });

  const done1 = await tab1.finished(first.runId);
  const done2 = await tab2.finished(first.runId);
  console.log(`[tab 1] < ${done1.text.slice(0, 60)}… (${done1.text.length} chars in ${deltas} deltas, ${done1.status})`);
  console.log(`[tab 2] then followed ${liveAfterJoin > 0 ? 'live deltas' : 'nothing'}; same text as tab 1 and the agent: ${done2.text === done1.text && done1.text === (await agent.finished(first.runId)).text}`);
  if (tab1.agentState !== 'idle') await next(tab1, 'state', (s) => s.state === 'idle');
  console.log(`[tab 1] agent state: ${states.join(' -> ')}`);

  // ---- a second run, cancelled halfway ----
  const second = await tab1.send('long answer, please');
  console.log(`[tab 1] > long answer, please   (accepted as ${second.runId})`);
  await next(tab1, 'delta', (e) => e.runId === second.runId && e.answer.length >= 3000);
  const cancelled = await tab1.cancel(second.runId);
  const end = await tab1.finished(second.runId);
  console.log(`[tab 1] cancelled halfway: the agent's AbortSignal fired: ${stoppedBySignal}; the run ended ${end.status} with the text so far (${cancelled.text.length} chars, same as shown: ${end.text === cancelled.text})`);
  const again = await tab1.cancel(second.runId);
  console.log(`[tab 1] cancel again: cancelled=${again.cancelled}, status=${again.status}`);

  // ---- the user cannot speak as the agent ----
  const forged = await tab1Client.publish(CHANNEL, { text: ' (forged)' }, { type: 'agent.delta', appendTo: `${first.runId}.answer` }).catch((err) => err);
  console.log(`[tab 1] a forged agent.delta is refused: ${forged.code}`);

  tab1Client.disconnect();
  tab2Client.disconnect();
  await agent.stop();
  agentClient.disconnect();
  await gw.close();
});
