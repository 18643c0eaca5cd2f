-- wrk script of the webhook benchmark: sends the pre-signed requests of a
-- pool file (made by gen-requests.c: raw HTTP requests, all the same
-- length) in order, counts the answers by status, and prints the BENCH
-- summary line (wrk_summary.lua) for scripts/bench/webhook/run.sh.
--
-- Environment: BENCH_POOL (pool file), BENCH_REQ_LEN (bytes of one
-- request), BENCH_POOL_START (index of the first request to send, so that
-- consecutive runs on one pool send fresh ids; the summary's "sent" is the
-- number of requests taken, answered or not). When the pool is exhausted
-- it starts over (ids then repeat and hit the dedup path: answered 200,
-- not published); the summary's "wraps" says how often that happened.

local bench = require "wrk_summary"

local pool_path = os.getenv("BENCH_POOL")
local req_len = tonumber(os.getenv("BENCH_REQ_LEN"))
local pool_start = tonumber(os.getenv("BENCH_POOL_START")) or 0

local threads = {}

-- one thread (wrk -t1): a second one would send the same ids
function setup(thread)
    threads[#threads + 1] = thread
    assert(#threads == 1, "run with -t1")
end

local pool

function init(args)
    pool = assert(io.open(pool_path, "rb"))
    pool:setvbuf("full", 1048576)
    assert(pool:seek("set", pool_start * req_len))
    s202, s200, s409, s429, s503, sother, wraps, sent = 0, 0, 0, 0, 0, 0,
        0, 0
end

function request()
    local req = pool:read(req_len)
    if not req or #req < req_len then
        wraps = wraps + 1
        pool:seek("set", 0)
        req = pool:read(req_len)
    end
    sent = sent + 1
    return req
end

function response(status, headers, body)
    if status == 202 then
        s202 = s202 + 1
    elseif status == 200 then
        s200 = s200 + 1
    elseif status == 409 then
        s409 = s409 + 1
    elseif status == 429 then
        s429 = s429 + 1
    elseif status == 503 then
        s503 = s503 + 1
    else
        sother = sother + 1
    end
end

function done(summary, latency, requests)
    local c = { s202 = 0, s200 = 0, s409 = 0, s429 = 0, s503 = 0,
                sother = 0, wraps = 0, sent = 0 }
    for _, t in ipairs(threads) do
        for k in pairs(c) do
            c[k] = c[k] + (t:get(k) or 0)
        end
    end
    bench.line(summary, latency, {
        "s202", c.s202, "s200", c.s200, "s409", c.s409, "s429", c.s429,
        "s503", c.s503, "sother", c.sother, "wraps", c.wraps,
        "sent", c.sent })
end
