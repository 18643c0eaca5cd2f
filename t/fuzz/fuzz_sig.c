/*
 * Fuzz target: webhook signature headers of every scheme
 * (ngx_commerce_module/ngx_http_commerce_sig.c), header parsing, the
 * timestamp parser and window, and the MAC check over the body.
 *
 * Input: one byte choosing the verifier (scheme, digest, encoding, prefix),
 * one byte of flags and clock offset, then four fields separated by
 * newlines: signature header, timestamp header, id header, body (the rest).
 *
 * Oracles, besides the sanitizers:
 *   - a code is one of the documented ones, with a reason and a status;
 *   - a parsed timestamp is the canonical decimal of its text, and that
 *     text is the timestamp header or a "t=" item of the Stripe header;
 *   - the body check passes exactly when one of the parsed MACs equals
 *     the HMAC computed here with OpenSSL's one-shot HMAC();
 *   - "self-signed" inputs (flag bit 0) get a correct signature appended
 *     by the harness, so the accepting path is explored with any id,
 *     timestamp and body; with no other entry and a timestamp inside the
 *     window it must be accepted.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_commerce_sig.h"
#include "fuzz.h"


#define FUZZ_SIG_NOW    1614265330      /* the Standard Webhooks vector */
#define FUZZ_SIG_HDR    1024


typedef struct {
    ngx_http_commerce_sig_scheme_e      scheme;
    ngx_http_commerce_sig_digest_e      digest;
    ngx_http_commerce_sig_encoding_e    encoding;
    const char                         *prefix;
    const char                         *secret;
    time_t                              tolerance;
} fuzz_sig_conf_t;


/* the secrets of the unit tests' vectors (t/unit/test_sig.c) */
static const fuzz_sig_conf_t  fuzz_sig_confs[] = {
    { NGX_HTTP_COMMERCE_SIG_STANDARD, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "",
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 300 },
    { NGX_HTTP_COMMERCE_SIG_STRIPE, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "", "webhook_secret", 300 },
    { NGX_HTTP_COMMERCE_SIG_SHOPIFY, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "hush", 300 },
    { NGX_HTTP_COMMERCE_SIG_GITHUB, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "sha256=", "It's a Secret to Everybody",
      300 },
    { NGX_HTTP_COMMERCE_SIG_SLACK, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "v0=", "8f742231b10e8888abcd99yyyzzz85a5",
      300 },
    { NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "wc_secret", 300 },
    { NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "", "key_secret", 300 },
    { NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA512,
      NGX_HTTP_COMMERCE_SIG_BASE64, "sha512=", "It's a Secret to Everybody",
      300 },
    { NGX_HTTP_COMMERCE_SIG_STANDARD, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      0 },
};

#define FUZZ_SIG_NCONFS  (sizeof(fuzz_sig_confs) / sizeof(fuzz_sig_confs[0]))


typedef struct {
    ngx_http_commerce_sig_t  *sig;
    u_char                    key[256];
    size_t                    key_len;
} fuzz_sig_verifier_t;


static fuzz_sig_verifier_t  fuzz_sig_verifiers[FUZZ_SIG_NCONFS];


static void
fuzz_sig_init(void)
{
    size_t                        i;
    ssize_t                       n;
    const char                   *err;
    const fuzz_sig_conf_t        *c;
    ngx_http_commerce_sig_str_t   secret;
    ngx_http_commerce_sig_conf_t  sc;

    for (i = 0; i < FUZZ_SIG_NCONFS; i++) {
        c = &fuzz_sig_confs[i];

        secret.data = (const u_char *) c->secret;
        secret.len = strlen(c->secret);

        memset(&sc, 0, sizeof(sc));
        sc.scheme = c->scheme;
        sc.digest = c->digest;
        sc.encoding = c->encoding;
        sc.prefix.data = (const u_char *) c->prefix;
        sc.prefix.len = strlen(c->prefix);
        sc.tolerance = c->tolerance;
        sc.secrets = &secret;
        sc.nsecrets = 1;

        err = NULL;
        fuzz_sig_verifiers[i].sig = ngx_http_commerce_sig_create(&sc, &err);

        if (fuzz_sig_verifiers[i].sig == NULL) {
            fprintf(stderr, "sig_create %zu: %s\n", i, err ? err : "?");
            abort();
        }

        n = ngx_http_commerce_sig_decode_secret(c->scheme, secret.data,
                                                secret.len,
                                                fuzz_sig_verifiers[i].key);
        fuzz_check(n > 0);
        fuzz_sig_verifiers[i].key_len = (size_t) n;
    }
}


/* the HMAC of the signed content, computed apart from the code tested */
static size_t
fuzz_sig_expected(const fuzz_sig_conf_t *c, const fuzz_sig_verifier_t *v,
    const ngx_http_commerce_sig_str_t *id,
    const ngx_http_commerce_sig_str_t *ts,
    const fuzz_field_t *body, u_char *mac)
{
    size_t          n;
    u_char         *msg;
    unsigned int    len;
    const EVP_MD   *md;

    msg = malloc(id->len + ts->len + body->len + 8);
    fuzz_check(msg != NULL);
    n = 0;

#define PUT(p, l)  do { if (l) { memcpy(msg + n, p, l); n += l; } } while (0)

    switch (c->scheme) {

    case NGX_HTTP_COMMERCE_SIG_STANDARD:
        PUT(id->data, id->len);
        PUT(".", 1);
        PUT(ts->data, ts->len);
        PUT(".", 1);
        break;

    case NGX_HTTP_COMMERCE_SIG_STRIPE:
        PUT(ts->data, ts->len);
        PUT(".", 1);
        break;

    case NGX_HTTP_COMMERCE_SIG_SLACK:
        PUT("v0:", 3);
        PUT(ts->data, ts->len);
        PUT(":", 1);
        break;

    default:
        break;
    }

    PUT(body->data, body->len);

#undef PUT

    md = (c->digest == NGX_HTTP_COMMERCE_SIG_SHA512) ? EVP_sha512()
                                                     : EVP_sha256();
    len = 0;
    fuzz_check(HMAC(md, v->key, (int) v->key_len, msg, n, mac, &len)
               != NULL);
    free(msg);

    return len;
}


/* canonical decimal: no sign, no leading zero, at most 15 digits */
static int
fuzz_sig_ts(const u_char *p, size_t len, time_t *ts)
{
    size_t  i;

    if (len == 0 || len > 15 || (len > 1 && p[0] == '0')) {
        return -1;
    }

    *ts = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        *ts = *ts * 10 + (p[i] - '0');
    }

    return 0;
}


static size_t
fuzz_sig_encode(const fuzz_sig_conf_t *c, const u_char *mac, size_t len,
    char *out)
{
    size_t  i;

    if (c->encoding == NGX_HTTP_COMMERCE_SIG_BASE64) {
        return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) len);
    }

    for (i = 0; i < len; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }

    return 2 * len;
}


/*
 * The signature header of a self-signed input: what the fuzzer wrote, then
 * one correct entry in the scheme's syntax.
 */
static size_t
fuzz_sig_self_sign(const fuzz_sig_conf_t *c, const fuzz_field_t *given,
    const u_char *mac, size_t mac_len, const fuzz_field_t *ts, char *out)
{
    size_t  n;
    char    enc[2 * 64 + 1];

    enc[fuzz_sig_encode(c, mac, mac_len, enc)] = '\0';

    n = 0;

    if (given->len) {
        memcpy(out, given->data, given->len);
        n = given->len;
    }

    switch (c->scheme) {

    case NGX_HTTP_COMMERCE_SIG_STANDARD:
        n += sprintf(out + n, "%sv1,%s", n ? " " : "", enc);
        break;

    case NGX_HTTP_COMMERCE_SIG_STRIPE:
        if (n == 0) {
            n = sprintf(out, "t=%.*s", (int) ts->len,
                        ts->len ? (char *) ts->data : "");
        }

        n += sprintf(out + n, ",v1=%s", enc);
        break;

    default:
        /* one MAC: the given text is dropped, the prefix is the scheme's */
        n = sprintf(out, "%s%s", c->prefix, enc);
        break;
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                              self;
    char                            *hdr;
    size_t                           mac_len;
    time_t                           now, ts;
    u_char                           mac[64];
    unsigned                         m, match;
    fuzz_field_t                     f[4];
    fuzz_sig_verifier_t             *v;
    const fuzz_sig_conf_t           *c;
    ngx_http_commerce_sig_rc_e       rc, brc;
    ngx_http_commerce_sig_str_t      body;
    ngx_http_commerce_sig_parsed_t   p;
    ngx_http_commerce_sig_headers_t  h;

    static int  ready;

    if (!ready) {
        fuzz_sig_init();
        ready = 1;
    }

    if (size < 2) {
        return 0;
    }

    c = &fuzz_sig_confs[data[0] % FUZZ_SIG_NCONFS];
    v = &fuzz_sig_verifiers[data[0] % FUZZ_SIG_NCONFS];
    self = data[1] & 1;

    fuzz_split(data + 2, size - 2, f, 4);

    /* the clock: the timestamp sent, moved by -320..315 s in 5 s steps */
    if (fuzz_sig_ts(f[1].data, f[1].len, &now) != 0) {
        now = FUZZ_SIG_NOW;
    }

    now += ((int) (data[1] >> 1) - 64) * 5;

    memset(&h, 0, sizeof(h));
    h.timestamp.data = f[1].data;
    h.timestamp.len = f[1].len;
    h.id.data = f[2].data;
    h.id.len = f[2].len;

    hdr = NULL;

    if (self) {
        ngx_http_commerce_sig_str_t  tsv = { f[1].len, f[1].data };
        ngx_http_commerce_sig_str_t  idv = { f[2].len, f[2].data };

        if (f[0].len > FUZZ_SIG_HDR) {
            fuzz_free(f, 4);
            return 0;
        }

        mac_len = fuzz_sig_expected(c, v, &idv, &tsv, &f[3], mac);
        hdr = malloc(f[0].len + f[1].len + 2 * 64 + 64);
        fuzz_check(hdr != NULL);
        h.signature.len = fuzz_sig_self_sign(c, &f[0], mac, mac_len, &f[1],
                                             hdr);
        h.signature.data = (u_char *) hdr;

    } else {
        h.signature.data = f[0].data;
        h.signature.len = f[0].len;
    }

    rc = ngx_http_commerce_sig_parse(v->sig, &h, now, &p);

    fuzz_check(rc <= NGX_HTTP_COMMERCE_SIG_ERROR);
    fuzz_check(p.rc == rc);
    fuzz_check(ngx_http_commerce_sig_reason(rc) != NULL);
    fuzz_check(ngx_http_commerce_sig_http_status(rc) >= 200);
    fuzz_check(p.nmacs <= NGX_HTTP_COMMERCE_SIG_MAX_MACS);
    fuzz_check(rc != NGX_HTTP_COMMERCE_SIG_ERROR);

    if (p.ts_text.data != NULL
        && rc != NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP)
    {
        fuzz_check(fuzz_sig_ts(p.ts_text.data, p.ts_text.len, &ts) == 0);
        fuzz_check(ts == p.timestamp);

        if (c->scheme == NGX_HTTP_COMMERCE_SIG_STRIPE) {
            /* a whole "t=" item of the header */
            fuzz_check(p.ts_text.data >= h.signature.data + 2);
            fuzz_check(p.ts_text.data + p.ts_text.len
                       <= h.signature.data + h.signature.len);
            fuzz_check(memcmp(p.ts_text.data - 2, "t=", 2) == 0);
            fuzz_check(p.ts_text.data - 2 == h.signature.data
                       || p.ts_text.data[-3] == ',');

        } else {
            fuzz_check(p.ts_text.data == h.timestamp.data
                       && p.ts_text.len == h.timestamp.len);
        }
    }

    if (rc == NGX_HTTP_COMMERCE_SIG_OK) {
        fuzz_check(p.nmacs > 0);

        if (p.ts_text.data != NULL && c->tolerance) {
            fuzz_check(now - p.timestamp <= c->tolerance);
        }

        if (c->scheme == NGX_HTTP_COMMERCE_SIG_STANDARD) {
            fuzz_check(p.id.data == h.id.data && p.id.len == h.id.len
                       && p.id.len > 0);
        }
    }

    body.data = f[3].data;
    body.len = f[3].len;

    brc = ngx_http_commerce_sig_verify_body(v->sig, &p, &body, 1);

    if (rc != NGX_HTTP_COMMERCE_SIG_OK) {
        fuzz_check(brc == rc);

    } else {
        mac_len = fuzz_sig_expected(c, v, &p.id, &p.ts_text, &f[3], mac);
        match = 0;

        for (m = 0; m < p.nmacs; m++) {
            match |= (memcmp(p.macs[m], mac, mac_len) == 0);
        }

        fuzz_check(brc == (match ? NGX_HTTP_COMMERCE_SIG_OK
                                 : NGX_HTTP_COMMERCE_SIG_MISMATCH));
        fuzz_check(p.secret == (match ? 0 : -1));
    }

    /* a lone correct entry with a timestamp in the window is accepted */
    if (self && f[0].len == 0
        && (c->scheme == NGX_HTTP_COMMERCE_SIG_SHOPIFY
            || c->scheme == NGX_HTTP_COMMERCE_SIG_GITHUB
            || c->scheme == NGX_HTTP_COMMERCE_SIG_HMAC
            || (fuzz_sig_ts(f[1].data, f[1].len, &ts) == 0
                && (c->tolerance == 0
                    || (now - ts <= c->tolerance
                        && (ts - now <= c->tolerance
                            || c->scheme == NGX_HTTP_COMMERCE_SIG_STRIPE)))
                && (c->scheme != NGX_HTTP_COMMERCE_SIG_STANDARD
                    || f[2].len > 0))))
    {
        if (brc != NGX_HTTP_COMMERCE_SIG_OK) {
            fprintf(stderr, "self-signed refused: %s\n",
                    ngx_http_commerce_sig_reason(brc));
            abort();
        }
    }

    free(hdr);
    fuzz_free(f, 4);

    return 0;
}
