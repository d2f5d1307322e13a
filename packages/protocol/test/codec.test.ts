import { describe, expect, it } from 'vitest';
import {
  Bytes, ChannelPatterns, decodeJsonFrame, decodeMsgpackFrame, decodePrdCommand, decodePrpCommand, encodeMsgpack, fromBase64,
  isValidEventType, jsonDepthExceeds, parseChannel,
} from '../src/index.js';

describe('frame codecs', () => {
  it('counts JSON depth outside strings only', () => {
    expect(jsonDepthExceeds('[[[1]]]', 3)).toBe(false);
    expect(jsonDepthExceeds('[[[[1]]]]', 3)).toBe(true);
    expect(jsonDepthExceeds('{"a":"[[[[[[[["}', 2)).toBe(false);
    expect(jsonDepthExceeds('{"a":"\\"[[[[[["}', 2)).toBe(false);
    // More brackets than the limit, but side by side: not deeper than it.
    expect(jsonDepthExceeds('[[1],[2],[3],[4]]', 2)).toBe(false);
    expect(jsonDepthExceeds('{"a":[{"b":[1]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('{"a":[{"b":[1]}]}', 4)).toBe(false);
  });

  it('refuses deep and malformed JSON without throwing', () => {
    expect(decodeJsonFrame('['.repeat(100_000), { maxDepth: 32 }).ok).toBe(false);
    expect(decodeJsonFrame('{"a":', { maxDepth: 32 })).toMatchObject({ ok: false });
    expect(decodeJsonFrame('{"a":1}', { maxDepth: 32 })).toEqual({ ok: true, value: { a: 1 } });
  });

  it('round-trips bytes through MessagePack and renders them as $base64 in JSON', () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const r = decodeMsgpackFrame(encodeMsgpack({ data: { blob: bytes } }), { maxDepth: 8 });
    expect(r.ok).toBe(true);
    const blob = (r as { value: { data: { blob: Uint8Array } } }).value.data.blob;
    expect(blob).toBeInstanceOf(Bytes);
    expect([...blob]).toEqual([...bytes]);
    const json = JSON.parse(JSON.stringify({ blob })) as { blob: { $base64: string } };
    expect([...fromBase64(json.blob.$base64)]).toEqual([...bytes]);
  });

  it('refuses deep and malformed MessagePack without throwing', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 50; i++) deep = [deep];
    expect(decodeMsgpackFrame(encodeMsgpack(deep), { maxDepth: 32 }).ok).toBe(false);
    expect(decodeMsgpackFrame(new Uint8Array([0xc1]), { maxDepth: 32 }).ok).toBe(false);
  });
});

describe('channel grammar and patterns', () => {
  it.each([
    ['project:proj_123456', true], ['metrics', true], ['agent:a:b', true], ['user:a@b.c', true],
    ['', false], ['Project:x', false], ['project:', false], ['project:*', false], ['project:a b', false],
    ['project:a\u0000', false], [`project:${'x'.repeat(200)}`, false], ['project:a{b}', false],
  ])('%j valid=%s', (name, valid) => {
    expect(parseChannel(name) !== null).toBe(valid);
  });

  it('matches token patterns', () => {
    const p = new ChannelPatterns(['project:*', 'agent:agent_001']);
    expect(p.matches('project:p1')).toBe(true);
    expect(p.matches('agent:agent_001')).toBe(true);
    expect(p.matches('agent:agent_002')).toBe(false);
    expect(new ChannelPatterns(['*']).matches('anything:x')).toBe(true);
  });

  it('reserves system event types', () => {
    expect(isValidEventType('prp.created')).toBe(true);
    expect(isValidEventType('error')).toBe(false);
    expect(isValidEventType('connection.established')).toBe(false);
    expect(isValidEventType('9lives')).toBe(false);
  });
});

describe('dialect decoders', () => {
  it('decodes the PRP document examples', () => {
    expect(decodePrpCommand({ id: 'client_msg_001', action: 'subscribe', payload: { channels: ['project:proj_123456', 'agent:agent_001'] } }))
      .toEqual({ kind: 'subscribe', requestId: 'client_msg_001', channels: [{ channel: 'project:proj_123456' }, { channel: 'agent:agent_001' }] });
    expect(decodePrpCommand({ id: 'client_msg_003', action: 'ping' })).toEqual({ kind: 'ping', requestId: 'client_msg_003' });
    expect(decodePrpCommand({ id: 'x', action: 'fly' })).toMatchObject({ error: true, code: 'INVALID_ACTION', requestId: 'x', action: 'fly' });
    expect(decodePrpCommand([1, 2])).toMatchObject({ error: true, code: 'INVALID_MESSAGE' });
  });

  it('decodes the PRD-035 examples', () => {
    expect(decodePrdCommand({ type: 'subscribe', channel: 'agent:123' })).toEqual({ kind: 'subscribe', requestId: undefined, channels: [{ channel: 'agent:123' }] });
    expect(decodePrdCommand({ type: 'message', channel: 'agent:123', data: { action: 'respond', content: 'Hello' }, id: 'msg_456' }))
      .toEqual({ kind: 'publish', requestId: 'msg_456', channel: 'agent:123', type: 'message', data: { action: 'respond', content: 'Hello' } });
    expect(decodePrdCommand({ type: 'ack' })).toMatchObject({ error: true, code: 'INVALID_ACTION' });
  });
});

describe('RPC requests, the same model from both dialects', () => {
  it('decodes handle, unhandle, call and reply alike, and names a bad field as each dialect spells it', () => {
    const prp = (action: string, payload: unknown) => decodePrpCommand({ id: 'r1', action, payload });
    const prd = (type: string, channel: unknown, data: unknown) => decodePrdCommand({ id: 'r1', type, channel, data });
    const handle = { kind: 'rpc_handle', requestId: 'r1', channel: 'session:s1', methods: ['a', 'b'] };
    expect(prp('rpc.handle', { channel: 'session:s1', methods: ['a', 'b', 'a'] })).toEqual(handle);
    expect(prd('rpc.handle', 'session:s1', { methods: ['a', 'b'] })).toEqual(handle);
    expect(prd('rpc.handle', 'session:s1', {})).toMatchObject({ methods: null });
    expect(prp('rpc.unhandle', { channel: 'session:s1' })).toEqual({ kind: 'rpc_unhandle', requestId: 'r1', channel: 'session:s1' });
    const call = { kind: 'rpc_call', requestId: 'r1', channel: 'agent:a1', method: 'cancel', params: { run: 1 }, timeoutMs: 500 };
    expect(prp('rpc.call', { channel: 'agent:a1', method: 'cancel', params: { run: 1 }, timeoutMs: 500 })).toEqual(call);
    expect(prd('rpc.call', 'agent:a1', { method: 'cancel', params: { run: 1 }, timeoutMs: 500 })).toEqual(call);
    expect(prp('rpc.reply', { callId: 'c', error: { code: 'E', message: 'm' } })).toEqual({ kind: 'rpc_reply', requestId: 'r1', callId: 'c', error: { code: 'E', message: 'm' } });
    expect(prd('rpc.reply', undefined, { callId: 'c', result: 7 })).toEqual({ kind: 'rpc_reply', requestId: 'r1', callId: 'c', result: 7 });

    expect(prp('rpc.call', { channel: 'agent:a1', method: '1x' })).toMatchObject({ error: true, message: expect.stringMatching(/^`payload\.method`/) });
    expect(prd('rpc.call', 'agent:a1', { method: 'x', timeoutMs: 0 })).toMatchObject({ error: true, message: expect.stringMatching(/^`data\.timeoutMs`/) });
    expect(prd('rpc.handle', 7, {})).toMatchObject({ error: true, message: expect.stringMatching(/^`channel`/) });
    expect(prp('rpc.reply', { callId: 'c', error: { code: '#', message: 'm' } })).toMatchObject({ error: true, message: expect.stringMatching(/^`payload\.error\.code`/) });
  });
});
