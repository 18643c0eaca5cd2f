/*
 * The cart store: the one Lua script every cart operation runs, atomic in
 * Redis, its reply read into an ngx_http_commerce_cart_t with each line
 * priced from its stock value, and the checkout interface of
 * ngx_http_commerce_cart.h.
 *
 * cart:{id} is a hash: "_owner", "_store", "_version" (raised by every
 * change), and "i:{sku}" -> quantity for each line (docs/contract.md).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "commerce_contract.h"
#include "commerce_currency.h"

#include "ngx_http_commerce_cart_private.h"
#include "ngx_http_commerce_redis.h"
#include "ngx_http_commerce_util.h"


/*
 * The script's arguments, ARGV[n] by their names in the script; KEYS[1]
 * is the cart's key.
 */
typedef enum {
    NGX_HTTP_COMMERCE_CART_ARG_OP = 1,      /* op */
    NGX_HTTP_COMMERCE_CART_ARG_OWNER,       /* owner */
    NGX_HTTP_COMMERCE_CART_ARG_IF_MATCH,    /* cond */
    NGX_HTTP_COMMERCE_CART_ARG_TTL,         /* ttl, ms */
    NGX_HTTP_COMMERCE_CART_ARG_STORE,       /* store (create) */
    NGX_HTTP_COMMERCE_CART_ARG_SKU,         /* sku */
    NGX_HTTP_COMMERCE_CART_ARG_QUANTITY,    /* qty */
    NGX_HTTP_COMMERCE_CART_ARG_MAX_ITEMS,   /* max_items */
    NGX_HTTP_COMMERCE_CART_ARG_STOCK,       /* the inv: prefix */
    NGX_HTTP_COMMERCE_CART_ARG_N = NGX_HTTP_COMMERCE_CART_ARG_STOCK
} ngx_http_commerce_cart_arg_e;


/*
 * Returns {status} on a refusal, else {"ok", version, store, lines}:
 * lines = sku, quantity, stock value (nil when the store lacks the sku),
 * flat, sorted by sku.  The three fields that are not lines: HLEN - 3.
 */
static ngx_http_commerce_redis_script_t  ngx_http_commerce_cart_lua =
    ngx_http_commerce_redis_script(
    "local key = KEYS[1] "
    "local op, owner, cond, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4] "
    "local store, sku, qty = ARGV[5], ARGV[6], tonumber(ARGV[7]) "
    "local max_items, stock = tonumber(ARGV[8]), ARGV[9] "

    "if op == 'create' then "
    "  if redis.call('EXISTS', stock .. store) == 0 then "
    "    return {'unknown_store'} end "
    "  if redis.call('HSETNX', key, '_owner', owner) == 0 then "
    "    return {'exists'} end "
    "  redis.call('HSET', key, '_store', store, '_version', 1) "
    "  redis.call('PEXPIRE', key, ttl) "
    "  return {'ok', 1, store, {}} "
    "end "

    "local m = redis.call('HMGET', key, '_owner', '_store', '_version') "
    "if m[1] ~= owner then return {'not_found'} end "
    "store = m[2] "
    "local version = tonumber(m[3]) "

    "if cond ~= '' and cond ~= '*' then "
    "  local ok = false "
    "  for v in string.gmatch(cond, '%d+') do "
    "    if tonumber(v) == version then ok = true end "
    "  end "
    "  if not ok then return {'changed'} end "
    "end "

    "if op == 'delete' then "
    "  redis.call('DEL', key) "
    "  return {'ok', version, store, {}} "
    "end "

    "local inv = stock .. store "

    "if op == 'set' or op == 'remove' then "
    "  local f = 'i:' .. sku "
    "  local had = redis.call('HEXISTS', key, f) == 1 "
    "  if op == 'remove' and not had then return {'not_in_cart'} end "
    "  if qty > 0 then "
    "    local v = redis.call('HGET', inv, sku) "
    "    if not v then return {'unknown_sku'} end "
    "    local ok, d = pcall(cjson.decode, v) "
    "    if not ok or type(d) ~= 'table' or d.orderable ~= true "
    "       or type(d.price) ~= 'table' then "
    "      return {'not_orderable'} end "
    "    if not had and redis.call('HLEN', key) - 3 >= max_items then "
    "      return {'too_many_items'} end "
    "    redis.call('HSET', key, f, qty) "
    "  elseif had then "
    "    redis.call('HDEL', key, f) "
    "  end "
    "  if qty > 0 or had then "
    "    version = redis.call('HINCRBY', key, '_version', 1) "
    "    redis.call('PEXPIRE', key, ttl) "
    "  end "
    "end "

    "local all = redis.call('HGETALL', key) "
    "local skus, q = {}, {} "
    "for i = 1, #all, 2 do "
    "  if string.sub(all[i], 1, 2) == 'i:' then "
    "    local s = string.sub(all[i], 3) "
    "    skus[#skus + 1] = s "
    "    q[s] = all[i + 1] "
    "  end "
    "end "
    "table.sort(skus) "
    "local lines = {} "
    "if #skus > 0 then "
    "  local vals = redis.call('HMGET', inv, unpack(skus)) "
    "  for i, s in ipairs(skus) do "
    "    lines[#lines + 1] = s "
    "    lines[#lines + 1] = q[s] "
    "    lines[#lines + 1] = vals[i] "
    "  end "
    "end "
    "return {'ok', version, store, lines}");


/* ARGV[1] of each ngx_http_commerce_cart_op_e */
static ngx_str_t  ngx_http_commerce_cart_ops[] = {
    ngx_string("create"),
    ngx_string("get"),
    ngx_string("set"),
    ngx_string("remove"),
    ngx_string("delete")
};


/* the script's refusals, by their ngx_http_commerce_cart_rc_e */
typedef struct {
    ngx_str_t                   status;
    ngx_int_t                   rc;
} ngx_http_commerce_cart_refusal_t;


static ngx_http_commerce_cart_refusal_t  ngx_http_commerce_cart_refusals[] = {
    { ngx_string("not_found"), NGX_HTTP_COMMERCE_CART_NOT_FOUND },
    { ngx_string("changed"), NGX_HTTP_COMMERCE_CART_CHANGED },
    { ngx_string("unknown_store"), NGX_HTTP_COMMERCE_CART_UNKNOWN_STORE },
    { ngx_string("unknown_sku"), NGX_HTTP_COMMERCE_CART_UNKNOWN_SKU },
    { ngx_string("not_orderable"), NGX_HTTP_COMMERCE_CART_NOT_ORDERABLE },
    { ngx_string("too_many_items"), NGX_HTTP_COMMERCE_CART_TOO_MANY_ITEMS },
    { ngx_string("not_in_cart"), NGX_HTTP_COMMERCE_CART_NOT_IN_CART },
    { ngx_null_string, 0 }
};


/* one operation in flight: its copy for a second try, and its caller */
typedef struct {
    ngx_http_commerce_cart_op_t         op;
    ngx_str_t                           key;
    ngx_http_commerce_cart_handler_pt   handler;
    void                               *data;
    ngx_uint_t                          eval;
} ngx_http_commerce_cart_call_t;


static ngx_int_t ngx_http_commerce_cart_send(ngx_http_request_t *r,
    ngx_http_commerce_cart_call_t *call, time_t *retry_after);
static void ngx_http_commerce_cart_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, redisReply *reply);
static ngx_int_t ngx_http_commerce_cart_reply(ngx_http_request_t *r,
    ngx_http_commerce_cart_call_t *call, redisReply *reply,
    ngx_http_commerce_cart_t **cart);
static ngx_int_t ngx_http_commerce_cart_read(ngx_http_request_t *r,
    redisReply *reply, ngx_http_commerce_cart_t *cart);
static void ngx_http_commerce_cart_price(ngx_http_commerce_cart_line_t *line,
    redisReply *stock);
static ngx_int_t ngx_http_commerce_cart_strdup(ngx_pool_t *pool,
    ngx_str_t *dst, ngx_str_t *src);


ngx_int_t
ngx_http_commerce_cart_run(ngx_http_request_t *r,
    ngx_http_commerce_cart_op_t *op,
    ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after)
{
    u_char                         *p;
    ngx_http_commerce_cart_call_t  *call;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_cart_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->op = *op;
    call->handler = handler;
    call->data = data;

    if (ngx_http_commerce_cart_strdup(r->pool, &call->op.id, &op->id)
           != NGX_OK
        || ngx_http_commerce_cart_strdup(r->pool, &call->op.owner, &op->owner)
           != NGX_OK
        || ngx_http_commerce_cart_strdup(r->pool, &call->op.store_id,
                                         &op->store_id)
           != NGX_OK
        || ngx_http_commerce_cart_strdup(r->pool, &call->op.sku, &op->sku)
           != NGX_OK
        || ngx_http_commerce_cart_strdup(r->pool, &call->op.if_match,
                                         &op->if_match)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->key.len = COMMERCE_LEN(COMMERCE_RK_CART) + op->id.len;
    call->key.data = ngx_pnalloc(r->pool, call->key.len);
    if (call->key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(call->key.data, COMMERCE_RK_CART,
                   COMMERCE_LEN(COMMERCE_RK_CART));
    ngx_memcpy(p, op->id.data, op->id.len);

    return ngx_http_commerce_cart_send(r, call, retry_after);
}


ngx_int_t
ngx_http_commerce_cart_load(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *owner, ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after)
{
    ngx_http_commerce_cart_op_t  op;

    ngx_memzero(&op, sizeof(ngx_http_commerce_cart_op_t));

    op.op = NGX_HTTP_COMMERCE_CART_OP_GET;
    op.id = *id;
    op.owner = *owner;

    return ngx_http_commerce_cart_run(r, &op, handler, data, retry_after);
}


ngx_int_t
ngx_http_commerce_cart_delete(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *owner, uint64_t version,
    ngx_http_commerce_cart_handler_pt handler, void *data,
    time_t *retry_after)
{
    u_char                       buf[NGX_INT64_LEN];
    ngx_http_commerce_cart_op_t  op;

    ngx_memzero(&op, sizeof(ngx_http_commerce_cart_op_t));

    op.op = NGX_HTTP_COMMERCE_CART_OP_DELETE;
    op.id = *id;
    op.owner = *owner;
    op.if_match.data = buf;
    op.if_match.len = ngx_sprintf(buf, "%uL", version) - buf;

    return ngx_http_commerce_cart_run(r, &op, handler, data, retry_after);
}


static ngx_int_t
ngx_http_commerce_cart_send(ngx_http_request_t *r,
    ngx_http_commerce_cart_call_t *call, time_t *retry_after)
{
    ngx_http_commerce_cart_op_t     *op = &call->op;
    ngx_http_commerce_redis_cmd_t    cmd;

    ngx_http_commerce_redis_cmd_init(&cmd);

    if (ngx_http_commerce_redis_cmd_reserve(&cmd, r->pool,
                                            4 + NGX_HTTP_COMMERCE_CART_ARG_N)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_commerce_redis_cmd_arg_script(&cmd, &ngx_http_commerce_cart_lua,
                                           call->eval);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, "1");
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &call->key);

    /* ARGV in the order of ngx_http_commerce_cart_arg_e */
    ngx_http_commerce_redis_cmd_arg_str(&cmd,
                                        &ngx_http_commerce_cart_ops[op->op]);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &op->owner);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &op->if_match);
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, op->ttl);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &op->store_id);
    ngx_http_commerce_redis_cmd_arg_str(&cmd, &op->sku);
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, op->quantity);
    ngx_http_commerce_redis_cmd_arg_uint(&cmd, op->max_items);
    ngx_http_commerce_redis_cmd_arg_literal(&cmd, COMMERCE_RK_STOCK);

    return ngx_http_commerce_redis_send(r, ngx_http_commerce_redis_timeout(r),
                                        ngx_http_commerce_cart_done, call,
                                        &cmd, retry_after);
}


static void
ngx_http_commerce_cart_done(ngx_http_request_t *r, void *data, ngx_int_t rc,
    redisReply *reply)
{
    ngx_http_commerce_cart_call_t *call = data;

    time_t                     retry_after;
    ngx_http_commerce_cart_t  *cart;

    cart = NULL;

    if (rc == NGX_HTTP_COMMERCE_REDIS_OK && !call->eval
        && ngx_http_commerce_redis_noscript(reply))
    {
        /* Redis restarted or flushed its scripts: the script whole */

        call->eval = 1;
        rc = ngx_http_commerce_cart_send(r, call, &retry_after);

        if (rc == NGX_OK) {
            return;
        }

        rc = (rc == NGX_DECLINED) ? NGX_HTTP_COMMERCE_CART_DOWN
                                  : NGX_HTTP_COMMERCE_CART_ERROR;

    } else if (rc == NGX_HTTP_COMMERCE_REDIS_DOWN) {
        rc = NGX_HTTP_COMMERCE_CART_DOWN;

    } else if (rc == NGX_HTTP_COMMERCE_REDIS_TIMEOUT) {
        rc = NGX_HTTP_COMMERCE_CART_TIMEOUT;

    } else {
        rc = ngx_http_commerce_cart_reply(r, call, reply, &cart);
    }

    call->handler(r, call->data, rc, cart);
}


/* The script's reply: a refusal's code, or OK with the cart. */
static ngx_int_t
ngx_http_commerce_cart_reply(ngx_http_request_t *r,
    ngx_http_commerce_cart_call_t *call, redisReply *reply,
    ngx_http_commerce_cart_t **cart)
{
    redisReply                        *status;
    ngx_http_commerce_cart_t          *c;
    ngx_http_commerce_cart_refusal_t  *rf;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        goto invalid;
    }

    status = reply->element[0];

    for (rf = ngx_http_commerce_cart_refusals; rf->status.len; rf++) {
        if (rf->status.len == status->len
            && ngx_strncmp(rf->status.data, status->str, status->len) == 0)
        {
            return rf->rc;
        }
    }

    if (status->len != 2 || ngx_strncmp(status->str, "ok", 2) != 0) {
        goto invalid;
    }

    c = ngx_pcalloc(r->pool, sizeof(ngx_http_commerce_cart_t));
    if (c == NULL) {
        return NGX_HTTP_COMMERCE_CART_ERROR;
    }

    c->id = call->op.id;

    if (ngx_http_commerce_cart_read(r, reply, c) != NGX_OK) {
        goto invalid;
    }

    *cart = c;

    return NGX_HTTP_COMMERCE_CART_OK;

invalid:

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce cart: error reply: \"%*s\"",
                      reply->len, reply->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce cart: unexpected reply to the cart script");
    }

    return NGX_HTTP_COMMERCE_CART_ERROR;
}


/* {"ok", version, store, {sku, quantity, stock, ...}} into cart */
static ngx_int_t
ngx_http_commerce_cart_read(ngx_http_request_t *r, redisReply *reply,
    ngx_http_commerce_cart_t *cart)
{
    size_t                          i;
    uint64_t                        q;
    ngx_str_t                       s;
    redisReply                     *lines, *sku, *qty;
    ngx_http_commerce_cart_line_t  *line;

    if (reply->elements != 4
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->integer < 0
        || reply->element[2]->type != REDIS_REPLY_STRING
        || reply->element[3]->type != REDIS_REPLY_ARRAY
        || reply->element[3]->elements % 3 != 0)
    {
        return NGX_ERROR;
    }

    cart->version = reply->element[1]->integer;

    s.data = (u_char *) reply->element[2]->str;
    s.len = reply->element[2]->len;

    if (ngx_http_commerce_cart_strdup(r->pool, &cart->store_id, &s)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    lines = reply->element[3];
    cart->nlines = lines->elements / 3;

    if (cart->nlines == 0) {
        return NGX_OK;
    }

    cart->lines = ngx_pcalloc(r->pool, cart->nlines
                                       * sizeof(ngx_http_commerce_cart_line_t));
    if (cart->lines == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < cart->nlines; i++) {
        line = &cart->lines[i];
        sku = lines->element[3 * i];
        qty = lines->element[3 * i + 1];

        if (sku->type != REDIS_REPLY_STRING
            || qty->type != REDIS_REPLY_STRING
            || ngx_http_commerce_parse_uint((u_char *) qty->str, qty->len,
                                         NGX_MAX_UINT32_VALUE, &q) != 0)
        {
            return NGX_ERROR;
        }

        s.data = (u_char *) sku->str;
        s.len = sku->len;

        if (ngx_http_commerce_cart_strdup(r->pool, &line->sku, &s)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        line->quantity = q;

        ngx_http_commerce_cart_price(line, lines->element[3 * i + 2]);
    }

    return NGX_OK;
}


/*
 * The line's price and orderability from its stock value (docs/
 * contract.md, inv:): {"orderable":true,"price":{"amount":"238.07",
 * "currency":"EUR"},...}.  A value that is not such leaves the line
 * unpriced (and not orderable), never the cart unreadable.
 */
static void
ngx_http_commerce_cart_price(ngx_http_commerce_cart_line_t *line,
    redisReply *stock)
{
    int          exp;
    json_t      *v, *price, *amount, *currency;
    const char  *code;

    if (stock->type != REDIS_REPLY_STRING) {
        return;
    }

    line->in_store = 1;

    v = json_loadb(stock->str, stock->len, 0, NULL);
    if (v == NULL) {
        return;
    }

    line->orderable = json_is_true(json_object_get(v, "orderable"));

    price = json_object_get(v, "price");
    amount = json_object_get(price, "amount");
    currency = json_object_get(price, "currency");

    code = json_string_value(currency);
    exp = commerce_currency_exponent(code);

    if (exp >= 0 && json_is_string(amount)
        && commerce_money_parse(json_string_value(amount),
                                json_string_length(amount), exp,
                                &line->unit_minor)
           == 0)
    {
        line->priced = 1;
        line->exponent = exp;
        ngx_memcpy(line->currency, code, 4);
    }

    json_decref(v);
}


static ngx_int_t
ngx_http_commerce_cart_strdup(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = (u_char *) "";
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return NGX_OK;
}
