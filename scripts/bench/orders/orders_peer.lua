-- The OpenResty-style peer of the orders benchmark (make bench): what
-- POST /v1/orders does in the module, written the way an OpenResty shop
-- would, on one content_by_lua handler:
--
--   the bearer token: RS256 (RSASSA-PKCS1-v1_5 SHA-256) verified with
--   libcrypto through the FFI (EVP_DigestVerify), the header's alg and
--   kid, the claims' iss and exp read with string patterns (Debian's
--   ngx_http_lua has no cjson);
--   the Idempotency-Key (an sf-string without escapes, 1..255), scoped to
--   the sub, the body's SHA-256 as fingerprint; the record claimed with
--   one EVALSHA (lua-resty-redis), the skus checked with one HMGET of the
--   store's hash;
--   a UUIDv7 order id, order.place with the module's Kafka headers sent
--   acks=all with wh_kafka.lua (the webhook peer's producer, one Produce
--   per request), the answer stored in the record (EVALSHA), 202.
--
-- The body is checked with patterns (store_id, each sku and quantity),
-- not parsed: the peer is given no JSON library, as the webhook peer.

local ffi = require "ffi"
local bit = require "bit"
local redis = require "nginx.redis"
local b64 = require "ngx.base64"
local wh_kafka = require "wh_kafka"

local ngx = ngx
local null = ngx.null
local now = ngx.now
local time = ngx.time
local find = string.find
local sub = string.sub
local gmatch = string.gmatch
local format = string.format
local tonumber = tonumber
local concat = table.concat
local band = bit.band
local bor = bit.bor
local floor = math.floor
local decode_base64url = b64.decode_base64url
local C = ffi.C

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct engine_st ENGINE;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct bio_st BIO;
const EVP_MD *EVP_sha256(void);
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx,
                         const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig,
                     size_t siglen, const unsigned char *tbs, size_t tbslen);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
BIO *BIO_new_mem_buf(const void *buf, int len);
int BIO_free(BIO *a);
EVP_PKEY *PEM_read_bio_PUBKEY(BIO *bp, EVP_PKEY **x, void *cb, void *u);
int RAND_bytes(unsigned char *buf, int num);
]]

local _M = {}

local conf = {
    public_key = nil,           -- PEM text of the issuer's RSA key
    kid = "bench",
    issuer = "bench",
    redis_host = "127.0.0.1",
    redis_port = 6379,
    redis_timeout = 500,        -- ms
    redis_pool = 64,
    redis_idle = 60000,         -- ms
    inflight_ttl = 60000,       -- ms
    done_ttl = 86400000,        -- ms
    brokers = {},
    topic = "commerce.commands",
    kafka_timeout = 5000,
    kafka_pool = 64,
}

local pkey
local md_sha256
local digest = ffi.new("unsigned char[32]")
local rnd = ffi.new("unsigned char[24]")
local kafka
local kafka_conf

-- the claim: the record there ({state, fp, status, body}), or nil: ours
local CLAIM = [[
local v = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', 'body')
if v[1] then return v end
redis.call('HSET', KEYS[1], 'state', 'inflight', 'fp', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return false]]
local COMPLETE = [[
redis.call('HSET', KEYS[1], 'state', 'done', 'status', '202',
           'body', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1]]
local claim_sha
local complete_sha


function _M.configure(opts)
    for k, v in pairs(opts) do
        conf[k] = v
    end
    local bio = C.BIO_new_mem_buf(conf.public_key, #conf.public_key)
    pkey = C.PEM_read_bio_PUBKEY(bio, nil, nil, nil)
    C.BIO_free(bio)
    if pkey == nil then
        error("orders_peer: the public key is not a PEM public key")
    end
    md_sha256 = C.EVP_sha256()
    kafka_conf = {
        request_timeout = conf.kafka_timeout,
        socket_timeout = conf.kafka_timeout,
        keepalive_size = conf.kafka_pool,
        max_retry = 3,
    }
end


local function hex(bytes)
    return (bytes:gsub(".", function(c)
        return format("%02x", c:byte())
    end))
end


local function sha256_hex(s)
    C.SHA256(s, #s, digest)
    return hex(ffi.string(digest, 32))
end


local function answer(status, body, extra)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    if extra then
        for k, v in pairs(extra) do
            ngx.header[k] = v
        end
    end
    ngx.print(body)
    return ngx.exit(status)
end


local function fail(status, code, message, retry_after)
    return answer(status, '{"error":"' .. code .. '","message":"'
                  .. message .. '"}',
                  retry_after and { ["Retry-After"] = retry_after })
end


-- The token's sub, or nil and the reason.
local function authenticate(auth)
    if type(auth) ~= "string" or sub(auth, 1, 7) ~= "Bearer " then
        return nil, "missing_token"
    end
    local tok = sub(auth, 8)
    local d1 = find(tok, ".", 1, true)
    local d2 = d1 and find(tok, ".", d1 + 1, true)
    if not d2 then
        return nil, "malformed_token"
    end
    local header = decode_base64url(sub(tok, 1, d1 - 1))
    local payload = decode_base64url(sub(tok, d1 + 1, d2 - 1))
    local sig = decode_base64url(sub(tok, d2 + 1))
    if not header or not payload or not sig then
        return nil, "malformed_token"
    end
    if not find(header, '"alg":"RS256"', 1, true)
       or not find(header, '"kid":"' .. conf.kid .. '"', 1, true)
    then
        return nil, "unknown_key"
    end

    local ctx = C.EVP_MD_CTX_new()
    local ok = C.EVP_DigestVerifyInit(ctx, nil, md_sha256, nil, pkey) == 1
               and C.EVP_DigestVerify(ctx, sig, #sig, tok, d2 - 1) == 1
    C.EVP_MD_CTX_free(ctx)
    if not ok then
        return nil, "bad_signature"
    end

    local exp = tonumber(payload:match('"exp":(%d+)'))
    if not exp or exp <= time() then
        return nil, "expired"
    end
    if payload:match('"iss":"([^"]*)"') ~= conf.issuer then
        return nil, "wrong_issuer"
    end
    local s = payload:match('"sub":"([^"]+)"')
    if not s then
        return nil, "no_sub"
    end
    return s
end


-- store_id and the skus of the body (each with an integer quantity >= 1)
local function check_body(body)
    local store = body:match('"store_id":"([^"]+)"')
    if not store then
        return nil, "store_id"
    end
    local skus = {}
    for sku, q in gmatch(body, '"sku":"([^"]+)","quantity":(%-?%d+)') do
        q = tonumber(q)
        if q < 1 or q > 10000 then
            return nil, "quantity"
        end
        skus[#skus + 1] = sku
    end
    if #skus == 0 or #skus > 100 then
        return nil, "items"
    end
    if not body:match('"payment_method":"[^"]+"')
       or not find(body, '"shipping_address":{', 1, true)
    then
        return nil, "payment_method"
    end
    return store, skus
end


local function uuid7()
    C.RAND_bytes(rnd, 10)
    local ms = floor(now() * 1000)
    local hi = floor(ms / 65536)
    local lo = ms % 65536
    return format("%08x-%04x-%04x-%04x-%02x%02x%02x%02x%02x%02x",
                  hi, lo, bor(0x7000, band(rnd[0] * 256 + rnd[1], 0x0fff)),
                  bor(0x8000, band(rnd[2] * 256 + rnd[3], 0x3fff)),
                  rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9])
end


local function traceparent(h)
    local tp = h["traceparent"]
    if type(tp) == "string" and #tp == 55 then
        return tp
    end
    C.RAND_bytes(rnd, 24)
    local p = {}
    for i = 0, 23 do
        p[#p + 1] = format("%02x", rnd[i])
    end
    local s = concat(p)
    return "00-" .. sub(s, 1, 32) .. "-" .. sub(s, 33, 48) .. "-01"
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


-- EVALSHA, loading the script after NOSCRIPT
local function script(red, text, sha, ...)
    local res, err = red:evalsha(sha, ...)
    if not res and err and find(err, "NOSCRIPT", 1, true) then
        res, err = red:eval(text, ...)
    end
    return res, err
end


function _M.handle()
    if ngx.req.get_method() ~= "POST" then
        ngx.header["Allow"] = "POST"
        return fail(405, "method_not_allowed", "method not allowed")
    end

    local h = ngx.req.get_headers()
    local owner, why = authenticate(h["authorization"])
    if not owner then
        ngx.header["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return fail(401, why, "invalid token")
    end

    local key = h["idempotency-key"]
    if type(key) ~= "string" then
        return fail(400, "invalid_idempotency_key", "Idempotency-Key")
    end
    key = key:match('^"([^"\\]+)"$')
    if not key or #key > 255 then
        return fail(400, "invalid_idempotency_key", "Idempotency-Key")
    end

    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local store, skus = check_body(body)
    if not store then
        return fail(422, "invalid_body", skus)
    end

    local red, err = redis_conn()
    if not red then
        return fail(503, "redis_unavailable", "redis unavailable", 1)
    end

    local rkey = "idem:" .. sha256_hex(owner .. "\0/v1/orders\0" .. key
                                       .. "\0")
    local fp = sha256_hex(body)
    local rec
    rec, err = script(red, CLAIM, claim_sha, 1, rkey, fp, conf.inflight_ttl)
    if err then
        red:close()
        return fail(503, "redis_unavailable", "redis unavailable", 1)
    end
    if rec ~= null then
        red:set_keepalive(conf.redis_idle, conf.redis_pool)
        if rec[2] ~= fp then
            return fail(422, "idempotency_key_reused", "another body")
        end
        if rec[1] ~= "done" then
            return fail(409, "request_in_progress", "in progress", 1)
        end
        return answer(tonumber(rec[3]), rec[4],
                      { ["Idempotent-Replayed"] = "true" })
    end

    local vals
    vals, err = red:hmget("inv:" .. store, unpack(skus))
    if not vals then
        red:del(rkey)
        red:close()
        return fail(503, "redis_unavailable", "redis unavailable", 1)
    end
    for i = 1, #skus do
        if vals[i] == null then
            red:del(rkey)
            red:set_keepalive(conf.redis_idle, conf.redis_pool)
            return fail(422, "unknown_sku", "items[" .. (i - 1) .. "].sku")
        end
    end
    red:set_keepalive(conf.redis_idle, conf.redis_pool)

    local id = uuid7()
    local at = format("%d", ngx.req.start_time() * 1000)
    local cmd = '{"type":"order.place","command_id":"' .. id
                .. '","sub":"' .. owner .. '","issued_at":' .. at
                .. ',"order_id":"' .. id .. '","order":' .. body .. '}'

    if not kafka then
        kafka = wh_kafka:new(conf.brokers, kafka_conf)
    end
    local partition
    partition, err = kafka:send(conf.topic, id, cmd, {
        "command_type", "order.place",
        "command_id", id,
        "sub", owner,
        "idempotency_key", key,
        "received_at", at,
        "content_type", "application/json",
        "traceparent", traceparent(h),
    })

    red = redis_conn()
    if not partition then
        ngx.log(ngx.ERR, "kafka: ", err)
        if red then
            red:del(rkey)
            red:set_keepalive(conf.redis_idle, conf.redis_pool)
        end
        return fail(503, "broker_unavailable", "broker unavailable", 1)
    end

    local out = '{"order_id":"' .. id .. '","status":"pending"}'
    if red then
        script(red, COMPLETE, complete_sha, 1, rkey, out, conf.done_ttl)
        red:set_keepalive(conf.redis_idle, conf.redis_pool)
    end

    return answer(202, out, { ["Location"] = "/v1/orders/" .. id })
end


local function sha1_hex(s)
    return hex(ngx.sha1_bin(s))
end

claim_sha = sha1_hex(CLAIM)
complete_sha = sha1_hex(COMPLETE)

return _M
