/*
 * proj_frame: Kafka messages packed into one bytea (see proj_frame.h).
 */

#include <stdint.h>
#include <string.h>

#include "proj_frame.h"


static void
proj_put_be(cw_buf_t *b, uint64_t v, int bytes)
{
    unsigned char  s[8];
    int            i;

    for (i = 0; i < bytes; i++) {
        s[i] = (unsigned char) (v >> (8 * (bytes - 1 - i)));
    }
    cw_buf_append(b, s, (size_t) bytes);
}


static int
proj_get_be(const unsigned char *p, size_t len, size_t *off, int bytes,
    size_t *v)
{
    int  i;

    if (len - *off < (size_t) bytes || *off > len) {
        return -1;
    }

    *v = 0;
    for (i = 0; i < bytes; i++) {
        *v = (*v << 8) | p[(*off)++];
    }

    return 0;
}


void
proj_frame_put(cw_buf_t *b, const char *key, size_t klen, const char *value,
    size_t vlen, const char *const *hdrs, size_t nhdrs)
{
    size_t  i, n = 0;

    for (i = 0; i < nhdrs; i++) {
        n += hdrs[2 * i + 1] != NULL;
    }

    proj_put_be(b, klen, 4);
    cw_buf_append(b, key, klen);
    proj_put_be(b, vlen, 4);
    cw_buf_append(b, value, vlen);
    proj_put_be(b, n, 2);

    for (i = 0; i < nhdrs; i++) {
        if (hdrs[2 * i + 1] == NULL) {
            continue;
        }
        proj_put_be(b, strlen(hdrs[2 * i]), 2);
        cw_buf_puts(b, hdrs[2 * i]);
        proj_put_be(b, strlen(hdrs[2 * i + 1]), 4);
        cw_buf_puts(b, hdrs[2 * i + 1]);
    }
}


int
proj_frame_next(const unsigned char *p, size_t len, size_t *off,
    proj_frame_t *f)
{
    size_t  n, i, l;

    if (*off == len) {
        return 0;
    }

    if (proj_get_be(p, len, off, 4, &f->klen) != 0
        || len - *off < f->klen)
    {
        return -1;
    }
    f->key = (const char *) p + *off;
    *off += f->klen;

    if (proj_get_be(p, len, off, 4, &f->vlen) != 0
        || len - *off < f->vlen)
    {
        return -1;
    }
    f->value = (const char *) p + *off;
    *off += f->vlen;

    if (proj_get_be(p, len, off, 2, &f->nhdrs) != 0) {
        return -1;
    }

    f->hdrs = p + *off;
    f->hlen = 0;
    n = *off;

    for (i = 0; i < f->nhdrs; i++) {
        if (proj_get_be(p, len, &n, 2, &l) != 0 || len - n < l) {
            return -1;
        }
        n += l;
        if (proj_get_be(p, len, &n, 4, &l) != 0 || len - n < l) {
            return -1;
        }
        n += l;
    }

    f->hlen = n - *off;
    *off = n;

    return 1;
}


int
proj_frame_header(const proj_frame_t *f, size_t *off, const char **name,
    size_t *nlen, const char **value, size_t *vlen)
{
    if (*off == f->hlen) {
        return 0;
    }

    if (proj_get_be(f->hdrs, f->hlen, off, 2, nlen) != 0) {
        return -1;
    }
    *name = (const char *) f->hdrs + *off;
    *off += *nlen;

    if (proj_get_be(f->hdrs, f->hlen, off, 4, vlen) != 0) {
        return -1;
    }
    *value = (const char *) f->hdrs + *off;
    *off += *vlen;

    return 1;
}
