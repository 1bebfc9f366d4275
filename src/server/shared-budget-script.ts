/**
 * The Lua script that holds a budget shared by several replicas in Redis: the exact hard cap of
 * {@link BudgetCap} (same state, same arithmetic in the same order, so the same decisions) over one
 * global sequence of decisions. Redis runs a script atomically, so however the replicas' calls
 * interleave, each call's decisions are checked and recorded with nothing in between: the global
 * sequence is the order in which Redis ran them, and the cap holds on it exactly. Nothing depends on
 * a clock; the only time in Redis is the keys' TTL, which reclaims an abandoned namespace.
 *
 * Keys (one hash tag, so a Redis Cluster keeps them in one slot, as a script requires):
 * - `routelmt:{NS}:budget:meta` — hash: `budget`, `window`, `weighted`, `unit` (what every replica of
 *   the namespace must agree on) and `epoch` (an id given when the state was created: a new epoch
 *   means the state was lost and started afresh);
 * - `routelmt:{NS}:budget:state` — hash: `n` decisions, `T` total weight, `S` large weight, `lld` the
 *   lowest lagged debt (absent: +∞), `head`, `filled`, `wl` and `wt` the large and total weight of
 *   the window;
 * - `routelmt:{NS}:budget:ring` — string: the last W outcomes as little-endian doubles, +w large,
 *   −w small.
 *
 * ARGV: op (`init`, `decide`, `replay`), budget, effective window, weighted (`1`/`0`), unit, the
 * epoch to use if the state is created now, TTL in ms, then one entry per item: a signed weight,
 * `+w` for a decision that wants the large model (`decide`) or was large (`replay`), `-w` otherwise.
 * Numbers go in and out as decimal strings: Redis formats Lua numbers with %.17g, so every double
 * round-trips exactly. A replica whose settings differ from the namespace's gets an error reply
 * starting `ROUTELMT_BUDGET_MISMATCH`.
 *
 * Reply: `{epoch, first sequence number of this call's items, outcomes ("1" large, "0" small, one
 * character per item), wl, wt, filled, n}`.
 * @module
 */

export const SHARED_BUDGET_SCRIPT = `
local meta, state, ring = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local budgetText, windowText, weightedText, unit = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local p = tonumber(budgetText)
local W = tonumber(windowText)
local weighted = weightedText == '1'
local ttl = tonumber(ARGV[7])
local FLOOR_SLACK = 1e-9
local DEBT_SLACK = 1e-9

local m = redis.call('HMGET', meta, 'budget', 'window', 'weighted', 'unit', 'epoch')
local epoch = m[5]
local intact = epoch and redis.call('EXISTS', state) == 1 and redis.call('STRLEN', ring) == 8 * W
if epoch and (m[1] ~= budgetText or m[2] ~= windowText or m[3] ~= weightedText or m[4] ~= unit) then
  return redis.error_reply('ROUTELMT_BUDGET_MISMATCH the namespace holds budget ' .. tostring(m[1]) ..
    ', window ' .. tostring(m[2]) .. ', unit ' .. tostring(m[4]) .. '; this replica has budget ' ..
    budgetText .. ', window ' .. windowText .. ', unit ' .. unit)
end

local n, T, S, lld, head, filled, wl, wt
if intact then
  local f = redis.call('HMGET', state, 'n', 'T', 'S', 'lld', 'head', 'filled', 'wl', 'wt')
  n, T, S = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
  if f[4] then lld = tonumber(f[4]) end
  head, filled, wl, wt = tonumber(f[5]), tonumber(f[6]), tonumber(f[7]), tonumber(f[8])
else
  -- Absent, or partly evicted: start afresh under the epoch this call proposes.
  epoch = ARGV[6]
  redis.call('DEL', meta, state, ring)
  redis.call('HSET', meta, 'budget', budgetText, 'window', windowText, 'weighted', weightedText,
    'unit', unit, 'epoch', epoch)
  redis.call('SETRANGE', ring, 0, string.rep('\\0', 8 * W))
  n, T, S, head, filled, wl, wt = 0, 0, 0, 0, 0, 0, 0
end

local function slot(index)
  return struct.unpack('<d', redis.call('GETRANGE', ring, 8 * index, 8 * index + 7))
end

-- The outcome leaving the window of the next decision (0 while the window is not full).
local function leaving()
  if filled == W then return slot(head) end
  return 0
end

-- Adds D_s for s = n + 1 - W: the start of the W-long run the next decision ends.
local function admit()
  if n + 1 - W < 0 then return end
  local lv = leaving()
  local largeBefore = S - (wl - math.max(lv, 0))
  local weightBefore = T - (wt - math.abs(lv))
  local debt = largeBefore - p * weightBefore
  if lld == nil or debt < lld then lld = debt end
end

if not intact then admit() end

local function allows(w)
  if p == 0 then return false end
  local lv = leaving()
  local largeInRun = wl - math.max(lv, 0) + w
  local weightOfRun = wt - math.abs(lv) + w
  local share, slack
  if weighted then
    share, slack = p * weightOfRun, FLOOR_SLACK * weightOfRun
  else
    share, slack = p * W, FLOOR_SLACK * 1
  end
  if largeInRun > share + slack then return false end
  local nextT = T + w
  local debt = S + w - p * nextT
  if lld == nil then return true end
  return debt <= lld + DEBT_SLACK * math.max(w, nextT * p)
end

local function record(large, w)
  local lv = leaving()
  local value = -w
  if large then value = w end
  redis.call('SETRANGE', ring, 8 * head, struct.pack('<d', value))
  head = (head + 1) % W
  if filled < W then filled = filled + 1 end
  local gained = 0
  if large then gained = w end
  wl = wl + (gained - math.max(lv, 0))
  wt = wt + (w - math.abs(lv))
  n = n + 1
  if large then S = S + w end
  T = T + w
  admit()
end

local first = n + 1
local outcomes = {}
if op == 'decide' or op == 'replay' then
  for index = 8, #ARGV do
    local signed = tonumber(ARGV[index])
    local w = math.abs(signed)
    local large = signed > 0
    if op == 'decide' then large = large and allows(w) end
    record(large, w)
    if large then outcomes[#outcomes + 1] = '1' else outcomes[#outcomes + 1] = '0' end
  end
end

local fields = {'n', n, 'T', T, 'S', S, 'head', head, 'filled', filled, 'wl', wl, 'wt', wt}
if lld ~= nil then
  fields[#fields + 1] = 'lld'
  fields[#fields + 1] = lld
end
redis.call('HSET', state, unpack(fields))
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', ring, ttl)
local function text(x) return string.format('%.17g', x) end
return {epoch, text(first), table.concat(outcomes), text(wl), text(wt), text(filled), text(n)}
`;
