/*
 * Fuzz target: what the webhook verifier reads of a request
 * (ngx_http_commerce_verify.c): the scheme's headers found among the
 * request's headers (any case, any number, over several list parts), the
 * delivery id from a header or from the JSON body, and the JSON check
 * with its error message.  The module file is included and configured by
 * its own ngx_http_commerce_verify_headers_of(); signature syntax and MACs
 * are fuzz_sig's.
 *
 * Input: one byte choosing the scheme, one of flags (bit 0: the JSON
 * check on, bit 1: the delivery id is needed, bit 2: no signature, so
 * that the body steps are reached with any body, bit 3 with bit 0: the
 * check of every body, "always"), then header lines "name: value" up to
 * an empty line, then the body.
 *
 * Oracles: statuses are 200/400/401 with a code; the delivery id is the
 * scheme's header as found here (webhook-id, else svix-id), or the body's
 * field, and passes the id rule exactly when it is 1..400 bytes of
 * visible ASCII; a JSON body is refused exactly when jansson cannot read
 * it as one object without a key twice, with that reason and a
 * NUL-terminated message.
 */

#include "ngx_http_commerce_verify.c"

#include "ngx_fuzz.h"
#include "fuzz.h"


#define FUZZ_VERIFY_HEADERS  64


static const char  *fuzz_verify_schemes[] = {
    "standard", "stripe", "shopify", "github", "slack", "woocommerce",
    "razorpay", "hmac"
};


static ngx_http_commerce_verify_loc_conf_t  fuzz_verify_confs[8];


static void
fuzz_verify_init(void)
{
    size_t                                i;
    const char                           *err;
    ngx_conf_t                            cf;
    ngx_http_commerce_sig_str_t           secret;
    ngx_http_commerce_sig_conf_t          sc;
    ngx_http_commerce_verify_loc_conf_t  *c;

    /* the one loc conf of ngx_fuzz_request() */
    ngx_http_commerce_verify_module.ctx_index = 0;

    ngx_str_set(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    memset(&cf, 0, sizeof(cf));

    for (i = 0; i < 8; i++) {
        c = &fuzz_verify_confs[i];
        c->preset = ngx_http_commerce_sig_preset(
                        (u_char *) fuzz_verify_schemes[i],
                        strlen(fuzz_verify_schemes[i]));
        fuzz_check(c->preset != NULL);
        c->tolerance = 300;
        ngx_str_set(&c->hmac_header, "X-Signature");

        memset(&sc, 0, sizeof(sc));
        sc.scheme = c->preset->scheme;
        sc.digest = c->preset->digest;
        sc.encoding = c->preset->encoding;
        sc.prefix.data = (u_char *) c->preset->prefix;
        sc.prefix.len = strlen(c->preset->prefix);
        sc.tolerance = c->tolerance;
        sc.secrets = &secret;
        sc.nsecrets = 1;

        fuzz_check(ngx_http_commerce_verify_headers_of(&cf, c, &sc)
                   == NGX_OK);

        c->sig = ngx_http_commerce_sig_create(&sc, &err);
        fuzz_check(c->sig != NULL);
    }
}


/* the request's headers: "name: value" lines, parts of 4 elements */
static u_char *
fuzz_verify_headers(ngx_http_request_t *r, u_char *p, u_char *end)
{
    u_char           *nl, *colon, *v;
    ngx_uint_t        n;
    ngx_table_elt_t  *h;

    fuzz_check(ngx_list_init(&r->headers_in.headers, r->pool, 4,
                             sizeof(ngx_table_elt_t))
               == NGX_OK);

    for (n = 0; p < end && n < FUZZ_VERIFY_HEADERS; n++) {
        nl = memchr(p, '\n', end - p);

        if (nl == NULL) {
            nl = end;
        }

        if (nl == p) {
            return p + 1;        /* the empty line: the body follows */
        }

        colon = memchr(p, ':', nl - p);

        if (colon != NULL) {
            h = ngx_list_push(&r->headers_in.headers);
            fuzz_check(h != NULL);

            v = colon + 1;

            while (v < nl && *v == ' ') {
                v++;
            }

            /* nginx's names and values are their own buffers */
            h->key.len = colon - p;
            h->key.data = fuzz_dup(p, h->key.len);
            h->value.len = nl - v;
            h->value.data = fuzz_dup(v, h->value.len);
            h->hash = 1;

            if (r->headers_in.content_type == NULL && h->key.len == 12
                && ngx_strncasecmp(h->key.data, (u_char *) "content-type",
                                   12) == 0)
            {
                r->headers_in.content_type = h;
            }
        }

        p = (nl < end) ? nl + 1 : end;
    }

    return p;
}


static void
fuzz_verify_free_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            free(h[i].key.data);
            free(h[i].value.data);
        }
    }
}


/* the first header of that name, looked up apart from the module */
static ngx_table_elt_t *
fuzz_verify_find(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == name->len
                && strncasecmp((char *) h[i].key.data, (char *) name->data,
                               name->len) == 0)
            {
                return &h[i];
            }
        }
    }

    return NULL;
}


static int
fuzz_verify_is_json(ngx_http_request_t *r)
{
    size_t      i;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    for (i = 0; i + 4 <= ct->len; i++) {
        if (strncasecmp((char *) ct->data + i, "json", 4) == 0) {
            return 1;
        }
    }

    return 0;
}


/* the delivery id rule, on a copy of the outcome */
static void
fuzz_verify_id(ngx_http_commerce_verify_t *v)
{
    size_t                       i;
    ngx_int_t                    rc;
    ngx_uint_t                   valid;
    ngx_http_commerce_verify_t   copy;

    copy = *v;
    rc = ngx_http_commerce_verify_id(&copy, &v->delivery_id);

    valid = v->delivery_id.len <= 400;

    for (i = 0; valid && i < v->delivery_id.len; i++) {
        valid = v->delivery_id.data[i] > 0x20 && v->delivery_id.data[i] < 0x7f;
    }

    fuzz_check(rc == (valid ? NGX_OK : NGX_HTTP_BAD_REQUEST));
    fuzz_check(valid
               || strcmp(copy.code, v->delivery_id.len > 400
                                    ? "delivery_id_too_long"
                                    : "invalid_delivery_id") == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                               *in, *p, *end;
    json_t                               *root, *id;
    ngx_int_t                             rc;
    ngx_str_t                             body, before;
    ngx_uint_t                            need_id, always;
    const char                           *code;
    json_error_t                          jerr;
    ngx_table_elt_t                      *h;
    ngx_http_request_t                   *r;
    ngx_http_commerce_verify_t            v;
    ngx_http_commerce_verify_loc_conf_t   conf;

    static int  ready;

    if (!ready) {
        fuzz_verify_init();
        ready = 1;
    }

    if (size < 2) {
        return 0;
    }

    conf = fuzz_verify_confs[data[0] % 8];
    always = (data[1] & 9) == 9;
    conf.json = always ? NGX_HTTP_COMMERCE_VERIFY_JSON_ALWAYS : data[1] & 1;
    need_id = (data[1] >> 1) & 1;

    if (data[1] & 4) {
        conf.sig = NULL;
    }

    ngx_fuzz_set_time(1614265330);
    r = ngx_fuzz_request(&conf);

    in = fuzz_dup(data + 2, size - 2);
    end = in + size - 2;
    p = fuzz_verify_headers(r, in, end);

    /* the body in a buffer of its own */
    body.len = end - p;
    body.data = fuzz_dup(p, body.len);

    rc = ngx_http_commerce_verify_headers(r, &v);

    fuzz_check(rc == NGX_OK || rc == NGX_HTTP_BAD_REQUEST
               || rc == NGX_HTTP_UNAUTHORIZED);
    fuzz_check(rc == NGX_OK || (v.code != NULL && v.msg != NULL));

    if (rc == NGX_OK && conf.sig != NULL) {
        fuzz_check(v.sig != NULL && v.sig->rc == NGX_HTTP_COMMERCE_SIG_OK);

        if (conf.names.id.len) {
            h = fuzz_verify_find(r, &conf.names.id);

            if (h == NULL || h->value.len == 0) {
                h = fuzz_verify_find(r, &conf.names.alias_id);
            }

            fuzz_check(h != NULL && v.delivery_id.data == h->value.data
                       && v.delivery_id.len == h->value.len);

        } else if (conf.names.delivery.len) {
            h = fuzz_verify_find(r, &conf.names.delivery);
            fuzz_check(h == NULL ? v.delivery_id.len == 0
                       : v.delivery_id.data == h->value.data
                         && v.delivery_id.len == h->value.len);

        } else {
            fuzz_check(v.delivery_id.len == 0);
        }
    }

    if (rc == NGX_OK) {
        fuzz_verify_id(&v);

        before = v.delivery_id;
        rc = ngx_http_commerce_verify_body(r, &v, &body, need_id);

        fuzz_check(rc == NGX_OK || rc == NGX_HTTP_BAD_REQUEST
                   || rc == NGX_HTTP_UNAUTHORIZED);
        fuzz_check(rc == NGX_OK || (v.code != NULL && v.msg != NULL));

        if (conf.sig == NULL
            && (conf.json || (need_id && before.len == 0
                              && conf.delivery_field))
            && (always || fuzz_verify_is_json(r)))
        {
            root = json_loadb((const char *) body.data, body.len,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                              &jerr);

            code = (root == NULL)
                   ? (json_error_code(&jerr) == json_error_duplicate_key
                      ? "duplicate_key" : "invalid_json")
                   : json_is_object(root) ? NULL : "not_an_object";

            fuzz_check((code == NULL) == (rc == NGX_OK));
            fuzz_check(rc == NGX_OK
                       || (strcmp(v.code, code) == 0 && strlen(v.msg) > 0));

            id = (need_id && before.len == 0 && conf.delivery_field
                  && json_is_object(root))
                 ? json_object_get(root, conf.delivery_field) : NULL;

            if (json_is_string(id) && json_string_length(id) > 0) {
                fuzz_check(v.delivery_id.len == json_string_length(id)
                           && memcmp(v.delivery_id.data,
                                     json_string_value(id),
                                     v.delivery_id.len) == 0);

            } else {
                fuzz_check(v.delivery_id.len == before.len);
            }

            json_decref(root);
        }
    }

    fuzz_verify_free_headers(r);
    ngx_fuzz_pool_free();
    free(body.data);
    free(in);

    return 0;
}
