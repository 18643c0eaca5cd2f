-- OpenResty-style peer of the module's webhook ingress (commerce_webhook +
-- commerce_webhook_signature standard + commerce_webhook_dedup +
-- commerce_limit), the baseline of scripts/bench/webhook/run.sh. Built only
-- from what Debian packages: ngx_http_lua (with resty.core), lua-resty-redis
-- (`nginx.redis`), lua-resty-kafka 0.07 (`nginx.kafka.*`), and libcrypto
-- reached through LuaJIT's FFI for HMAC-SHA256 and the constant-time
-- compare, as OpenResty's own libraries reach OpenSSL.
--
-- POST /v1/webhooks/standard, in order:
--   1. rate limit: lua-resty-limit-req's leaky bucket (rate + burst) per
--      client address in a lua_shared_dict (get + set, not atomic across
--      workers, as in lua-resty-limit-req); refused -> 429 + Retry-After
--   2. body read into memory; over max_body -> 413
--   3. Standard Webhooks: webhook-id, webhook-timestamp (replay window
--      +-tolerance s: 401), webhook-signature "v1,<base64>" (several,
--      space separated), HMAC-SHA256 of "{id}.{ts}.{body}" with the
--      base64-decoded whsec_ secret, compared in constant time
--      (CRYPTO_memcmp); 401 without a signature or on a mismatch, 400
--      for other absent or garbled headers
--   4. dedup in Redis: SET wh:{source}:{id} inflight NX PX inflight_ttl;
--      taken -> GET: done -> 200 (not published again), else 409 +
--      Retry-After
--   5. Kafka: a synchronous send with acks=all (wh_kafka.lua): the call
--      returns once the broker acked
--   6. SET wh:{source}:{id} done PX done_ttl, then 202 {"status":
--      "accepted",...}; on a failed publish the in-flight mark is deleted
--      and the answer is 503 + Retry-After
--
-- Kafka: wh_kafka.lua (lua-resty-kafka 0.07's client, broker, request and
-- response modules; RecordBatch v2 encoding of our own, since 0.07 only
-- writes message formats v0/v1, which the broker rejects). The message is
-- the raw body with the module's headers: source, delivery_id,
-- signature_scheme, received_at, content_type, traceparent. Not an
-- idempotent producer (lua-resty-kafka has none).

local ffi = require "ffi"
local bit = require "bit"
local redis = require "nginx.redis"
local wh_kafka = require "wh_kafka"

local ngx = ngx
local null = ngx.null
local now = ngx.now
local time = ngx.time
local decode_base64 = ngx.decode_base64
local find = string.find
local sub = string.sub
local byte = string.byte
local tonumber = tonumber
local tostring = tostring
local max = math.max
local ceil = math.ceil
local tohex = bit.tohex
local C = ffi.C

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
int RAND_bytes(unsigned char *buf, int num);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
]]

local _M = {}

local conf = {
    source = "standard",
    secret = nil,               -- "whsec_<base64>"
    tolerance = 300,            -- s, replay window on both sides
    max_body = 1048576,
    redis_host = "127.0.0.1",
    redis_port = 6379,
    redis_timeout = 500,        -- ms
    redis_pool = 64,
    redis_idle = 60000,         -- ms
    inflight_ttl = 30000,       -- ms
    done_ttl = 86400000,        -- ms
    brokers = {},               -- { { host = ..., port = ... }, ... }
    topic = "commerce.inbound",
    kafka_timeout = 5000,       -- ms, request and socket
    kafka_pool = 64,            -- idle broker connections kept
    limit_dict = "wh_limit",
    limit_rate = 1000000,       -- requests per second
    limit_burst = 100000,
}

local key_buf                   -- the decoded secret
local mac = ffi.new("unsigned char[32]")
local mac_len = ffi.new("unsigned int[1]")
local md_sha256
local kafka                     -- this worker's producer
local kafka_conf
local rnd = ffi.new("uint32_t[6]")


-- Called once from init_by_lua with the bench's settings.
function _M.configure(opts)
    for k, v in pairs(opts) do
        conf[k] = v
    end
    local s = conf.secret
    if sub(s, 1, 6) == "whsec_" then
        s = sub(s, 7)
    end
    key_buf = decode_base64(s)
    if not key_buf then
        error("webhook_peer: the secret is not base64")
    end
    conf.limit_rate_milli = conf.limit_rate * 1000
    conf.limit_burst_milli = conf.limit_burst * 1000
    kafka_conf = {
        request_timeout = conf.kafka_timeout,
        socket_timeout = conf.kafka_timeout,
        keepalive_size = conf.kafka_pool,
        max_retry = 3,
    }
end


local function answer(status, body, retry_after)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if retry_after then
        ngx.header["Retry-After"] = retry_after
    end
    ngx.print(body)
    return ngx.exit(status)
end


local function fail(status, code, message, retry_after)
    return answer(status, '{"error":"' .. code .. '","message":"'
                  .. message .. '"}', retry_after)
end


-- lua-resty-limit-req's leaky bucket: excess requests (x1000) drain at
-- rate per second; more than burst in excess is refused. Returns the
-- seconds to wait on a refusal, nil when admitted.
local function limited(key)
    local dict = ngx.shared[conf.limit_dict]
    local t = now() * 1000
    local excess = 0
    local rec = dict:get(key)
    if rec then
        local last_excess, last = rec:match("^(%d+):(%d+)$")
        excess = max(tonumber(last_excess)
                     - conf.limit_rate_milli * (t - tonumber(last)) / 1000
                     + 1000, 0)
    end
    if excess > conf.limit_burst_milli then
        return ceil((excess - conf.limit_burst_milli)
                    / conf.limit_rate_milli)
    end
    dict:set(key, ("%d:%d"):format(excess, t))
    return nil
end


-- Standard Webhooks verification; returns nil or status, reason code.
local function verify(id, ts, sigs, body)
    if not sigs then
        return 401, "missing_signature"
    end
    if not ts then
        return 400, "missing_timestamp"
    end
    if not id or id == "" then
        return 400, "missing_id"
    end
    if type(sigs) == "table" or type(ts) == "table" or type(id) == "table"
    then
        return 400, "malformed_signature"
    end
    local t = find(ts, "^%d+$") and tonumber(ts)
    if not t then
        return 400, "malformed_timestamp"
    end
    local clock = time()
    if t < clock - conf.tolerance then
        return 401, "timestamp_too_old"
    end
    if t > clock + conf.tolerance then
        return 401, "timestamp_too_new"
    end

    local content = id .. "." .. ts .. "." .. body
    if C.HMAC(md_sha256, key_buf, #key_buf, content, #content, mac,
              mac_len) == nil
    then
        return 500, "internal_error"
    end

    -- "v1,<b64> v1,<b64> v2,..." : any v1 that matches
    local seen = false
    local pos = 1
    local len = #sigs
    while pos <= len do
        local s, e = find(sigs, "[^ ]+", pos)
        if not s then
            break
        end
        if byte(sigs, s) == 118 and sub(sigs, s, s + 2) == "v1," then
            seen = true
            local got = decode_base64(sub(sigs, s + 3, e))
            if got and #got == 32 and C.CRYPTO_memcmp(got, mac, 32) == 0 then
                return nil
            end
        end
        pos = e + 1
    end
    if not seen then
        return 400, "unsupported_signature"
    end
    return 401, "signature_mismatch"
end


local function redis_conn()
    local red = redis:new()
    red:set_timeout(conf.redis_timeout)
    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        return nil, err
    end
    return red
end


local function redis_done(red)
    red:set_keepalive(conf.redis_idle, conf.redis_pool)
end


-- A valid incoming W3C traceparent, else a new one.
local function traceparent(h)
    local tp = h["traceparent"]
    if type(tp) == "string" and #tp == 55
       and find(tp, "^00%-%x+%-%x+%-%x%x$")
       and sub(tp, 36, 36) == "-" and sub(tp, 53, 53) == "-"
    then
        return tp
    end
    C.RAND_bytes(ffi.cast("unsigned char *", rnd), 24)
    return "00-" .. tohex(rnd[0]) .. tohex(rnd[1]) .. tohex(rnd[2])
           .. tohex(rnd[3]) .. "-" .. tohex(rnd[4]) .. tohex(rnd[5])
           .. "-01"
end


-- One acknowledged send; returns partition, offset or nil, err.
local function publish(h, id, body)
    if not kafka then
        kafka = wh_kafka:new(conf.brokers, kafka_conf)
    end
    return kafka:send(conf.topic, nil, body, {
        "source", conf.source,
        "delivery_id", id,
        "signature_scheme", "standard",
        "received_at", ("%d"):format(ngx.req.start_time() * 1000),
        "content_type", h["content-type"] or "",
        "traceparent", traceparent(h),
    })
end


function _M.handle()
    if ngx.req.get_method() ~= "POST" then
        ngx.header["Allow"] = "POST"
        return fail(405, "method_not_allowed", "method not allowed")
    end

    local wait = limited(ngx.var.binary_remote_addr)
    if wait then
        return fail(429, "rate_limited", "too many requests", wait)
    end

    local h = ngx.req.get_headers()
    local cl = tonumber(h["content-length"])
    if not cl then
        return fail(411, "length_required", "Content-Length required")
    end
    if cl > conf.max_body then
        return fail(413, "body_too_large", "body too large")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""

    local id = h["webhook-id"]
    local status, code = verify(id, h["webhook-timestamp"],
                                h["webhook-signature"], body)
    if status then
        return fail(status, code, "signature verification failed")
    end

    local red, err = redis_conn()
    if not red then
        ngx.log(ngx.ERR, "redis: ", err)
        return fail(503, "dedup_unavailable", "redis unavailable", 1)
    end
    local key = "wh:" .. conf.source .. ":" .. id
    local ok
    ok, err = red:set(key, "inflight", "NX", "PX", conf.inflight_ttl)
    if not ok then
        ngx.log(ngx.ERR, "redis SET: ", err)
        red:close()
        return fail(503, "dedup_unavailable", "redis unavailable", 1)
    end
    if ok == null then
        local state = red:get(key)
        redis_done(red)
        if state == "done" then
            return answer(200, '{"status":"duplicate","delivery_id":"'
                          .. id .. '"}')
        end
        return fail(409, "delivery_in_progress", "delivery in progress", 1)
    end
    redis_done(red)

    local partition, offset = publish(h, id, body)
    if not partition then
        ngx.log(ngx.ERR, "kafka: ", offset)
        red = redis_conn()
        if red then
            red:del(key)
            redis_done(red)
        end
        return fail(503, "broker_unavailable", "broker unavailable", 1)
    end

    red, err = redis_conn()
    if red then
        ok, err = red:set(key, "done", "PX", conf.done_ttl)
        if ok then
            redis_done(red)
        else
            red:close()
        end
    end
    if not ok then
        -- published: the in-flight mark expires on its own
        ngx.log(ngx.WARN, "redis: marking done: ", err)
    end

    return answer(202, '{"status":"accepted","topic":"' .. conf.topic
                  .. '","partition":' .. partition .. ',"offset":'
                  .. tostring(offset):gsub("LL$", "") .. ',"delivery_id":"'
                  .. id .. '"}')
end


md_sha256 = C.EVP_sha256()

return _M
