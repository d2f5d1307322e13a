import { Redis } from 'ioredis';
import { encodeMsgpack } from '@signalbox/protocol';
const r = new Redis();
const tries = { epoch: 'ep', int: 5, now: Date.now(), bin: new Uint8Array([1,2,3]), map: { id: 'abc' }, pub: { via: 'ws' } };
for (const [k, v] of Object.entries(tries)) {
  const b = Buffer.from(encodeMsgpack(v));
  const out = await r.eval(`local ok, e = pcall(cmsgpack.unpack, ARGV[1]) if not ok then return 'err ' .. tostring(e) end return 'ok'`, 0, b);
  console.log(k, b.toString('hex'), out);
}
r.disconnect();
