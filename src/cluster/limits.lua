-- Admits one request of a client if every limit holds, and counts it; one
-- atomic step, so limits hold exactly across replicas.
-- KEYS: 1 the minute (hash: r:<second> requests, t:<second> tokens),
--       2 the day's requests, 3 the budget period (st, sm settled, ht, hm held).
-- ARGV: second, rpm, rpd, tpm, estimated tokens, estimated micro-dollars,
--       day end ms, budget tokens, budget micros, period end ms, seed tokens, seed micros.
-- A request counts in its second and the sixty after (as one replica counts).
local second = tonumber(ARGV[1])
local rpm, rpd, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget_tokens, budget_micros = tonumber(ARGV[8]), tonumber(ARGV[9])
if rpd > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if used >= rpd then return {'rpd', 0} end
end
if rpm > 0 or tpm > 0 then
  local fields = redis.call('HGETALL', KEYS[1])
  local requests, tokens, first_r, first_t = 0, 0, nil, nil
  for i = 1, #fields, 2 do
    local at = tonumber(string.sub(fields[i], 3))
    local n = tonumber(fields[i + 1]) or 0
    if at == nil or at + 61 <= second then
      redis.call('HDEL', KEYS[1], fields[i])
    elseif string.sub(fields[i], 1, 1) == 'r' then
      requests = requests + n
      if n > 0 and (first_r == nil or at < first_r) then first_r = at end
    else
      tokens = tokens + n
      if n > 0 and (first_t == nil or at < first_t) then first_t = at end
    end
  end
  if rpm > 0 and requests >= rpm then return {'rpm', ((first_r or second) + 61) * 1000} end
  if tpm > 0 and tokens >= tpm then return {'tpm', ((first_t or second) + 61) * 1000} end
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
  redis.call('HINCRBY', KEYS[3], 'ht', ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'hm', ARGV[6])
end
if rpm > 0 or tpm > 0 then
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[1], 1)
  if tpm > 0 then redis.call('HINCRBY', KEYS[1], 't:' .. ARGV[1], ARGV[5]) end
  redis.call('PEXPIRE', KEYS[1], 62000)
end
if rpd > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[7]) + 60000)
end
return {'ok', 0}
