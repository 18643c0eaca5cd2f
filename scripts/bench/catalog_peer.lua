-- OpenResty-style peer of `commerce_catalog_item`, the benchmark's
-- baseline: Debian's ngx_http_lua (with resty.core) + lua-resty-redis
-- (`nginx.redis`) with a per-worker keepalive pool, one Redis connection
-- per in-flight request as lua-resty-redis works.
--
-- Same observable behaviour as the module for the bench: 200 + the stored
-- bytes + Content-Type application/json (+ Cache-Control), JSON 404 when
-- the document is missing, 400 for a bad id, 405 for other methods,
-- 503/504/502 on Redis failures. ETag only when configured (etag = true):
-- then a strong ETag from the first 16 hex digits of the body's MD5 and
-- If-None-Match -> 304; the module uses its own 64-bit hash.

local redis = require "nginx.redis"

local ngx = ngx
local null = ngx.null
local md5 = ngx.md5
local find = string.find
local sub = string.sub

local _M = {}

local conf = {
    host = "127.0.0.1",
    port = 6379,
    timeout = 500,          -- ms, connect/send/read
    pool_size = 64,         -- idle connections kept per worker
    idle_timeout = 60000,   -- ms
    cache_control = nil,
    etag = false,
}


-- Called once from init_by_lua with the bench's settings.
function _M.configure(opts)
    for k, v in pairs(opts) do
        conf[k] = v
    end
end


local function fail(status, code, message)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    if status == 503 then
        ngx.header["Retry-After"] = "1"
    end
    ngx.print('{"error":"', code, '","message":"', message, '"}')
    return ngx.exit(status)
end


-- GET/HEAD /v1/catalog/{id}: one GET on a pooled connection.
function _M.item(id)
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        ngx.header["Allow"] = "GET, HEAD"
        return fail(405, "method_not_allowed", "method not allowed")
    end

    if #id == 0 or #id > 256 or find(id, "[%c ]") then
        return fail(400, "invalid_argument", "invalid item id")
    end

    local red = redis:new()
    red:set_timeout(conf.timeout)

    local ok, err = red:connect(conf.host, conf.port)
    if not ok then
        ngx.log(ngx.ERR, "redis connect: ", err)
        return fail(503, "redis_unavailable", "redis unavailable")
    end

    local doc
    doc, err = red:get("cat:item:" .. id)
    if not doc then
        ngx.log(ngx.ERR, "redis GET: ", err)
        red:close()
        if err == "timeout" then
            return fail(504, "redis_timeout", "redis timeout")
        end
        return fail(502, "redis_error", "redis error")
    end

    red:set_keepalive(conf.idle_timeout, conf.pool_size)

    if doc == null then
        return fail(404, "not_found", "item not found")
    end

    ngx.header["Content-Type"] = "application/json"
    if conf.cache_control then
        ngx.header["Cache-Control"] = conf.cache_control
    end

    if conf.etag then
        local etag = '"' .. sub(md5(doc), 1, 16) .. '"'
        ngx.header["ETag"] = etag
        local inm = ngx.var.http_if_none_match
        if inm and (inm == "*" or find(inm, etag, 1, true)) then
            return ngx.exit(304)
        end
    end

    ngx.header["Content-Length"] = #doc
    if method == "HEAD" then
        return
    end
    ngx.print(doc)
end


return _M
