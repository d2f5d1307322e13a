#!/usr/bin/env node
// Browser-session debugging on `session:{id}`: the page streams its console and network events;
// a debugger attaches, reads what it missed with history(), watches live, loses its connection
// for a while, comes back without losing a line, and calls the page (RPC), which answers.
//
//   node examples/session-debugger.mjs
import { SignalboxClient } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const SESSION = 'session:sess_42';

run(async () => {
  const gw = await setup();

  // ---- the instrumented page (in a browser this is `@signalbox/client`) ----
  const page = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_visitor', { channels: [SESSION], handle: [SESSION] }) });
  await page.connect();
  const pageSub = page.subscribe(SESSION);
  await next(pageSub, 'subscribed');
  let line = 0;
  const log = (text) => page.publish(SESSION, { level: 'log', line: ++line, text }, { type: 'console.log' });
  await log('app booted');
  await page.publish(SESSION, { method: 'GET', url: '/api/me', status: 200, ms: 38 }, { type: 'network.request' });
  await log('user loaded');
  // The page is the session's RPC handler (its token's `handle` grant): it answers the debugger's
  // commands, and sees who is asking (set by the gateway).
  const commands = page.handle(SESSION, {
    'dom.query': async ({ selector }, ctx) => {
      console.log(`[page] dom.query ${selector} from ${ctx.caller.sub}`);
      return { text: selector === 'title' ? 'Checkout' : null };
    },
  });
  await commands.ready;

  // ---- the debugger attaches later: first what happened, then live ----
  const dbg = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_support', { channels: [SESSION], call: [SESSION] }) });
  dbg.on('error', (err) => console.error('[debugger] error:', err.code, err.message));
  await dbg.connect();
  const { publications } = await dbg.history(SESSION, { limit: 50 });
  for (const p of publications) console.log(`[debugger] (earlier) ${p.type} ${JSON.stringify(p.data)}`);
  const lines = [];
  const session = dbg.subscribe(SESSION, { since: publications.at(-1) ? { epoch: publications.at(-1).epoch, offset: publications.at(-1).offset } : undefined });
  session.on('publication', (m) => {
    if (m.type === 'console.log') lines.push(m.data.line);
    console.log(`[debugger] ${m.type} ${JSON.stringify(m.data)}`);
  });
  await next(session, 'subscribed');

  // The debugger's laptop sleeps: the page keeps logging meanwhile.
  dbg.disconnect();
  console.log('[debugger] -- disconnected --');
  for (let i = 0; i < 3; i++) await log(`clicked "pay" (${i + 1})`);
  const resumed = next(session, 'subscribed', (e) => e.resubscribed);
  const caughtUp = next(session, 'publication', (m) => m.data.line === line);
  await dbg.connect();
  const outcome = await resumed;
  await caughtUp;
  console.log(`[debugger] -- back: recovered=${outcome.recovered}, replayed the ${outcome.missed ?? 0} it missed --`);
  if (lines.join(',') !== '3,4,5') throw new Error(`lines after attach: ${lines.join(',')}`);

  // A command to the page, and its answer: request/reply to the session's handler, wherever it is connected.
  const answer = await dbg.call(SESSION, 'dom.query', { selector: 'title' }, { timeout: 5000 });
  console.log(`[debugger] document.title = ${JSON.stringify(answer.text)}`);

  page.disconnect();
  dbg.disconnect();
  await gw.close();
});
