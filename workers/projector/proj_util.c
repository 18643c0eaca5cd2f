/*
 * Small pure helpers: name-based UUIDs for event ids, bytea literals.
 */

#include <stdio.h>
#include <stdlib.h>

#include <openssl/sha.h>

#include "proj.h"


void
proj_uuid_from_name(const char *name, size_t len, char out[37])
{
    unsigned char  md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *) name, len, md);

    md[6] = (md[6] & 0x0f) | 0x50;      /* version 5 layout (name-based) */
    md[8] = (md[8] & 0x3f) | 0x80;      /* RFC 4122 variant */

    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7],
             md[8], md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
}


char *
proj_bytea_hex(const void *p, size_t n)
{
    static const char     hex[] = "0123456789abcdef";
    const unsigned char  *s = p;
    char                 *out, *o;
    size_t                i;

    out = malloc(2 * n + 3);
    if (out == NULL) {
        return NULL;
    }

    o = out;
    *o++ = '\\';
    *o++ = 'x';

    for (i = 0; i < n; i++) {
        *o++ = hex[s[i] >> 4];
        *o++ = hex[s[i] & 0xf];
    }

    *o = '\0';

    return out;
}
