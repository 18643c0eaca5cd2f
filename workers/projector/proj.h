/*
 * commerce-projector: shared types.
 *
 * The pipeline of one inbound message:
 *
 *   Kafka message --adapter--> canonical commands (JSON) --validate-->
 *   PostgreSQL (event store, catalog, offsets, outbox; one transaction per
 *   batch) --outbox--> commerce.events / commerce.dlq and the Redis read
 *   model (guarded by version).
 *
 * This header: the adapters and validation, pure (no I/O) and
 * unit-tested (t/unit/test_proj_adapters.c). proj_store.h applies
 * batches, proj_outbox.h drains the outbox.
 */

#ifndef PROJ_H
#define PROJ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>


#define PROJ_ID_MAX       256
#define PROJ_REASON_MAX   48
#define PROJ_DETAIL_MAX   256

/* Why a message was rejected: reason is machine-readable (snake_case,
 * stable), detail is for humans and names the offending field. */
typedef struct {
    char   reason[PROJ_REASON_MAX];
    char   detail[PROJ_DETAIL_MAX];
} proj_error_t;

/* What an adapter sees of a Kafka message. Strings are NUL-terminated
 * copies of the headers (NULL when absent). */
typedef struct {
    const char   *source;       /* header "source" */
    const char   *topic;        /* header "topic": e.g. X-Shopify-Topic */
    const char   *key;          /* message key (store/merchant id) */
    const char   *body;
    size_t        len;
} proj_input_t;

/* An adapter appends canonical commands (see proj_adapter_canonical.c for
 * the format) to cmds, or fills e and returns -1. */
typedef int (*proj_adapter_fn)(const proj_input_t *in, json_t *cmds,
    proj_error_t *e);

typedef struct {
    const char        *source;
    proj_adapter_fn    parse;
} proj_adapter_t;

/* proj_adapter.c: finds the adapter of in->source, runs it, then
 * validates and normalises every command. Returns the command array
 * (caller json_decref()s it) or NULL with e filled. */
json_t *proj_adapt(const proj_input_t *in, proj_error_t *e);

int proj_adapter_canonical(const proj_input_t *in, json_t *cmds,
    proj_error_t *e);
int proj_adapter_shopify(const proj_input_t *in, json_t *cmds,
    proj_error_t *e);
void proj_shopify_set_currency(const char *code);

/* proj_validate.c: checks one canonical command and normalises it in
 * place (amount "12.90" -> amount_minor 1290, defaults filled in). path
 * names the command in error details, e.g. "commands[2]". */
int proj_validate_command(json_t *cmd, const char *path, proj_error_t *e);

/* proj_error.c: every reason a message can be dead-lettered for, one
 * place (docs/contract.md lists them), NULL-terminated; the index of a
 * reason in it, or -1. */
#define PROJ_REASON_N  30
extern const char *const proj_reasons[PROJ_REASON_N + 1];
int proj_reason_index(const char *reason);

/* proj_error.c: fills e (reason is copied, detail formatted). */
void proj_error_set(proj_error_t *e, const char *reason, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* A refusal by PostgreSQL of a value of the message (err is cw_pg's
 * text): reason rejected_by_store, and in the detail only its SQLSTATE,
 * never the database's own words. */
void proj_error_store(proj_error_t *e, const char *err);

/* Checks shared by adapters and validation. proj_parse_amount takes at
 * most decimals decimals ("12.9" with 2 -> 1290: minor is always in
 * hundredths). A currency is an active ISO 4217 code. A timestamp is RFC
 * 3339 and a real instant (no 2026-02-30, no 25:00). */
int proj_valid_id(const char *s);
int proj_parse_amount(const char *s, int decimals, int64_t *minor);
int proj_valid_currency(const char *s);
int proj_valid_timestamp(const char *s);

/* The body as a JSON object by the edge's rule (commerce_inbound.h: one
 * object, no key twice, valid UTF-8), or NULL with e filled: invalid_json,
 * duplicate_key, not_an_object. The caller json_decref()s it. */
json_t *proj_parse_object(const proj_input_t *in, proj_error_t *e);

#endif /* PROJ_H */
