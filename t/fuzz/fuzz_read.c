/*
 * Fuzz target: the read API's arguments (ngx_http_commerce_read.c), from
 * the query string and the ids of the location (captures of the URI) to
 * the Redis command of each API: item, list (limit, after), stock, stock
 * list (cursor, count).  The module file is included, so its static
 * builders are called as the handler calls them, with the nginx core of
 * t/fuzz/ngx_fuzz.c.
 *
 * Input: one byte choosing the API, one the maximum page size (1..256)
 * and one the default, then three fields separated by newlines: the query
 * string (r->args), the first id and the second id (the rest).
 *
 * Oracles: every input gives a command or a 400 with a message, never an
 * error; a command is the API's own, its keys the read model's prefix and
 * an id the edge accepts, its page size within 1..maximum (the default
 * when the argument is absent), its cursor decimal digits, and no
 * argument past the command's room.
 */

#include "ngx_http_commerce_read.c"

#include "ngx_fuzz.h"
#include "fuzz.h"


static int
fuzz_read_arg_is(ngx_http_commerce_redis_cmd_t *cmd, ngx_uint_t i,
    const char *s)
{
    return cmd->argvlen[i] == strlen(s)
           && memcmp(cmd->argv[i], s, strlen(s)) == 0;
}


/* prefix + a valid id, as the key of an id argument must be */
static int
fuzz_read_key_is(ngx_http_commerce_redis_cmd_t *cmd, ngx_uint_t i,
    const char *prefix, fuzz_field_t *id)
{
    size_t  n;

    n = strlen(prefix);

    return cmd->argvlen[i] == n + id->len
           && memcmp(cmd->argv[i], prefix, n) == 0
           && memcmp(cmd->argv[i] + n, id->data, id->len) == 0
           && ngx_http_commerce_valid_id(id->data, id->len);
}


/* a decimal argument in 1..max */
static int
fuzz_read_uint_is(ngx_http_commerce_redis_cmd_t *cmd, ngx_uint_t i,
    uint64_t min, uint64_t max, uint64_t *n)
{
    return ngx_http_commerce_parse_uint((u_char *) cmd->argv[i],
                                        cmd->argvlen[i], UINT64_MAX, n)
               == 0
           && *n >= min && *n <= max;
}


static int
fuzz_read_absent(ngx_http_request_t *r, char *name)
{
    ngx_str_t  v;

    return ngx_http_arg(r, (u_char *) name, strlen(name), &v) != NGX_OK;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t                            n;
    ngx_int_t                           rc;
    const char                         *msg;
    fuzz_field_t                        f[3];
    ngx_http_request_t                 *r;
    ngx_http_complex_value_t            cv[2];
    ngx_http_commerce_read_ctx_t        ctx;
    ngx_http_commerce_redis_cmd_t       cmd;
    ngx_http_commerce_read_loc_conf_t   rlcf;

    if (size < 3) {
        return 0;
    }

    memset(&rlcf, 0, sizeof(rlcf));
    rlcf.api = NGX_HTTP_COMMERCE_READ_ITEM + data[0] % 4;
    rlcf.max_limit = 1 + data[1];
    rlcf.default_limit = 1 + data[2] % rlcf.max_limit;

    fuzz_split(data + 3, size - 3, f, 3);

    ngx_fuzz_complex_value(&cv[0], f[1].data, f[1].len);
    ngx_fuzz_complex_value(&cv[1], f[2].data, f[2].len);
    rlcf.arg[0] = &cv[0];
    rlcf.arg[1] = &cv[1];

    r = ngx_fuzz_request(&rlcf);
    r->args.data = f[0].data;
    r->args.len = f[0].len;

    memset(&ctx, 0, sizeof(ctx));
    ngx_http_commerce_redis_cmd_init(&cmd);
    msg = NULL;

    switch (rlcf.api) {

    case NGX_HTTP_COMMERCE_READ_ITEM:
        rc = ngx_http_commerce_read_item(r, &rlcf, &cmd, &msg);

        if (rc == NGX_OK) {
            fuzz_check(cmd.argc == 2 && fuzz_read_arg_is(&cmd, 0, "GET"));
            fuzz_check(fuzz_read_key_is(&cmd, 1, COMMERCE_RK_ITEM, &f[1]));
        }

        break;

    case NGX_HTTP_COMMERCE_READ_LIST:
        rc = ngx_http_commerce_read_list(r, &rlcf, &ctx, &cmd, &msg);

        if (rc == NGX_OK) {
            fuzz_check(cmd.argc == 7);
            fuzz_check(fuzz_read_arg_is(&cmd, 0, "ZRANGEBYLEX"));
            fuzz_check(fuzz_read_arg_is(&cmd, 1, COMMERCE_RK_ITEM_INDEX));
            fuzz_check(fuzz_read_arg_is(&cmd, 2, "-")
                       || (cmd.argv[2][0] == '('
                           && ngx_http_commerce_valid_id(
                                  (u_char *) cmd.argv[2] + 1,
                                  cmd.argvlen[2] - 1)));
            fuzz_check(fuzz_read_arg_is(&cmd, 3, "+")
                       && fuzz_read_arg_is(&cmd, 4, "LIMIT")
                       && fuzz_read_arg_is(&cmd, 5, "0"));
            fuzz_check(fuzz_read_uint_is(&cmd, 6, 2, rlcf.max_limit + 1,
                                         &n));
            fuzz_check(ctx.limit == n - 1);
            fuzz_check(!fuzz_read_absent(r, "limit")
                       || ctx.limit == rlcf.default_limit);
            fuzz_check(!fuzz_read_absent(r, "after")
                       || fuzz_read_arg_is(&cmd, 2, "-"));
        }

        break;

    case NGX_HTTP_COMMERCE_READ_STOCK:
        rc = ngx_http_commerce_read_stock(r, &rlcf, &cmd, &msg);

        if (rc == NGX_OK) {
            fuzz_check(cmd.argc == 3 && fuzz_read_arg_is(&cmd, 0, "HGET"));
            fuzz_check(fuzz_read_key_is(&cmd, 1, COMMERCE_RK_STOCK, &f[1]));
            fuzz_check(cmd.argvlen[2] == f[2].len
                       && ngx_http_commerce_valid_id((u_char *) cmd.argv[2],
                                                     cmd.argvlen[2]));
        }

        break;

    default:
        rc = ngx_http_commerce_read_stock_list(r, &rlcf, &ctx, &cmd, &msg);

        if (rc == NGX_OK) {
            fuzz_check(cmd.argc == 5 && fuzz_read_arg_is(&cmd, 0, "HSCAN"));
            fuzz_check(fuzz_read_key_is(&cmd, 1, COMMERCE_RK_STOCK, &f[1]));
            fuzz_check(fuzz_read_uint_is(&cmd, 2, 0, UINT64_MAX, &n));
            fuzz_check(ctx.skip <= NGX_MAX_UINT32_VALUE);
            fuzz_check(fuzz_read_arg_is(&cmd, 3, "COUNT"));
            fuzz_check(fuzz_read_uint_is(&cmd, 4, 1, rlcf.max_limit, &n));
            fuzz_check(ctx.limit == n);
            fuzz_check(!fuzz_read_absent(r, "count")
                       || n == rlcf.default_limit);
            fuzz_check(!fuzz_read_absent(r, "cursor")
                       || fuzz_read_arg_is(&cmd, 2, "0"));
        }

        break;
    }

    fuzz_check(rc == NGX_OK || rc == NGX_HTTP_BAD_REQUEST);
    fuzz_check(rc == NGX_OK || (msg != NULL && msg[0] != '\0'));
    fuzz_check(!cmd.overflow);

    ngx_fuzz_pool_free();
    fuzz_free(f, 3);

    return 0;
}
