-- The one summary line of the wrk scripts of `make bench`, which
-- bench_field and bench_measure in scripts/bench/lib.sh read:
--   BENCH requests=N duration_us=N p50_us=N p90_us=N p99_us=N max_us=N
--         err_connect=N err_read=N err_write=N err_status=N err_timeout=N
--         [the script's own counters, in the order given]
--
-- Use, in a wrk script run by bench_wrk (which puts this folder on
-- LUA_PATH):
--   local bench = require "wrk_summary"
--   function done(summary, latency, requests)
--       bench.line(summary, latency, { "s202", n202, "sent", sent })
--   end

local _M = {}

function _M.line(summary, latency, extra)
    local e = summary.errors
    local out = { string.format(
        "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d"
        .. " max_us=%d err_connect=%d err_read=%d err_write=%d"
        .. " err_status=%d err_timeout=%d",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout) }
    extra = extra or {}
    for i = 1, #extra, 2 do
        out[#out + 1] = string.format("%s=%d", extra[i], extra[i + 1])
    end
    io.write(table.concat(out, " "), "\n")
end

return _M
