-- wrk script: GET /v1/catalog/<random item id> and the BENCH summary line
-- (wrk_summary.lua) for scripts/bench/run.sh.
--
-- Environment: BENCH_ITEMS (number of ids, default 10000), BENCH_ID_WIDTH
-- (digits of the id, default 5: item-00001), BENCH_SEED.
-- The requests are formatted once in init() so that wrk spends its time on
-- the sockets, not on string building.

local bench = require "wrk_summary"

local items = tonumber(os.getenv("BENCH_ITEMS")) or 10000
local width = tonumber(os.getenv("BENCH_ID_WIDTH")) or 5
local seed = tonumber(os.getenv("BENCH_SEED")) or 42

local reqs = {}

function init(args)
    local fmt = "/v1/catalog/item-%0" .. width .. "d"
    for i = 1, items do
        reqs[i] = wrk.format("GET", string.format(fmt, i))
    end
    math.randomseed(seed)
end

function request()
    return reqs[math.random(items)]
end

function done(summary, latency, requests)
    bench.line(summary, latency)
end
