/**
 * A `ws` WebSocket for the SDK that sends bytes as bytes. The SDK writes every request as JSON
 * text, where bytes can only travel as `{"$base64": "…"}`; the gateway accepts a MessagePack
 * binary frame at any time, in which bytes are MessagePack `bin`. This socket turns each outgoing
 * publication of a `page.frame` that carries `{"$base64": …}` values into a MessagePack frame with those values as
 * bytes, so a screencast frame is stored and fanned out as a binary publication (a MessagePack
 * viewer receives a `Uint8Array`, a JSON viewer `{"$base64"}` as for any binary data) and costs a
 * third less on the wire. Other frames go out unchanged.
 *
 * Use it as the client's `WebSocket`: `new SignalboxClient({ url, token, WebSocket: BinaryPublishWebSocket })`.
 */
import WebSocket from 'ws';
import { encodeMsgpack, fromBase64 } from '@signalbox/protocol';
import type { WebSocketConstructor } from '@signalbox/client';

/** Replaces `{"$base64": s}` objects inside `v` by their bytes; true when there was one. */
function adoptBytes(v: unknown, depth: number): { value: unknown; found: boolean } {
  if (typeof v !== 'object' || v === null || depth > 32) return { value: v, found: false };
  if (Array.isArray(v)) {
    let found = false;
    const out = v.map((e) => {
      const r = adoptBytes(e, depth + 1);
      found ||= r.found;
      return r.value;
    });
    return { value: out, found };
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$base64' && typeof o.$base64 === 'string') return { value: fromBase64(o.$base64), found: true };
  let found = false;
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const r = adoptBytes(o[k], depth + 1);
    found ||= r.found;
    out[k] = r.value;
  }
  return { value: out, found };
}

class BinaryPublishSocket extends WebSocket {
  override send(data: unknown, ...rest: unknown[]): void {
    // Only screencast frames: a console argument that happens to look like `{"$base64"}` stays text.
    if (typeof data === 'string' && data.includes('"$base64"') && data.includes('"page.frame"')) {
      try {
        const { value, found } = adoptBytes(JSON.parse(data), 0);
        if (found) {
          (WebSocket.prototype.send as (this: WebSocket, ...a: unknown[]) => void).call(this, encodeMsgpack(value), ...rest);
          return;
        }
      } catch {
        // Not JSON after all: sent as it is.
      }
    }
    (WebSocket.prototype.send as (this: WebSocket, ...a: unknown[]) => void).call(this, data, ...rest);
  }
}

/** The SDK-shaped constructor (checked structurally, once). */
export const BinaryPublishWebSocket: WebSocketConstructor = BinaryPublishSocket;
