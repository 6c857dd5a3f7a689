//! The Lua scripts that make each Redis primitive atomic. Redis runs a script to
//! completion before any other command, so each check-then-write below is one atomic step.
//!
//! Redis's Lua numbers are doubles. The scripts therefore never do arithmetic on values
//! that can exceed 2^53: record versions are compared as strings and incremented with
//! `HINCRBY`; counters are changed with `INCRBY` and compared with an exact decimal-string
//! comparison; log sequence numbers are kept below 2^53 by `state::limits` and formatted
//! with `%d`. Every reply is a flat array the Rust side decodes by position.
//!
//! The scripts touch keys they compute (index sets named in a record's fields, record keys
//! of listed ids), which standalone and Sentinel Redis allow and Redis Cluster does not;
//! this adapter does not support Cluster.

use redis::Script;

/// All scripts, hashed once at connect.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) put: Script,
    pub(super) delete: Script,
    pub(super) list: Script,
    pub(super) counter_add: Script,
    pub(super) lease_acquire: Script,
    pub(super) lease_renew: Script,
    pub(super) lease_release: Script,
    pub(super) log_head: Script,
    pub(super) log_append: Script,
    pub(super) presence_claim: Script,
    pub(super) presence_beat: Script,
    pub(super) presence_leave: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            put: Script::new(&format!("{UNLINK}{PUT}")),
            delete: Script::new(&format!("{UNLINK}{DELETE}")),
            list: Script::new(LIST),
            counter_add: Script::new(&format!("{CMP}{COUNTER_ADD}")),
            lease_acquire: Script::new(LEASE_ACQUIRE),
            lease_renew: Script::new(LEASE_RENEW),
            lease_release: Script::new(LEASE_RELEASE),
            log_head: Script::new(LOG_HEAD),
            log_append: Script::new(LOG_APPEND),
            presence_claim: Script::new(PRESENCE_CLAIM),
            presence_beat: Script::new(PRESENCE_BEAT),
            presence_leave: Script::new(PRESENCE_LEAVE),
        }
    }
}

/// Removes a record's id from every index set its hash lists (fields `x:<set key>`) and
/// drops those fields.
const UNLINK: &str = r#"
local function unlink(record, id)
  local fields = redis.call('HKEYS', record)
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 2) == 'x:' then
      redis.call('ZREM', string.sub(f, 3), id)
      redis.call('HDEL', record, f)
    end
  end
end
"#;

/// KEYS: record, namespace set. ARGV: mode (`any`/`absent`/`version`), expected version,
/// value, ttl ms (`0` = none), id, index set keys...
/// Reply: `{1, new version}` or `{0, current version or -1}`.
const PUT: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'n')
if ARGV[1] == 'absent' and cur then return {0, tonumber(cur)} end
if ARGV[1] == 'version' and cur ~= ARGV[2] then
  if cur then return {0, tonumber(cur)} else return {0, -1} end
end
unlink(KEYS[1], ARGV[5])
local version = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'v', ARGV[3])
for i = 6, #ARGV do
  redis.call('ZADD', ARGV[i], 0, ARGV[5])
  redis.call('HSET', KEYS[1], 'x:' .. ARGV[i], '')
end
redis.call('ZADD', KEYS[2], 0, ARGV[5])
if ARGV[4] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {1, version}
"#;

/// KEYS: record, namespace set. ARGV: mode, expected version, id.
/// Reply: `{1, 0}` or `{0, current version or -1}`.
const DELETE: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'n')
if ARGV[1] == 'absent' and cur then return {0, tonumber(cur)} end
if ARGV[1] == 'version' and cur ~= ARGV[2] then
  if cur then return {0, tonumber(cur)} else return {0, -1} end
end
if cur then
  unlink(KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[3])
return {1, 0}
"#;

/// Lists live ids of a sorted set, dropping members whose record is gone (expired) or no
/// longer lists this set (rewritten).
/// KEYS: the set. ARGV: start bound (`-` or `(after`), limit, record key prefix, and the
/// membership field to require (empty: the record only has to exist).
/// Reply: the ids.
const LIST: &str = r#"
local out = {}
local start = ARGV[1]
local limit = tonumber(ARGV[2])
while #out < limit do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, limit - #out)
  if #batch == 0 then break end
  for _, id in ipairs(batch) do
    local live
    if ARGV[4] == '' then
      live = redis.call('EXISTS', ARGV[3] .. id) == 1
    else
      live = redis.call('HEXISTS', ARGV[3] .. id, ARGV[4]) == 1
    end
    if live then
      out[#out + 1] = id
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  start = '(' .. batch[#batch]
end
return out
"#;

/// Compares two canonical decimal integer strings exactly: -1, 0 or 1.
const CMP: &str = r#"
local function cmp(a, b)
  local an = string.sub(a, 1, 1) == '-'
  local bn = string.sub(b, 1, 1) == '-'
  if an ~= bn then
    if an then return -1 else return 1 end
  end
  local r
  if #a ~= #b then
    if #a < #b then r = -1 else r = 1 end
  elseif a == b then
    r = 0
  elseif a < b then
    r = -1
  else
    r = 1
  end
  if an then r = -r end
  return r
end
"#;

/// KEYS: counter. ARGV: delta, limit (empty: none).
/// Reply: `{1, new value}`, `{0, unchanged value}` (limit), `{-1, error}` (overflow) or
/// `{-2, ''}` (not an integer). Values are decimal strings, exact for all of i64.
const COUNTER_ADD: &str = r#"
local before = redis.call('GET', KEYS[1])
if before and not string.match(before, '^%-?%d+$') then return {-2, ''} end
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then return {-1, r.err} end
local now = redis.call('GET', KEYS[1])
if ARGV[2] ~= '' and cmp(now, ARGV[2]) > 0 then
  if before then redis.call('SET', KEYS[1], before) else redis.call('DEL', KEYS[1]) end
  return {0, before or '0'}
end
return {1, now}
"#;

/// KEYS: lease, fence counter. ARGV: token, ttl ms, holder instance id (empty: a store that
/// has not joined), holder incarnation, alive-key prefix (`P a:`).
/// Reply: `{1, fence}` (free), `{2, fence}` (taken over from a dead holder), `{0, remaining
/// ms}` (held) or `{-1, 0}` (a lease without expiry).
///
/// A live lease is taken over at once when its holder is dead: an older incarnation of the
/// acquirer's own instance id (the acquirer is its restart), or a holder whose alive key is
/// gone or names another incarnation (see `presence`). A lease without holder fields
/// (taken by a store that has not joined) is only ever free once it expires.
const LEASE_ACQUIRE: &str = r#"
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then return {-1, 0} end
local status = 1
if pttl >= 0 then
  local held = redis.call('HMGET', KEYS[1], 'i', 'c')
  local id, inc = held[1], held[2]
  local dead = false
  if id and inc and id ~= '' then
    if id == ARGV[3] then
      dead = tonumber(inc) < tonumber(ARGV[4])
    else
      local alive = redis.call('GET', ARGV[5] .. id)
      dead = (not alive) or string.sub(alive, 1, #inc + 1) ~= inc .. ':'
    end
  end
  if not dead then return {0, pttl} end
  status = 2
end
local fence = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 't', ARGV[1], 'f', fence)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'i', ARGV[3], 'c', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {status, fence}
"#;

/// KEYS: lease. ARGV: token, fence, ttl ms. Reply: 1 renewed, 0 lost.
const LEASE_RENEW: &str = r#"
local held = redis.call('HMGET', KEYS[1], 't', 'f')
if held[1] == ARGV[1] and held[2] == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"#;

/// KEYS: lease. ARGV: token, fence. Reply: 1 released, 0 lost.
const LEASE_RELEASE: &str = r#"
local held = redis.call('HMGET', KEYS[1], 't', 'f')
if held[1] == ARGV[1] and held[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// KEYS: head, entries. Reply: `{head seq or 0, head bytes or nil}`.
const LOG_HEAD: &str = r#"
local head = redis.call('GET', KEYS[1])
if not head then return {0, false} end
return {tonumber(head), redis.call('HGET', KEYS[2], head)}
"#;

/// KEYS: head, entries. ARGV: expected next seq, entries...
/// Reply: `{1, first, nil}` or `{0, head seq or 0, head bytes or nil}`.
const LOG_APPEND: &str = r#"
local head_s = redis.call('GET', KEYS[1])
local head = tonumber(head_s or '0')
if head + 1 ~= tonumber(ARGV[1]) then
  if head_s then return {0, head, redis.call('HGET', KEYS[2], head_s)} end
  return {0, 0, false}
end
local seq = head
for i = 2, #ARGV do
  seq = seq + 1
  redis.call('HSET', KEYS[2], string.format('%d', seq), ARGV[i])
end
redis.call('SET', KEYS[1], string.format('%d', seq))
return {1, head + 1, false}
"#;

/// KEYS: alive key, incarnation counter. ARGV: alive ttl ms.
/// Reply: `{1, new incarnation}` (claimed: the alive key now says `<incarnation>:0`) or
/// `{0, the alive key's current value}` (someone holds it).
const PRESENCE_CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local n = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('SET', KEYS[1], n .. ':0', 'PX', ARGV[1])
return {1, n}
"#;

/// KEYS: alive key. ARGV: own incarnation prefix (`<n>:`), new value, alive ttl ms.
/// Reply: 1 beaten, 0 the key names another incarnation (a newer process took the id).
/// A key that lapsed (a long Redis outage) is claimed again: nobody newer took it.
const PRESENCE_BEAT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// KEYS: alive key. ARGV: own incarnation prefix. Reply: 1 deleted, 0 not ours.
const PRESENCE_LEAVE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;
