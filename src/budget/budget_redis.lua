-- budget_redis.lua — the Redis backend's one server-side script: every
-- change to a Redis budget is one call of it, so each admission, charge
-- and settlement is applied whole or not at all (Redis runs a script
-- atomically, and its AOF logs the script's effects as one unit).
--
-- KEYS[1] is the budget's configuration hash, "llmmeter:{NAME}:cfg"; every
-- other key shares its prefix and so its hash tag ({NAME}: one cluster
-- slot). ARGV[1] names the operation, ARGV[2] is the client's clock (epoch
-- seconds; windows and activity), ARGV[3] is unused, ARGV[4..8] the start of the current
-- window of each kind (lifetime, hour, day, week, month) as the client's
-- window.c computes them — one calendar, in C, for both backends.
--
-- Money is integer pico-USD. Redis stores it exactly (HINCRBY, int64);
-- Lua's numbers are doubles, exact to 2^53 (about $9,007), so amounts are
-- compared as two limbs (big, add, le below) and every delta written back
-- is formatted as an integer (I). A call's own amounts stay far below 2^53.
--
-- Counter sets (hashes): the total ("tot"), model rows ("m:MODEL|PROVIDER")
-- and agent rows ("a:AGENT"). Field w is the window the history counts
-- belong to; sp spent, rq requests, dn denied, um unmetered, up unpriced,
-- t0..t13 tokens by kind are history (zeroed when the window turns); rs
-- reserved, rr reserved requests, rt reserved tokens (the total's only) are
-- in-flight and never reset. Leases: "l:ID" hashes (rs, rt, ch, t0..t13
-- cumulative as sent, m, a row keys, d dollars, st a/s/r: active, settled,
-- reclaimed) and "leases", a sorted set of active ids scored by expiry ms.
-- A settled lease stays five minutes as a tombstone, a reclaimed one an
-- hour, so a retried charge or settle applies nothing twice.
--
-- Rates (rpm, tpm, input/output tpm, rate rules): "rate", a hash of each
-- bucket's theoretical arrival time in microseconds of the server's clock
-- (GCRA, as shm_rate.c does it in ns of one machine's clock).
local P = string.sub(KEYS[1], 1, -4)
local CFG = KEYS[1]
local TOT = P .. 'tot'
local LEASES = P .. 'leases'
local op = ARGV[1]
local now = ARGV[2]
-- Redis Cluster, while the budget's slot is being migrated to another
-- node: a key of the budget that is not here (moved already, or not yet
-- created) fails the script at its first access, and Redis keeps what the
-- script wrote before it (an expired lease refunded again at every call,
-- say). A key that is never created fails the same way, here, before
-- anything is written: the call is refused until the slot has moved (a
-- MOVED then leads to its new node).
local moving = redis.pcall('EXISTS', P .. 'never')
if type(moving) == 'table' and moving.err then
  return redis.error_reply('MIGRATING its cluster slot is moving to another node')
end
-- Lease expiry runs on the server's clock: the clients' may disagree.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- (about 1.8e15 now: exact in a double until the year 2255)
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local HIST = {'sp', 'rq', 'dn', 'um', 'up', 't0', 't1', 't2', 't3', 't4',
              't5', 't6', 't7', 't8', 't9', 't10', 't11', 't12', 't13'}
-- How long an ended lease stays as a tombstone: a settled one past any
-- retry of its settle (seconds); a reclaimed one for a holder that was
-- only stalled past its TTL and settles late (its charges still land).
local SETTLED_MS, RECLAIMED_MS = 300000, 3600000
local ROWS = 256

local function n(v) return tonumber(v) or 0 end
-- (never "-0", which HINCRBY refuses: an error midway through a script
-- leaves its earlier writes in place)
local function I(x) if x == 0 then return '0' end; return string.format('%.0f', x) end

-- Two-limb non-negative integers from decimal strings: hi * 1e15 + lo.
local function big(s)
  s = s or '0'
  if type(s) == 'number' then s = I(s) end
  if string.sub(s, 1, 1) == '-' then return {0, 0} end
  if #s <= 15 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, -16)), tonumber(string.sub(s, -15))}
end
local function add(a, b)
  local lo, hi = a[2] + b[2], a[1] + b[1]
  if lo >= 1e15 then lo, hi = lo - 1e15, hi + 1 end
  return {hi, lo}
end
local function lt(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local function le(a, b) return not lt(b, a) end
local function str(a)
  if a[1] == 0 then return I(a[2]) end
  return I(a[1]) .. string.format('%015.0f', a[2])
end

-- The configuration, read once per run (one HGETALL, not a HGET a limit).
local C = {}
do
  local kv = redis.call('HGETALL', CFG)
  for i = 1, #kv, 2 do C[kv[i]] = kv[i + 1] end
end
local function cfg(f) local v = C[f]; if v == nil then return false end; return v end
local function limit(f) local v = cfg(f); if v == false then return -1 end; return n(v) end
local wk = math.floor(limit('win'))
if wk < 0 or wk > 4 then wk = 0 end
local win = ARGV[4 + wk]

local function roll(key)
  local w = redis.call('HGET', key, 'w')
  if w == false or n(w) < n(win) then
    redis.call('HDEL', key, unpack(HIST))
    redis.call('HSET', key, 'w', win)
  end
end
local function incr(key, f, d)
  if d ~= 0 then redis.call('HINCRBY', key, f, I(d)) end
end
local function touch(key)
  redis.call('HSETNX', key, 'fa', now)
  redis.call('HSET', key, 'la', now)
end

-- The row key for a name, made if new; "(other)" once ROWS are taken.
local function row(kind, name, provider)
  local set = P .. kind .. 's'
  local id = name
  if kind == 'm' then id = name .. '|' .. provider end
  local key = P .. kind .. ':' .. id
  if redis.call('SISMEMBER', set, id) == 0 then
    if redis.call('SCARD', set) >= ROWS then
      id = '(other)'
      key = P .. kind .. ':' .. id
      if redis.call('SISMEMBER', set, id) == 0 then
        redis.call('SADD', set, id)
        redis.call('HSET', key, 'n', id, 'p', '', 'w', win)
      end
    else
      redis.call('SADD', set, id)
      redis.call('HSET', key, 'n', name, 'p', provider, 'w', win)
    end
  end
  return key
end

-- Applies a step to the total and the call's rows (reserved tokens are the
-- total's alone).
local function apply(m, a, d)
  for _, key in ipairs({TOT, m, a}) do
    if key and key ~= '' then
      incr(key, 'sp', d.sp or 0)
      incr(key, 'rs', d.rs or 0)
      incr(key, 'rq', d.rq or 0)
      incr(key, 'rr', d.rr or 0)
      incr(key, 'dn', d.dn or 0)
      incr(key, 'um', d.um or 0)
      incr(key, 'up', d.up or 0)
      if d.t then
        for k = 0, 13 do incr(key, 't' .. k, d.t[k] or 0) end
      end
    end
  end
  incr(TOT, 'rt', d.rt or 0)
end

-- Spend rules: each a hash "rules" field ID -> "KIND|LIMIT|PATTERN" (KIND
-- as segment.h: target | measure), its counters in "r:ID". A lease names
-- the spend rules that hold its reservation ("rl": "3,7"); a removed rule's
-- id is never reused, so a lease never charges a newer rule.
local RULES = P .. 'rules'
local function each_id(rl, fn)
  if rl and rl ~= '' then
    for id in string.gmatch(rl, '[^,]+') do fn(id, P .. 'r:' .. id) end
  end
end
local function apply_rules(rl, sp, rs)
  each_id(rl, function(_, key)
    roll(key)
    incr(key, 'sp', sp)
    incr(key, 'rs', rs)
  end)
end

-- fnmatch(3) without flags, as the shm backend matches: * ? [set] [!set]
-- and \ escaping the next character, anchored at both ends.
local function glob(p)
  local out, i = {'^'}, 1
  while i <= #p do
    local c = string.sub(p, i, i)
    if c == '*' then table.insert(out, '.*')
    elseif c == '?' then table.insert(out, '.')
    elseif c == '\\' and i < #p then
      i = i + 1
      local e = string.sub(p, i, i)
      table.insert(out, string.match(e, '%w') and e or '%' .. e)
    elseif c == '[' then
      local j = string.find(p, ']', i + 2, true)
      if j then
        local body = string.sub(p, i + 1, j - 1)
        if string.sub(body, 1, 1) == '!' then body = '^' .. string.sub(body, 2) end
        body = string.gsub(body, '%%', '%%%%')
        table.insert(out, '[' .. body .. ']')
        i = j
      else
        table.insert(out, '%[')
      end
    elseif string.match(c, '%p') then table.insert(out, '%' .. c)
    else table.insert(out, c) end
    i = i + 1
  end
  table.insert(out, '$')
  return table.concat(out)
end

-- The rules whose pattern matches the call's model or agent.
local function rules_for(model, agent)
  local kv, out = redis.call('HGETALL', RULES), {}
  for i = 1, #kv, 2 do
    local kind, lim, pat = string.match(kv[i + 1], '^(%d+)|(%-?%d+)|(.*)$')
    if kind then
      kind = tonumber(kind)
      local name = (kind % 256 == 2) and agent or model
      local ok, hit = pcall(string.find, name, glob(pat))
      if ok and hit then
        table.insert(out, {id = kv[i], kind = kind, limit = lim, pattern = pat})
      end
    end
  end
  return out
end

-- Whether a spend rule of the lease has reached its limit (a mid-stream cut).
local function rules_over(rl)
  local over = 0
  each_id(rl, function(id, key)
    local def = redis.call('HGET', RULES, id)
    local lim = def and string.match(def, '^%d+|(%-?%d+)|')
    if lim and tonumber(lim) >= 0 and
       le(big(lim), big(redis.call('HGET', key, 'sp') or '0')) then over = 1 end
  end)
  return over
end

local function soft_limit()
  local s = limit('soft')
  if s >= 0 then return big(s) end
  local h = limit('hard')
  if h < 0 then return nil end
  local hs = cfg('hard')
  -- 80 % of hard, rounded down, exactly: hard * 4 / 5 on two limbs
  local b = big(hs)
  local hi4 = b[1] * 4
  local q_hi = math.floor(hi4 / 5)
  local r = hi4 - q_hi * 5
  local lo = r * 1e15 + b[2] * 4 -- < 5e15 + 4e15 < 2^53
  local q_lo = math.floor(lo / 5)
  local carry = math.floor(q_lo / 1e15)
  return {q_hi + carry, q_lo - carry * 1e15}
end

-- What the total has spent now, and whether this step crossed the soft
-- limit first in this window (recorded once: "sw" = 1 + window).
local function after_spend()
  local sp = redis.call('HGET', TOT, 'sp') or '0'
  local crossed = 0
  local soft = soft_limit()
  if soft and le(soft, big(sp)) and cfg('sw') ~= I(n(win) + 1) then
    redis.call('HSET', CFG, 'sw', I(n(win) + 1))
    C['sw'] = I(n(win) + 1)
    crossed = 1
  end
  return sp, crossed
end

-- A lease's cumulative charges as sent (ARGV[first] money, then 14 token
-- kinds), applied as the difference from what the lease already holds.
local function charge(id, first)
  local lk = P .. 'l:' .. id
  local l = redis.call('HMGET', lk, 'st', 'rs', 'rt', 'ch', 'm', 'a', 'd', 'rl')
  if l[1] == false then return nil end
  local m, a = l[5], l[6]
  if m and m ~= '' then roll(m) end
  if a and a ~= '' then roll(a) end
  roll(TOT)
  local ch = tonumber(ARGV[first])
  local dp = ch - n(l[4])
  local t, dtok = {}, 0
  for k = 0, 13 do
    local v = tonumber(ARGV[first + 1 + k])
    local old = n(redis.call('HGET', lk, 't' .. k))
    t[k] = v - old
    if k == 0 or k == 3 then dtok = dtok + t[k] end
    if t[k] ~= 0 then redis.call('HSET', lk, 't' .. k, I(v)) end
  end
  local take, ttake = 0, 0
  if l[1] == 'a' then
    if l[7] == '1' and dp > 0 then take = math.min(dp, n(l[2])) end
    if dtok > 0 then ttake = math.min(dtok, n(l[3])) end
    if take > 0 then redis.call('HINCRBY', lk, 'rs', I(-take)) end
    if ttake > 0 then redis.call('HINCRBY', lk, 'rt', I(-ttake)) end
  end
  if dp ~= 0 then redis.call('HSET', lk, 'ch', I(ch)) end
  apply(m, a, {sp = dp, rs = -take, rt = -ttake, t = t})
  apply_rules(l[8], dp, -take)
  touch(TOT)
  return l
end

-- Ends a lease: what is left of its reservation goes back.
local function refund(lk, l, dr, counted)
  local rs, rt = n(redis.call('HGET', lk, 'rs')), n(redis.call('HGET', lk, 'rt'))
  if rs < 0 then rs = 0 end
  apply(l[5], l[6], dr)
  apply(l[5], l[6], {rs = -rs, rr = -1, rt = -rt})
  apply_rules(l[8], 0, -rs)
  redis.call('HSET', lk, 'st', counted, 'rs', '0', 'rt', '0')
end

-- Refunds the leases whose holders stopped extending them (a process that
-- died mid-call): at most `max` of them. A reclaimed call that was charged
-- counts as a request, as on the shm backend.
local function reclaim(max)
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now_ms, 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local lk = P .. 'l:' .. id
    local l = redis.call('HMGET', lk, 'st', 'rs', 'rt', 'ch', 'm', 'a', 'd', 'rl')
    if l[1] == 'a' then
      if l[5] and l[5] ~= '' then roll(l[5]) end
      if l[6] and l[6] ~= '' then roll(l[6]) end
      roll(TOT)
      local charged = n(l[4]) > 0
      refund(lk, l, {rq = charged and 1 or 0}, charged and 'rc' or 'r')
      redis.call('PEXPIRE', lk, RECLAIMED_MS)
      redis.call('HINCRBY', CFG, 'reclaimed', 1)
    end
    redis.call('ZREM', LEASES, id)
  end
  return #ids
end

-- Whether est more fits under lim: optimistic admits while spent +
-- reserved is below the limit, strict only if spent + reserved + est fits.
local function fits(strict, spent, reserved, est, lim)
  local with = add(spent, reserved)
  if strict then return le(add(with, est), lim) end
  return lt(with, lim)
end
-- Whether only in-flight reservations stand in the way (they may settle
-- for less: worth waiting for).
local function waitable(strict, spent, est, lim)
  if strict then return le(add(spent, est), lim) end
  return lt(spent, lim)
end

-- The call caps in force: the budget's, or a matching rule's if lower.
local function caps_of(matched)
  local caps = {cfg('mcu') or '-1', cfg('mci') or '-1', cfg('mco') or '-1'}
  for _, r in ipairs(matched or {}) do
    local k = math.floor(r.kind / 256) -- 1 usd, 2 input, 3 output
    if k >= 1 and k <= 3 and n(r.limit) >= 0 and
       (n(caps[k]) < 0 or n(r.limit) < n(caps[k])) then
      caps[k] = r.limit
    end
  end
  return caps
end

local function reply_limits(sp, caps)
  caps = caps or caps_of(nil)
  return {sp, cfg('hard') or '-1', cfg('mode') or '0', I(wk),
          caps[1], caps[2], caps[3],
          cfg('dl') or '-1', cfg('mln') or '-1', cfg('llm') or '0'}
end

-- A refusal. One the caller will retry (it waits for reservations:
-- ARGV[19] = 1, and only reservations block) is not counted as denied.
-- retry: seconds until a rate's turn (nil: the window's, as the client
-- computes it).
local function deny(kind, lim, used, spent, m, a, subject, may_wait, retry)
  local wait = may_wait and ARGV[19] == '1'
  if not wait then apply(m, a, {dn = 1}) end
  local r = reply_limits(redis.call('HGET', TOT, 'sp') or '0')
  table.insert(r, 1, kind)
  table.insert(r, lim)
  table.insert(r, used)
  table.insert(r, spent)
  table.insert(r, subject or '')
  table.insert(r, wait and 1 or 0)
  table.insert(r, retry and I(retry) or '')
  table.insert(r, cfg('dg') or '')
  -- only reservations stand in the way, whether the caller waits or not
  table.insert(r, may_wait and 1 or 0)
  return r
end

-- Rate buckets, GCRA exactly as shm_rate.c: a bucket of PER units a
-- minute holds one minute's worth; its state is the theoretical arrival
-- time (TAT) of the next unit. Taking U units moves it U*60s/PER later
-- (from now, if it is in the past); the take is allowed while TAT - now
-- stays within one minute, or up to max_wait beyond it (the caller sleeps
-- until its turn: a swarm is paced, not refused). Every bucket a call
-- draws from is checked before any is written: all or none, in one step.
local RATE = P .. 'rate'
local MINUTE_US = 60000000
-- The budget's own buckets: config field, what it counts, its name.
local RATES = {{'rpm', 'q', 'rpm'}, {'tpm', 't', 'tpm'},
               {'itpm', 'i', 'input tpm'}, {'otpm', 'o', 'output tpm'}}

-- U units of a bucket of PER a minute, in microseconds (truncated toward
-- zero, as the shm backend's ns; a negative U gives units back).
local function rate_inc(per, units)
  local x = math.floor(math.abs(units) * MINUTE_US / per)
  if units < 0 then return -x end
  return x
end
local function rate_units(what, i, o)
  if what == 'q' then return 1 elseif what == 't' then return i + o
  elseif what == 'i' then return i end
  return o
end
-- Units used in the last minute, as the bucket sees it.
local function rate_used(f, per)
  if per <= 0 then return 0 end
  local tat = n(redis.call('HGET', RATE, f))
  if tat <= now_us then return 0 end
  return math.floor((tat - now_us) * per / MINUTE_US)
end

-- The buckets a call draws from: the budget's rates that have a limit,
-- then the matching rate rules' (by rule id: one order on every run).
local function rate_buckets(matched)
  local out = {}
  for _, b in ipairs(RATES) do
    local per = limit(b[1])
    if per >= 0 then table.insert(out, {f = b[1], what = b[2], name = b[3], per = per}) end
  end
  local rr = {}
  for _, r in ipairs(matched) do
    local m = math.floor(r.kind / 256)
    if (m == 4 or m == 5) and n(r.limit) >= 0 then table.insert(rr, r) end
  end
  table.sort(rr, function(x, y) return n(x.id) < n(y.id) end)
  for _, r in ipairs(rr) do
    table.insert(out, {f = 'r:' .. r.id, what = math.floor(r.kind / 256) == 4 and 'q' or 't',
                       name = r.pattern, per = n(r.limit)})
  end
  return out
end

-- Checks the call's turn in every bucket (in, out: its estimated tokens;
-- max_wait µs). Returns nil, the longest wait (µs, >= 0) and the new TATs
-- to write; or the first bucket whose turn is too far and its wait (-1:
-- never, a limit of 0).
local function rates_check(bk, i, o, max_wait)
  local turn, news = 0, {}
  for _, b in ipairs(bk) do
    local units = rate_units(b.what, i, o)
    if units > 0 then
      if b.per == 0 then return b, -1 end
      local tat = n(redis.call('HGET', RATE, b.f))
      local nxt = math.max(tat, now_us) + rate_inc(b.per, units)
      local w = nxt - MINUTE_US - now_us
      if w > max_wait then return b, w end
      table.insert(news, b.f)
      table.insert(news, I(nxt))
      if w > turn then turn = w end
    end
  end
  return nil, turn, news
end

-- A settled call's token buckets are corrected by what it used (admission
-- took its estimate), once: the lease forgets its buckets ("rb") here.
local function rate_correct(lk)
  local l = redis.call('HMGET', lk, 'rb', 'ri', 'ro', 't0', 't3')
  if not l[1] or l[1] == '' then return end
  redis.call('HDEL', lk, 'rb')
  local ei, eo, ai, ao = n(l[2]), n(l[3]), n(l[4]), n(l[5])
  for f, what in string.gmatch(l[1], '([^,=]+)=(%a)') do
    local per = -1
    local id = string.match(f, '^r:(%d+)$')
    if id then
      local def = redis.call('HGET', P .. 'rules', id)
      per = n(def and string.match(def, '^%d+|(%-?%d+)|') or -1)
    else
      per = limit(f)
    end
    local d = per > 0 and rate_inc(per, rate_units(what, ei, eo) - rate_units(what, ai, ao)) or 0
    if d ~= 0 then redis.call('HINCRBY', RATE, f, I(-d)) end
  end
end

-- Deletes every key of the budget (tombstones of settled leases expire on
-- their own); returns 1 if it existed.
local function delete_all()
  for _, kind in ipairs({'m', 'a'}) do
    for _, id in ipairs(redis.call('SMEMBERS', P .. kind .. 's')) do
      redis.call('DEL', P .. kind .. ':' .. id)
    end
    redis.call('DEL', P .. kind .. 's')
  end
  for _, id in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
    redis.call('DEL', P .. 'l:' .. id)
  end
  for id = 1, n(redis.call('GET', P .. 'rule_seq')) do -- removed rules too
    redis.call('DEL', P .. 'r:' .. id)
  end
  redis.call('DEL', RULES, LEASES, TOT, RATE, P .. 'rule_seq')
  return redis.call('DEL', CFG)
end

if op == 'admit' then
  -- ARGV[9] id, [10] ttl ms, [11] model, [12] provider, [13] agent,
  -- [14] est pusd, [15] est tokens, [16] est in, [17] est out, [18] dollars,
  -- [19] 1: the caller waits while only reservations block, [20] how long
  -- it may wait for a rate turn (µs)
  if redis.call('EXISTS', CFG) == 0 then return {'enoent'} end
  reclaim(64)
  local m = row('m', ARGV[11], ARGV[12])
  local a = row('a', ARGV[13], '')
  roll(m); roll(a); roll(TOT)
  local matched = rules_for(ARGV[11], ARGV[13])
  local caps = caps_of(matched)
  local dollars = ARGV[18] == '1'
  local est = big(ARGV[14])
  local est_tok = tonumber(ARGV[15])
  local dl = limit('dl')
  if dl >= 0 and n(now) >= dl then
    return deny('deadline', cfg('dl'), now, '0', m, a)
  end
  local mln = limit('mln')
  if mln >= 0 and limit('llm') >= mln then
    return deny('llm_time', cfg('mln'), cfg('llm') or '0', '0', m, a)
  end
  if dollars and n(caps[1]) >= 0 and lt(big(caps[1]), est) then
    return deny('call_usd', caps[1], ARGV[14], '0', m, a)
  end
  if n(caps[2]) >= 0 and tonumber(ARGV[16]) > n(caps[2]) then
    return deny('call_input', caps[2], ARGV[16], '0', m, a)
  end
  if n(caps[3]) >= 0 and tonumber(ARGV[17]) > n(caps[3]) then
    return deny('call_output', caps[3], ARGV[17], '0', m, a)
  end
  -- rates before the reservation, as on shm: a turn too far away refuses
  -- at once (waiting for reservations cannot bring it closer)
  local ein, eout = tonumber(ARGV[16]), tonumber(ARGV[17])
  local bk = rate_buckets(matched)
  local late, turn, news = rates_check(bk, ein, eout, n(ARGV[20]))
  if late then
    return deny('rate', I(late.per), I(rate_used(late.f, late.per)), '0', m, a,
                late.name, false, turn < 0 and -1 or math.ceil(turn / 1000000))
  end
  local t = redis.call('HMGET', TOT, 'sp', 'rs', 'rq', 'rr', 't0', 't3', 'rt')
  local strict = cfg('mode') == '1'
  local rql = limit('rql')
  if rql >= 0 and n(t[3]) + n(t[4]) + 1 > rql then
    return deny('requests', cfg('rql'), I(n(t[3]) + n(t[4])), I(n(t[3])), m, a)
  end
  local tl = limit('tok')
  if tl >= 0 then
    local settled = n(t[5]) + n(t[6])
    if not fits(strict, big(settled), big(t[7]), big(est_tok), big(cfg('tok'))) then
      return deny('tokens', cfg('tok'), I(settled + n(t[7])), I(settled), m, a, nil,
                  waitable(strict, big(settled), big(est_tok), big(cfg('tok'))))
    end
  end
  if dollars and limit('hard') >= 0 and
     not fits(strict, big(t[1]), big(t[2]), est, big(cfg('hard'))) then
    return deny('hard', cfg('hard'), str(add(big(t[1]), big(t[2]))),
                t[1] or '0', m, a, nil,
                waitable(strict, big(t[1]), est, big(cfg('hard'))))
  end
  local spend = {}
  for _, r in ipairs(matched) do
    if r.kind < 256 and n(r.limit) >= 0 then
      local key = P .. 'r:' .. r.id
      roll(key)
      local rt = redis.call('HMGET', key, 'sp', 'rs')
      if dollars and not fits(strict, big(rt[1]), big(rt[2]), est, big(r.limit)) then
        return deny(r.kind % 256 == 2 and 'agent' or 'model', r.limit,
                    str(add(big(rt[1]), big(rt[2]))), rt[1] or '0', m, a, r.pattern,
                    waitable(strict, big(rt[1]), est, big(r.limit)))
      end
      table.insert(spend, r.id)
    end
  end
  local rl = table.concat(spend, ',')
  local lk = P .. 'l:' .. ARGV[9]
  if redis.call('EXISTS', lk) == 1 then return {'dup'} end
  local rs = dollars and ARGV[14] or '0'
  -- the token buckets it drew from, corrected when it settles
  local tb = {}
  for _, b in ipairs(bk) do
    if b.what ~= 'q' then table.insert(tb, b.f .. '=' .. b.what) end
  end
  if #news > 0 then redis.call('HSET', RATE, unpack(news)) end
  redis.call('HSET', lk, 'st', 'a', 'rs', rs, 'rt', ARGV[15], 'ch', '0',
             'm', m, 'a', a, 'd', dollars and '1' or '0', 'rl', rl,
             'rb', table.concat(tb, ','), 'ri', ARGV[16], 'ro', ARGV[17])
  -- a paced call sleeps for its turn before it sends: its lease lives
  -- that much longer
  redis.call('ZADD', LEASES, now_ms + tonumber(ARGV[10]) + math.ceil(turn / 1000), ARGV[9])
  apply(m, a, {rs = tonumber(rs), rr = 1, rt = est_tok})
  apply_rules(rl, 0, tonumber(rs))
  touch(TOT)
  local r = reply_limits(t[1] or '0', caps)
  table.insert(r, 1, 'ok')
  table.insert(r, I(turn)) -- µs to sleep before the call leaves
  table.insert(r, cfg('dg') or '') -- the --downgrade map, for the next call
  return r

elseif op == 'charge' then
  -- ARGV[9] id, [10] ttl ms, [11] cumulative pusd, [12..25] tokens
  local l = charge(ARGV[9], 11)
  if l and l[1] == 'a' then
    redis.call('ZADD', LEASES, 'XX', now_ms + tonumber(ARGV[10]), ARGV[9])
  end
  local sp, crossed = after_spend()
  return {l and 'ok' or 'gone', sp, crossed, cfg('ons') or '', l and rules_over(l[8]) or 0}

elseif op == 'settle' then
  -- ARGV[9] id, [10] counts (1/0), [11] cumulative pusd, [12..25] tokens,
  -- [26] unmetered, [27] unpriced, [28] LLM ns to add
  local id = ARGV[9]
  local lk = P .. 'l:' .. id
  incr(CFG, 'llm', tonumber(ARGV[28]))
  local l = charge(id, 11)
  local state = 'gone'
  if l then
    state = l[1]
    rate_correct(lk)
    local um, up = tonumber(ARGV[26]), tonumber(ARGV[27])
    if l[1] == 'a' then
      refund(lk, l, {rq = tonumber(ARGV[10]), um = um, up = up}, 's')
      redis.call('ZREM', LEASES, id)
      redis.call('PEXPIRE', lk, SETTLED_MS)
    elseif l[1] == 'r' then
      -- reclaimed under us (it stopped being extended): the call still
      -- counts, once
      apply(l[5], l[6], {rq = tonumber(ARGV[10]), um = um, up = up})
      redis.call('HSET', lk, 'st', 's')
      redis.call('PEXPIRE', lk, SETTLED_MS)
    end
    if up == 1 and l[5] and l[5] ~= '' then redis.call('HSET', l[5], 'f', '1') end
  end
  local sp, crossed = after_spend()
  return {state, sp, crossed, cfg('ons') or '', 0}

elseif op == 'reclaim' then
  return reclaim(1000)

elseif op == 'configure' then
  -- ARGV[9..]: field, value pairs ("-" as value deletes the field)
  redis.call('HSETNX', CFG, 'ca', now)
  for i = 9, #ARGV, 2 do
    if ARGV[i + 1] == '-' then redis.call('HDEL', CFG, ARGV[i])
    else redis.call('HSET', CFG, ARGV[i], ARGV[i + 1]) end
  end
  return 'ok'

elseif op == 'create' then
  -- ARGV[9] force: an existing budget is replaced, else refused
  if redis.call('EXISTS', CFG) == 1 then
    if ARGV[9] ~= '1' then return 'eexist' end
    delete_all()
  end
  redis.call('HSET', CFG, 'ca', now, 'win', '0', 'mode', '0')
  redis.call('HSET', TOT, 'w', win)
  return 'ok'

elseif op == 'remove' then
  return delete_all()

elseif op == 'reset' then
  local keys = {TOT}
  for _, id in ipairs(redis.call('HKEYS', RULES)) do table.insert(keys, P .. 'r:' .. id) end
  for _, kind in ipairs({'m', 'a'}) do
    for _, id in ipairs(redis.call('SMEMBERS', P .. kind .. 's')) do
      table.insert(keys, P .. kind .. ':' .. id)
    end
  end
  for _, key in ipairs(keys) do redis.call('HDEL', key, unpack(HIST)) end
  redis.call('HSET', CFG, 'ra', now, 'sw', '0', 'llm', '0', 'ud', '0', 'uw', '0')
  return 'ok'

elseif op == 'rule' then
  -- ARGV[9] kind, [10] limit (< 0 removes), [11] pattern
  local kind, lim, pat = ARGV[9], ARGV[10], ARGV[11]
  local kv = redis.call('HGETALL', RULES)
  for i = 1, #kv, 2 do
    local k, _, p = string.match(kv[i + 1], '^(%d+)|(%-?%d+)|(.*)$')
    if k == kind and p == pat then
      if n(lim) < 0 then redis.call('HDEL', RULES, kv[i]); redis.call('HDEL', RATE, 'r:' .. kv[i])
      else redis.call('HSET', RULES, kv[i], kind .. '|' .. lim .. '|' .. pat) end
      return 'ok'
    end
  end
  if n(lim) < 0 then return 'ok' end
  if #kv / 2 >= 32 then return 'full' end
  local id = tostring(redis.call('INCR', P .. 'rule_seq'))
  redis.call('HSET', RULES, id, kind .. '|' .. lim .. '|' .. pat)
  -- a rule added live starts from what its rows already spent this window
  local spent = {0, 0}
  if tonumber(kind) < 256 then
    local kindc = (tonumber(kind) % 256 == 2) and 'a' or 'm'
    local g = glob(pat)
    for _, rid in ipairs(redis.call('SMEMBERS', P .. kindc .. 's')) do
      local h = redis.call('HMGET', P .. kindc .. ':' .. rid, 'n', 'w', 'sp')
      local ok, hit = pcall(string.find, h[1] or '', g)
      if ok and hit and n(h[2]) >= n(win) then spent = add(spent, big(h[3])) end
    end
  end
  redis.call('HSET', P .. 'r:' .. id, 'w', win, 'sp', str(spent))
  return 'ok'

elseif op == 'exists' or op == 'open' then
  -- open: a process's first word with a budget it may create (as create
  -- without force would), then what exists says, in one round trip.
  -- exists: whether it exists, its hard limit, and how many spend rules it
  -- has (what the leak guard asks before any call was admitted), and the
  -- --downgrade map (what the meter asks before a first call)
  if op == 'open' and redis.call('EXISTS', CFG) == 0 then
    redis.call('HSET', CFG, 'ca', now, 'win', '0', 'mode', '0')
    redis.call('HSET', TOT, 'w', win)
  end
  local spend = 0
  local kv = redis.call('HGETALL', RULES)
  for i = 2, #kv, 2 do
    local kind, lim = string.match(kv[i], '^(%d+)|(%-?%d+)|')
    if kind and tonumber(kind) < 256 and tonumber(lim) >= 0 then spend = spend + 1 end
  end
  return {redis.call('EXISTS', CFG), cfg('hard') or '-1', spend, cfg('dg') or ''}

elseif op == 'downgrade' then
  -- whether spent (this window's) has reached the soft limit, and the map
  local soft = soft_limit()
  local t = redis.call('HMGET', TOT, 'w', 'sp')
  local sp = big(n(t[1]) >= n(win) and t[2] or '0')
  return {(soft and le(soft, sp)) and 1 or 0, cfg('dg') or ''}

elseif op == 'unmetered' then
  redis.call('HINCRBY', CFG, ARGV[9] == '1' and 'ud' or 'uw', 1)
  return 'ok'

elseif op == 'snapshot' then
  -- The configuration, the total, the count of active leases, then each
  -- row as its kind, then its fields (HGETALL pairs).
  if redis.call('EXISTS', CFG) == 0 then return {'enoent'} end
  local used = {}
  for _, b in ipairs(RATES) do table.insert(used, I(rate_used(b[1], limit(b[1])))) end
  local r = {'ok', win, redis.call('HGETALL', CFG), redis.call('HGETALL', TOT),
             redis.call('ZCARD', LEASES), used}
  for _, kind in ipairs({'m', 'a'}) do
    for _, id in ipairs(redis.call('SMEMBERS', P .. kind .. 's')) do
      table.insert(r, kind)
      table.insert(r, redis.call('HGETALL', P .. kind .. ':' .. id))
    end
  end
  local kv = redis.call('HGETALL', RULES)
  for i = 1, #kv, 2 do
    table.insert(r, 'r')
    local h = redis.call('HGETALL', P .. 'r:' .. kv[i])
    table.insert(h, 'def')
    table.insert(h, kv[i + 1])
    local kind, lim = string.match(kv[i + 1], '^(%d+)|(%-?%d+)|')
    local m = math.floor(n(kind) / 256)
    if m == 4 or m == 5 then
      table.insert(h, 'ru')
      table.insert(h, I(rate_used('r:' .. kv[i], n(lim))))
    end
    table.insert(r, h)
  end
  return r
end
return redis.error_reply('llmmeter: unknown operation')
