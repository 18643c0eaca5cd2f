/*
 * commerce-participant-sim's pure parts: the Stripe signature (against a
 * MAC computed with Perl's Digest::SHA), the idempotency map (repeats,
 * final answers, conflicts, eviction), the outcome and latency draws, the
 * command checks, the answers' shapes and ids, the webhook URL.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../workers/participant-sim/ps.h"
#include "../../workers/participant-sim/ps_http.h"

#define PS_AUTH  "{\"type\":\"payment.authorize\",\"order_id\":\"o-1\"," \
    "\"idempotency_key\":\"k-1\",\"attempt\":1,\"amount\":2590," \
    "\"currency\":\"EUR\",\"payment_method\":\"pm_card_visa\"}"


static void
test_signature(void **state)
{
    char  sig[160];

    /* perl -MDigest::SHA=hmac_sha256_hex -e 'print hmac_sha256_hex(
     *     q(1700000000.{"id":"evt_1"}), "whsec_test")' */
    assert_int_equal(ps_stripe_signature("whsec_test", "{\"id\":\"evt_1\"}",
                                         14, 1700000000, sig, sizeof(sig)),
                     0);
    assert_string_equal(sig, "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6"
                        "bd58cea9022bd80ccc78230f3942d632925");
    assert_int_equal(ps_stripe_signature("whsec_test", "{}", 2, 1, sig, 10),
                     -1);
}


static ps_answer_t *
answer(const char *body)
{
    ps_answer_t  a = { 1, (char *) body, strlen(body), NULL,
                       (char *) "evt_x" };

    return ps_answer_copy(&a);
}


static void
test_idem_repeat(void **state)
{
    int            seen;
    ps_idem_t     *m = ps_idem_new(10);
    ps_answer_t   *a, *got;
    ps_outcome_e   o = PS_NO_ANSWER;

    assert_int_equal(ps_idem_see(m, "k", PS_CAPTURE, &seen, &o, &got), 0);
    assert_int_equal(seen, 0);
    assert_null(got);

    /* seen again before any final outcome: a repeat, drawn again */
    assert_int_equal(ps_idem_see(m, "k", PS_CAPTURE, &seen, &o, &got), 0);
    assert_int_equal(seen, 1);
    assert_null(got);

    a = answer("{\"id\":\"evt_x\"}");
    assert_int_equal(ps_idem_keep(m, "k", PS_SUCCEEDED, a), 0);
    ps_answer_free(a);

    assert_int_equal(ps_idem_see(m, "k", PS_CAPTURE, &seen, &o, &got), 0);
    assert_int_equal(seen, 1);
    assert_int_equal(o, PS_SUCCEEDED);
    assert_non_null(got);
    assert_string_equal(got->body, "{\"id\":\"evt_x\"}");
    assert_string_equal(got->event_id, "evt_x");
    ps_answer_free(got);

    assert_int_equal(ps_idem_see(m, "k", PS_REFUND, &seen, &o, &got),
                     PS_CONFLICT);
    ps_idem_free(m);
}


static void
test_idem_eviction(void **state)
{
    int            seen;
    ps_idem_t     *m = ps_idem_new(2);
    ps_answer_t   *got;
    ps_outcome_e   o;

    ps_idem_see(m, "k1", PS_VOID, &seen, &o, &got);
    ps_idem_see(m, "k2", PS_VOID, &seen, &o, &got);
    ps_idem_see(m, "k3", PS_VOID, &seen, &o, &got);

    /* k1, the oldest, was forgotten for k3; k2 and k3 are kept */
    ps_idem_see(m, "k3", PS_VOID, &seen, &o, &got);
    assert_int_equal(seen, 1);
    ps_idem_see(m, "k2", PS_VOID, &seen, &o, &got);
    assert_int_equal(seen, 1);
    ps_idem_see(m, "k1", PS_VOID, &seen, &o, &got);
    assert_int_equal(seen, 0);
    ps_idem_free(m);
}


static void
test_idem_note(void **state)
{
    int         differs;
    ps_idem_t  *m = ps_idem_new(4);

    assert_int_equal(ps_idem_note(m, "o-1|payment.capture", "k-1",
                                  &differs), 0);
    assert_int_equal(differs, 0);
    ps_idem_note(m, "o-1|payment.capture", "k-1", &differs);
    assert_int_equal(differs, 0);
    ps_idem_note(m, "o-1|payment.capture", "k-2", &differs);
    assert_int_equal(differs, 1);
    ps_idem_note(m, "o-2|payment.capture", "k-2", &differs);
    assert_int_equal(differs, 0);
    ps_idem_free(m);
}


static int
cmp_ll(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return x < y ? -1 : x > y;
}


static void
test_draws(void **state)
{
    int       i;
    ps_draw_t d;
    int64_t  *v;

    ps_draw_init(&d, 1, 0, 0, 0, 0);
    assert_int_equal(ps_draw_outcome(&d, PS_AUTHORIZE), PS_DECLINED);
    assert_int_equal(ps_draw_outcome(&d, PS_SHIP_CREATE), PS_DECLINED);
    assert_int_equal(ps_draw_outcome(&d, PS_CAPTURE), PS_SUCCEEDED);
    assert_int_equal(ps_draw_outcome(&d, PS_SHIP_CANCEL), PS_SUCCEEDED);
    assert_int_equal(ps_draw_latency_ms(&d), 0);

    ps_draw_init(&d, 0, 1, 0, 40, 40);
    assert_int_equal(ps_draw_outcome(&d, PS_REFUND), PS_TRANSIENT);
    assert_int_equal(ps_draw_latency_ms(&d), 40);

    ps_draw_init(&d, 0, 0, 1, 40, 0);
    assert_int_equal(ps_draw_outcome(&d, PS_AUTHORIZE), PS_NO_ANSWER);
    assert_int_equal(ps_draw_latency_ms(&d), 40);

    /* log-normal, median 100, p99 1000: with a fixed seed the sample's
     * quantiles are fixed numbers, near the asked ones */
    ps_draw_init(&d, 0, 0, 0, 100, 1000);
    d.rng = 12345;
    v = malloc(20001 * sizeof(*v));
    for (i = 0; i < 20001; i++) {
        v[i] = ps_draw_latency_ms(&d);
    }
    qsort(v, 20001, sizeof(*v), cmp_ll);
    assert_in_range(v[10000], 95, 105);
    assert_in_range(v[19800], 900, 1100);
    free(v);

    assert_int_equal(ps_outcome_sends(PS_CAPTURE, PS_TRANSIENT), 0);
    assert_int_equal(ps_outcome_sends(PS_AUTHORIZE, PS_TRANSIENT), 1);
    assert_int_equal(ps_outcome_sends(PS_SHIP_CANCEL, PS_TRANSIENT), 1);
    assert_int_equal(ps_outcome_sends(PS_SHIP_CREATE, PS_NO_ANSWER), 0);
}


static void
parse_fails(const char *body, const char *why)
{
    char          err[256];
    ps_command_t  c;

    assert_int_equal(ps_command_parse(&c, body, strlen(body), err,
                                      sizeof(err)), PS_INVALID);
    assert_non_null(strstr(err, why));
    ps_command_free(&c);
}


static void
test_command(void **state)
{
    char          err[256];
    ps_command_t  c;

    assert_int_equal(ps_command_parse(&c, PS_AUTH, strlen(PS_AUTH), err,
                                      sizeof(err)), 0);
    assert_int_equal(c.type, PS_AUTHORIZE);
    assert_string_equal(c.order_id, "o-1");
    assert_string_equal(c.idempotency_key, "k-1");
    assert_int_equal(c.amount, 2590);
    assert_int_equal(c.attempt, 1);
    ps_command_free(&c);

    parse_fails("{\"type\":\"payment.authorize\",\"order_id\":\"o\","
                "\"idempotency_key\":\"k\",\"attempt\":1,\"currency\":\"EUR\","
                "\"payment_method\":\"pm\"}", "\"amount\" must be an integer");
    parse_fails("{\"type\":\"payment.capture\",\"order_id\":\"o\","
                "\"idempotency_key\":\"k\",\"attempt\":1,\"amount\":5,"
                "\"currency\":\"EURO\",\"payment_intent\":\"pi\"}",
                "ISO 4217");
    parse_fails("{\"type\":\"shipment.create\",\"order_id\":\"o\","
                "\"idempotency_key\":\"k\",\"attempt\":1,\"store_id\":\"s\","
                "\"lines\":[],\"shipping_address\":{}}", "\"lines\"");
    parse_fails("{\"type\":\"shipment.cancel\",\"order_id\":\"o\","
                "\"idempotency_key\":\"\",\"attempt\":1,"
                "\"shipment_id\":\"s\"}", "\"idempotency_key\"");
    parse_fails("{\"type\":\"payment.void\",\"type\":\"x\"}", "duplicate_key");
    parse_fails("{\"type\":\"order.place\"}", "not a participant command");
    parse_fails("[]", "not_an_object");
}


static void
test_answers(void **state)
{
    char           err[256];
    json_t        *ev, *o;
    ps_command_t   c;
    ps_answer_t   *a, *b;

    ps_command_parse(&c, PS_AUTH, strlen(PS_AUTH), err, sizeof(err));

    a = ps_stripe_event(&c, PS_DECLINED, "do_not_honor", 1700000000);
    assert_non_null(a);
    assert_int_equal(a->webhook, 1);
    ev = json_loads(a->body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "type")),
                        "payment_intent.payment_failed");
    assert_string_equal(json_string_value(json_object_get(ev, "id")),
                        a->event_id);
    o = json_object_get(json_object_get(ev, "data"), "object");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(o, "last_payment_error"), "decline_code")),
        "do_not_honor");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(o, "metadata"), "order_id")), "o-1");

    /* one PaymentIntent per order, a new event id per event */
    b = ps_stripe_event(&c, PS_SUCCEEDED, "x", 1700000001);
    assert_non_null(strstr(b->body, json_string_value(json_object_get(o,
                                                                "id"))));
    assert_string_not_equal(a->event_id, b->event_id);
    assert_non_null(strstr(b->body,
                           "\"type\":\"payment_intent.amount_capturable"
                           "_updated\""));
    json_decref(ev);
    ps_answer_free(a);
    ps_answer_free(b);

    assert_null(ps_stripe_event(&c, PS_NO_ANSWER, "x", 1));
    c.type = PS_CAPTURE;
    c.payment_intent = "pi_1";
    assert_null(ps_stripe_event(&c, PS_TRANSIENT, "x", 1));
    ps_command_free(&c);
}


static void
test_url(void **state)
{
    ps_url_t  u;

    assert_int_equal(ps_url_parse("http://127.0.0.1:8080/wh/payments", &u),
                     0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "8080");
    assert_string_equal(u.path, "/wh/payments");
    assert_int_equal(ps_url_parse("http://localhost", &u), 0);
    assert_string_equal(u.port, "80");
    assert_string_equal(u.path, "/");
    assert_int_equal(ps_url_parse("https://x/", &u), -1);
    assert_int_equal(ps_url_parse("http://:80/", &u), -1);
    assert_int_equal(ps_url_parse("http://x:8a/", &u), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_idem_repeat),
        cmocka_unit_test(test_idem_eviction),
        cmocka_unit_test(test_idem_note),
        cmocka_unit_test(test_draws),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_url),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
