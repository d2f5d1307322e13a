#!/usr/bin/env node
// Browser-session debugging on `session:{id}`: the page streams its console and network events;
// a debugger attaches, reads what it missed with history(), watches live, loses its connection
// for a while, comes back without losing a line, and sends a command the page answers.
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
  // The page answers the debugger's commands.
  pageSub.on('publication', (m) => {
    if (m.type !== 'debug.eval') return;
    const result = m.data.expression === 'document.title' ? 'Checkout' : null;
    void page.publish(SESSION, { command: m.id, result }, { type: 'debug.result' });
  });

  // ---- the debugger attaches later: first what happened, then live ----
  const dbg = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_support', { channels: [SESSION], publish: [SESSION] }) });
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

  // A command to the page, and its answer.
  const cmd = await dbg.publish(SESSION, { expression: 'document.title' }, { type: 'debug.eval' });
  const answer = await next(session, 'publication', (m) => m.type === 'debug.result' && m.data.command === cmd.id);
  console.log(`[debugger] document.title = ${JSON.stringify(answer.data.result)}`);

  page.disconnect();
  dbg.disconnect();
  await gw.close();
});
