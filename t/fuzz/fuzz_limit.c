/*
 * Fuzz target: rate limiting (ngx_http_commerce_limit.c and its GCRA,
 * ngx_http_commerce_gcra.c) on what comes from outside: the key (any
 * bytes a client puts in the header or argument it is made of) to the
 * stored key, its hash and the Redis key and command of a global zone;
 * the rate text; GCRA decisions over any sequence of arrivals and
 * refunds; the "ahead" a Redis reply carries; the RateLimit-* header
 * values.  The module file is included (nginx core: t/fuzz/ngx_fuzz.c).
 *
 * Input: one byte of burst, two of rate and arrival scale, then three
 * fields separated by newlines: the key, the rate text ("10r/s"), and
 * the arrivals (two bytes each: microseconds since the last one, scaled;
 * a set top bit refunds the request just allowed).
 *
 * Oracles: a key up to 64 bytes is stored as it is, a longer one as 0xff
 * and its MD5, the hash is its CRC-32, the Redis key is the zone's prefix
 * and that key, and the command is EVALSHA of the script; a rate parses
 * exactly when it is 1r/m..1000000r/s, to the interval rounded down; a
 * fresh key admits burst + 1 at once, never more than
 * burst + 1 + elapsed / interval in all, a refusal changes nothing and
 * says when to retry; the quota shown is never above the limit; header
 * values are the decimal numbers.
 */

#include "ngx_http_commerce_limit.c"

#include <openssl/evp.h>

#include "ngx_fuzz.h"
#include "fuzz.h"


static ngx_http_commerce_redis_cmd_t  fuzz_limit_cmd;
static ngx_uint_t                     fuzz_limit_sent;


/* the global zone's command, captured instead of sent */
ngx_int_t
ngx_http_commerce_redis_send(ngx_http_request_t *r, ngx_msec_t timeout,
    ngx_http_commerce_redis_handler_pt handler, void *data,
    ngx_http_commerce_redis_cmd_t *cmd, time_t *retry_after)
{
    /* the copy's argv in the copy itself: the sender's frame is gone */
    fuzz_check(cmd->argv == cmd->args && cmd->argvlen == cmd->lens);

    fuzz_limit_cmd = *cmd;
    fuzz_limit_cmd.argv = fuzz_limit_cmd.args;
    fuzz_limit_cmd.argvlen = fuzz_limit_cmd.lens;
    fuzz_limit_sent++;

    return NGX_OK;
}


static uint32_t
fuzz_limit_crc32(const u_char *p, size_t len)
{
    int       k;
    size_t    i;
    uint32_t  c;

    c = 0xffffffff;

    for (i = 0; i < len; i++) {
        c ^= p[i];

        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320 ^ (c >> 1) : c >> 1;
        }
    }

    return c ^ 0xffffffff;
}


static int
fuzz_limit_arg_is(ngx_uint_t i, const void *s, size_t len)
{
    return fuzz_limit_cmd.argvlen[i] == len
           && memcmp(fuzz_limit_cmd.argv[i], s, len) == 0;
}


/* the SHA1 of the script in hex, by OpenSSL: what EVALSHA must name */
static const u_char *
fuzz_limit_sha1_hex(void)
{
    static u_char  hex[40];
    u_char         md[20];
    ngx_str_t     *text;

    text = &ngx_http_commerce_limit_script.text;
    fuzz_check(EVP_Digest(text->data, text->len, md, NULL, EVP_sha1(),
                          NULL));
    ngx_hex_dump(hex, md, sizeof(md));

    return hex;
}


/* key, stored key, hash; then the global zone's Redis command */
static void
fuzz_limit_key(fuzz_field_t *key)
{
    u_char                            md5[16];
    ngx_int_t                         rc;
    ngx_shm_zone_t                    shm;
    ngx_http_request_t               *r;
    ngx_http_commerce_limit_t         limit;
    ngx_http_commerce_limit_ctx_t     ctx;
    ngx_http_commerce_limit_zone_t    zone;
    ngx_http_commerce_limit_state_t   st;

    memset(&zone, 0, sizeof(zone));
    ngx_fuzz_complex_value(&zone.key, key->data, key->len);
    ngx_str_set(&zone.prefix, "rl:api:");
    ngx_str_set(&zone.interval, "100000");
    ngx_str_set(&zone.tolerance, "900000");

    r = ngx_fuzz_request(NULL);
    memset(&st, 0, sizeof(st));

    rc = ngx_http_commerce_limit_key(r, &zone, &st);

    if (key->len == 0) {
        fuzz_check(rc == NGX_DECLINED);
        return;
    }

    fuzz_check(rc == NGX_OK);
    fuzz_check(st.status == NGX_HTTP_COMMERCE_LIMIT_PASSED);

    if (key->len <= NGX_HTTP_COMMERCE_LIMIT_KEY_MAX) {
        fuzz_check(st.key.data == key->data && st.key.len == key->len);

    } else {
        fuzz_check(EVP_Digest(key->data, key->len, md5, NULL, EVP_md5(),
                              NULL));
        fuzz_check(st.key.len == 17 && st.key.data[0] == 0xff
                   && memcmp(st.key.data + 1, md5, 16) == 0);
    }

    fuzz_check(st.hash == fuzz_limit_crc32(st.key.data, st.key.len));

    memset(&shm, 0, sizeof(shm));
    shm.data = &zone;
    limit.shm_zone = &shm;
    limit.dry_run = 0;
    memset(&ctx, 0, sizeof(ctx));
    fuzz_limit_sent = 0;

    rc = ngx_http_commerce_limit_global(r, &ctx, &limit, &st);

    fuzz_check(rc == NGX_AGAIN && fuzz_limit_sent == 1);
    fuzz_check(!fuzz_limit_cmd.overflow && fuzz_limit_cmd.argc == 6);
    fuzz_check(fuzz_limit_arg_is(0, "EVALSHA", 7));
    fuzz_check(fuzz_limit_arg_is(1, fuzz_limit_sha1_hex(), 40));
    fuzz_check(fuzz_limit_arg_is(2, "1", 1));
    fuzz_check(st.rkey.len == zone.prefix.len + st.key.len
               && memcmp(st.rkey.data, zone.prefix.data, zone.prefix.len)
                  == 0
               && memcmp(st.rkey.data + zone.prefix.len, st.key.data,
                         st.key.len) == 0);
    fuzz_check(fuzz_limit_arg_is(3, st.rkey.data, st.rkey.len));
    fuzz_check(fuzz_limit_arg_is(4, "100000", 6)
               && fuzz_limit_arg_is(5, "900000", 6));
}


/* "Nr/s" or "Nr/m", N decimal (leading zeros allowed) */
static int
fuzz_limit_rate(const u_char *p, size_t len, uint64_t *interval)
{
    size_t    i;
    uint64_t  n, period, max;

    if (len < 4 || memcmp(p + len - 3, "r/", 2) != 0
        || (p[len - 1] != 's' && p[len - 1] != 'm'))
    {
        return -1;
    }

    period = (p[len - 1] == 's') ? 1000000 : 60000000;
    max = (p[len - 1] == 's') ? 1000000 : 60000000;
    n = 0;

    for (i = 0; i < len - 3; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        n = n * 10 + (p[i] - '0');

        if (n > max) {
            return -1;
        }
    }

    if (n == 0) {
        return -1;
    }

    *interval = period / n;

    return 0;
}


/* a header value as the filter writes it, read back */
static void
fuzz_limit_header(uint64_t n)
{
    char                 digits[32];
    ngx_http_request_t  *r;
    ngx_table_elt_t     *h;

    r = ngx_fuzz_request(NULL);

    fuzz_check(ngx_list_init(&r->headers_out.headers, r->pool, 1,
                             sizeof(ngx_table_elt_t))
               == NGX_OK);

    fuzz_check(ngx_http_commerce_limit_header(r, "RateLimit-Remaining", NULL,
                                              n)
               == NGX_OK);

    h = r->headers_out.headers.part.elts;
    snprintf(digits, sizeof(digits), "%" PRIu64, n);

    fuzz_check(h->value.len == strlen(digits)
               && memcmp(h->value.data, digits, h->value.len) == 0
               && h->value.len <= NGX_INT64_LEN);
}


static void
fuzz_limit_gcra(uint64_t burst, uint64_t scale, fuzz_field_t *rate,
    fuzz_field_t *arrivals)
{
    size_t                           i;
    uint64_t                         interval, ref, now, t0, tat, before;
    uint64_t                         admitted, delta;
    unsigned                         allowed, fresh;
    ngx_http_commerce_gcra_t         g;
    ngx_http_commerce_gcra_result_t  res;

    interval = 0;
    ref = 0;

    if (ngx_http_commerce_gcra_parse_rate(rate->data, rate->len, &interval)
        == 0)
    {
        fuzz_check(fuzz_limit_rate(rate->data, rate->len, &ref) == 0);
        fuzz_check(interval == ref && interval >= 1
                   && interval <= 60000000);

    } else {
        fuzz_check(fuzz_limit_rate(rate->data, rate->len, &ref) != 0);
        interval = 100000;
    }

    fuzz_check(ngx_http_commerce_gcra_init(&g, interval, burst) == 0);
    fuzz_check(g.limit == burst + 1);

    now = t0 = 1000000000;
    tat = 0;
    admitted = 0;
    fresh = 1;

    for (i = 0; i + 1 < arrivals->len; i += 2) {
        delta = ((uint64_t) (arrivals->data[i] & 0x7f) << 8
                 | arrivals->data[i + 1]) * scale;

        now += delta;
        fresh = fresh && delta == 0;
        before = tat;

        allowed = ngx_http_commerce_gcra_update(&g, now, &tat, &res);

        fuzz_check(res.allowed == allowed);
        fuzz_check(res.remaining <= burst);

        if (allowed) {
            admitted++;
            fuzz_check(res.retry == 0);
            fuzz_check(res.reset <= g.tolerance + g.interval);
            fuzz_check(tat == (before > now ? before : now) + interval);

            if (arrivals->data[i] & 0x80) {
                ngx_http_commerce_gcra_refund(&g, &tat);
                admitted--;
                fresh = 0;
            }

        } else {
            fuzz_check(res.remaining == 0 && res.retry > 0);
            fuzz_check(tat == before);
        }

        /* burst + 1 at once, then one per interval */
        fuzz_check(admitted <= burst + 1 + (now - t0) / interval);

        if (fresh) {
            fuzz_check(admitted == (i / 2 + 1 < burst + 1 ? i / 2 + 1
                                                           : burst + 1));
        }

        fuzz_check(ngx_http_commerce_gcra_idle(now, tat) == (tat <= now));
        fuzz_check(ngx_http_commerce_gcra_seconds(res.reset) * 1000000
                   >= res.reset);
    }

    /* whatever "ahead" Redis answers, the quota shown is within limits */
    if (arrivals->len >= 8) {
        memcpy(&delta, arrivals->data, 8);

        ngx_http_commerce_gcra_outcome(&g, arrivals->data[0] & 1, delta,
                                       &res);
        fuzz_check(res.remaining <= g.limit);
        fuzz_check(res.reset == delta);
        fuzz_limit_header(res.remaining);
        fuzz_limit_header(ngx_http_commerce_gcra_seconds(res.reset));
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t      burst, scale;
    fuzz_field_t  f[3];

    if (size < 3) {
        return 0;
    }

    /* bursts 0..255 and, rarely, the largest */
    burst = (data[0] == 0xff) ? NGX_HTTP_COMMERCE_GCRA_MAX_BURST : data[0];
    scale = 1 + ((uint64_t) data[1] << 8 | data[2]);

    fuzz_split(data + 3, size - 3, f, 3);

    fuzz_limit_key(&f[0]);
    ngx_fuzz_pool_free();

    fuzz_limit_gcra(burst, scale, &f[1], &f[2]);
    ngx_fuzz_pool_free();

    fuzz_free(f, 3);

    return 0;
}
