/*
 * Helpers shared by the fuzz targets (t/fuzz/fuzz_<target>.c, run by
 * t/fuzz/run.sh through `make fuzz`).
 *
 * An input is split into fields at its first newlines, and each field is
 * copied into a buffer of exactly its size, so that AddressSanitizer sees
 * a read one byte past a field (a parser that expects a NUL, say).
 *
 * Use:
 *
 *     fuzz_field_t  f[3];
 *
 *     fuzz_split(data, size, f, 3);     f[2] holds the rest, newlines too
 *     ... parse(f[0].data, f[0].len) ...
 *     fuzz_free(f, 3);
 *
 * fuzz_check() is an oracle: a false condition aborts, so libFuzzer keeps
 * the input as a crash (an assert() would vanish under -DNDEBUG).
 */

#ifndef FUZZ_H
#define FUZZ_H


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    size_t          len;
    unsigned char  *data;   /* never NULL: malloc(0) for an empty field */
} fuzz_field_t;


#define fuzz_check(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: oracle failed: %s\n", __FILE__,           \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)


static inline unsigned char *
fuzz_dup(const uint8_t *p, size_t len)
{
    unsigned char  *d;

    d = malloc(len);
    if (d == NULL) {
        abort();
    }

    memcpy(d, p, len);

    return d;
}


/* a NUL-terminated copy (for parsers of C strings) */
static inline char *
fuzz_strdup(const unsigned char *p, size_t len)
{
    char  *s;

    s = malloc(len + 1);
    if (s == NULL) {
        abort();
    }

    if (len) {
        memcpy(s, p, len);
    }

    s[len] = '\0';

    return s;
}


/* n fields: the first n - 1 end at a newline, the last takes the rest */
static inline void
fuzz_split(const uint8_t *data, size_t size, fuzz_field_t *f, size_t n)
{
    size_t          i;
    const uint8_t  *nl, *end;

    end = data + size;

    for (i = 0; i < n; i++) {
        nl = (i + 1 < n) ? memchr(data, '\n', end - data) : NULL;

        if (nl == NULL) {
            nl = end;
        }

        f[i].len = nl - data;
        f[i].data = fuzz_dup(data, f[i].len);

        data = (nl < end) ? nl + 1 : end;
    }
}


static inline void
fuzz_free(fuzz_field_t *f, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(f[i].data);
    }
}


#endif /* FUZZ_H */
