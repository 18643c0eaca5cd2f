/*
 * Unit tests of webhook signature verification
 * (ngx_commerce_module/ngx_http_commerce_sig.c), on the providers' own
 * published vectors where they exist:
 *
 *   Standard Webhooks  libraries/{python,go}/ tests of
 *                      github.com/standard-webhooks/standard-webhooks
 *   Stripe             src/StripeTests/Services/Events/EventUtilityTest.cs
 *                      and Resources/event_test_signature.json of
 *                      stripe-dotnet; negative cases of stripe-go's
 *                      webhook/client_test.go
 *   GitHub             docs.github.com "Validating webhook deliveries"
 *   Slack              api.slack.com "Verifying requests from Slack"
 *   Razorpay           tests/test_client_utility.py and
 *                      tests/mocks/fake_payment_authorized_webhook.json of
 *                      razorpay-python
 *
 * Vectors marked "openssl" were computed independently in a shell, e.g.
 *   printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test_secret
 *   printf '...' | openssl dgst -sha256 -hmac hush -binary | base64
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngx_http_commerce_sig.h"


#define STR(s)   { sizeof(s) - 1, (const u_char *) (s) }
#define NONE     { 0, NULL }
#define CSTR(s)  { strlen(s), (const u_char *) (s) }


/* Standard Webhooks: the libraries' TestWebhookSign / test_sign_function */
#define SW_SECRET     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_RAW        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID         "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS         1614265330
#define SW_TS_TEXT    "1614265330"
#define SW_PAYLOAD    "{\"test\": 2432232314}"
#define SW_B64        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_SIG        "v1," SW_B64
/* the wrong signatures of the Go and Python tests */
#define SW_BAD_GO     "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
#define SW_BAD_PY     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
/* openssl: HMAC over "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." */
#define SW_EMPTY_SIG  "v1,v48jdbgvh29KJz2Qc+ghw8G6vG3nAKnujWBg8oM/62A="


/* Stripe: stripe-dotnet EventUtilityTest */
#define ST_SECRET  "webhook_secret"
#define ST_TS      1533204620
#define ST_HEADER  "t=1533204620," \
    "v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7," \
    "v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef"
#define ST_V1      \
    "v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7"

static const char  st_json[] =
    "{\n"
    "  \"id\": \"evt_123\",\n"
    "  \"object\": \"event\",\n"
    "  \"account\": \"acct_123\",\n"
    "  \"api_version\": \"2017-05-25\",\n"
    "  \"created\": 1533204620,\n"
    "  \"data\": {\n"
    "    \"object\": {\n"
    "      \"id\": \"cus_123\",\n"
    "      \"object\": \"customer\",\n"
    "      \"created\": 123456789,\n"
    "      \"email\": \"test@stripe.com\",\n"
    "      \"livemode\": false,\n"
    "      \"metadata\": {}\n"
    "    }\n"
    "  },\n"
    "  \"livemode\": false,\n"
    "  \"pending_webhooks\": 1,\n"
    "  \"request\": {\n"
    "    \"id\": \"req_123\",\n"
    "    \"idempotency_key\": \"idempotency-key-123\"\n"
    "  },\n"
    "  \"type\": \"customer.created\"\n"
    "}\n";

/* openssl: t=1700000000, body "{}", secrets used as raw strings */
#define ST_RAW_SECRET  "whsec_test_secret"
#define ST_RAW_HEX     \
    "ceb8863f7208fa249a6cd8f951e993c7563412aca65866f6272283debe143ab3"
#define ST_RAW_V1      "v1=" ST_RAW_HEX
#define ST_ROLLED_V1   \
    "v1=fe3e13aa5cbe872b2c9cfcb7283414f7512c69cfbd245b0f8b51e4acfacb3378"


/* GitHub docs */
#define GH_SECRET  "It's a Secret to Everybody"
#define GH_BODY    "Hello, World!"
#define GH_HEX     \
    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define GH_SIG     "sha256=" GH_HEX
/* openssl: empty body */
#define GH_EMPTY   \
    "sha256=66a0c074deaa0f489ead6537e0d32f9a344b90bbeda705b6ed45ecd3b413fb40"


/* Slack docs */
#define SL_SECRET  "8f742231b10e8888abcd99yyyzzz85a5"
#define SL_TS      1531420618
#define SL_TS_TEXT "1531420618"
#define SL_SIG     \
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
#define SL_BODY    \
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=" \
    "testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=" \
    "U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=" \
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J" \
    "%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=" \
    "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
/* openssl: empty body */
#define SL_EMPTY   \
    "v0=55f41ec73231010289b54e669149ea021fccab11b5524355523533ce930cb739"


/* Shopify publishes no vector; openssl */
#define SH_SECRET  "hush"
#define SH_BODY    "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define SH_SIG     "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="


/* WooCommerce publishes no vector; openssl */
#define WC_SECRET  "wc_secret"
#define WC_BODY    "{\"id\":1,\"status\":\"processing\"}"
#define WC_SIG     "Vd3fOI+8OjRb0OwRBSZeU4zig6W68MbWTMlnt/6I82o="


/* Razorpay: razorpay-python test_verify_webhook_signature */
#define RZ_SECRET  "key_secret"
#define RZ_SIG     \
    "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"

static const char  rz_json[] =
    "{\n"
    "  \"event\": \"payment.authorized\",\n"
    "  \"entity\": \"event\",\n"
    "  \"contains\": [\n"
    "    \"payment\"\n"
    "  ],\n"
    "  \"payload\": {\n"
    "    \"payment\": {\n"
    "      \"entity\": {\n"
    "        \"id\": \"pay_6koWN7bvxujzxM\",\n"
    "        \"entity\": \"payment\",\n"
    "        \"amount\": 1000000,\n"
    "        \"currency\": \"INR\",\n"
    "        \"status\": \"captured\",\n"
    "        \"order_id\": \"order_100000000order\",\n"
    "        \"international\": false,\n"
    "        \"method\": \"card\",\n"
    "        \"amount_refunded\": 0,\n"
    "        \"refund_status\": null,\n"
    "        \"captured\": true,\n"
    "        \"description\": \"random description\",\n"
    "        \"card_id\": \"card_6koWNAT6LASUqy\",\n"
    "        \"bank\": null,\n"
    "        \"wallet\": null,\n"
    "        \"vpa\": null,\n"
    "        \"email\": \"a@b.com\",\n"
    "        \"contact\": \"+919999999999\",\n"
    "        \"notes\": {\n"
    "          \"merchant_order_id\": \"random order id\"\n"
    "        },\n"
    "        \"fee\": 23000,\n"
    "        \"service_tax\": 3000,\n"
    "        \"error_code\": null,\n"
    "        \"error_description\": null,\n"
    "        \"created_at\": 1479978483\n"
    "      }\n"
    "    }\n"
    "  },\n"
    "  \"created_at\": 1400826760\n"
    "}\n";


/* openssl: HMAC-SHA512 of the GitHub vector */
#define S512_HEX   \
    "11ed355a617e98134e842012a7944ccf59c10256cb182357bd7e3a42013ff07c" \
    "376f8c14cf5cc1923da20b51d64256b2fb8ebbf100aa67a61326f61fea8111bc"
#define S512_B64   \
    "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay" \
    "+4678QCqZ6YTJvYf6oERvA=="


/* A verifier for one scheme and up to three secrets (NULL ends them). */
static ngx_http_commerce_sig_t *
make(ngx_http_commerce_sig_scheme_e scheme, const char *s0, const char *s1,
    const char *s2)
{
    size_t                        n;
    const char                   *err, *in[3];
    ngx_http_commerce_sig_t      *sig;
    ngx_http_commerce_sig_str_t   secrets[3];
    ngx_http_commerce_sig_conf_t  conf;

    in[0] = s0;
    in[1] = s1;
    in[2] = s2;

    for (n = 0; n < 3 && in[n] != NULL; n++) {
        secrets[n].len = strlen(in[n]);
        secrets[n].data = (const u_char *) in[n];
    }

    memset(&conf, 0, sizeof(conf));
    conf.scheme = scheme;
    conf.tolerance = NGX_HTTP_COMMERCE_SIG_TOLERANCE;
    conf.secrets = secrets;
    conf.nsecrets = n;

    sig = ngx_http_commerce_sig_create(&conf, &err);
    if (sig == NULL) {
        fail_msg("create: %s", err);
    }

    return sig;
}


static ngx_http_commerce_sig_t *
make_hmac(ngx_http_commerce_sig_digest_e digest,
    ngx_http_commerce_sig_encoding_e enc, const char *prefix,
    const char *secret)
{
    const char                   *err;
    ngx_http_commerce_sig_t      *sig;
    ngx_http_commerce_sig_str_t   s;
    ngx_http_commerce_sig_conf_t  conf;

    memset(&conf, 0, sizeof(conf));
    conf.scheme = NGX_HTTP_COMMERCE_SIG_HMAC;
    conf.digest = digest;
    conf.encoding = enc;
    conf.prefix.len = strlen(prefix);
    conf.prefix.data = (const u_char *) prefix;
    s.len = strlen(secret);
    s.data = (const u_char *) secret;
    conf.secrets = &s;
    conf.nsecrets = 1;

    sig = ngx_http_commerce_sig_create(&conf, &err);
    if (sig == NULL) {
        fail_msg("create: %s", err);
    }

    return sig;
}


/* Verifies a one-piece body (NULL: no body piece at all). */
static ngx_http_commerce_sig_rc_e
check(ngx_http_commerce_sig_t *sig, const char *signature,
    const char *timestamp, const char *id, const char *body, time_t now,
    ngx_http_commerce_sig_parsed_t *p)
{
    ngx_http_commerce_sig_str_t      b;
    ngx_http_commerce_sig_headers_t  h;

    memset(&h, 0, sizeof(h));

    if (signature != NULL) {
        h.signature.len = strlen(signature);
        h.signature.data = (const u_char *) signature;
    }

    if (timestamp != NULL) {
        h.timestamp.len = strlen(timestamp);
        h.timestamp.data = (const u_char *) timestamp;
    }

    if (id != NULL) {
        h.id.len = strlen(id);
        h.id.data = (const u_char *) id;
    }

    b.len = body ? strlen(body) : 0;
    b.data = (const u_char *) body;

    return ngx_http_commerce_sig_verify(sig, &h, &b, body ? 1 : 0, now, p);
}


#define sw_check(sig, s, ts, id, body, now)                                   \
    check(sig, s, ts, id, body, now, &p)


static void
test_standard_published_vector(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.timestamp, SW_TS);
    assert_int_equal(p.secret, 0);
    assert_int_equal(p.id.len, sizeof(SW_ID) - 1);
    assert_memory_equal(p.id.data, SW_ID, sizeof(SW_ID) - 1);

    /* the same context is re-initialised for every request */
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* empty body (openssl) */
    assert_int_equal(sw_check(sig, SW_EMPTY_SIG, SW_TS_TEXT, SW_ID, "", SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(sw_check(sig, SW_EMPTY_SIG, SW_TS_TEXT, SW_ID, NULL,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, "", SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    ngx_http_commerce_sig_free(sig);
}


/* Both libraries accept the secret with and without "whsec_". */
static void
test_standard_secret_forms(void **state)
{
    u_char                           out[64];
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_RAW, NULL, NULL);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    ngx_http_commerce_sig_free(sig);

    /* the decoded key: 32 base64 characters, 24 bytes */
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) SW_SECRET, sizeof(SW_SECRET) - 1,
                         out),
                     24);

    /* unpadded base64 is accepted, as the Python library pads it */
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "whsec_dGVzdA", 12, out),
                     4);
    assert_memory_equal(out, "test", 4);
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "whsec_dGVzdA==", 14, out),
                     4);

    /* not base64, empty, bad padding */
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "whsec_not base64!", 17, out),
                     -1);
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "whsec_", 6, out),
                     -1);
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "dGVzdA=", 7, out),
                     -1);
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STANDARD,
                         (const u_char *) "dGVzd", 5, out),
                     -1);

    /* other schemes key with the bytes as written, Stripe's whsec_ too */
    assert_int_equal(ngx_http_commerce_sig_decode_secret(
                         NGX_HTTP_COMMERCE_SIG_STRIPE,
                         (const u_char *) "whsec_abc", 9, out),
                     9);
    assert_memory_equal(out, "whsec_abc", 9);
}


static void
test_standard_negative(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    /* invalid signatures of the libraries' tests */
    assert_int_equal(sw_check(sig, SW_BAD_GO, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(sw_check(sig, SW_BAD_PY, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* tampered body, id, timestamp (inside the window) */
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID,
                              "{\"test\": 2432232315}", SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, "msg_other",
                              SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(sw_check(sig, SW_SIG, "1614265331", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* missing headers: each is required */
    assert_int_equal(sw_check(sig, NULL, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE);
    assert_int_equal(sw_check(sig, "", SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, NULL, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISSING_ID);
    assert_int_equal(sw_check(sig, SW_SIG, NULL, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP);

    /* "hello" of the Python test, and other non-canonical numbers */
    assert_int_equal(sw_check(sig, SW_SIG, "hello", SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, "1614265330.5", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, "+1614265330", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, "-1614265330", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, "01614265330", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, " 1614265330", SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(sw_check(sig, SW_SIG, "1000000000000000", SW_ID,
                              SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);

    /* only other versions (v1a is not v1) */
    assert_int_equal(sw_check(sig,
                              "v1a," SW_B64 " v2," SW_B64,
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_UNSUPPORTED);
    assert_int_equal(sw_check(sig, "garbage", SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_UNSUPPORTED);

    /* v1 entries that do not decode to 32 bytes */
    assert_int_equal(sw_check(sig, "v1,not base64!", SW_TS_TEXT, SW_ID,
                              SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(sw_check(sig, "v1,", SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    /* unpadded */
    assert_int_equal(sw_check(sig,
                              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    /* non-canonical: the unused low bits of the last character set */
    assert_int_equal(sw_check(sig,
                              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=",
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    /* hex is not this scheme's encoding */
    assert_int_equal(sw_check(sig, "v1,837c4cf52b04f8e3cf2531adfed9882a"
                              "d4b2665137b852442d594d20e2c9d4e1",
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);

    ngx_http_commerce_sig_free(sig);
}


/* The multi-signature header of the Go and Python tests. */
static void
test_standard_multi_signature(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    assert_int_equal(sw_check(sig,
                              SW_BAD_GO
                              " v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
                              " " SW_SIG " " SW_BAD_GO,
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.nmacs, 3);

    /* a garbled v1 entry next to a good one is skipped */
    assert_int_equal(sw_check(sig, "v1,@@@@  " SW_SIG " nocomma",
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* no v1 that matches */
    assert_int_equal(sw_check(sig, SW_BAD_GO " " SW_BAD_PY, SW_TS_TEXT,
                              SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* more v1 entries than any sender sends */
    assert_int_equal(sw_check(sig,
                              SW_BAD_GO " " SW_BAD_GO " " SW_BAD_GO " "
                              SW_BAD_GO " " SW_BAD_GO " " SW_BAD_GO " "
                              SW_BAD_GO " " SW_BAD_GO " " SW_SIG,
                              SW_TS_TEXT, SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);

    ngx_http_commerce_sig_free(sig);
}


/*
 * The libraries' rule: too old when now - ts > 300, too new when
 * ts - now > 300; exactly 300 either way passes.
 */
static void
test_standard_timestamp_window(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS + 300),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS + 301),
                     NGX_HTTP_COMMERCE_SIG_TOO_OLD);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS - 300),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS - 301),
                     NGX_HTTP_COMMERCE_SIG_TOO_NEW);

    /* the window is checked before, and regardless of, the MAC */
    assert_int_equal(sw_check(sig, SW_BAD_GO, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS + 3600),
                     NGX_HTTP_COMMERCE_SIG_TOO_OLD);

    /* a stale timestamp is still reported for what it is */
    assert_int_equal(sw_check(sig, SW_SIG, "0", SW_ID, SW_PAYLOAD, SW_TS),
                     NGX_HTTP_COMMERCE_SIG_TOO_OLD);

    ngx_http_commerce_sig_free(sig);
}


/* Key rotation: any configured secret may match; the index is reported. */
static void
test_standard_rotation(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD,
               "whsec_dGhlIG5ldyBzZWNyZXQgYWZ0ZXIgcm90YXRpb24=", SW_SECRET,
               NULL);

    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.secret, 1);

    ngx_http_commerce_sig_free(sig);

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD,
               "whsec_dGhlIG5ldyBzZWNyZXQgYWZ0ZXIgcm90YXRpb24=", NULL, NULL);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(p.secret, -1);
    ngx_http_commerce_sig_free(sig);
}


/*
 * The body as nginx hands it over: several buffers, some empty; the
 * headers parsed first, the body verified later.
 */
static void
test_body_in_pieces(void **state)
{
    size_t                           i, n;
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_str_t      body[sizeof(SL_BODY)];
    ngx_http_commerce_sig_parsed_t   p;
    ngx_http_commerce_sig_headers_t  h = { STR(SL_SIG), STR(SL_TS_TEXT),
                                           NONE };
    ngx_http_commerce_sig_str_t      sw[4] = {
        STR("{\"test\": "), NONE, STR("2432232314"), STR("}")
    };
    ngx_http_commerce_sig_headers_t  swh = { STR(SW_SIG), STR(SW_TS_TEXT),
                                             STR(SW_ID) };

    /* Slack: one byte per buffer */
    sig = make(NGX_HTTP_COMMERCE_SIG_SLACK, SL_SECRET, NULL, NULL);

    n = sizeof(SL_BODY) - 1;

    for (i = 0; i < n; i++) {
        body[i].len = 1;
        body[i].data = (const u_char *) SL_BODY + i;
    }

    assert_int_equal(ngx_http_commerce_sig_parse(sig, &h, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(ngx_http_commerce_sig_verify_body(sig, &p, body, n),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* a buffer short */
    assert_int_equal(ngx_http_commerce_sig_parse(sig, &h, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(ngx_http_commerce_sig_verify_body(sig, &p, body, n - 1),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    ngx_http_commerce_sig_free(sig);

    /* Standard Webhooks: uneven buffers, one empty */
    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    assert_int_equal(ngx_http_commerce_sig_parse(sig, &swh, SW_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(ngx_http_commerce_sig_verify_body(sig, &p, sw, 4),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* verify_body after a failed parse repeats the parse result */
    swh.id.len = 0;
    assert_int_equal(ngx_http_commerce_sig_parse(sig, &swh, SW_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_ID);
    assert_int_equal(ngx_http_commerce_sig_verify_body(sig, &p, sw, 4),
                     NGX_HTTP_COMMERCE_SIG_MISSING_ID);

    ngx_http_commerce_sig_free(sig);
}


/* The published vector, with its headers under either name. */
static void
sw_merged_verifies(ngx_http_commerce_sig_t *sig,
    ngx_http_commerce_sig_headers_t *h,
    const ngx_http_commerce_sig_headers_t *alias)
{
    ngx_http_commerce_sig_str_t      body = STR(SW_PAYLOAD);
    ngx_http_commerce_sig_parsed_t   p;

    assert_int_equal(ngx_http_commerce_sig_merge(h, alias),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(ngx_http_commerce_sig_verify(sig, h, &body, 1, SW_TS,
                                                  &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.id.len, sizeof(SW_ID) - 1);
    assert_memory_equal(p.id.data, SW_ID, p.id.len);
}


/*
 * Svix's names for the Standard Webhooks headers, merged header by header
 * as Svix's libraries do; both names with different values: a conflict.
 */
static void
test_standard_svix_names(void **state)
{
    ngx_http_commerce_sig_t          *sig;
    ngx_http_commerce_sig_headers_t   h, alias;

    sig = make(NGX_HTTP_COMMERCE_SIG_STANDARD, SW_SECRET, NULL, NULL);

    /* svix-* only: the published vector verifies under those names */
    memset(&h, 0, sizeof(h));
    alias = (ngx_http_commerce_sig_headers_t) {
        STR(SW_SIG), STR(SW_TS_TEXT), STR(SW_ID)
    };
    sw_merged_verifies(sig, &h, &alias);

    /* one of each: svix-id with webhook-timestamp, webhook-signature */
    h = (ngx_http_commerce_sig_headers_t) {
        STR(SW_SIG), STR(SW_TS_TEXT), NONE
    };
    alias = (ngx_http_commerce_sig_headers_t) { NONE, NONE, STR(SW_ID) };
    sw_merged_verifies(sig, &h, &alias);

    /* both names, same values */
    h = (ngx_http_commerce_sig_headers_t) {
        STR(SW_SIG), STR(SW_TS_TEXT), STR(SW_ID)
    };
    alias = h;
    sw_merged_verifies(sig, &h, &alias);

    /* an empty alias is no alias */
    alias = (ngx_http_commerce_sig_headers_t) {
        STR(""), STR(""), STR("")
    };
    assert_int_equal(ngx_http_commerce_sig_merge(&h, &alias),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(h.id.len, sizeof(SW_ID) - 1);

    /* different values under the two names, in each header */
    alias = (ngx_http_commerce_sig_headers_t) { NONE, NONE, STR("msg_x") };
    assert_int_equal(ngx_http_commerce_sig_merge(&h, &alias),
                     NGX_HTTP_COMMERCE_SIG_CONFLICT);

    alias = (ngx_http_commerce_sig_headers_t) {
        NONE, STR("1614265331"), NONE
    };
    assert_int_equal(ngx_http_commerce_sig_merge(&h, &alias),
                     NGX_HTTP_COMMERCE_SIG_CONFLICT);

    alias = (ngx_http_commerce_sig_headers_t) { STR(SW_BAD_GO), NONE, NONE };
    assert_int_equal(ngx_http_commerce_sig_merge(&h, &alias),
                     NGX_HTTP_COMMERCE_SIG_CONFLICT);

    /* a prefix of the other is a different value */
    alias = (ngx_http_commerce_sig_headers_t) {
        NONE, NONE, STR("msg_p5jXN8AQM9LWM0D4loKWxJe")
    };
    assert_int_equal(ngx_http_commerce_sig_merge(&h, &alias),
                     NGX_HTTP_COMMERCE_SIG_CONFLICT);

    ngx_http_commerce_sig_free(sig);
}


static void
test_stripe_published_vector(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STRIPE, ST_SECRET, NULL, NULL);

    /* ConstructEvent: 100 s after the event */
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL, st_json, ST_TS + 100,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.timestamp, ST_TS);
    assert_int_equal(p.nmacs, 1);
    assert_int_equal(p.id.len, 0);

    /* RejectOutdatedTimestamp: tolerance + 100 s after */
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL, st_json,
                           ST_TS + 300 + 100, &p),
                     NGX_HTTP_COMMERCE_SIG_TOO_OLD);
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL, st_json, ST_TS + 300,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* Stripe's libraries never reject a timestamp from the future */
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL, st_json,
                           ST_TS - 86400, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* RejectIncorrectSignature: the JSON changed */
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL,
                           "{\"id\": \"evt_123\"}this_changes_the_json",
                           ST_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* the secret is part of the key: wrong secret */
    ngx_http_commerce_sig_free(sig);
    sig = make(NGX_HTTP_COMMERCE_SIG_STRIPE, "webhook_secreT", NULL, NULL);
    assert_int_equal(check(sig, ST_HEADER, NULL, NULL, st_json, ST_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    ngx_http_commerce_sig_free(sig);
}


/* The header shapes the official libraries' tests exercise. */
static void
test_stripe_header_forms(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STRIPE, ST_RAW_SECRET, NULL, NULL);

    /* "whsec_..." keys the HMAC as a string (openssl vector) */
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1, NULL, NULL, "{}",
                           1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* stripe-go: an unreadable v1 next to a good one is ignored */
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1 ",v1=bad_signature",
                           NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* stripe-dotnet: an extra wrong v1 next to the good one */
    assert_int_equal(check(sig, "t=1700000000,v1=deadbeefdeadbeefdeadbeef"
                           "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef,"
                           ST_RAW_V1, NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.nmacs, 2);

    /* order of items does not matter; unknown keys are skipped */
    assert_int_equal(check(sig, ST_RAW_V1 ",v0=00,x=y,t=1700000000", NULL,
                           NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* hex of either case decodes to the same MAC */
    assert_int_equal(check(sig, "t=1700000000,v1=CEB8863F7208FA249A6CD8F951E9"
                           "93C7563412ACA65866F6272283DEBE143AB3", NULL, NULL,
                           "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* stripe-go: only "deadbeef": no valid signature */
    assert_int_equal(check(sig, "t=1700000000,v1=deadbeef", NULL, NULL, "{}",
                           1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);

    /* ValidateSignature_NoV1Signatures_ShouldThrow: v0 only */
    assert_int_equal(check(sig, "t=1700000000,v0=" ST_RAW_HEX, NULL, NULL,
                           "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_UNSUPPORTED);

    /* ValidateSignatureHandlesIncorrectHeaderValues and stripe-go */
    assert_int_equal(check(sig, "t=," ST_RAW_V1, NULL, NULL, "{}", 1700000000,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(check(sig, "t,v1=,v0=", NULL, NULL, "{}", 1700000000,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t,v1=,v0", NULL, NULL, "{}", 1700000000,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t,v1=,", NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t,,", NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, ",,", NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t", NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "v1,t=1", NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t=abc," ST_RAW_V1, NULL, NULL, "{}",
                           1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(check(sig, "t=1700000000,t=1700000000," ST_RAW_V1, NULL,
                           NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1 ",", NULL, NULL,
                           "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, ST_RAW_V1, NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP);
    assert_int_equal(check(sig, NULL, NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE);

    ngx_http_commerce_sig_free(sig);
}


/*
 * Secret rolling, as stripe-go tests it: the header carries one v1 per
 * active secret, and a verifier with either secret accepts it.
 */
static void
test_stripe_rotation(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_STRIPE, "whsec_test_secret_rolled_key",
               NULL, NULL);
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1 "," ST_ROLLED_V1,
                           NULL, NULL, "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1, NULL, NULL, "{}",
                           1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    ngx_http_commerce_sig_free(sig);

    /* the receiving side rotates: both secrets configured */
    sig = make(NGX_HTTP_COMMERCE_SIG_STRIPE, "whsec_test_secret_rolled_key",
               ST_RAW_SECRET, NULL);
    assert_int_equal(check(sig, "t=1700000000," ST_RAW_V1, NULL, NULL, "{}",
                           1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.secret, 1);
    assert_int_equal(check(sig, "t=1700000000," ST_ROLLED_V1, NULL, NULL,
                           "{}", 1700000000, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.secret, 0);
    ngx_http_commerce_sig_free(sig);
}


static void
test_github(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_GITHUB, GH_SECRET, NULL, NULL);

    assert_int_equal(check(sig, GH_SIG, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.timestamp, -1);

    /* empty body (openssl) */
    assert_int_equal(check(sig, GH_EMPTY, NULL, NULL, "", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    /* tampered body, last hex digit changed */
    assert_int_equal(check(sig, GH_SIG, NULL, NULL, "Hello, World?", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(check(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b"
                           "6d7586c22c46f4379c8b043e18", NULL, NULL, GH_BODY,
                           0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* malformed: no prefix, truncated, X-Hub-Signature's sha1, non-hex */
    assert_int_equal(check(sig, GH_HEX, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "sha256=757107ea0eb2509f", NULL, NULL,
                           GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "sha1=0000000000000000000000000000000000000000",
                           NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b"
                           "6d7586c22c46f4379c8b043e1g", NULL, NULL, GH_BODY,
                           0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, GH_SIG " ", NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, NULL, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE);

    ngx_http_commerce_sig_free(sig);

    /* wrong secret */
    sig = make(NGX_HTTP_COMMERCE_SIG_GITHUB, "It's a secret to everybody",
               NULL, NULL);
    assert_int_equal(check(sig, GH_SIG, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    ngx_http_commerce_sig_free(sig);
}


/* Slack's documented example; the SDK's window is |now - ts| <= 300. */
static void
test_slack(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_SLACK, SL_SECRET, NULL, NULL);

    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(p.timestamp, SL_TS);

    assert_int_equal(check(sig, SL_EMPTY, SL_TS_TEXT, NULL, "", SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);

    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY,
                           SL_TS + 300, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY,
                           SL_TS + 301, &p),
                     NGX_HTTP_COMMERCE_SIG_TOO_OLD);
    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY,
                           SL_TS - 300, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY,
                           SL_TS - 301, &p),
                     NGX_HTTP_COMMERCE_SIG_TOO_NEW);

    /* the timestamp is signed */
    assert_int_equal(check(sig, SL_SIG, "1531420619", NULL, SL_BODY, SL_TS,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    assert_int_equal(check(sig, SL_SIG, SL_TS_TEXT, NULL, SL_BODY "&x=1",
                           SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    assert_int_equal(check(sig, SL_SIG, NULL, NULL, SL_BODY, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP);
    assert_int_equal(check(sig, SL_SIG, "15314206l8", NULL, SL_BODY, SL_TS,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP);
    assert_int_equal(check(sig, NULL, SL_TS_TEXT, NULL, SL_BODY, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE);
    assert_int_equal(check(sig, "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21"
                           "a10bd27519666489c69b503", SL_TS_TEXT, NULL,
                           SL_BODY, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_UNSUPPORTED);
    assert_int_equal(check(sig, SL_SIG + 3, SL_TS_TEXT, NULL, SL_BODY, SL_TS,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "v0=a2114d57", SL_TS_TEXT, NULL, SL_BODY,
                           SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "v0=", SL_TS_TEXT, NULL, SL_BODY, SL_TS, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);

    ngx_http_commerce_sig_free(sig);
}


static void
test_shopify(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    sig = make(NGX_HTTP_COMMERCE_SIG_SHOPIFY, SH_SECRET, NULL, NULL);

    assert_int_equal(check(sig, SH_SIG, NULL, NULL, SH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, SH_SIG, NULL, NULL, SH_BODY " ", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);

    /* hex, unpadded base64, URL-safe alphabet: not Shopify's encoding */
    assert_int_equal(check(sig, "0f450c5e6863c01462e32eba4e6849ac396140004"
                           "3ef32367e6de9ebf40b328f", NULL, NULL, SH_BODY, 0,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8",
                           NULL, NULL, SH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    assert_int_equal(check(sig, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6_QLMo8=",
                           NULL, NULL, SH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);

    ngx_http_commerce_sig_free(sig);

    sig = make(NGX_HTTP_COMMERCE_SIG_SHOPIFY, "hush!", NULL, NULL);
    assert_int_equal(check(sig, SH_SIG, NULL, NULL, SH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    ngx_http_commerce_sig_free(sig);
}


static void
test_generic_hmac(void **state)
{
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_parsed_t   p;

    /* WooCommerce: base64 HMAC-SHA256 of the body (openssl) */
    sig = make_hmac(NGX_HTTP_COMMERCE_SIG_SHA256, NGX_HTTP_COMMERCE_SIG_BASE64,
                    "", WC_SECRET);
    assert_int_equal(check(sig, WC_SIG, NULL, NULL, WC_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, WC_SIG, NULL, NULL, "{}", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    ngx_http_commerce_sig_free(sig);

    /* Razorpay: razorpay-python's own test vector */
    sig = make_hmac(NGX_HTTP_COMMERCE_SIG_SHA256, NGX_HTTP_COMMERCE_SIG_HEX,
                    "", RZ_SECRET);
    assert_int_equal(check(sig, RZ_SIG, NULL, NULL, rz_json, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    /* test_verify_webhook_signature_with_exception */
    assert_int_equal(check(sig, "test_signature", NULL, NULL, "", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    ngx_http_commerce_sig_free(sig);

    /* SHA-512, hex with a prefix and base64 without (openssl) */
    sig = make_hmac(NGX_HTTP_COMMERCE_SIG_SHA512, NGX_HTTP_COMMERCE_SIG_HEX,
                    "sha512=", GH_SECRET);
    assert_int_equal(check(sig, "sha512=" S512_HEX, NULL, NULL, GH_BODY, 0,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, S512_HEX, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    /* a SHA-256 MAC has the wrong length for this source */
    assert_int_equal(check(sig, "sha512=" GH_HEX, NULL, NULL, GH_BODY, 0,
                           &p),
                     NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE);
    ngx_http_commerce_sig_free(sig);

    sig = make_hmac(NGX_HTTP_COMMERCE_SIG_SHA512, NGX_HTTP_COMMERCE_SIG_BASE64,
                    "", GH_SECRET);
    assert_int_equal(check(sig, S512_B64, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(check(sig, S512_B64, NULL, NULL, "Hello, World", 0, &p),
                     NGX_HTTP_COMMERCE_SIG_MISMATCH);
    ngx_http_commerce_sig_free(sig);

    /* the GitHub scheme is this generic one with its own settings */
    sig = make_hmac(NGX_HTTP_COMMERCE_SIG_SHA256, NGX_HTTP_COMMERCE_SIG_HEX,
                    "sha256=", GH_SECRET);
    assert_int_equal(check(sig, GH_SIG, NULL, NULL, GH_BODY, 0, &p),
                     NGX_HTTP_COMMERCE_SIG_OK);
    ngx_http_commerce_sig_free(sig);
}


/* Configuration mistakes are reported by create, for nginx -t. */
static void
test_create_errors(void **state)
{
    const char                    *err;
    ngx_http_commerce_sig_str_t    secrets[2] = { STR("whsec_MfKQ"),
                                                  STR("whsec_***") };
    ngx_http_commerce_sig_str_t    empty = NONE;
    ngx_http_commerce_sig_conf_t   conf;

    memset(&conf, 0, sizeof(conf));
    conf.scheme = NGX_HTTP_COMMERCE_SIG_STANDARD;
    conf.tolerance = 300;

    /* no secret */
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_non_null(err);

    /* the second secret is not base64: the first context is freed */
    conf.secrets = secrets;
    conf.nsecrets = 2;
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "secret is not whsec_<base64> or <base64>");

    /* empty secret */
    conf.scheme = NGX_HTTP_COMMERCE_SIG_GITHUB;
    conf.secrets = &empty;
    conf.nsecrets = 1;
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "secret is empty");

    /* generic HMAC settings */
    conf.scheme = NGX_HTTP_COMMERCE_SIG_HMAC;
    conf.secrets = secrets;
    conf.digest = (ngx_http_commerce_sig_digest_e) 7;
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "unknown digest");

    conf.digest = NGX_HTTP_COMMERCE_SIG_SHA256;
    conf.prefix.len = NGX_HTTP_COMMERCE_SIG_PREFIX_MAX + 1;
    conf.prefix.data = (const u_char *) "0123456789012345678901234567890123";
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "signature prefix too long");

    conf.prefix.len = 0;
    conf.tolerance = -1;
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "negative tolerance");

    conf.tolerance = 0;
    conf.scheme = (ngx_http_commerce_sig_scheme_e) 42;
    assert_null(ngx_http_commerce_sig_create(&conf, &err));
    assert_string_equal(err, "unknown signature scheme");
}


/* tolerance 0 turns the window off (Stripe's libraries do the same). */
static void
test_tolerance_disabled(void **state)
{
    const char                      *err;
    ngx_http_commerce_sig_t         *sig;
    ngx_http_commerce_sig_str_t      s = STR(SW_SECRET);
    ngx_http_commerce_sig_conf_t     conf;
    ngx_http_commerce_sig_parsed_t   p;

    memset(&conf, 0, sizeof(conf));
    conf.scheme = NGX_HTTP_COMMERCE_SIG_STANDARD;
    conf.secrets = &s;
    conf.nsecrets = 1;

    sig = ngx_http_commerce_sig_create(&conf, &err);
    assert_non_null(sig);

    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD,
                              SW_TS + 86400 * 365),
                     NGX_HTTP_COMMERCE_SIG_OK);
    assert_int_equal(sw_check(sig, SW_SIG, SW_TS_TEXT, SW_ID, SW_PAYLOAD, 0),
                     NGX_HTTP_COMMERCE_SIG_OK);

    ngx_http_commerce_sig_free(sig);
}


static void
test_reasons_and_status(void **state)
{
    static const struct {
        ngx_http_commerce_sig_rc_e   rc;
        const char                  *reason;
        int                          status;
    } t[] = {
        { NGX_HTTP_COMMERCE_SIG_OK, "ok", 200 },
        { NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE, "missing_signature", 400 },
        { NGX_HTTP_COMMERCE_SIG_MISSING_TIMESTAMP, "missing_timestamp", 400 },
        { NGX_HTTP_COMMERCE_SIG_MISSING_ID, "missing_id", 400 },
        { NGX_HTTP_COMMERCE_SIG_MALFORMED_SIGNATURE, "malformed_signature",
          400 },
        { NGX_HTTP_COMMERCE_SIG_MALFORMED_TIMESTAMP, "malformed_timestamp",
          400 },
        { NGX_HTTP_COMMERCE_SIG_UNSUPPORTED, "unsupported_signature", 400 },
        { NGX_HTTP_COMMERCE_SIG_CONFLICT, "conflicting_headers", 400 },
        { NGX_HTTP_COMMERCE_SIG_TOO_OLD, "timestamp_too_old", 401 },
        { NGX_HTTP_COMMERCE_SIG_TOO_NEW, "timestamp_too_new", 401 },
        { NGX_HTTP_COMMERCE_SIG_MISMATCH, "signature_mismatch", 401 },
        { NGX_HTTP_COMMERCE_SIG_ERROR, "internal_error", 500 }
    };

    size_t  i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_string_equal(ngx_http_commerce_sig_reason(t[i].rc),
                            t[i].reason);
        assert_int_equal(ngx_http_commerce_sig_http_status(t[i].rc),
                         t[i].status);
    }

    assert_string_equal(ngx_http_commerce_sig_reason(
                            (ngx_http_commerce_sig_rc_e) 99),
                        "internal_error");
}


static void
test_presets(void **state)
{
    const ngx_http_commerce_sig_preset_t  *ps;

    ps = ngx_http_commerce_sig_preset((const u_char *) "standard", 8);
    assert_non_null(ps);
    assert_int_equal(ps->scheme, NGX_HTTP_COMMERCE_SIG_STANDARD);
    assert_string_equal(ps->signature_header, "webhook-signature");
    assert_string_equal(ps->timestamp_header, "webhook-timestamp");
    assert_string_equal(ps->id_header, "webhook-id");
    assert_string_equal(ps->alias_signature, "svix-signature");
    assert_string_equal(ps->alias_timestamp, "svix-timestamp");
    assert_string_equal(ps->alias_id, "svix-id");

    ps = ngx_http_commerce_sig_preset((const u_char *) "woocommerce", 11);
    assert_non_null(ps);
    assert_int_equal(ps->scheme, NGX_HTTP_COMMERCE_SIG_HMAC);
    assert_int_equal(ps->encoding, NGX_HTTP_COMMERCE_SIG_BASE64);
    assert_string_equal(ps->signature_header, "X-WC-Webhook-Signature");

    ps = ngx_http_commerce_sig_preset((const u_char *) "razorpay", 8);
    assert_non_null(ps);
    assert_int_equal(ps->encoding, NGX_HTTP_COMMERCE_SIG_HEX);
    assert_string_equal(ps->signature_header, "X-Razorpay-Signature");

    ps = ngx_http_commerce_sig_preset((const u_char *) "slack", 5);
    assert_non_null(ps);
    assert_string_equal(ps->timestamp_header, "X-Slack-Request-Timestamp");

    ps = ngx_http_commerce_sig_preset((const u_char *) "hmac", 4);
    assert_non_null(ps);
    assert_null(ps->signature_header);
    assert_null(ps->alias_signature);
    assert_null(ps->alias_id);

    assert_null(ngx_http_commerce_sig_preset((const u_char *) "stripes", 7));
    assert_null(ngx_http_commerce_sig_preset((const u_char *) "strip", 5));
    assert_null(ngx_http_commerce_sig_preset((const u_char *) "", 0));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_standard_published_vector),
        cmocka_unit_test(test_standard_secret_forms),
        cmocka_unit_test(test_standard_negative),
        cmocka_unit_test(test_standard_multi_signature),
        cmocka_unit_test(test_standard_timestamp_window),
        cmocka_unit_test(test_standard_rotation),
        cmocka_unit_test(test_body_in_pieces),
        cmocka_unit_test(test_standard_svix_names),
        cmocka_unit_test(test_stripe_published_vector),
        cmocka_unit_test(test_stripe_header_forms),
        cmocka_unit_test(test_stripe_rotation),
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_slack),
        cmocka_unit_test(test_shopify),
        cmocka_unit_test(test_generic_hmac),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_tolerance_disabled),
        cmocka_unit_test(test_reasons_and_status),
        cmocka_unit_test(test_presets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
