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
-- any stream entries (and their message index) that survived it (e.g. evicted meta under memory
-- pressure), so no offset of the new epoch can collide with an old entry. The epoch mixes a
-- per-call random from the caller with the server clock: a Redis restarted without data never
-- reuses an epoch.
local function new_epoch(meta, stream, msgs, order, seed, meta_ttl)
  local _, secs = now_ms()
  local epoch = seed .. string.format('%x', tonumber(secs))
  redis.call('DEL', stream, msgs, order)
  redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
  if meta_ttl >= 0 then redis.call('PEXPIRE', meta, meta_ttl) end
  return epoch
end

-- A message's object fold state lists its field names as '<byte length>:<name>' one after another.
local function each_name(names, fn)
  if not names then return end
  local pos = 1
  while pos <= #names do
    local colon = string.find(names, ':', pos, true)
    local len = tonumber(string.sub(names, pos, colon - 1))
    fn(string.sub(names, colon + 1, colon + len))
    pos = colon + len + 1
  end
end
`;

/**
 * Append-and-publish. Two paths, chosen by ARGV[9], one script (one EVALSHA per publication):
 * - plain ('0': the channel's namespace has no appends): idempotency check, next offset, XADD
 *   with MAXLEN (the size counts publications), TTLs, PUBLISH; KEYS[4] and KEYS[5] are not
 *   touched (they are only deleted with the stream when a new epoch starts). The same commands as
 *   before appends existed.
 * - appends ('1'): the same, with the bookkeeping of messages and appends in the same step.
 *
 * KEYS[1] meta hash {epoch, offset}; KEYS[2] history stream; KEYS[3] idempotency result key;
 * KEYS[4] message hash (index and fold state); KEYS[5] message order list.
 * ARGV[1] pub/sub topic; ARGV[2] history size (in messages); ARGV[3] history TTL ms (-1 = none);
 * ARGV[4] meta TTL ms (-1 = none); ARGV[5] idempotency window ms (0 = no caching, -1 = forever);
 * ARGV[6] epoch seed; ARGV[7] body (MessagePack); ARGV[8] '1' when an idempotency key was given;
 * ARGV[9] '1' for the appends path, '0' for the plain one (then ARGV ends here);
 * ARGV[10] appendTo ('' for a message); ARGV[11] publisher scope; ARGV[12] publication id;
 * ARGV[13] the data's kind: 's' string, 'o' object, 'v' anything else;
 * ARGV[14..] (an append only) for 's' the string, for 'v' the value (MessagePack), for 'o' per
 * field: name, 's' or 'v', the string or the value (MessagePack).
 *
 * Returns {duplicate (0|1), message}, or {2} (appendTo: another publisher's message) or {3}
 * (appendTo: no such retained message); a refusal writes nothing.
 *
 * The message hash holds, per retained message at offset O: 'k:<scope>\0<id>' -> O and 'i:<id>' -> O
 * (the newest message with that id, any publisher), 'O:key' (its 'k:' field), 'O:id', 'O:r' (its
 * data's kind), and once appended to its fold state: 'O:k' the state ('rs' / 'ro': the message's
 * own string / object with 'O:d' / fields folded onto it; 'ss' / 'so' / 'sv': replaced, the state
 * is all there is), 'O:t' the offset of the last append, 'O:d' the string (UTF-8 bytes) or value
 * (MessagePack), 'O:n' the field names, 'O:f:<name>' each field: 'c' .. string (concatenated onto
 * the message's field if that is a string, else set), 'S' .. string (set), 'V' .. MessagePack (set).
 * Lua never decodes a value: strings are UTF-8 bytes, concatenated; the rest is replaced whole.
 */
export const PUBLISH_SCRIPT = `
-- Redis < 5 needs effect replication for TIME before writes; later versions always do it.
if redis.replicate_commands then pcall(redis.replicate_commands) end
${NEW_EPOCH_FN}
local meta, stream, idem, msgs, order = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local size = tonumber(ARGV[2])
local hist_ttl = tonumber(ARGV[3])
local meta_ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])

if ARGV[8] == '1' then
  local seen = redis.call('GET', idem)
  if seen then return {1, seen} end
end

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then epoch = new_epoch(meta, stream, msgs, order, ARGV[6], meta_ttl) end

if ARGV[9] ~= '1' then
  -- The plain path: no message index, no order list; MAXLEN without '~' trims exactly.
  local offset = redis.call('HINCRBY', meta, 'offset', 1)
  local now = now_ms()
  local message = '\\148' .. cmsgpack.pack(epoch) .. cmsgpack.pack(offset) .. cmsgpack.pack(now) .. ARGV[7]
  if size > 0 then
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
end

local append_to, scope, id, kind = ARGV[10], ARGV[11], ARGV[12], ARGV[13]

-- An append's message: retained, not an append, the same publisher's.
local target
if append_to ~= '' then
  target = redis.call('HGET', msgs, 'k:' .. scope .. '\\0' .. append_to)
  if not target then
    if redis.call('HEXISTS', msgs, 'i:' .. append_to) == 1 then return {2} end
    return {3}
  end
end

local offset = redis.call('HINCRBY', meta, 'offset', 1)
local off = string.format('%d', offset)
local now = now_ms()

local message = '\\148' .. cmsgpack.pack(epoch) .. cmsgpack.pack(offset) .. cmsgpack.pack(now) .. ARGV[7]

local function drop_fold(o)
  each_name(redis.call('HGET', msgs, o .. ':n'), function(name) redis.call('HDEL', msgs, o .. ':f:' .. name) end)
  redis.call('HDEL', msgs, o .. ':k', o .. ':t', o .. ':d', o .. ':n')
end

-- Applies the append (ARGV[13..]) to the fold state of the message at offset o.
local function fold(o)
  local state = redis.call('HGET', msgs, o .. ':k')
  if not state then state = 'r' .. redis.call('HGET', msgs, o .. ':r') end
  local shape = string.sub(state, 2, 2)
  if shape == 's' and kind == 's' then
    redis.call('HSET', msgs, o .. ':k', state, o .. ':d', (redis.call('HGET', msgs, o .. ':d') or '') .. ARGV[14])
  elseif shape == 'o' and kind == 'o' then
    local names = redis.call('HGET', msgs, o .. ':n') or ''
    for i = 14, #ARGV, 3 do
      local name, t, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
      local f = o .. ':f:' .. name
      local prev = redis.call('HGET', msgs, f)
      local value
      if t == 's' then
        if not prev then
          if state == 'ro' then value = 'c' .. v else value = 'S' .. v end
        elseif string.sub(prev, 1, 1) == 'V' then
          value = 'S' .. v
        else
          value = prev .. v
        end
      else
        value = 'V' .. v
      end
      if not prev then names = names .. string.format('%d', #name) .. ':' .. name end
      redis.call('HSET', msgs, f, value)
    end
    redis.call('HSET', msgs, o .. ':k', state, o .. ':n', names)
  else
    -- Any other combination: the append replaces the data whole.
    drop_fold(o)
    if kind == 'o' then
      local names = ''
      for i = 14, #ARGV, 3 do
        local name, t, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
        names = names .. string.format('%d', #name) .. ':' .. name
        if t == 's' then redis.call('HSET', msgs, o .. ':f:' .. name, 'S' .. v) else redis.call('HSET', msgs, o .. ':f:' .. name, 'V' .. v) end
      end
      redis.call('HSET', msgs, o .. ':k', 'so', o .. ':n', names)
    else
      redis.call('HSET', msgs, o .. ':k', 's' .. kind, o .. ':d', ARGV[14])
    end
  end
  redis.call('HSET', msgs, o .. ':t', off)
end

-- Drops the oldest retained message with its index and fold state; the stream then starts at the
-- next message (the dropped one's appends, and any between, go with it).
local function drop_oldest()
  local o = redis.call('LPOP', order)
  local key = redis.call('HGET', msgs, o .. ':key')
  local oid = redis.call('HGET', msgs, o .. ':id')
  if key and redis.call('HGET', msgs, key) == o then redis.call('HDEL', msgs, key) end
  if oid and redis.call('HGET', msgs, 'i:' .. oid) == o then redis.call('HDEL', msgs, 'i:' .. oid) end
  drop_fold(o)
  redis.call('HDEL', msgs, o .. ':r', o .. ':key', o .. ':id')
  local nxt = redis.call('LINDEX', order, 0)
  if nxt then redis.call('XTRIM', stream, 'MINID', nxt .. '-0') else redis.call('DEL', stream) end
end

if size > 0 then
  -- Explicit ids '<offset>-0' make XRANGE by offset exact. Trimming counts messages (the order list).
  redis.call('XADD', stream, off .. '-0', 'p', message)
  if target then
    fold(target)
  else
    local key = 'k:' .. scope .. '\\0' .. id
    redis.call('HSET', msgs, key, off, 'i:' .. id, off, off .. ':key', key, off .. ':id', id, off .. ':r', kind)
    redis.call('RPUSH', order, off)
  end
  while redis.call('LLEN', order) > size do drop_oldest() end
  for _, k in ipairs({stream, msgs, order}) do
    if hist_ttl >= 0 then redis.call('PEXPIRE', k, hist_ttl) else redis.call('PERSIST', k) end
  end
else
  redis.call('DEL', stream, msgs, order)
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
 * KEYS[1] meta hash; KEYS[2] history stream; KEYS[3] message hash; KEYS[4] message order list.
 * ARGV[1] meta TTL ms (-1 = none); ARGV[2] epoch seed;
 * ARGV[3] mode: 'since' (entries with offset >= ARGV[4]), 'last' (the last ARGV[5]), 'all', 'none',
 * 'compact' (the last ARGV[5] messages, or all with -1, each with its fold state);
 * ARGV[4] first offset wanted (mode 'since'); ARGV[5] limit (-1 = no limit).
 *
 * Returns {epoch, offset, earliestOffset, message...} in ascending offset order; in mode
 * 'compact' each message is {message, state, through, data, {name, field, ...}} (false where absent,
 * see the publish script). Stream entries older than the first listed message (written before
 * messages were listed) are returned as messages without state.
 */
export const HISTORY_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
${NEW_EPOCH_FN}
local meta, stream, msgs, order = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode = ARGV[3]
local limit = tonumber(ARGV[5])

local state = redis.call('HMGET', meta, 'epoch', 'offset')
local epoch, offset = state[1], tonumber(state[2])
if not epoch then
  epoch = new_epoch(meta, stream, msgs, order, ARGV[2], tonumber(ARGV[1]))
  offset = 0
end

local earliest = offset + 1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first > 0 then earliest = tonumber(string.match(first[1][1], '^(%d+)')) end

local out = {epoch, offset, earliest}
if mode == 'compact' then
  local offs
  if limit >= 0 then offs = redis.call('LRANGE', order, -limit, -1) else offs = redis.call('LRANGE', order, 0, -1) end
  -- Entries before the first listed message: written by a node that did not list messages.
  local legacy = {}
  if limit < 0 or #offs < limit then
    local head = redis.call('LINDEX', order, 0)
    local upto = '+'
    if head then upto = '(' .. head .. '-0' end
    local rev
    if limit < 0 then rev = redis.call('XREVRANGE', stream, upto, '-') else rev = redis.call('XREVRANGE', stream, upto, '-', 'COUNT', limit - #offs) end
    for i = #rev, 1, -1 do legacy[#legacy + 1] = rev[i][2][2] end
  end
  for i = 1, #legacy do out[#out + 1] = {legacy[i], false, false, false, {}} end
  for i = 1, #offs do
    local o = offs[i]
    local e = redis.call('XRANGE', stream, o .. '-0', o .. '-0')
    if #e > 0 then
      local st = redis.call('HMGET', msgs, o .. ':k', o .. ':t', o .. ':d', o .. ':n')
      local fields = {}
      each_name(st[4], function(name)
        fields[#fields + 1] = name
        fields[#fields + 1] = redis.call('HGET', msgs, o .. ':f:' .. name)
      end)
      out[#out + 1] = {e[1][2][2], st[1] or false, st[2] or false, st[3] or false, fields}
    end
  end
  return out
end

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

/**
 * Compaction of a Yjs document's stream (src/yjs/compactor.ts), atomically with the trim: the
 * entries with offsets <= through are replaced by the parts, at offsets through-#parts+1 … through;
 * the entries after `through` are kept as they were (re-added with their ids: a stream only grows
 * at its end). The stream's TTL is kept; the parts carry the time of the publication at `through`
 * (the newest they stand for), so times stay in offset order.
 *
 * The entry at `through` must still be the publication the parts were computed from (its id): a
 * compaction by another node since may have put its own parts there, covering offsets after
 * `through` that these parts do not hold; replacing them would cut that snapshot and lose updates.
 * The check reads that entry's header and the first field of its body, which every writer encodes
 * first (\`id\`), by hand: Redis' cmsgpack refuses MessagePack \`bin\`, so it cannot decode an entry
 * that holds bytes. An entry laid out otherwise is not compacted (nothing lost: the next is tried).
 *
 * KEYS[1] meta hash; KEYS[2] history stream; KEYS[3] message order list (appends bookkeeping).
 * ARGV[1] epoch the parts were computed in; ARGV[2] through; ARGV[3] id of the publication at
 * `through` when the parts were computed; ARGV[4…] part bodies (MessagePack).
 *
 * Returns 1, or 0 (nothing changed) when the epoch differs, `through` is not retained or holds
 * another publication, the parts would need offsets older than the oldest retained entry, or the
 * channel keeps appends bookkeeping (its message index would not match the parts).
 */
export const COMPACT_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local meta, stream, order = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'epoch')
if epoch ~= ARGV[1] then return 0 end
if redis.call('EXISTS', order) == 1 then return 0 end
local through = tonumber(ARGV[2])
local nparts = #ARGV - 3
if nparts < 1 then return 0 end
local at = string.format('%d-0', through)
local here = redis.call('XRANGE', stream, at, at)
if #here == 0 then return 0 end
-- A MessagePack string or non-negative integer at byte pos: its value and the next pos (nil otherwise).
local function scalar(s, pos)
  local b = string.byte(s, pos)
  if not b then return nil end
  if b <= 0x7f then return b, pos + 1 end
  local n, from
  if b >= 0xa0 and b <= 0xbf then n, from = b - 0xa0, pos + 1
  elseif b == 0xd9 then n, from = string.byte(s, pos + 1), pos + 2
  elseif b == 0xda then n, from = string.byte(s, pos + 1) * 256 + string.byte(s, pos + 2), pos + 3
  end
  if n then return string.sub(s, from, from + n - 1), from + n end
  local width = ({[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8})[b]
  if not width then return nil end
  local v = 0
  for i = 1, width do v = v * 256 + string.byte(s, pos + i) end
  return v, pos + 1 + width
end
-- [epoch, offset, time, {id, ...}]: the time and the body's id.
local function time_and_id(m)
  if string.byte(m, 1) ~= 0x94 then return nil end
  local _, pos = scalar(m, 2)
  if not pos then return nil end
  _, pos = scalar(m, pos)
  if not pos then return nil end
  local time
  time, pos = scalar(m, pos)
  if type(time) ~= 'number' then return nil end
  local b = string.byte(m, pos)
  if b and b >= 0x80 and b <= 0x8f then pos = pos + 1 elseif b == 0xde then pos = pos + 3 else return nil end
  local key
  key, pos = scalar(m, pos)
  if key ~= 'id' then return nil end
  return time, (scalar(m, pos))
end
local time, id = time_and_id(here[1][2][2])
if not time or id ~= ARGV[3] then return 0 end
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local earliest = tonumber(string.match(first[1][1], '^(%d+)'))
local start = through - nparts + 1
if start < earliest then return 0 end
local ttl = redis.call('PTTL', stream)
local tail = redis.call('XRANGE', stream, string.format('%d-0', through + 1), '+')
redis.call('DEL', stream)
for i = 1, nparts do
  local off = start + i - 1
  local message = '\\148' .. cmsgpack.pack(epoch) .. cmsgpack.pack(off) .. cmsgpack.pack(time) .. ARGV[i + 3]
  redis.call('XADD', stream, string.format('%d-0', off), 'p', message)
end
for i = 1, #tail do redis.call('XADD', stream, tail[i][1], 'p', tail[i][2][2]) end
if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
return 1
`;

/** Every script the gateway runs. */
export const SCRIPTS = {
  publish: new LuaScript('publish', PUBLISH_SCRIPT),
  history: new LuaScript('history', HISTORY_SCRIPT),
  presenceAdd: new LuaScript('presence add', PRESENCE_ADD_SCRIPT),
  presenceList: new LuaScript('presence list', PRESENCE_LIST_SCRIPT),
  compact: new LuaScript('compact', COMPACT_SCRIPT),
} as const;
