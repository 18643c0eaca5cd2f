-- wrk script of the orders benchmark: POST /v1/orders with the same
-- RS256 token and body and a new Idempotency-Key per request
-- ("<prefix>-<n>", an sf-string), counts the answers by status, and
-- prints the BENCH summary line (wrk_summary.lua) for
-- scripts/bench/orders/run.sh.
--
-- Environment: BENCH_TOKEN (the bearer token), BENCH_BODY_FILE (the
-- order JSON), BENCH_KEY_PREFIX (unique per run, so that no two runs send
-- the same key).

local bench = require "wrk_summary"

local threads = {}

-- one thread (wrk -t1): the keys are numbered by one counter
function setup(thread)
    threads[#threads + 1] = thread
    assert(#threads == 1, "run with -t1")
end

local token, body, prefix, n

function init(args)
    token = assert(os.getenv("BENCH_TOKEN"))
    local f = assert(io.open(assert(os.getenv("BENCH_BODY_FILE")), "rb"))
    body = f:read("*a")
    f:close()
    prefix = assert(os.getenv("BENCH_KEY_PREFIX"))
    n = 0
    s202, s409, s422, s429, s503, sother, sent = 0, 0, 0, 0, 0, 0, 0
end

function request()
    n = n + 1
    sent = sent + 1
    return wrk.format("POST", "/v1/orders", {
        ["Authorization"] = "Bearer " .. token,
        ["Idempotency-Key"] = '"' .. prefix .. "-" .. n .. '"',
        ["Content-Type"] = "application/json",
    }, body)
end

function response(status, headers, body)
    if status == 202 then
        s202 = s202 + 1
    elseif status == 409 then
        s409 = s409 + 1
    elseif status == 422 then
        s422 = s422 + 1
    elseif status == 429 then
        s429 = s429 + 1
    elseif status == 503 then
        s503 = s503 + 1
    else
        sother = sother + 1
    end
end

function done(summary, latency, requests)
    local c = { s202 = 0, s409 = 0, s422 = 0, s429 = 0, s503 = 0,
                sother = 0, sent = 0 }
    for _, t in ipairs(threads) do
        for k in pairs(c) do
            c[k] = c[k] + (t:get(k) or 0)
        end
    end
    bench.line(summary, latency, {
        "s202", c.s202, "s409", c.s409, "s422", c.s422, "s429", c.s429,
        "s503", c.s503, "sother", c.sother, "sent", c.sent })
end
