-- Settles a finished request: its second's tokens get the real count (if
-- the second still counts), its budget hold is released and its spending
-- added (unless the period ended). Also gives back a slice's unused
-- requests: they leave their second, the day and (as an estimate settled at
-- nothing spent) the tokens and the hold.
-- KEYS: 1 the minute, 2 the budget period, 3 the day.
-- ARGV: tally second ('' none), estimated tokens, spent tokens, held tokens,
--       held micros, spent micros, now ms, period end ms ('' none),
--       requests given back, their second, '1' if the day counts them.
if ARGV[1] ~= '' then
  local field = 't:' .. ARGV[1]
  local current = tonumber(redis.call('HGET', KEYS[1], field))
  if current then
    local settled = math.max(0, current + tonumber(ARGV[3]) - tonumber(ARGV[2]))
    redis.call('HSET', KEYS[1], field, string.format('%.0f', settled))
    local total = tonumber(redis.call('HGET', KEYS[1], 'T')) or 0
    redis.call('HSET', KEYS[1], 'T', string.format('%.0f', math.max(0, total + settled - current)))
  end
end
if ARGV[8] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  local v = redis.call('HMGET', KEYS[2], 'ht', 'hm')
  local held_tokens = math.max(0, (tonumber(v[1]) or 0) - tonumber(ARGV[4]))
  local held_micros = math.max(0, (tonumber(v[2]) or 0) - tonumber(ARGV[5]))
  redis.call('HSET', KEYS[2], 'ht', string.format('%.0f', held_tokens), 'hm', string.format('%.0f', held_micros))
  if tonumber(ARGV[7]) < tonumber(ARGV[8]) then
    redis.call('HINCRBY', KEYS[2], 'st', ARGV[3])
    redis.call('HINCRBY', KEYS[2], 'sm', ARGV[6])
  end
end
local back = tonumber(ARGV[9]) or 0
if back > 0 then
  local field = 'r:' .. ARGV[10]
  local current = tonumber(redis.call('HGET', KEYS[1], field))
  if current then
    local left = math.max(0, current - back)
    redis.call('HSET', KEYS[1], field, left)
    local total = tonumber(redis.call('HGET', KEYS[1], 'R')) or 0
    redis.call('HSET', KEYS[1], 'R', math.max(0, total - (current - left)))
  end
  local day = ARGV[11] == '1' and tonumber(redis.call('GET', KEYS[3]))
  if day then
    redis.call('SET', KEYS[3], math.max(0, day - back), 'KEEPTTL')
  end
end
return 1
