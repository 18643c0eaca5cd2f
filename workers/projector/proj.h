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
 * Adapters and validation are pure (no I/O) and unit-tested; proj_store.c
 * and proj_outbox.c do the I/O.
 */

#ifndef PROJ_H
#define PROJ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cw_buf.h"

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

/* Helpers shared by adapters and validation. */
void proj_error_set(proj_error_t *e, const char *reason, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
int proj_valid_id(const char *s);
int proj_parse_amount(const char *s, int64_t *minor);
int proj_valid_currency(const char *s);
int proj_valid_timestamp(const char *s);

/* proj_util.c */

/* An event id: a version 8 UUID (RFC 9562) whose first 48 bits are
 * ts_ms, like version 7, and whose other bits come from SHA-256 of name.
 * The same name and instant always give the same id, and ids made close
 * in time sort close together, so the unique indexes on event ids grow
 * at their right edge instead of at random pages. out needs 37 bytes.
 * Returns 0, or -1 if the digest failed. */
int proj_event_uuid(const char *name, size_t len, int64_t ts_ms,
    char out[37]);

/* "\x" followed by the hex of the bytes: a bytea text literal. The
 * result is malloc()ed. */
char *proj_bytea_hex(const void *p, size_t n);

/* JSON text as PostgreSQL writes it ({"a" : 1, "b" : [1, 2]}) without
 * the blanks between tokens; strings are copied byte for byte. The
 * read-model values are stored this way, live and on --rebuild alike.
 * The result is malloc()ed. */
char *proj_json_compact(const char *text, size_t len);

/* Appends one element to a PostgreSQL array literal being built in a
 * ("{" first, "}" when done); s NULL is SQL NULL. */
void proj_arr(cw_buf_t *a, const char *s);
void proj_arr_ll(cw_buf_t *a, long long v);

/* Kafka messages packed into one bytea, the payload of an outbox row of
 * kind 'kafka_batch': per message, with big-endian lengths,
 *   u32 key length, key; u32 value length, value; u16 header count;
 *   per header u16 name length, name, u32 value length, value. */
typedef struct {
    const char            *key;
    size_t                 klen;
    const char            *value;
    size_t                 vlen;
    size_t                 nhdrs;
    const unsigned char   *hdrs;     /* the headers, still encoded */
    size_t                 hlen;
} proj_frame_t;

/* Appends a message; hdrs holds nhdrs (name, value) pairs, and a header
 * whose value is NULL is left out. */
void proj_frame_put(cw_buf_t *b, const char *key, size_t klen,
    const char *value, size_t vlen, const char *const *hdrs, size_t nhdrs);

/* The message at *off, which moves past it: 1, 0 at the end, -1 if the
 * bytes are not a valid frame. */
int proj_frame_next(const unsigned char *p, size_t len, size_t *off,
    proj_frame_t *f);

/* The header at *off (start at 0) of a frame: 1, 0 after the last, -1
 * if malformed. Names and values are not NUL-terminated. */
int proj_frame_header(const proj_frame_t *f, size_t *off, const char **name,
    size_t *nlen, const char **value, size_t *vlen);

#endif /* PROJ_H */
