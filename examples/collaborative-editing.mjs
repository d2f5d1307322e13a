#!/usr/bin/env node
// Collaborative editing on `doc:{id}`, a presence channel: editors see who else is in the
// document, and every edit goes through the channel. The gateway gives each publication the
// channel's next offset, so every editor applies the same edits in the same order and ends with
// the same text, without locks. Edits here are simple inserts/appends, to keep the example short;
// a real editor would send CRDT or OT operations the same way.
//
// The `doc` namespace is not in the default table: the embedded gateway adds it; a separate one
// needs `--config examples/signalbox.config.json`.
//
//   node examples/collaborative-editing.mjs
import { SignalboxClient } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const DOC = 'doc:readme';

/** One editor: a client, its view of the document, and the edits it applied, in offset order. */
async function openEditor(gw, user) {
  const client = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token(user, { channels: [DOC], publish: [DOC] }) });
  client.on('error', (err) => console.error(`[${user}] error:`, err.code, err.message));
  await client.connect();
  const editor = { user, client, text: '', applied: 0 };
  const sub = client.subscribe(DOC);
  sub.on('publication', (m) => {
    if (m.type !== 'edit') return;
    const { at, insert } = m.data;
    const pos = at === 'end' ? editor.text.length : Math.min(at, editor.text.length);
    editor.text = editor.text.slice(0, pos) + insert + editor.text.slice(pos);
    editor.applied = m.offset;
  });
  client.on('presence.joined', (m) => { if (m.data.member.userId !== user) console.log(`[${user}] ${m.data.member.userId} joined`); });
  await next(sub, 'subscribed');
  editor.sub = sub;
  return editor;
}

run(async () => {
  const gw = await setup();
  const alice = await openEditor(gw, 'usr_alice');
  const bob = await openEditor(gw, 'usr_bob');
  const { members } = await alice.client.presence(DOC);
  console.log(`[usr_alice] in the document: ${members.map((m) => m.userId).sort().join(', ')}`);

  // Both type at once; neither waits for the other.
  const edit = (editor, at, insert) => editor.client.publish(DOC, { at, insert }, { type: 'edit' });
  const acks = await Promise.all([
    edit(alice, 0, '# Signalbox\n'),
    edit(bob, 'end', 'Real-time gateway.\n'),
    edit(alice, 'end', 'Self-hosted.\n'),
    edit(bob, 0, '<!-- draft -->\n'),
  ]);
  const last = Math.max(...acks.map((a) => a.offset));
  await Promise.all([alice, bob].map((e) => (e.applied >= last ? null : next(e.sub, 'publication', (m) => m.offset === last))));

  console.log(`[usr_alice] the document at offset ${last} of ${DOC}:\n${alice.text}`);
  if (alice.text !== bob.text) throw new Error(`the editors diverged:\n${alice.text}\n---\n${bob.text}`);
  console.log('[usr_bob] same text, byte for byte');

  alice.client.disconnect();
  bob.client.disconnect();
  await gw.close();
});
