/**
 * The Lua scripts: every operation that must be atomic runs as one script over one stream's keys
 * (KEYS are always that stream's `meta` and/or `log`, so they share a cluster slot).
 *
 * Invariants the scripts keep (cited as R1..R6):
 * - R1 `meta.seq` is the last sequence assigned; an append of n events takes seq+1 .. seq+n and
 *      XADDs them with IDs `<seq>-<epoch>` in the same script, so sequences are dense and gapless
 *      whatever the number of publishing processes.
 * - R2 `meta.epoch` is created with the stream (a random integer chosen by the caller, never 0)
 *      and is the second part of every event ID; an ID whose part differs belongs to another life
 *      of the stream (dropped by TTL, lost in a restart) or is an end marker (part 0).
 * - R3 Idempotency: `meta.p:<client>` = `<counter>:<first seq>:<time>` of that client's last append
 *      on this stream. A client has one append call in flight per stream, so a call carrying the
 *      stored counter is a re-send of an applied call and returns its first seq without applying.
 * - R4 Close/fail sets `meta.state` and appends the end marker `<seq+1>-0` once; appends after it
 *      are refused. The marker sorts after every event, so a reader that reaches it has read all.
 * - R5 Retention: `maxLength` is a logical window (first = max(oldest kept, seq+1-maxLength)),
 *      with the log physically trimmed to `~ maxLength + slack`; `maxAgeMs` trims by the `t` field
 *      (server time) from the head; `ttlMs` re-arms PEXPIRE on both keys at every append.
 * - R6 A `log` key without a `meta` key, or an entry whose ID is not `<seq>-<epoch>` or
 *      `<seq>-0`, was not written by Weft: the script fails with `WEFTFOREIGN`.
 */

const PRELUDE = `
local function fmt(n) return string.format('%d', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function id_parts(id)
  local s, e = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(s), e
end
local function field(fields, name)
  for i = 1, #fields, 2 do if fields[i] == name then return fields[i + 1] end end
  return nil
end
local function foreign(log, what)
  error({err = 'WEFTFOREIGN redis key ' .. log .. ' ' .. what .. ': it was not written by Weft'})
end
-- R2: the stream's epoch, last seq and state; created (with the caller's epoch) when missing.
local function ensure(meta, log, candidate, ttl)
  local h = redis.call('HMGET', meta, 'epoch', 'seq', 'state')
  if h[1] then return h[1], tonumber(h[2]), h[3] end
  if redis.call('EXISTS', log) == 1 then foreign(log, 'exists without its meta key ' .. meta) end
  redis.call('HSET', meta, 'epoch', candidate, 'seq', 0)
  if ttl > 0 then redis.call('PEXPIRE', meta, ttl) end
  return candidate, 0, false
end
-- R5: trims the entries older than cutoff from the head; stops at the end marker.
local function trim_age(log, cutoff)
  local cut, start, count = nil, '-', 1
  while true do
    local r = redis.call('XRANGE', log, start, '+', 'COUNT', count)
    local stop = #r < count
    for i = 1, #r do
      local s, part = id_parts(r[i][1])
      local t = tonumber(field(r[i][2], 't') or '')
      if part == '0' or t == nil or t >= cutoff then stop = true; break end
      cut = s
    end
    if stop then break end
    start = '(' .. r[#r][1]
    if count < 256 then count = count * 4 end
  end
  if cut then redis.call('XTRIM', log, 'MINID', fmt(cut + 1)) end
end
-- R5: the oldest retained sequence (seq + 1 when none is).
local function first_seq(log, seq, epoch, maxLength)
  local first = seq + 1
  local r = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #r > 0 then
    local s, part = id_parts(r[1][1])
    if s == nil or (part ~= epoch and part ~= '0') then foreign(log, 'holds entry ' .. r[1][1]) end
    if part ~= '0' then first = s end
  end
  if maxLength >= 0 and first < seq + 1 - maxLength then first = seq + 1 - maxLength end
  return first
end
`;

/**
 * KEYS meta, log. ARGV candidate epoch, client, counter, maxLength (-1: none), slack, maxAgeMs
 * (0: none), ttlMs (0: none), n, then (topic or '', data) n times.
 * Returns the first seq, or {'closed', state, message}, or {'stale', stored}.
 */
export const APPEND = `${PRELUDE}
local meta, log = KEYS[1], KEYS[2]
local counter = tonumber(ARGV[3])
local maxLength, slack = tonumber(ARGV[4]), tonumber(ARGV[5])
local maxAge, ttl, n = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local pf = 'p:' .. ARGV[2]
local prev = redis.call('HGET', meta, pf)
if prev then
  local c, f = string.match(prev, '^(%d+):(%d+)')
  c = tonumber(c)
  if c == counter then return tonumber(f) end
  if c > counter then return {'stale', prev} end
end
local epoch, seq, state = ensure(meta, log, ARGV[1], ttl)
if state then return {'closed', state, redis.call('HGET', meta, 'error') or ''} end
local ms = now_ms()
local t = fmt(ms)
local a = 9
for s = seq + 1, seq + n do
  local id = fmt(s) .. '-' .. epoch
  local topic = ARGV[a]
  if topic == '' then redis.call('XADD', log, id, 't', t, 'd', ARGV[a + 1])
  else redis.call('XADD', log, id, 't', t, 'k', topic, 'd', ARGV[a + 1]) end
  a = a + 2
end
if maxLength >= 0 then redis.call('XTRIM', log, 'MAXLEN', '~', maxLength + slack) end
if maxAge > 0 then trim_age(log, ms - maxAge) end
redis.call('HSET', meta, 'seq', fmt(seq + n), pf, ARGV[3] .. ':' .. fmt(seq + 1) .. ':' .. t)
if not prev and redis.call('HLEN', meta) > 256 then
  -- Forget the idempotency records of clients idle for 10 minutes (far past any retry).
  local all = redis.call('HGETALL', meta)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'p:' then
      local when = tonumber(string.match(all[i + 1], ':(%d+)$') or '0')
      if when < ms - 600000 then redis.call('HDEL', meta, all[i]) end
    end
  end
end
if ttl > 0 then
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', log, ttl)
end
return seq + 1
`;

/** KEYS meta, log. ARGV candidate epoch, ttlMs, maxLength, maxAgeMs. Returns {epoch, seq, state or '', first}. */
export const BOUNDS = `${PRELUDE}
local meta, log = KEYS[1], KEYS[2]
local ttl, maxLength, maxAge = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local epoch, seq, state = ensure(meta, log, ARGV[1], ttl)
if maxAge > 0 then trim_age(log, now_ms() - maxAge) end
return {epoch, seq, state or '', first_seq(log, seq, epoch, maxLength)}
`;

/**
 * KEYS meta, log. ARGV from, count, maxLength, maxAgeMs.
 * Returns {epoch or '', seq, first, entries from 'from' (at most count; may end with the marker)}.
 */
export const READ = `${PRELUDE}
local meta, log = KEYS[1], KEYS[2]
local from, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxLength, maxAge = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', meta, 'epoch', 'seq')
if not h[1] then
  if redis.call('EXISTS', log) == 1 then foreign(log, 'exists without its meta key ' .. meta) end
  return {'', 0, 1, {}}
end
local seq = tonumber(h[2])
if maxAge > 0 then trim_age(log, now_ms() - maxAge) end
local first = first_seq(log, seq, h[1], maxLength)
if from < first or from > seq then return {h[1], seq, first, {}} end
return {h[1], seq, first, redis.call('XRANGE', log, fmt(from), '+', 'COUNT', count)}
`;

/** KEYS meta, log. ARGV candidate epoch, ttlMs, state ('closed' | 'failed'), message, name. Returns 1, or 0 when already ended. */
export const END = `${PRELUDE}
local meta, log = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local epoch, seq, state = ensure(meta, log, ARGV[1], ttl)
if state then return 0 end
local id = fmt(seq + 1) .. '-0'
local t = fmt(now_ms())
if ARGV[3] == 'failed' then
  redis.call('HSET', meta, 'state', 'failed', 'error', ARGV[4], 'errname', ARGV[5])
  redis.call('XADD', log, id, 't', t, 'x', 'failed', 'm', ARGV[4], 'n', ARGV[5])
else
  redis.call('HSET', meta, 'state', 'closed')
  redis.call('XADD', log, id, 't', t, 'x', 'closed')
end
if ttl > 0 then
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', log, ttl)
end
return 1
`;

/**
 * KEYS meta, log. ARGV candidate epoch, ttlMs, group, start ('start' | 'end' | a sequence).
 * Creates the group when missing (an existing group keeps its cursor). Returns 1 created, 0 existed.
 */
export const GROUP_ENSURE = `${PRELUDE}
local meta, log = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local epoch, seq, state = ensure(meta, log, ARGV[1], ttl)
local start = ARGV[4]
if start == 'start' then start = '0-0'
elseif start == 'end' then start = fmt(seq) .. '-18446744073709551615'
else start = fmt(tonumber(start) - 1) .. '-18446744073709551615' end
local ok = redis.pcall('XGROUP', 'CREATE', log, ARGV[3], start, 'MKSTREAM')
if type(ok) == 'table' and ok.err then
  if string.find(ok.err, 'BUSYGROUP', 1, true) then return 0 end
  return ok
end
-- A log created here expires with its meta (whatever TTL this handle was opened with).
if redis.call('PTTL', log) == -1 then
  local left = redis.call('PTTL', meta)
  if left > 0 then redis.call('PEXPIRE', log, left) end
end
return 1
`;

/** KEYS log. ARGV group. The group's last delivered ID ('0-0' when the key or group is missing). */
export const GROUP_CURSOR = `
if redis.call('EXISTS', KEYS[1]) == 0 then return '0-0' end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local name, last = nil, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == ARGV[1] then return last end
end
return '0-0'
`;

/**
 * KEYS log. ARGV group, consumer, minIdleMs, cursor, count.
 * XAUTOCLAIM (which counts a delivery), then each claimed entry's delivery count from XPENDING.
 * Returns {next cursor, entries, counts}.
 */
export const GROUP_CLAIM = `
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local entries = r[2]
local counts = {}
for i = 1, #entries do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entries[i][1], entries[i][1], 1)
  counts[i] = (p[1] and p[1][4]) or 1
end
return {r[1], entries, counts}
`;

/** KEYS meta, log. ARGV group, seqs... XACK of `<seq>-<epoch>` (unknown ones count 0). Returns the number acked. */
export const GROUP_ACK = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local n, ids = 0, {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i] .. '-' .. epoch
  if #ids == 500 or i == #ARGV then
    local r = redis.pcall('XACK', KEYS[2], ARGV[1], unpack(ids))
    if type(r) == 'number' then n = n + r end
    ids = {}
  end
end
return n
`;

/**
 * KEYS meta, log. ARGV group, consumer, seqs... Makes the entries still pending for `consumer`
 * claimable at once: XCLAIM to it with a huge IDLE and the delivery count unchanged (JUSTID does not
 * count one). An entry another consumer has claimed since is left alone.
 */
export const GROUP_RELEASE = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i] .. '-' .. epoch
  local p = redis.pcall('XPENDING', KEYS[2], ARGV[1], id, id, 1)
  if type(p) == 'table' and p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[2], ARGV[1], p[1][2], 0, id, 'IDLE', '100000000000', 'RETRYCOUNT', p[1][4], 'JUSTID')
    n = n + 1
  end
end
return n
`;

/** Every script, as ioredis `defineCommand` takes them (it runs EVALSHA and falls back to EVAL after a restart). */
export const SCRIPTS = {
  weftAppend: { numberOfKeys: 2, lua: APPEND },
  weftBounds: { numberOfKeys: 2, lua: BOUNDS },
  weftRead: { numberOfKeys: 2, lua: READ },
  weftEnd: { numberOfKeys: 2, lua: END },
  weftGroupEnsure: { numberOfKeys: 2, lua: GROUP_ENSURE },
  weftGroupCursor: { numberOfKeys: 1, lua: GROUP_CURSOR },
  weftGroupClaim: { numberOfKeys: 1, lua: GROUP_CLAIM },
  weftGroupAck: { numberOfKeys: 2, lua: GROUP_ACK },
  weftGroupRelease: { numberOfKeys: 2, lua: GROUP_RELEASE },
} as const;

type Arg = string | Buffer | number;
/** The script commands as ioredis defines them on a client (Buffer variants where data comes back). */
export interface ScriptCommands {
  weftAppend(meta: string, log: string, argv: Arg[]): Promise<number | [string, string, string]>;
  weftBounds(meta: string, log: string, argv: Arg[]): Promise<[string, number, string, number]>;
  weftReadBuffer(meta: string, log: string, argv: Arg[]): Promise<[Buffer, number, number, unknown[]]>;
  weftEnd(meta: string, log: string, argv: Arg[]): Promise<number>;
  weftGroupEnsure(meta: string, log: string, argv: Arg[]): Promise<number>;
  weftGroupCursor(log: string, argv: Arg[]): Promise<string>;
  weftGroupClaimBuffer(log: string, argv: Arg[]): Promise<[Buffer, unknown[], number[]]>;
  weftGroupAck(meta: string, log: string, argv: Arg[]): Promise<number>;
  weftGroupRelease(meta: string, log: string, argv: Arg[]): Promise<number>;
}
