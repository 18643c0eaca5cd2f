-- Synchronous, acks=all Kafka send for the webhook peer, on lua-resty-kafka
-- 0.07 as Debian packages it (lua-nginx-kafka): its client (metadata cache,
-- leader lookup), broker (cosocket send/receive with a keepalive pool),
-- request (protocol primitives) and response (decoding) modules.
--
-- Only the record encoding is ours. lua-resty-kafka 0.07 writes message
-- format v0/v1 (Produce v0-v2), which Kafka 4.0 no longer accepts and
-- librdkafka's mock cluster (commerce-devbroker) never did ("We only
-- support MsgVersion 2"): here each message is one RecordBatch v2 (magic
-- 2, CRC-32C, record headers) in a Produce v3 request, which is also what
-- lets the peer carry the same Kafka headers as the module.
--
-- send() behaves as lua-resty-kafka's sync producer: partition chosen
-- round-robin when there is no key (crc32 of the key otherwise), one
-- request per message, wait for the broker's answer, refresh the metadata
-- and retry (max_retry, retry_backoff) on leader/partition errors; not
-- idempotent.

local ffi = require "ffi"
local bit = require "bit"
local client = require "nginx.kafka.client"
local broker = require "nginx.kafka.broker"
local request = require "nginx.kafka.request"

local ngx = ngx
local band = bit.band
local bor = bit.bor
local bxor = bit.bxor
local bnot = bit.bnot
local lshift = bit.lshift
local rshift = bit.rshift
local arshift = bit.arshift
local char = string.char
local concat = table.concat
local floor = math.floor
local crc32_short = ngx.crc32_short
local sleep = ngx.sleep

local _M = {}
local mt = { __index = _M }

local PRODUCE_V3 = 3

-- errors after which lua-resty-kafka refreshes metadata and retries:
-- UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_FOR_PARTITION
local retryable = { [3] = true, [5] = true, [6] = true }


-- CRC-32C (Castagnoli), the checksum of RecordBatch v2.
local crc_table = ffi.new("uint32_t[256]")
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if band(c, 1) ~= 0 then
            c = bxor(rshift(c, 1), 0x82F63B78)
        else
            c = rshift(c, 1)
        end
    end
    crc_table[i] = c
end

local function crc32c(s)
    local p = ffi.cast("const uint8_t *", s)
    local crc = -1
    for i = 0, #s - 1 do
        crc = bxor(rshift(crc, 8), crc_table[band(bxor(crc, p[i]), 0xff)])
    end
    return bnot(crc)
end


local function int8(n)
    return char(band(n, 0xff))
end

local function int16(n)
    return char(band(rshift(n, 8), 0xff), band(n, 0xff))
end

local function int32(n)
    return char(band(rshift(n, 24), 0xff), band(rshift(n, 16), 0xff),
                band(rshift(n, 8), 0xff), band(n, 0xff))
end

-- a non-negative integer below 2^53, or -1
local function int64(n)
    if n < 0 then
        return "\255\255\255\255\255\255\255\255"
    end
    local hi = floor(n / 4294967296)
    return int32(hi) .. int32(n - hi * 4294967296)
end

-- zigzag varint (int32), as record fields are written
local function varint(n)
    local z = bxor(lshift(n, 1), arshift(n, 31))
    local out = ""
    while band(z, -128) ~= 0 do
        out = out .. char(bor(band(z, 0x7f), 0x80))
        z = rshift(z, 7)
    end
    return out .. char(z)
end


-- One RecordBatch v2 holding one record: key (or nil), value, headers
-- as a flat list { name1, value1, name2, value2, ... }.
local function record_batch(key, value, headers, now_ms)
    local r = { int8(0), varint(0), varint(0) }     -- attrs, ts/offset delta
    if key then
        r[#r + 1] = varint(#key)
        r[#r + 1] = key
    else
        r[#r + 1] = varint(-1)
    end
    r[#r + 1] = varint(#value)
    r[#r + 1] = value
    r[#r + 1] = varint(#headers / 2)
    for i = 1, #headers, 2 do
        local name, v = headers[i], headers[i + 1]
        r[#r + 1] = varint(#name)
        r[#r + 1] = name
        r[#r + 1] = varint(#v)
        r[#r + 1] = v
    end
    local record = concat(r)
    record = varint(#record) .. record

    local ts = int64(now_ms)
    local body = concat {
        int16(0),           -- attributes: no compression, CreateTime
        int32(0),           -- lastOffsetDelta
        ts, ts,             -- baseTimestamp, maxTimestamp
        int64(-1),          -- producerId
        int16(-1),          -- producerEpoch
        int32(-1),          -- baseSequence
        int32(1),           -- records
        record,
    }
    return concat {
        int64(0),                   -- baseOffset
        int32(4 + 1 + 4 + #body),   -- batchLength
        int32(-1),                  -- partitionLeaderEpoch
        int8(2),                    -- magic
        int32(crc32c(body)),
        body,
    }
end


-- opts: request_timeout (ms), socket_timeout (ms), keepalive_size,
-- keepalive_timeout (ms), max_retry, retry_backoff (ms).
function _M.new(self, broker_list, opts)
    local cli = client:new(broker_list, {
        socket_timeout = opts.socket_timeout,
        keepalive_size = opts.keepalive_size,
        keepalive_timeout = opts.keepalive_timeout,
    })
    return setmetatable({
        client = cli,
        correlation_id = 0,
        rr = 0,
        request_timeout = opts.request_timeout or 2000,
        max_retry = opts.max_retry or 3,
        retry_backoff = opts.retry_backoff or 100,
    }, mt)
end


local function produce(self, topic, partition, batch)
    local bconf, err = self.client:choose_broker(topic, partition)
    if not bconf then
        return nil, err, true
    end
    self.correlation_id = (self.correlation_id + 1) % 1073741824
    local req = request:new(request.ProduceRequest, self.correlation_id,
                            self.client.client_id, PRODUCE_V3)
    req:int16(-1)                   -- transactional_id: null
    req:int16(-1)                   -- acks: all in-sync replicas
    req:int32(self.request_timeout)
    req:int32(1)
    req:string(topic)
    req:int32(1)
    req:int32(partition)
    req:bytes(batch)

    local bk = broker:new(bconf.host, bconf.port, self.client.socket_config)
    local resp, rerr = bk:send_receive(req)
    if not resp then
        return nil, rerr, true
    end

    local offset
    for _ = 1, resp:int32() do
        resp:string()
        for _ = 1, resp:int32() do
            resp:int32()                    -- partition
            local code = resp:int16()
            offset = resp:int64()
            resp:int64()                    -- log_append_time
            if code ~= 0 then
                return nil, "kafka error " .. code, retryable[code]
            end
        end
    end
    if not offset then
        return nil, "empty produce response", false
    end
    return offset
end


-- Publishes one message and returns partition, offset once the broker
-- acknowledged it (acks=all), or nil, err.
function _M.send(self, topic, key, value, headers)
    local brokers, partitions = self.client:fetch_metadata(topic)
    if not brokers then
        return nil, partitions
    end
    local partition
    if key then
        partition = crc32_short(key) % partitions.num
    else
        self.rr = self.rr + 1
        partition = self.rr % partitions.num
    end

    local batch = record_batch(key, value, headers or {},
                               floor(ngx.now() * 1000))
    local offset, err, again
    for try = 1, self.max_retry do
        offset, err, again = produce(self, topic, partition, batch)
        if offset or not again then
            break
        end
        self.client:refresh()
        if try < self.max_retry then
            sleep(self.retry_backoff / 1000)
        end
    end
    if not offset then
        return nil, err
    end
    return partition, offset
end


return _M
