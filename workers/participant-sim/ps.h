/*
 * ps: the types commerce-participant-sim's files share.
 *
 * A command is parsed (ps_command.c), its outcome drawn or taken from the
 * idempotency map (ps_draw.c, ps_idem.c), its answer built (ps_stripe.c
 * for the payment provider's webhooks, ps_carrier.c for the carrier's
 * replies) and handed to the delay queue (ps_queue.c), whose threads
 * deliver it when it is due (ps_deliver.c: a POST to nginx, ps_http.c, or
 * a Kafka reply). ps_answer.c makes and copies the answers.
 *
 * Ownership: a ps_command_t owns its JSON (the strings in it point
 * there); a ps_answer_t owns its strings; the map keeps its own copies;
 * a job owns its answer until it is delivered, given up or dropped.
 */

#ifndef PS_H
#define PS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* the command types, in the order of the metrics' labels */
typedef enum {
    PS_AUTHORIZE = 0,
    PS_CAPTURE,
    PS_VOID,
    PS_REFUND,
    PS_SHIP_CREATE,
    PS_SHIP_CANCEL,
    PS_UNKNOWN,             /* unparseable, or a type of no participant */
    PS_TYPE_N
} ps_type_e;

typedef enum {
    PS_SUCCEEDED = 0,
    PS_DECLINED,            /* final: card declined, address refused */
    PS_TRANSIENT,           /* a retryable error */
    PS_NO_ANSWER,           /* nothing is ever sent */
    PS_CONFLICT,            /* the key was seen with another command type */
    PS_INVALID,             /* the command breaks the contract */
    PS_OUTCOME_N
} ps_outcome_e;

extern const char  *ps_type_names[PS_TYPE_N];
extern const char  *ps_outcome_names[PS_OUTCOME_N];

/* A participant command; the strings point into root. */
typedef struct {
    ps_type_e     type;
    json_t       *root;
    const char   *order_id;
    const char   *idempotency_key;
    long long     attempt;
    long long     amount;           /* minor units; 0 when the type has
                                       none */
    const char   *currency;         /* authorize */
    const char   *payment_method;   /* authorize */
    const char   *payment_intent;   /* capture, void, refund */
    const char   *store_id;         /* shipment.create */
    json_t       *lines;            /* shipment.create */
    json_t       *shipping_address; /* shipment.create */
    const char   *shipment_id;      /* shipment.cancel */
    char          traceparent[64];  /* the Kafka header, or "" */
} ps_command_t;

/* What answers a command: a webhook body for the payment provider, a
 * reply for the carrier. */
typedef struct {
    int           webhook;          /* 1: POST body; 0: Kafka reply */
    char         *body;
    size_t        len;
    char         *reply_type;       /* a reply's type, NULL for webhooks */
    char         *event_id;         /* a webhook's evt_ id */
} ps_answer_t;


/* ps_command.c: parses and checks a message's value. Returns PS_INVALID
 * with a reason in err, or -1 for out of memory, else 0. */
int ps_command_parse(ps_command_t *c, const void *value, size_t len,
    char *err, size_t errlen);
void ps_command_free(ps_command_t *c);
ps_type_e ps_type_lookup(const char *name);
int ps_type_is_payment(ps_type_e t);


/* ps_draw.c: the random draws (one thread: the consumer's). */
typedef struct {
    double     decline;             /* rates, summing to at most 1 */
    double     transient;
    double     no_answer;
    double     mu;                  /* log-normal latency: ln(p50 ms) */
    double     sigma;               /* ln(p99 / p50) / z(0.99) */
    int64_t    p50_ms;              /* 0: no latency */
    uint64_t   rng;
} ps_draw_t;

int ps_draw_init(ps_draw_t *d, double decline, double transient,
    double no_answer, int64_t p50_ms, int64_t p99_ms);
ps_outcome_e ps_draw_outcome(ps_draw_t *d, ps_type_e t);
int64_t ps_draw_latency_ms(ps_draw_t *d);
uint64_t ps_rand64(uint64_t *state);

/* Whether the outcome of a command of type t is answered at all: not
 * when no answer was drawn, nor for a transient error of a capture, a
 * void or a refund (the provider's API failed the call: no event). */
int ps_outcome_sends(ps_type_e t, ps_outcome_e outcome);


/* ps_idem.c: the idempotency keys seen, at most max of them (the oldest
 * is forgotten first); a key's final answer is kept with it. */
typedef struct ps_idem_s  ps_idem_t;

ps_idem_t *ps_idem_new(size_t max);
void ps_idem_free(ps_idem_t *m);

/* Records key for type. *seen says whether it was there; *final_answer,
 * when it had a final outcome, a copy of that answer (*outcome set),
 * else NULL. Returns 0, PS_CONFLICT when the key belongs to another
 * type, -1 for out of memory. */
int ps_idem_see(ps_idem_t *m, const char *key, ps_type_e type, int *seen,
    ps_outcome_e *outcome, ps_answer_t **final_answer);

/* Remembers note for key the first time (*differs 0), and says later
 * whether another note comes with it: the simulator notes, for each
 * order and command type, the first idempotency key, so that a second
 * capture of one order under another key is seen. Returns 0, or -1 for
 * out of memory. */
int ps_idem_note(ps_idem_t *m, const char *key, const char *note,
    int *differs);

/* Keeps the final answer of key (seen before by ps_idem_see). */
int ps_idem_keep(ps_idem_t *m, const char *key, ps_outcome_e outcome,
    const ps_answer_t *a);

/* ps_answer.c: the answer of JSON j (its reference is taken): a webhook
 * when event_id is given, else a reply of reply_type. NULL when j is, or
 * out of memory. */
ps_answer_t *ps_answer_new(json_t *j, const char *reply_type,
    const char *event_id);
ps_answer_t *ps_answer_copy(const ps_answer_t *a);
void ps_answer_free(ps_answer_t *a);


/* ps_stripe.c: the Stripe event that answers a payment command (NULL
 * when the outcome sends none, or out of memory). */
ps_answer_t *ps_stripe_event(const ps_command_t *c, ps_outcome_e outcome,
    const char *decline_code, int64_t now_s);

/* The Stripe-Signature header's value for body at t: "t=...,v1=<hex>". */
int ps_stripe_signature(const char *secret, const char *body, size_t len,
    int64_t t, char *out, size_t size);

/* An id of prefix and 24 characters of [0-9A-Za-z]: random when seed is
 * NULL, else derived from prefix and seed (the same, the same id). */
void ps_id(char *out, size_t size, const char *prefix, const char *seed);


/* ps_carrier.c: the carrier's reply to a shipping command (NULL when the
 * outcome sends none, or out of memory). */
ps_answer_t *ps_carrier_reply(const ps_command_t *c, ps_outcome_e outcome,
    const char *decline_reason);

#endif /* PS_H */
