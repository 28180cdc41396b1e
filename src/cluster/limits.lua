-- Admits a slice of a client's requests (one, or up to `want` for a busy
-- client) if every limit holds, and counts them; one atomic step, so limits
-- hold exactly across replicas. A slice is at most 1/(16 x replicas) of what
-- any limit has left, so slices held unused by all replicas together are at
-- most a sixteenth of it (the caller gives unused ones back).
-- KEYS: 1 the minute (hash: r:<second> requests, t:<second> tokens, their
--         totals R and T, and o, the oldest second that may still count),
--       2 the day's requests, 3 the budget period (st, sm settled, ht, hm held).
-- ARGV: second, rpm, rpd, tpm, estimated tokens, estimated micro-dollars,
--       day end ms, budget tokens, budget micros, period end ms, seed tokens, seed micros,
--       want (requests in the slice asked for), live replicas.
-- Returns {verdict, n}: 'ok' and the requests admitted, or the limit and
-- when the minute frees room (ms, 0 unknown).
-- A request counts in its second and the sixty after (as one replica counts).
local second = tonumber(ARGV[1])
local rpm, rpd, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget_tokens, budget_micros = tonumber(ARGV[8]), tonumber(ARGV[9])
local each_tokens, each_micros = tonumber(ARGV[5]), tonumber(ARGV[6])
local n = math.max(1, tonumber(ARGV[13]) or 1)
local share = 16 * math.max(1, tonumber(ARGV[14]) or 1)
-- Keeps the slice within its share of `room`, each request taking `each`.
local function fit(room, each)
  if each > 0 then n = math.min(n, math.floor(room / (share * each))) end
end
if rpd > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if used >= rpd then return {'rpd', 0} end
  fit(rpd - used, 1)
end
if rpm > 0 or tpm > 0 then
  -- Running totals (R, T) and the oldest second that may still hold counts
  -- (o): an admission expires only the seconds that just left the window,
  -- so it costs the same at 1 rpm or 100 million.
  local head = redis.call('HMGET', KEYS[1], 'R', 'T', 'o')
  local requests, tokens = tonumber(head[1]) or 0, tonumber(head[2]) or 0
  local oldest = tonumber(head[3]) or second
  local last_gone = second - 61
  if oldest <= last_gone then
    if last_gone - oldest > 122 then
      -- A long way behind (clocks apart): count again from every field.
      requests, tokens = 0, 0
      local fields = redis.call('HGETALL', KEYS[1])
      for i = 1, #fields, 2 do
        local at = tonumber(string.sub(fields[i], 3))
        local kind = string.sub(fields[i], 1, 2)
        if at ~= nil and at <= last_gone then
          redis.call('HDEL', KEYS[1], fields[i])
        elseif kind == 'r:' then
          requests = requests + (tonumber(fields[i + 1]) or 0)
        elseif kind == 't:' then
          tokens = tokens + (tonumber(fields[i + 1]) or 0)
        end
      end
    else
      for s = oldest, last_gone do
        local gone = redis.call('HMGET', KEYS[1], 'r:' .. s, 't:' .. s)
        if gone[1] or gone[2] then
          requests = requests - (tonumber(gone[1]) or 0)
          tokens = tokens - (tonumber(gone[2]) or 0)
          redis.call('HDEL', KEYS[1], 'r:' .. s, 't:' .. s)
        end
      end
    end
    requests, tokens, oldest = math.max(requests, 0), math.max(tokens, 0), last_gone + 1
    redis.call('HSET', KEYS[1], 'R', requests, 'T', string.format('%.0f', tokens), 'o', oldest)
  elseif not head[3] then
    redis.call('HSET', KEYS[1], 'o', second)
  end
  -- When the oldest second holding `prefix` counts leaves the window.
  local function frees(prefix)
    for s = oldest, second do
      if (tonumber(redis.call('HGET', KEYS[1], prefix .. s)) or 0) > 0 then return (s + 61) * 1000 end
    end
    return (second + 1) * 1000
  end
  if rpm > 0 and requests >= rpm then return {'rpm', frees('r:')} end
  if tpm > 0 and tokens >= tpm then return {'tpm', frees('t:')} end
  if rpm > 0 then fit(rpm - requests, 1) end
  if tpm > 0 then fit(tpm - tokens, each_tokens) end
end
if budget_tokens > 0 or budget_micros > 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HSET', KEYS[3], 'st', ARGV[11], 'sm', ARGV[12], 'ht', '0', 'hm', '0')
    redis.call('PEXPIREAT', KEYS[3], tonumber(ARGV[10]) + 86400000)
  end
  local v = redis.call('HMGET', KEYS[3], 'st', 'sm', 'ht', 'hm')
  local spent_tokens = (tonumber(v[1]) or 0) + (tonumber(v[3]) or 0)
  local spent_micros = (tonumber(v[2]) or 0) + (tonumber(v[4]) or 0)
  if budget_tokens > 0 and spent_tokens >= budget_tokens then return {'budget_tokens', 0} end
  if budget_micros > 0 and spent_micros >= budget_micros then return {'budget_usd', 0} end
  if budget_tokens > 0 then fit(budget_tokens - spent_tokens, each_tokens) end
  if budget_micros > 0 then fit(budget_micros - spent_micros, each_micros) end
end
n = math.max(n, 1)
local held_tokens = string.format('%.0f', each_tokens * n)
if budget_tokens > 0 or budget_micros > 0 then
  redis.call('HINCRBY', KEYS[3], 'ht', held_tokens)
  redis.call('HINCRBY', KEYS[3], 'hm', string.format('%.0f', each_micros * n))
end
if rpm > 0 or tpm > 0 then
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[1], n)
  redis.call('HINCRBY', KEYS[1], 'R', n)
  if tpm > 0 then
    redis.call('HINCRBY', KEYS[1], 't:' .. ARGV[1], held_tokens)
    redis.call('HINCRBY', KEYS[1], 'T', held_tokens)
  end
  redis.call('PEXPIRE', KEYS[1], 62000)
end
if rpd > 0 then
  redis.call('INCRBY', KEYS[2], n)
  redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[7]) + 60000)
end
return {'ok', n}
