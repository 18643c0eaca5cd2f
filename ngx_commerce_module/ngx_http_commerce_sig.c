/*
 * Webhook signature verification (see the header).
 *
 * Each scheme follows its provider's documentation and official library:
 *
 *   Standard Webhooks  webhook-signature "v1,<base64> v1,<base64> ...",
 *                      HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with
 *                      the base64-decoded secret ("whsec_" prefix optional);
 *                      other versions are skipped; rejected when
 *                      now - ts > tolerance or ts - now > tolerance.
 *   Stripe             Stripe-Signature "t=<ts>,v1=<hex>,v1=<hex>,v0=...",
 *                      HMAC-SHA256 over "{t}.{body}" keyed with the secret
 *                      string itself ("whsec_..." is not decoded); unreadable
 *                      v1 values are skipped as stripe-go does; only a too
 *                      old timestamp is rejected, as all Stripe libraries do.
 *   Slack              X-Slack-Signature "v0=<hex>" over "v0:{ts}:{body}";
 *                      rejected when |now - ts| > tolerance (Slack SDK).
 *   Shopify            X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body.
 *   GitHub             X-Hub-Signature-256: "sha256=" hex HMAC-SHA256.
 *   generic HMAC       SHA-256 or SHA-512, hex or base64, optional prefix:
 *                      WooCommerce (base64), Razorpay (hex).
 *
 * Received MACs are decoded strictly (exact length, canonical base64 with
 * padding, hex of either case) and compared as bytes with CRYPTO_memcmp().
 * Timestamps must be plain decimal without sign or leading zeros, so the
 * text that is signed is the number the libraries would print.
 *
 * The timestamp window is checked at parse time, before the body is read,
 * so a stale delivery costs no HMAC; Stripe's libraries check the MAC first,
 * which only changes the reason a stale forged request is rejected with.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ngx_http_commerce_sig.h"


/* digits of the largest accepted timestamp (about 31 million years) */
#define NGX_HTTP_COMMERCE_SIG_TS_DIGITS  15


struct ngx_http_commerce_sig_s {
    ngx_http_commerce_sig_scheme_e     scheme;
    ngx_http_commerce_sig_encoding_e   encoding;
    size_t                             mac_len;
    time_t                             tolerance;
    size_t                             prefix_len;
    u_char                             prefix[NGX_HTTP_COMMERCE_SIG_PREFIX_MAX];
    size_t                             nsecrets;
    EVP_MAC_CTX                       *ctx[];
};


static const ngx_http_commerce_sig_preset_t  ngx_http_commerce_sig_presets[] = {
    /* Svix-powered senders use the brand's names, as Svix's libraries
     * (which wrap the Standard Webhooks ones) accept */
    { "standard", NGX_HTTP_COMMERCE_SIG_STANDARD, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "webhook-signature",
      "webhook-timestamp", "webhook-id",
      "svix-signature", "svix-timestamp", "svix-id" },
    { "stripe", NGX_HTTP_COMMERCE_SIG_STRIPE, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "", "Stripe-Signature", NULL, NULL,
      NULL, NULL, NULL },
    { "shopify", NGX_HTTP_COMMERCE_SIG_SHOPIFY, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "X-Shopify-Hmac-Sha256", NULL, NULL,
      NULL, NULL, NULL },
    { "github", NGX_HTTP_COMMERCE_SIG_GITHUB, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "sha256=", "X-Hub-Signature-256", NULL,
      NULL, NULL, NULL, NULL },
    { "slack", NGX_HTTP_COMMERCE_SIG_SLACK, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "v0=", "X-Slack-Signature",
      "X-Slack-Request-Timestamp", NULL, NULL, NULL, NULL },
    { "woocommerce", NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_BASE64, "", "X-WC-Webhook-Signature", NULL,
      NULL, NULL, NULL, NULL },
    { "razorpay", NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "", "X-Razorpay-Signature", NULL, NULL,
      NULL, NULL, NULL },
    { "hmac", NGX_HTTP_COMMERCE_SIG_HMAC, NGX_HTTP_COMMERCE_SIG_SHA256,
      NGX_HTTP_COMMERCE_SIG_HEX, "", NULL, NULL, NULL, NULL, NULL, NULL }
};


/* OSSL_PARAM wants a mutable string for the digest name */
static char  ngx_http_commerce_sig_sha256[] = OSSL_DIGEST_NAME_SHA2_256;
static char  ngx_http_commerce_sig_sha512[] = OSSL_DIGEST_NAME_SHA2_512;


static const char  *ngx_http_commerce_sig_reasons[] = {
    "ok",
    "missing_signature",
    "missing_timestamp",
    "missing_id",
    "malformed_signature",
    "malformed_timestamp",
    "unsupported_signature",
    "conflicting_headers",
    "timestamp_too_old",
    "timestamp_too_new",
    "signature_mismatch",
    "internal_error"
};


/* Looks up a scheme by its configuration name ("stripe", "razorpay", ...). */
const ngx_http_commerce_sig_preset_t *
ngx_http_commerce_sig_preset(const u_char *name, size_t len)
{
    size_t  i, n;

    n = sizeof(ngx_http_commerce_sig_presets)
        / sizeof(ngx_http_commerce_sig_presets[0]);

    for (i = 0; i < n; i++) {
        if (strlen(ngx_http_commerce_sig_presets[i].name) == len
            && memcmp(ngx_http_commerce_sig_presets[i].name, name, len) == 0)
        {
            return &ngx_http_commerce_sig_presets[i];
        }
    }

    return NULL;
}


static int
ngx_http_commerce_sig_b64_value(u_char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


/*
 * Standard base64.  strict: padding required and unused bits zero, so each
 * MAC has exactly one accepted spelling; otherwise (secrets) padding may be
 * left out, as the Standard Webhooks Python library allows.  dst needs
 * len * 3 / 4 bytes.  Returns the decoded length or -1.
 */
static ssize_t
ngx_http_commerce_sig_b64_decode(u_char *dst, const u_char *src, size_t len,
    int strict)
{
    int       v[4];
    size_t    i, j, k, n, pad, rest;
    u_char   *d;

    pad = 0;

    while (pad < 2 && len - pad > 0 && src[len - pad - 1] == '=') {
        pad++;
    }

    n = len - pad;
    rest = n % 4;

    if (rest == 1 || (pad && (n + pad) % 4 != 0) || (strict && len % 4 != 0))
    {
        return -1;
    }

    d = dst;

    for (i = 0; i < n; i += 4) {
        k = (n - i < 4) ? n - i : 4;

        v[0] = v[1] = v[2] = v[3] = 0;

        for (j = 0; j < k; j++) {
            v[j] = ngx_http_commerce_sig_b64_value(src[i + j]);
            if (v[j] < 0) {
                return -1;
            }
        }

        *d++ = (u_char) (v[0] << 2 | v[1] >> 4);

        if (k == 2) {
            if (strict && (v[1] & 0x0f)) {
                return -1;
            }
            break;
        }

        *d++ = (u_char) ((v[1] & 0x0f) << 4 | v[2] >> 2);

        if (k == 3) {
            if (strict && (v[2] & 0x03)) {
                return -1;
            }
            break;
        }

        *d++ = (u_char) ((v[2] & 0x03) << 6 | v[3]);
    }

    return d - dst;
}


static int
ngx_http_commerce_sig_hex_value(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Decodes one received MAC that must be exactly mac_len bytes; the length
 * of the text is checked first so dst never overflows.
 */
static int
ngx_http_commerce_sig_decode_mac(ngx_http_commerce_sig_encoding_e enc,
    const u_char *src, size_t len, u_char *dst, size_t mac_len)
{
    int     hi, lo;
    size_t  i;

    if (enc == NGX_HTTP_COMMERCE_SIG_BASE64) {
        if (len != (mac_len + 2) / 3 * 4) {
            return -1;
        }

        if (ngx_http_commerce_sig_b64_decode(dst, src, len, 1)
            != (ssize_t) mac_len)
        {
            return -1;
        }

        return 0;
    }

    if (len != mac_len * 2) {
        return -1;
    }

    for (i = 0; i < mac_len; i++) {
        hi = ngx_http_commerce_sig_hex_value(src[2 * i]);
        lo = ngx_http_commerce_sig_hex_value(src[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        dst[i] = (u_char) (hi << 4 | lo);
    }

    return 0;
}


/*
 * The HMAC key of a secret as configured.  Standard Webhooks secrets are
 * base64, with an optional "whsec_" prefix, exactly as its libraries decode
 * them; every other provider keys the HMAC with the secret's own bytes
 * (Stripe's "whsec_..." included).  out needs len bytes.  Returns the key
 * length, or -1 for an empty or undecodable secret.
 */
ssize_t
ngx_http_commerce_sig_decode_secret(ngx_http_commerce_sig_scheme_e scheme,
    const u_char *in, size_t len, u_char *out)
{
    ssize_t  n;

    if (scheme != NGX_HTTP_COMMERCE_SIG_STANDARD) {
        if (len == 0) {
            return -1;
        }

        memcpy(out, in, len);
        return (ssize_t) len;
    }

    if (len >= 6 && memcmp(in, "whsec_", 6) == 0) {
        in += 6;
        len -= 6;
    }

    n = ngx_http_commerce_sig_b64_decode(out, in, len, 0);

    return (n > 0) ? n : -1;
}


/*
 * The scheme's encoding, prefix and MAC size into sig, its digest into
 * *digest. Returns NULL, or why the configuration is refused.
 */
static const char *
ngx_http_commerce_sig_scheme(ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_conf_t *conf, char **digest)
{
    sig->encoding = NGX_HTTP_COMMERCE_SIG_HEX;
    sig->mac_len = 32;
    *digest = ngx_http_commerce_sig_sha256;

    switch (conf->scheme) {

    case NGX_HTTP_COMMERCE_SIG_STANDARD:
    case NGX_HTTP_COMMERCE_SIG_SHOPIFY:
        sig->encoding = NGX_HTTP_COMMERCE_SIG_BASE64;
        return NULL;

    case NGX_HTTP_COMMERCE_SIG_GITHUB:
        memcpy(sig->prefix, "sha256=", 7);
        sig->prefix_len = 7;
        return NULL;

    case NGX_HTTP_COMMERCE_SIG_STRIPE:
    case NGX_HTTP_COMMERCE_SIG_SLACK:
        return NULL;

    case NGX_HTTP_COMMERCE_SIG_HMAC:
        break;

    default:
        return "unknown signature scheme";
    }

    if (conf->digest == NGX_HTTP_COMMERCE_SIG_SHA512) {
        *digest = ngx_http_commerce_sig_sha512;
        sig->mac_len = 64;

    } else if (conf->digest != NGX_HTTP_COMMERCE_SIG_SHA256) {
        return "unknown digest";
    }

    if (conf->encoding != NGX_HTTP_COMMERCE_SIG_HEX
        && conf->encoding != NGX_HTTP_COMMERCE_SIG_BASE64)
    {
        return "unknown signature encoding";
    }

    sig->encoding = conf->encoding;

    if (conf->prefix.len) {
        memcpy(sig->prefix, conf->prefix.data, conf->prefix.len);
        sig->prefix_len = conf->prefix.len;
    }

    return NULL;
}


/*
 * One keyed HMAC context per secret into sig->ctx, counted in
 * sig->nsecrets. Returns NULL, or why a secret is refused.
 */
static const char *
ngx_http_commerce_sig_keys(ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_conf_t *conf, char *digest)
{
    size_t         i, len;
    u_char        *key;
    ssize_t        klen;
    EVP_MAC       *mac;
    OSSL_PARAM     params[2];
    const char    *err = NULL;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL) {
        return "OpenSSL has no HMAC";
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();

    for (i = 0; i < conf->nsecrets && err == NULL; i++) {
        len = conf->secrets[i].len;

        key = OPENSSL_malloc(len ? len : 1);
        if (key == NULL) {
            err = "out of memory";
            break;
        }

        klen = ngx_http_commerce_sig_decode_secret(conf->scheme,
                                                   conf->secrets[i].data,
                                                   len, key);
        if (klen < 0) {
            err = (conf->scheme == NGX_HTTP_COMMERCE_SIG_STANDARD)
                  ? "secret is not whsec_<base64> or <base64>"
                  : "secret is empty";

        } else {
            sig->ctx[i] = EVP_MAC_CTX_new(mac);

            if (sig->ctx[i] == NULL
                || !EVP_MAC_init(sig->ctx[i], key, (size_t) klen, params)
                || EVP_MAC_CTX_get_mac_size(sig->ctx[i]) != sig->mac_len)
            {
                err = "OpenSSL HMAC initialisation failed";

                /* the context of the failed secret is not counted */
                EVP_MAC_CTX_free(sig->ctx[i]);
                sig->ctx[i] = NULL;

            } else {
                sig->nsecrets++;
            }
        }

        OPENSSL_clear_free(key, len ? len : 1);
    }

    EVP_MAC_free(mac);

    return err;
}


/*
 * Builds a verifier: fetches HMAC once and keys one context per secret, so
 * a request only re-initialises a context (no fetch, no key schedule).
 */
ngx_http_commerce_sig_t *
ngx_http_commerce_sig_create(const ngx_http_commerce_sig_conf_t *conf,
    const char **err)
{
    char                     *digest;
    ngx_http_commerce_sig_t  *sig;

    *err = NULL;

    if (conf->nsecrets == 0) {
        *err = "no secret configured";
        return NULL;
    }

    if (conf->tolerance < 0) {
        *err = "negative tolerance";
        return NULL;
    }

    if (conf->prefix.len > NGX_HTTP_COMMERCE_SIG_PREFIX_MAX) {
        *err = "signature prefix too long";
        return NULL;
    }

    sig = OPENSSL_zalloc(sizeof(ngx_http_commerce_sig_t)
                         + conf->nsecrets * sizeof(EVP_MAC_CTX *));
    if (sig == NULL) {
        *err = "out of memory";
        return NULL;
    }

    sig->scheme = conf->scheme;
    sig->tolerance = conf->tolerance;

    *err = ngx_http_commerce_sig_scheme(sig, conf, &digest);

    if (*err == NULL) {
        *err = ngx_http_commerce_sig_keys(sig, conf, digest);
    }

    if (*err != NULL) {
        ngx_http_commerce_sig_free(sig);
        return NULL;
    }

    return sig;
}


void
ngx_http_commerce_sig_free(ngx_http_commerce_sig_t *sig)
{
    size_t  i;

    if (sig == NULL) {
        return;
    }

    for (i = 0; i < sig->nsecrets; i++) {
        EVP_MAC_CTX_free(sig->ctx[i]);
    }

    OPENSSL_free(sig);
}


/* Plain decimal seconds: no sign, no leading zero, at most 15 digits. */
static int
ngx_http_commerce_sig_parse_ts(const u_char *p, size_t len, time_t *ts)
{
    size_t  i;
    time_t  v;

    if (len == 0 || len > NGX_HTTP_COMMERCE_SIG_TS_DIGITS
        || (len > 1 && p[0] == '0'))
    {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    *ts = v;

    return 0;
}


/* Keeps one received MAC if it decodes; reports whether it did. */
static int
ngx_http_commerce_sig_add_mac(const ngx_http_commerce_sig_t *sig,
    ngx_http_commerce_sig_parsed_t *p, const u_char *s, size_t len)
{
    if (p->nmacs == NGX_HTTP_COMMERCE_SIG_MAX_MACS) {
        return -1;
    }

    if (ngx_http_commerce_sig_decode_mac(sig->encoding, s, len,
                                         p->macs[p->nmacs], sig->mac_len)
        != 0)
    {
        return -1;
    }

    p->nmacs++;

    return 0;
}


/*
 * "v1,<base64> v2,<x> v1,<base64>": space-separated entries; entries of
 * another version or without a comma are skipped, as the official
 * libraries do.
 */
static ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_parse_standard(const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_str_t *v, ngx_http_commerce_sig_parsed_t *p)
{
    unsigned       seen;
    const u_char  *s, *end, *tok, *comma;

    seen = 0;
    s = v->data;
    end = v->data + v->len;

    for ( ;; ) {
        tok = s;

        while (s < end && *s != ' ') {
            s++;
        }

        comma = memchr(tok, ',', s - tok);

        if (comma != NULL && comma - tok == 2 && tok[0] == 'v'
            && tok[1] == '1')
        {
            if (++seen > NGX_HTTP_COMMERCE_SIG_MAX_MACS) {
                return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
            }

            (void) ngx_http_commerce_sig_add_mac(sig, p, comma + 1,
                                                 s - comma - 1);
        }

        if (s == end) {
            break;
        }

        s++;
    }

    if (p->nmacs) {
        return NGX_HTTP_COMMERCE_SIG_OK;
    }

    return seen ? NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE
                : NGX_HTTP_COMMERCE_SIG_UNSUPPORTED;
}


/*
 * "t=<ts>,v1=<hex>,v1=<hex>,v0=<hex>": every item is key=value (stripe-go
 * rejects the header otherwise), t appears once, unknown keys are skipped
 * and so are v1 values that are not 32 bytes of hex.
 */
static ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_parse_stripe(const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_str_t *v, ngx_http_commerce_sig_parsed_t *p)
{
    unsigned       seen;
    const u_char  *s, *end, *item, *eq;

    seen = 0;
    s = v->data;
    end = v->data + v->len;

    for ( ;; ) {
        item = s;

        while (s < end && *s != ',') {
            s++;
        }

        eq = memchr(item, '=', s - item);

        if (eq == NULL) {
            return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
        }

        if (eq - item == 1 && item[0] == 't') {
            if (p->ts_text.data != NULL) {
                return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
            }

            p->ts_text.data = eq + 1;
            p->ts_text.len = s - eq - 1;

            if (ngx_http_commerce_sig_parse_ts(p->ts_text.data,
                                               p->ts_text.len, &p->timestamp)
                != 0)
            {
                return NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP;
            }

        } else if (eq - item == 2 && item[0] == 'v' && item[1] == '1') {
            if (++seen > NGX_HTTP_COMMERCE_SIG_MAX_MACS) {
                return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
            }

            (void) ngx_http_commerce_sig_add_mac(sig, p, eq + 1, s - eq - 1);
        }

        if (s == end) {
            break;
        }

        s++;
    }

    if (p->ts_text.data == NULL) {
        return NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP;
    }

    if (p->nmacs) {
        return NGX_HTTP_COMMERCE_SIG_OK;
    }

    return seen ? NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE
                : NGX_HTTP_COMMERCE_SIG_UNSUPPORTED;
}


/* "v0=<hex>"; another "vN=" is a version this code does not know. */
static ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_parse_slack(const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_str_t *v, ngx_http_commerce_sig_parsed_t *p)
{
    const u_char  *eq;

    eq = memchr(v->data, '=', v->len);

    if (eq == NULL || eq == v->data || v->data[0] != 'v') {
        return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
    }

    if (eq - v->data != 2 || v->data[1] != '0') {
        return NGX_HTTP_COMMERCE_SIG_UNSUPPORTED;
    }

    if (ngx_http_commerce_sig_add_mac(sig, p, eq + 1,
                                      v->len - (eq + 1 - v->data))
        != 0)
    {
        return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
    }

    return NGX_HTTP_COMMERCE_SIG_OK;
}


/* Shopify, GitHub and generic HMAC: [prefix]<one MAC>. */
static ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_parse_plain(const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_str_t *v, ngx_http_commerce_sig_parsed_t *p)
{
    if (v->len < sig->prefix_len
        || memcmp(v->data, sig->prefix, sig->prefix_len) != 0)
    {
        return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
    }

    if (ngx_http_commerce_sig_add_mac(sig, p, v->data + sig->prefix_len,
                                      v->len - sig->prefix_len)
        != 0)
    {
        return NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE;
    }

    return NGX_HTTP_COMMERCE_SIG_OK;
}


/*
 * The replay window, each provider's own rule: Stripe rejects only old
 * timestamps (now - t > tolerance); Standard Webhooks and Slack reject both
 * sides.  A difference of exactly the tolerance passes everywhere.
 */
static ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_check_time(const ngx_http_commerce_sig_t *sig,
    time_t ts, time_t now)
{
    if (sig->tolerance == 0) {
        return NGX_HTTP_COMMERCE_SIG_OK;
    }

    if (now - ts > sig->tolerance) {
        return NGX_HTTP_COMMERCE_SIG_TOO_OLD;
    }

    if (sig->scheme != NGX_HTTP_COMMERCE_SIG_STRIPE
        && ts - now > sig->tolerance)
    {
        return NGX_HTTP_COMMERCE_SIG_TOO_NEW;
    }

    return NGX_HTTP_COMMERCE_SIG_OK;
}


/*
 * One header that may come under two names: the value of the one sent, or
 * the same value sent under both.  Two different values are refused.
 */
static int
ngx_http_commerce_sig_merge_one(ngx_http_commerce_sig_str_t *v,
    const ngx_http_commerce_sig_str_t *alias)
{
    if (alias->data == NULL || alias->len == 0) {
        return 0;
    }

    if (v->data == NULL || v->len == 0) {
        *v = *alias;
        return 0;
    }

    return (v->len == alias->len && memcmp(v->data, alias->data, v->len) == 0)
           ? 0 : -1;
}


/*
 * The headers as sent under the preset's other names (svix-* for
 * Standard Webhooks) into h, header by header, as Svix's libraries take
 * them.  Where both names carry different values those libraries silently
 * prefer svix-*; no sender sends that, and an edge that picked one would
 * vouch for a request that something behind it may read the other way,
 * so it is refused.
 */
ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_merge(ngx_http_commerce_sig_headers_t *h,
    const ngx_http_commerce_sig_headers_t *alias)
{
    if (ngx_http_commerce_sig_merge_one(&h->signature, &alias->signature)
           != 0
        || ngx_http_commerce_sig_merge_one(&h->timestamp, &alias->timestamp)
           != 0
        || ngx_http_commerce_sig_merge_one(&h->id, &alias->id) != 0)
    {
        return NGX_HTTP_COMMERCE_SIG_CONFLICT;
    }

    return NGX_HTTP_COMMERCE_SIG_OK;
}


/*
 * Everything that needs no body: presence and syntax of the headers (400),
 * then the timestamp window (401).  Fills p for verify_body.
 */
ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_parse(const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_headers_t *h, time_t now,
    ngx_http_commerce_sig_parsed_t *p)
{
    ngx_http_commerce_sig_rc_e  rc;

    p->id.len = 0;
    p->id.data = NULL;
    p->ts_text.len = 0;
    p->ts_text.data = NULL;
    p->timestamp = -1;
    p->secret = -1;
    p->nmacs = 0;

    if (h->signature.data == NULL || h->signature.len == 0) {
        rc = NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE;
        goto done;
    }

    switch (sig->scheme) {

    case NGX_HTTP_COMMERCE_SIG_STANDARD:
    case NGX_HTTP_COMMERCE_SIG_SLACK:

        if (sig->scheme == NGX_HTTP_COMMERCE_SIG_STANDARD) {
            if (h->id.data == NULL || h->id.len == 0) {
                rc = NGX_HTTP_COMMERCE_SIG_MISSING_ID;
                goto done;
            }

            p->id = h->id;
        }

        if (h->timestamp.data == NULL || h->timestamp.len == 0) {
            rc = NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP;
            goto done;
        }

        p->ts_text = h->timestamp;

        if (ngx_http_commerce_sig_parse_ts(p->ts_text.data, p->ts_text.len,
                                           &p->timestamp)
            != 0)
        {
            rc = NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP;
            goto done;
        }

        rc = (sig->scheme == NGX_HTTP_COMMERCE_SIG_STANDARD)
             ? ngx_http_commerce_sig_parse_standard(sig, &h->signature, p)
             : ngx_http_commerce_sig_parse_slack(sig, &h->signature, p);
        break;

    case NGX_HTTP_COMMERCE_SIG_STRIPE:
        rc = ngx_http_commerce_sig_parse_stripe(sig, &h->signature, p);
        break;

    default:
        rc = ngx_http_commerce_sig_parse_plain(sig, &h->signature, p);
        break;
    }

    if (rc == NGX_HTTP_COMMERCE_SIG_OK && p->ts_text.data != NULL) {
        rc = ngx_http_commerce_sig_check_time(sig, p->timestamp, now);
    }

done:

    p->rc = rc;

    return rc;
}


static int
ngx_http_commerce_sig_update(EVP_MAC_CTX *ctx, const u_char *data,
    size_t len)
{
    return len == 0 || EVP_MAC_update(ctx, data, len);
}


/*
 * Computes the HMAC of the signed content with each secret in turn, fed
 * piece by piece (no copy of the body), and compares it in constant time
 * with every MAC the header carried.
 */
ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_verify_body(ngx_http_commerce_sig_t *sig,
    ngx_http_commerce_sig_parsed_t *p, const ngx_http_commerce_sig_str_t *body,
    size_t nbody)
{
    int           ok;
    size_t        i, b, out_len;
    u_char        out[NGX_HTTP_COMMERCE_SIG_MAC_MAX];
    unsigned      m;
    EVP_MAC_CTX  *ctx;

    if (p->rc != NGX_HTTP_COMMERCE_SIG_OK) {
        return p->rc;
    }

    for (i = 0; i < sig->nsecrets; i++) {
        ctx = sig->ctx[i];

        /* a NULL key re-initialises with the key set at create time */
        ok = EVP_MAC_init(ctx, NULL, 0, NULL);

        switch (sig->scheme) {

        case NGX_HTTP_COMMERCE_SIG_STANDARD:
            ok = ok
                 && ngx_http_commerce_sig_update(ctx, p->id.data, p->id.len)
                 && ngx_http_commerce_sig_update(ctx, (const u_char *) ".", 1)
                 && ngx_http_commerce_sig_update(ctx, p->ts_text.data,
                                                 p->ts_text.len)
                 && ngx_http_commerce_sig_update(ctx, (const u_char *) ".", 1);
            break;

        case NGX_HTTP_COMMERCE_SIG_STRIPE:
            ok = ok
                 && ngx_http_commerce_sig_update(ctx, p->ts_text.data,
                                                 p->ts_text.len)
                 && ngx_http_commerce_sig_update(ctx, (const u_char *) ".", 1);
            break;

        case NGX_HTTP_COMMERCE_SIG_SLACK:
            ok = ok
                 && ngx_http_commerce_sig_update(ctx, (const u_char *) "v0:", 3)
                 && ngx_http_commerce_sig_update(ctx, p->ts_text.data,
                                                 p->ts_text.len)
                 && ngx_http_commerce_sig_update(ctx, (const u_char *) ":", 1);
            break;

        default:
            break;
        }

        for (b = 0; ok && b < nbody; b++) {
            ok = ngx_http_commerce_sig_update(ctx, body[b].data, body[b].len);
        }

        if (!ok || !EVP_MAC_final(ctx, out, &out_len, sizeof(out))
            || out_len != sig->mac_len)
        {
            return NGX_HTTP_COMMERCE_SIG_ERROR;
        }

        for (m = 0; m < p->nmacs; m++) {
            if (CRYPTO_memcmp(out, p->macs[m], sig->mac_len) == 0) {
                p->secret = (int) i;
                OPENSSL_cleanse(out, sizeof(out));
                return NGX_HTTP_COMMERCE_SIG_OK;
            }
        }
    }

    OPENSSL_cleanse(out, sizeof(out));

    return NGX_HTTP_COMMERCE_SIG_MISMATCH;
}


/* parse and verify_body in one call, for a body that is already read. */
ngx_http_commerce_sig_rc_e
ngx_http_commerce_sig_verify(ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_headers_t *h,
    const ngx_http_commerce_sig_str_t *body, size_t nbody, time_t now,
    ngx_http_commerce_sig_parsed_t *p)
{
    ngx_http_commerce_sig_rc_e  rc;

    rc = ngx_http_commerce_sig_parse(sig, h, now, p);
    if (rc != NGX_HTTP_COMMERCE_SIG_OK) {
        return rc;
    }

    return ngx_http_commerce_sig_verify_body(sig, p, body, nbody);
}


const char *
ngx_http_commerce_sig_reason(ngx_http_commerce_sig_rc_e rc)
{
    if ((size_t) rc >= sizeof(ngx_http_commerce_sig_reasons)
                       / sizeof(ngx_http_commerce_sig_reasons[0]))
    {
        return "internal_error";
    }

    return ngx_http_commerce_sig_reasons[rc];
}


int
ngx_http_commerce_sig_http_status(ngx_http_commerce_sig_rc_e rc)
{
    switch (rc) {

    case NGX_HTTP_COMMERCE_SIG_OK:
        return 200;

    case NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE:
    case NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP:
    case NGX_HTTP_COMMERCE_SIG_MISSING_ID:
    case NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE:
    case NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP:
    case NGX_HTTP_COMMERCE_SIG_UNSUPPORTED:
    case NGX_HTTP_COMMERCE_SIG_CONFLICT:
        return 400;

    case NGX_HTTP_COMMERCE_SIG_TOO_OLD:
    case NGX_HTTP_COMMERCE_SIG_TOO_NEW:
    case NGX_HTTP_COMMERCE_SIG_MISMATCH:
        return 401;

    default:
        return 500;
    }
}
