/*
 * proj_util: small pure helpers of the projector: event ids, bytea
 * literals, compact JSON text, and PostgreSQL array literals built as
 * text (binary arrays: cw_pg_array_t).
 *
 * Use:
 *
 *   cw_buf_t  a[2];
 *
 *   proj_arrs_open(a, 2);
 *   proj_arr(&a[0], "store-1"); proj_arr_ll(&a[1], 42);
 *   if (proj_arrs_close(a, 2, p) != 0) -> out of memory
 *   ... p[0] is "{\"store-1\"}", p[1] "{42}" ...
 *   proj_arrs_free(a, 2);
 */

#ifndef PROJ_UTIL_H
#define PROJ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cw_buf.h"


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

/* Appends s as a JSON string (escaped), or null when s is NULL. */
void proj_json_str_or_null(cw_buf_t *b, const char *s);

/* Appends one element to a PostgreSQL array literal being built in a
 * ("{" first, "}" when done); s NULL is SQL NULL. */
void proj_arr(cw_buf_t *a, const char *s);
void proj_arr_ll(cw_buf_t *a, long long v);

/* n array literals: opened ("{"), closed ("}"; 0, or -1 if out of
 * memory; p, when not NULL, gets their texts), freed. */
void proj_arrs_open(cw_buf_t *a, size_t n);
int proj_arrs_close(cw_buf_t *a, size_t n, const char **p);
void proj_arrs_free(cw_buf_t *a, size_t n);


#endif /* PROJ_UTIL_H */
