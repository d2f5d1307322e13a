/**
 * Where bytes sit in a value the client is about to send: a MessagePack client sends such requests
 * as binary frames (bytes stay bytes); a JSON client cannot send bytes at all (`JSON.stringify`
 * would turn a Uint8Array into an object of indices), so it refuses them instead.
 */

/**
 * Bytes that say how they go in JSON: a typed array with its own `toJSON` (`Bytes` of
 * `@signalbox/protocol` renders `{"$base64": …}`; the session bridge's frames are such). Node's
 * Buffer also has one, which renders an array of numbers: not that.
 */
function rendersItself(v: ArrayBufferView): boolean {
  if (typeof (v as { toJSON?: unknown }).toJSON !== 'function') return false;
  const B = (globalThis as { Buffer?: { isBuffer(x: unknown): boolean } }).Buffer;
  return !(B && B.isBuffer(v));
}

/**
 * The path of the first byte array in `v` (`"data.update"`, `"data[2]"`), or undefined when it has
 * none. With `json`, bytes that render themselves in JSON (see {@link rendersItself}) are not counted.
 */
export function bytesPath(v: unknown, path: string, depth = 0, json = false): string | undefined {
  if (v instanceof ArrayBuffer) return path;
  if (ArrayBuffer.isView(v)) return json && rendersItself(v) ? undefined : path;
  if (typeof v !== 'object' || v === null || depth > 32) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = bytesPath(v[i], `${path}[${i}]`, depth + 1, json);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  for (const k of Object.keys(v)) {
    const p = bytesPath((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1, json);
    if (p !== undefined) return p;
  }
  return undefined;
}
