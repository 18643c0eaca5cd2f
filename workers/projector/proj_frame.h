/*
 * proj_frame: the payload of an outbox row of kind 'kafka_batch': Kafka
 * messages packed into one bytea, written by the store for a batch's
 * events and read by the publisher. Per message, with big-endian
 * lengths:
 *
 *   u32 key length, key; u32 value length, value; u16 header count;
 *   per header u16 name length, name, u32 value length, value.
 *
 * Use:
 *
 *   proj_frame_put(&b, key, klen, value, vlen, hdrs, nhdrs);
 *   while ((rc = proj_frame_next(p, len, &off, &f)) == 1) {
 *       hoff = 0;
 *       while (proj_frame_header(&f, &hoff, &n, &nl, &v, &vl) == 1) ...
 *   }
 *   rc == 0: all read; -1: malformed
 */

#ifndef PROJ_FRAME_H
#define PROJ_FRAME_H

#include <stddef.h>

#include "cw_buf.h"


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


#endif /* PROJ_FRAME_H */
