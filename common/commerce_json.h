/*
 * commerce_json: the inside of a JSON string (without its quotes), for the
 * nginx module and the workers (pure C, no allocation: the caller sizes
 * the output with commerce_json_escape_len()).
 *
 * Two modes, each pinned by its callers' tests:
 *
 *   COMMERCE_JSON_BYTES  '"' and '\' get a backslash, control characters
 *                        become \u00XX, every other byte is kept as it is
 *                        (the module's answers: ids, topics, messages).
 *   COMMERCE_JSON_TEXT   also \n \r \t \b \f as such, DEL as \u007f, and
 *                        bytes that are not UTF-8 become \ufffd, so that
 *                        every line is valid JSON (worker logs, documents).
 *
 * Use:
 *
 *     n = commerce_json_escape_len(p, len, COMMERCE_JSON_BYTES);
 *     ... room for n bytes at dst ...
 *     dst = commerce_json_escape(dst, p, len, COMMERCE_JSON_BYTES);
 */

#ifndef COMMERCE_JSON_H
#define COMMERCE_JSON_H


#include <stddef.h>


#define COMMERCE_JSON_BYTES  0
#define COMMERCE_JSON_TEXT   1

/* the longest escape of len bytes, in any mode: one \u00XX per byte */
#define COMMERCE_JSON_ESCAPE_MAX(len)  (6 * (len))


/* the length of the escaped text */
size_t commerce_json_escape_len(const unsigned char *p, size_t len,
    int mode);

/* writes the escaped text at dst and returns its end */
unsigned char *commerce_json_escape(unsigned char *dst,
    const unsigned char *p, size_t len, int mode);


#endif /* COMMERCE_JSON_H */
