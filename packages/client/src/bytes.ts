/**
 * Where bytes sit in a value the client is about to send: a MessagePack client sends such requests
 * as binary frames (bytes stay bytes); a JSON client cannot send bytes at all (`JSON.stringify`
 * would turn a Uint8Array into an object of indices), so it refuses them instead.
 */

/** The path of the first byte array in `v` (`"data.update"`, `"data[2]"`), or undefined when it has none. */
export function bytesPath(v: unknown, path: string, depth = 0): string | undefined {
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return path;
  if (typeof v !== 'object' || v === null || depth > 32) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = bytesPath(v[i], `${path}[${i}]`, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  for (const k of Object.keys(v)) {
    const p = bytesPath((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
    if (p !== undefined) return p;
  }
  return undefined;
}
