#!/usr/bin/env node
// Collaborative editing with Yjs on a `doc:{id}` channel: two editors, each a Y.Doc bound to the
// channel by `SignalboxProvider` from `@signalbox/yjs` over its own connection (MessagePack, so
// updates travel as bytes). Yjs is a CRDT: concurrent edits merge where their authors meant them,
// whatever order they arrive in. Shown step by step:
//
//   1. alice types "hello world"; bob, joining, gets it from the channel.
//   2. At the same moment, alice inserts "," at 5 and bob "big " at 6 (neither has seen the other's
//      edit): both end with "hello, big world".
//   3. bob goes offline (his client disconnects); both keep editing; bob's edits wait in his
//      provider. He comes back: his edits are published, he gets alice's, and both converge.
//
// Exits 0 when the editors converged at every step, 1 otherwise. The `doc` namespace (and
// `awareness`, for names and cursors) is in the default namespace table, so a separate gateway
// needs no config: `npx signalbox serve`, then SIGNALBOX_URL=... (see examples/README.md).
//
//   node examples/collaborative-editing.mjs
import { SignalboxClient } from '@signalbox/client/node';
import { msgpack } from '@signalbox/client/msgpack';
import { SignalboxProvider } from '@signalbox/yjs';
import * as Y from 'yjs';
import { run, setup } from './lib/setup.mjs';

const DOC = `doc:readme_${Date.now().toString(36)}`;

/** One editor: its own connection, a Y.Doc with a Y.Text, the provider binding them to DOC. */
async function openEditor(gw, user) {
  const client = new SignalboxClient({
    url: gw.wsUrl(), token: await gw.token(user, { channels: [DOC], publish: [DOC] }), format: msgpack,
    reconnectInterval: 50, maxReconnectInterval: 200,
  });
  client.on('error', (err) => console.error(`[${user}] error:`, err.code, err.message));
  const doc = new Y.Doc();
  const provider = new SignalboxProvider(client, DOC, doc);
  provider.awareness.setLocalStateField('user', { name: user });
  provider.on('error', (err) => console.error(`[${user}] provider error:`, err.code ?? '', err.message));
  await client.connect();
  await provider.whenSynced();
  return { user, client, doc, text: doc.getText('content'), provider };
}

/** Resolves when `probe()` is true, checking after every change of the editors' documents (and every 20 ms). */
function until(editors, probe, what, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!probe()) return;
      done();
      resolve();
    };
    const timer = setInterval(check, 20);
    const limit = setTimeout(() => {
      done();
      reject(new Error(`not within ${timeoutMs} ms: ${what} (${editors.map((e) => `${e.user}: ${JSON.stringify(e.text.toString())}`).join(', ')})`));
    }, timeoutMs);
    const done = () => {
      clearInterval(timer);
      clearTimeout(limit);
      for (const e of editors) e.doc.off('update', check);
    };
    for (const e of editors) e.doc.on('update', check);
    check();
  });
}

/** Both synced, nothing waiting to be sent, the same text. */
async function converge(editors, what) {
  await until(editors, () => editors.every((e) => e.provider.synced && e.provider.pendingUpdates === 0)
    && editors.every((e) => e.text.toString() === editors[0].text.toString()), what);
  return editors[0].text.toString();
}

const show = (e) => `[${e.user}] ${JSON.stringify(e.text.toString())}`;

run(async () => {
  const gw = await setup();
  const alice = await openEditor(gw, 'alice');
  const bob = await openEditor(gw, 'bob');
  const names = (e) => [...e.provider.awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean).sort().join(', ');
  await until([alice, bob], () => names(alice) === 'alice, bob' && names(bob) === 'alice, bob', 'each editor sees the other (awareness)');
  console.log(`[alice] editing ${DOC} with: ${names(alice)}`);

  // 1. A first edit, and bob gets it.
  alice.text.insert(0, 'hello world');
  await converge([alice, bob], 'bob gets "hello world"');
  console.log(`1. alice typed "hello world"; ${show(bob)}`);

  // 2. Concurrent edits: both made before either editor has seen the other's.
  alice.text.insert(5, ',');
  bob.text.insert(6, 'big ');
  console.log(`2. at the same moment: ${show(alice)} (inserted "," at 5), ${show(bob)} (inserted "big " at 6)`);
  const merged = await converge([alice, bob], 'the concurrent edits merge');
  console.log(`   merged: ${show(alice)}, ${show(bob)}`);
  if (merged !== 'hello, big world') throw new Error(`expected "hello, big world", got ${JSON.stringify(merged)}`);
  console.log('   both read "hello, big world": each insert landed where its author put it');

  // 3. bob goes offline for a while; both keep editing.
  bob.client.disconnect();
  await until([bob], () => bob.provider.status === 'disconnected', 'bob disconnected');
  console.log(`3. bob goes offline (provider status: ${bob.provider.status})`);
  alice.text.insert(alice.text.length, '!');
  alice.text.insert(0, '> ');
  bob.text.insert(0, 'Title: ');
  bob.text.delete(bob.text.toString().indexOf('big '), 4);
  console.log(`   while apart: ${show(alice)}; ${show(bob)}, ${bob.provider.pendingUpdates} update(s) waiting to be sent`);
  await until([alice], () => alice.provider.pendingUpdates === 0, "alice's edits stored");
  await bob.client.connect();
  console.log(`   bob is back (provider status: ${bob.provider.status})`);
  const final = await converge([alice, bob], 'both converge after bob comes back');
  console.log(`   converged: ${show(alice)}, ${show(bob)}`);

  // A newcomer reads the same document from the channel's history.
  const carol = await openEditor(gw, 'carol');
  if (carol.text.toString() !== final) throw new Error(`carol read ${JSON.stringify(carol.text.toString())}, not ${JSON.stringify(final)}`);
  console.log(`[carol] joined later and read the same text from the channel: ${JSON.stringify(carol.text.toString())}`);
  console.log('converged: every editor has the same document');

  for (const e of [alice, bob, carol]) {
    e.provider.destroy();
    e.client.disconnect();
  }
  await gw.close();
});
