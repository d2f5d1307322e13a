/** MergeThread: large merges on the thread give what an inline merge gives; small ones stay inline; garbage is left out. */
import * as Y from 'yjs';
import { afterEach, describe, expect, it } from 'vitest';
import { MergeThread } from '../../src/yjs/merge-pool.js';
import { mergeValid } from '../../src/yjs/merge.js';

function updatesOf(n: number, chunk: string): { updates: Uint8Array[]; text: string } {
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => updates.push(u));
  const t = doc.getText('t');
  for (let i = 0; i < n; i++) t.insert((i * 7919) % (t.length + 1), `${chunk}${i % 10}`);
  return { updates, text: t.toString() };
}

function textOf(update: Uint8Array): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText('t').toString();
}

const threads: MergeThread[] = [];
afterEach(async () => {
  for (const t of threads.splice(0)) await t.close();
});

describe('MergeThread', () => {
  it('merges a large input on the thread, byte for byte what the inline merge gives', async () => {
    const pool = new MergeThread(64 * 1024);
    threads.push(pool);
    const { updates, text } = updatesOf(3000, 'x'.repeat(40));
    expect(updates.reduce((n, u) => n + u.byteLength, 0)).toBeGreaterThan(64 * 1024);
    const merged = await pool.merge(updates);
    expect(pool.threadMerges).toBe(1);
    expect(Buffer.from(merged).equals(Buffer.from(mergeValid(updates)))).toBe(true);
    expect(textOf(merged)).toBe(text);
  });

  it('keeps small inputs inline', async () => {
    const pool = new MergeThread(64 * 1024);
    threads.push(pool);
    const { updates, text } = updatesOf(20, 'ab');
    expect(textOf(await pool.merge(updates))).toBe(text);
    expect(pool.threadMerges).toBe(0);
  });

  it('leaves out an update that does not decode, on the thread as inline', async () => {
    const pool = new MergeThread(1);
    threads.push(pool);
    const { updates, text } = updatesOf(50, 'cd');
    const merged = await pool.merge([...updates, new Uint8Array([255, 255, 255, 1, 2, 3])]);
    expect(pool.threadMerges).toBe(1);
    expect(textOf(merged)).toBe(text);
  });

  it('refuses work once closed', async () => {
    const pool = new MergeThread(1);
    await pool.close();
    await expect(pool.merge(updatesOf(5, 'e').updates)).rejects.toThrow('closed');
  });
});
