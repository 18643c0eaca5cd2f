/*
 * Webhook signature verification for the commerce module: Standard Webhooks,
 * Stripe, Shopify, GitHub, Slack and generic HMAC (WooCommerce, Razorpay).
 * Pure C on OpenSSL libcrypto, no nginx headers, so it is unit-tested on its
 * own (t/unit/test_sig.c) and called from the nginx webhook handler.
 *
 * Use:
 *
 *   at configuration time
 *     ngx_http_commerce_sig_create(conf, &err)   secrets as written in the
 *                                                configuration; one keyed
 *                                                HMAC context per secret
 *   per request, once the headers are in
 *     ngx_http_commerce_sig_merge(&hdrs, &alias)  the svix-* spellings of
 *                                                the same headers, if any:
 *                                                conflicting_headers (400)
 *                                                when both differ
 *     ngx_http_commerce_sig_parse(sig, hdrs, now, &p)
 *                                                400-class codes for absent
 *                                                or garbled headers, then
 *                                                401 for a stale timestamp;
 *                                                the body need not be read
 *   once the body is in (any number of buffers)
 *     ngx_http_commerce_sig_verify_body(sig, &p, body, n)
 *                                                401 signature_mismatch or ok
 *   at configuration teardown (a pool cleanup)
 *     ngx_http_commerce_sig_free(sig)
 *
 * The verifier keeps one mutable HMAC context per secret, so one verifier
 * must not be used by two threads at once (an nginx worker is one thread).
 */

#ifndef _NGX_HTTP_COMMERCE_SIG_H_INCLUDED_
#define _NGX_HTTP_COMMERCE_SIG_H_INCLUDED_


#include <stddef.h>
#include <time.h>
#include <sys/types.h>


/* replay window of the timestamped schemes, as the providers' libraries */
#define NGX_HTTP_COMMERCE_SIG_TOLERANCE   300

/* entries of the supported version in one header: more is malformed */
#define NGX_HTTP_COMMERCE_SIG_MAX_MACS    8

/* SHA-512 */
#define NGX_HTTP_COMMERCE_SIG_MAC_MAX     64

/* longest generic HMAC prefix, e.g. "sha256=" */
#define NGX_HTTP_COMMERCE_SIG_PREFIX_MAX  32


typedef enum {
    NGX_HTTP_COMMERCE_SIG_STANDARD = 0,   /* standardwebhooks.com */
    NGX_HTTP_COMMERCE_SIG_STRIPE,
    NGX_HTTP_COMMERCE_SIG_SHOPIFY,
    NGX_HTTP_COMMERCE_SIG_GITHUB,
    NGX_HTTP_COMMERCE_SIG_SLACK,
    NGX_HTTP_COMMERCE_SIG_HMAC            /* digest, encoding, prefix given */
} ngx_http_commerce_sig_scheme_e;


typedef enum {
    NGX_HTTP_COMMERCE_SIG_SHA256 = 0,
    NGX_HTTP_COMMERCE_SIG_SHA512
} ngx_http_commerce_sig_digest_e;


typedef enum {
    NGX_HTTP_COMMERCE_SIG_HEX = 0,
    NGX_HTTP_COMMERCE_SIG_BASE64
} ngx_http_commerce_sig_encoding_e;


/*
 * Results.  ngx_http_commerce_sig_http_status() maps them: the MISSING_,
 * MALFORMED_, UNSUPPORTED and CONFLICT codes to 400, TOO_ and MISMATCH to
 * 401, ERROR to 500.  ngx_http_commerce_sig_reason() gives a stable short name.
 */
typedef enum {
    NGX_HTTP_COMMERCE_SIG_OK = 0,             /* ok */
    NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE,  /* missing_signature */
    NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP,  /* missing_timestamp */
    NGX_HTTP_COMMERCE_SIG_MISSING_ID,         /* missing_id */
    NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE,
    NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP,
    NGX_HTTP_COMMERCE_SIG_UNSUPPORTED,        /* unsupported_signature: no
                                                 entry of the known version */
    NGX_HTTP_COMMERCE_SIG_CONFLICT,           /* conflicting_headers: one
                                                 header under both its names,
                                                 with two values */
    NGX_HTTP_COMMERCE_SIG_TOO_OLD,            /* timestamp_too_old */
    NGX_HTTP_COMMERCE_SIG_TOO_NEW,            /* timestamp_too_new */
    NGX_HTTP_COMMERCE_SIG_MISMATCH,           /* signature_mismatch */
    NGX_HTTP_COMMERCE_SIG_ERROR               /* internal_error (OpenSSL) */
} ngx_http_commerce_sig_rc_e;


/* bytes; data NULL (or len 0) means absent.  Same layout as ngx_str_t. */
typedef struct {
    size_t          len;
    const u_char   *data;
} ngx_http_commerce_sig_str_t;


/*
 * Secrets are given as written in the configuration and decoded per scheme
 * (see ngx_http_commerce_sig_decode_secret()).  Several secrets: any one
 * that matches passes (key rotation).  digest, encoding and prefix are read
 * for NGX_HTTP_COMMERCE_SIG_HMAC only; the other schemes fix their own.
 * tolerance is in seconds, 0 disables the timestamp check.
 */
typedef struct {
    ngx_http_commerce_sig_scheme_e      scheme;
    ngx_http_commerce_sig_digest_e      digest;
    ngx_http_commerce_sig_encoding_e    encoding;
    ngx_http_commerce_sig_str_t         prefix;
    time_t                              tolerance;
    const ngx_http_commerce_sig_str_t  *secrets;
    size_t                              nsecrets;
} ngx_http_commerce_sig_conf_t;


/*
 * Header values as received, already extracted by the caller.  signature is
 * the scheme's signature header (webhook-signature, Stripe-Signature, ...),
 * timestamp is webhook-timestamp or X-Slack-Request-Timestamp, id is
 * webhook-id; the fields a scheme does not use are ignored.  The same
 * headers under the preset's other names (svix-*) are merged in first with
 * ngx_http_commerce_sig_merge().
 */
typedef struct {
    ngx_http_commerce_sig_str_t     signature;
    ngx_http_commerce_sig_str_t     timestamp;
    ngx_http_commerce_sig_str_t     id;
} ngx_http_commerce_sig_headers_t;


/*
 * The outcome of parse, input of verify_body.  id and the timestamp text
 * point into the caller's header values, which must outlive verify_body.
 */
typedef struct {
    ngx_http_commerce_sig_rc_e      rc;          /* of parse */
    ngx_http_commerce_sig_str_t     id;          /* webhook-id, else empty */
    ngx_http_commerce_sig_str_t     ts_text;     /* digits as signed */
    time_t                          timestamp;   /* -1 when none */
    int                             secret;      /* index that matched, -1 */
    unsigned                        nmacs;
    u_char                          macs[NGX_HTTP_COMMERCE_SIG_MAX_MACS]
                                        [NGX_HTTP_COMMERCE_SIG_MAC_MAX];
} ngx_http_commerce_sig_parsed_t;


/* What a configuration name stands for, with the headers to extract. */
typedef struct {
    const char                         *name;
    ngx_http_commerce_sig_scheme_e      scheme;
    ngx_http_commerce_sig_digest_e      digest;
    ngx_http_commerce_sig_encoding_e    encoding;
    const char                         *prefix;
    const char                         *signature_header; /* NULL: caller's */
    const char                         *timestamp_header; /* NULL: none */
    const char                         *id_header;        /* NULL: none */
    const char                         *alias_signature;  /* NULL: none */
    const char                         *alias_timestamp;
    const char                         *alias_id;
} ngx_http_commerce_sig_preset_t;


typedef struct ngx_http_commerce_sig_s  ngx_http_commerce_sig_t;


const ngx_http_commerce_sig_preset_t *ngx_http_commerce_sig_preset(
    const u_char *name, size_t len);

ssize_t ngx_http_commerce_sig_decode_secret(
    ngx_http_commerce_sig_scheme_e scheme, const u_char *in, size_t len,
    u_char *out);

ngx_http_commerce_sig_t *ngx_http_commerce_sig_create(
    const ngx_http_commerce_sig_conf_t *conf, const char **err);
void ngx_http_commerce_sig_free(ngx_http_commerce_sig_t *sig);

ngx_http_commerce_sig_rc_e ngx_http_commerce_sig_merge(
    ngx_http_commerce_sig_headers_t *h,
    const ngx_http_commerce_sig_headers_t *alias);
ngx_http_commerce_sig_rc_e ngx_http_commerce_sig_parse(
    const ngx_http_commerce_sig_t *sig,
    const ngx_http_commerce_sig_headers_t *h, time_t now,
    ngx_http_commerce_sig_parsed_t *p);
ngx_http_commerce_sig_rc_e ngx_http_commerce_sig_verify_body(
    ngx_http_commerce_sig_t *sig, ngx_http_commerce_sig_parsed_t *p,
    const ngx_http_commerce_sig_str_t *body, size_t nbody);
ngx_http_commerce_sig_rc_e ngx_http_commerce_sig_verify(
    ngx_http_commerce_sig_t *sig, const ngx_http_commerce_sig_headers_t *h,
    const ngx_http_commerce_sig_str_t *body, size_t nbody, time_t now,
    ngx_http_commerce_sig_parsed_t *p);

const char *ngx_http_commerce_sig_reason(ngx_http_commerce_sig_rc_e rc);
int ngx_http_commerce_sig_http_status(ngx_http_commerce_sig_rc_e rc);


#endif /* _NGX_HTTP_COMMERCE_SIG_H_INCLUDED_ */
