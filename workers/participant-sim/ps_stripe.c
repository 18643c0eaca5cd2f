/*
 * ps_stripe: the payment provider's answers, as Stripe sends them: an
 * event (https://docs.stripe.com/api/events/object) whose data.object is
 * the PaymentIntent (or, for a refund, the Charge) after the operation,
 * signed with Stripe-Signature (t=<unix time>,v1=<hex HMAC-SHA256 of
 * "t.body" keyed with the whsec_ secret as written).
 *
 *   authorize ok         payment_intent.amount_capturable_updated
 *                        (capture_method manual: status requires_capture)
 *   authorize declined   payment_intent.payment_failed, last_payment_error
 *                        {type card_error, code card_declined,
 *                        decline_code}: final
 *   authorize transient  payment_intent.payment_failed, last_payment_error
 *                        {type card_error, code processing_error}, no
 *                        decline_code: try again
 *   capture ok           payment_intent.succeeded
 *   void ok              payment_intent.canceled
 *   refund ok            charge.refunded
 *
 * A transient error of a capture, void or refund is Stripe's API failing
 * the call (a 500): no event is made, and the saga's deadline passes.
 * Every object's metadata is {order_id, idempotency_key, operation}, and
 * the event's request.idempotency_key is the command's key.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/sha.h>

#include "commerce_contract.h"
#include "commerce_jwa.h"
#include "cw_buf.h"
#include "ps.h"

#define PS_ID_CHARS  24

static const char  *ps_operations[] = {
    "authorize", "capture", "void", "refund"
};


void
ps_id(char *out, size_t size, const char *prefix, const char *seed)
{
    size_t               i, n;
    unsigned char        r[SHA256_DIGEST_LENGTH];
    static const char    chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz";
    char                 in[512];

    if (seed != NULL) {
        n = (size_t) snprintf(in, sizeof(in), "%s|%s", prefix, seed);
        SHA256((const unsigned char *) in,
               n < sizeof(in) ? n : sizeof(in) - 1, r);
    } else if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r)) {
        for (i = 0; i < sizeof(r); i++) {
            r[i] = (unsigned char) random();
        }
    }

    n = (size_t) snprintf(out, size, "%s", prefix);
    for (i = 0; i < PS_ID_CHARS && n + 1 < size; i++) {
        out[n++] = chars[r[i] % 62];
    }
    out[n] = '\0';
}


static char *
ps_lower(const char *s, char *buf, size_t size)
{
    size_t  i;

    for (i = 0; s[i] != '\0' && i + 1 < size; i++) {
        buf[i] = (char) (s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    }
    buf[i] = '\0';

    return buf;
}


static json_t *
ps_metadata(const ps_command_t *c)
{
    return json_pack("{s:s, s:s, s:s}", "order_id", c->order_id,
                     "idempotency_key", c->idempotency_key, "operation",
                     ps_operations[c->type]);
}


/* last_payment_error of a declined or failed confirmation. */
static json_t *
ps_payment_error(ps_outcome_e outcome, const char *charge,
    const char *decline_code)
{
    if (outcome == PS_DECLINED) {
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "charge", charge,
                         "code", "card_declined", "decline_code",
                         decline_code, "doc_url",
                         "https://stripe.com/docs/error-codes/card-declined",
                         "message", "Your card was declined.", "type",
                         "card_error");
    }

    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "charge", charge, "code",
                     "processing_error", "doc_url",
                     "https://stripe.com/docs/error-codes/processing-error",
                     "message", "An error occurred while processing your "
                     "card. Try again in a little bit.", "type",
                     "card_error");
}


/* The PaymentIntent after the command: its status and amounts. */
static json_t *
ps_intent(const ps_command_t *c, ps_outcome_e outcome, const char *pi,
    const char *ch, const char *decline_code, int64_t now_s)
{
    char         cur[8];
    const char  *status;
    long long    capturable = 0, received = 0;
    json_t      *o, *error = json_null();

    switch (c->type) {
    case PS_AUTHORIZE:
        if (outcome == PS_SUCCEEDED) {
            status = "requires_capture";
            capturable = c->amount;
        } else {
            status = "requires_payment_method";
            error = ps_payment_error(outcome, ch, decline_code);
        }
        break;
    case PS_CAPTURE:
        status = "succeeded";
        received = c->amount;
        break;
    default:
        status = "canceled";
        break;
    }

    o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:n, s:n, s:s, s:I, "
                  "s:s, s:o, s:s, s:b, s:o, s:s, s:s}",
                  "id", pi, "object", "payment_intent", "amount",
                  (json_int_t) c->amount, "amount_capturable",
                  (json_int_t) capturable, "amount_received",
                  (json_int_t) received, "capture_method", "manual",
                  "canceled_at", "cancellation_reason", "confirmation_method",
                  "automatic", "created", (json_int_t) now_s, "currency",
                  ps_lower(c->currency, cur, sizeof(cur)),
                  "last_payment_error", error, "latest_charge", ch,
                  "livemode", 0, "metadata", ps_metadata(c),
                  "payment_method",
                  c->payment_method != NULL ? c->payment_method : "",
                  "status", status);

    if (o != NULL && c->type == PS_VOID) {
        json_object_set_new(o, "canceled_at", json_integer(now_s));
        json_object_set_new(o, "cancellation_reason",
                            json_string("abandoned"));
    }
    if (o != NULL && c->payment_method == NULL) {
        json_object_del(o, "payment_method");
    }

    return o;
}


/* The Charge after a refund of all of amount. */
static json_t *
ps_refunded_charge(const ps_command_t *c, const char *pi, const char *ch,
    int64_t now_s)
{
    char  cur[8];

    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:I, s:s, s:b, s:o, "
                     "s:s, s:b, s:s}",
                     "id", ch, "object", "charge", "amount",
                     (json_int_t) c->amount, "amount_captured",
                     (json_int_t) c->amount, "amount_refunded",
                     (json_int_t) c->amount, "captured", 1, "created",
                     (json_int_t) now_s, "currency",
                     ps_lower(c->currency, cur, sizeof(cur)), "livemode", 0,
                     "metadata", ps_metadata(c), "payment_intent", pi,
                     "refunded", 1, "status", "succeeded");
}


static const char *
ps_event_type(const ps_command_t *c, ps_outcome_e outcome)
{
    switch (c->type) {
    case PS_AUTHORIZE:
        return outcome == PS_SUCCEEDED ? COMMERCE_STRIPE_CAPTURABLE
                                       : COMMERCE_STRIPE_FAILED;
    case PS_CAPTURE:
        return COMMERCE_STRIPE_SUCCEEDED;
    case PS_VOID:
        return COMMERCE_STRIPE_CANCELED;
    default:
        return COMMERCE_STRIPE_REFUNDED;
    }
}


ps_answer_t *
ps_stripe_event(const ps_command_t *c, ps_outcome_e outcome,
    const char *decline_code, int64_t now_s)
{
    char          pi[64], ch[64], evt[64], req[64];
    json_t       *obj, *ev;
    if (!ps_outcome_sends(c->type, outcome)) {
        return NULL;
    }

    /* one PaymentIntent per order, one Charge per PaymentIntent: the same
     * ids whatever the attempt, and after a restart of the simulator */
    if (c->type == PS_AUTHORIZE) {
        ps_id(pi, sizeof(pi), "pi_", c->order_id);
    } else {
        snprintf(pi, sizeof(pi), "%s", c->payment_intent);
    }
    ps_id(ch, sizeof(ch), "ch_", pi);
    ps_id(evt, sizeof(evt), "evt_", NULL);
    ps_id(req, sizeof(req), "req_", NULL);

    obj = c->type == PS_REFUND ? ps_refunded_charge(c, pi, ch, now_s)
                               : ps_intent(c, outcome, pi, ch, decline_code,
                                           now_s);
    ev = json_pack("{s:s, s:s, s:s, s:I, s:{s:o}, s:b, s:i, s:{s:s, s:s}, "
                   "s:s}",
                   "id", evt, "object", "event", "api_version", "2024-06-20",
                   "created", (json_int_t) now_s, "data", "object", obj,
                   "livemode", 0, "pending_webhooks", 1, "request", "id", req,
                   "idempotency_key", c->idempotency_key, "type",
                   ps_event_type(c, outcome));

    return ps_answer_new(ev, NULL, evt);
}


int
ps_stripe_signature(const char *secret, const char *body, size_t len,
    int64_t t, char *out, size_t size)
{
    int            rc = -1;
    cw_buf_t       in, sig;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    cw_buf_init(&in);
    cw_buf_init(&sig);
    cw_buf_printf(&in, "%lld.", (long long) t);
    cw_buf_append(&in, body, len);

    if (!in.oom
        && commerce_jwa_hmac(COMMERCE_JWA_HS256,
                             (const unsigned char *) secret, strlen(secret),
                             (const unsigned char *) in.data, in.len, mac)
           == 0)
    {
        cw_buf_printf(&sig, "t=%lld,v1=", (long long) t);
        cw_buf_hex(&sig, mac, SHA256_DIGEST_LENGTH);
        if (!sig.oom && sig.len < size) {
            memcpy(out, sig.data, sig.len + 1);
            rc = 0;
        }
    }

    cw_buf_free(&in);
    cw_buf_free(&sig);

    return rc;
}
