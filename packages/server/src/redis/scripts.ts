/**
 * The one script loader of the Redis engine, and every Lua script it runs (the broker's and the
 * presence store's). Each script runs with EVALSHA; a server that does not know it (restart,
 * `SCRIPT FLUSH`, a new Redis) answers NOSCRIPT, and the script is sent once with EVAL, which
 * loads it for the next calls.
 *
 * Lua sources are TypeScript strings because tsc does not copy `.lua` files to dist. Each script
 * touches only keys of one channel (they share the `{<channel>}` hash tag, see keys.ts), so it runs
 * atomically on one node, standalone or cluster. Editing a script changes its SHA, which costs
 * each node one NOSCRIPT round trip, nothing else; what the scripts store must not change (keys.ts).
 *
 * Message format, shared by history entries, idempotency results and pub/sub messages: a
 * MessagePack array `[epoch, offset, time, body]` where `body` is the MessagePack map
 * `{id, channel, type, data, publisher?}` encoded by Node. Lua never decodes `body` (Redis'
 * cmsgpack would turn binary `bin` values into `str`); it only prefixes the header it owns:
 * 0x94 (fixarray of 4) followed by the packed epoch, offset and time.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export type ScriptArg = string | Buffer | Uint8Array | number;

/** One Lua script: its source and SHA1, run with EVALSHA (EVAL once on NOSCRIPT). */
export class LuaScript {
  readonly sha: string;
  constructor(
    /** For messages and tests. */
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script; bulk replies come back as Buffers (binary-safe: publication messages). */
  run(client: Redis, keys: string[], args: ScriptArg[]): Promise<unknown> {
    return this.exec(client, true, keys, args);
  }

  /** Runs the script; bulk replies come back as strings (UTF-8 text: presence records). */
  runText(client: Redis, keys: string[], args: ScriptArg[]): Promise<unknown> {
    return this.exec(client, false, keys, args);
  }

  private async exec(client: Redis, binary: boolean, keys: string[], args: ScriptArg[]): Promise<unknown> {
    const argv = args.map((a) => (a instanceof Uint8Array && !Buffer.isBuffer(a) ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : a)) as (
      | string
      | Buffer
      | number
    )[];
    const call = (cmd: 'evalsha' | 'eval', first: string): Promise<unknown> =>
      binary ? client.callBuffer(cmd, first, keys.length, ...keys, ...argv) : client.call(cmd, first, keys.length, ...keys, ...argv);
    try {
      return await call('evalsha', this.sha);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return call('eval', this.source);
    }
  }
}

/** Shared prologue: epoch creation when the stream's meta hash is gone (fresh channel or lost data). */
const NEW_EPOCH_FN = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1]
end

-- A missing meta hash means the stream's past is unknown: start a new epoch at offset 0 and drop
-- any stream entries that survived it (e.g. evicted meta under memory pressure), so no offset of
-- the new epoch can collide with an old entry. The epoch mixes a per-call random from the caller
-- with the server clock: a Redis restarted without data never reuses an epoch.
local function new_epoch(meta, stream, seed, meta_ttl)
  local _, secs = now_ms()
  local epoch = seed .. string.format('%x', tonumber(secs))
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
  if meta_ttl >= 0 then redis.call('PEXPIRE', meta, meta_ttl) end
  return epoch
end
`;

/**
 * Append-and-publish.
 *
 * KEYS[1] meta hash {epoch, offset}; KEYS[2] history stream; KEYS[3] idempotency result key.
 * ARGV[1] pub/sub topic; ARGV[2] history size; ARGV[3] history TTL ms (-1 = none);
 * ARGV[4] meta TTL ms (-1 = none); ARGV[5] idempotency window ms (0 = no caching, -1 = forever);
 * ARGV[6] epoch seed; ARGV[7] body (MessagePack); ARGV[8] '1' when an idempotency key was given.
 *
 * Returns {duplicate (0|1), message}.
 */
export const PUBLISH_SCRIPT = `
-- Redis < 5 needs effect replication for TIME before writes; later versions always do it.
if redis.replicate_commands then pcall(redis.replicate_commands) end
${NEW_EPOCH_FN}
local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local size = tonumber(ARGV[2])
local hist_ttl = tonumber(ARGV[3])
local meta_ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])

if ARGV[8] == '1' then
  local seen = redis.call('GET', idem)
  if seen then return {1, seen} end
end

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then epoch = new_epoch(meta, stream, ARGV[6], meta_ttl) end
local offset = redis.call('HINCRBY', meta, 'offset', 1)
local now = now_ms()

local message = '\\148' .. cmsgpack.pack(epoch) .. cmsgpack.pack(offset) .. cmsgpack.pack(now) .. ARGV[7]

if size > 0 then
  -- Explicit ids '<offset>-0' make XRANGE by offset exact; MAXLEN without '~' trims exactly.
  redis.call('XADD', stream, 'MAXLEN', size, string.format('%d-0', offset), 'p', message)
  if hist_ttl >= 0 then redis.call('PEXPIRE', stream, hist_ttl) else redis.call('PERSIST', stream) end
else
  redis.call('DEL', stream)
end
if meta_ttl >= 0 then redis.call('PEXPIRE', meta, meta_ttl) else redis.call('PERSIST', meta) end
if ARGV[8] == '1' then
  if window > 0 then redis.call('SET', idem, message, 'PX', window)
  elseif window < 0 then redis.call('SET', idem, message) end
end
redis.call('PUBLISH', ARGV[1], message)
return {0, message}
`;

/**
 * Position and history read, atomically (a publish cannot land between reading the position and
 * the entries). Creates the meta hash (new epoch, offset 0) for a channel never published, so the
 * epoch a subscriber sees first is the one its first publication will carry.
 *
 * KEYS[1] meta hash; KEYS[2] history stream.
 * ARGV[1] meta TTL ms (-1 = none); ARGV[2] epoch seed;
 * ARGV[3] mode: 'since' (entries with offset >= ARGV[4]), 'last' (the last ARGV[5]), 'all', 'none';
 * ARGV[4] first offset wanted (mode 'since'); ARGV[5] limit (-1 = no limit).
 *
 * Returns {epoch, offset, earliestOffset, message...} in ascending offset order.
 */
export const HISTORY_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
${NEW_EPOCH_FN}
local meta, stream = KEYS[1], KEYS[2]
local mode = ARGV[3]
local limit = tonumber(ARGV[5])

local state = redis.call('HMGET', meta, 'epoch', 'offset')
local epoch, offset = state[1], tonumber(state[2])
if not epoch then
  epoch = new_epoch(meta, stream, ARGV[2], tonumber(ARGV[1]))
  offset = 0
end

local earliest = offset + 1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first > 0 then earliest = tonumber(string.match(first[1][1], '^(%d+)')) end

local entries = {}
if mode == 'since' then
  if limit >= 0 then
    entries = redis.call('XRANGE', stream, ARGV[4] .. '-0', '+', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', stream, ARGV[4] .. '-0', '+')
  end
elseif mode == 'all' then
  entries = redis.call('XRANGE', stream, '-', '+')
elseif mode == 'last' then
  local rev = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit)
  for i = #rev, 1, -1 do entries[#entries + 1] = rev[i] end
end

local out = {epoch, offset, earliest}
for i = 1, #entries do
  -- Entry fields are {'p', message}.
  out[#out + 1] = entries[i][2][2]
end
return out
`;

/**
 * Presence add-or-refresh.
 *
 * KEYS[1] expiries (sorted set); KEYS[2] members (hash).
 * ARGV[1] expiry (ms since the epoch); ARGV[2] client id; ARGV[3] member record (JSON); ARGV[4] key TTL ms.
 */
export const PRESENCE_ADD_SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1`;

/**
 * Presence list: drops members whose expiry passed, returns the records of the others.
 *
 * KEYS[1] expiries; KEYS[2] members. ARGV[1] now (ms since the epoch).
 */
export const PRESENCE_LIST_SCRIPT = `
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  redis.call('HDEL', KEYS[2], unpack(gone))
end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))`;

/** Every script the gateway runs. */
export const SCRIPTS = {
  publish: new LuaScript('publish', PUBLISH_SCRIPT),
  history: new LuaScript('history', HISTORY_SCRIPT),
  presenceAdd: new LuaScript('presence add', PRESENCE_ADD_SCRIPT),
  presenceList: new LuaScript('presence list', PRESENCE_LIST_SCRIPT),
} as const;
