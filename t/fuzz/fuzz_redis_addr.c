/*
 * Fuzz target: Redis address text (common/commerce_redis_addr.c), as
 * commerce_redis_server and the workers' redis.address take it.
 *
 * Input: one byte choosing the default port (odd: 6379, even: none), then
 * the address text.
 *
 * Oracles: a code has its message; on success the host is NUL-terminated
 * inside its buffer and holds no NUL of its own (it is passed on as a C
 * string), a unix socket is exactly the text after "unix:" (or the path),
 * and a TCP address is "host:port", "[host]:port" or the host alone with
 * the default port, the port in 1..65535.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce_redis_addr.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                       dport;
    char                      re[COMMERCE_REDIS_HOST_MAX + 32];
    char                     *text;
    size_t                    len, hlen, off;
    commerce_redis_addr_t     a;
    commerce_redis_addr_rc_e  rc;

    if (size < 1) {
        return 0;
    }

    dport = (data[0] & 1) ? 6379 : 0;
    len = size - 1;
    text = (char *) fuzz_dup(data + 1, len);

    memset(&a, 0x5a, sizeof(a));

    rc = commerce_redis_addr_parse(&a, text, len, dport);

    fuzz_check(rc <= COMMERCE_REDIS_ADDR_INVALID_PATH);
    fuzz_check(strcmp(commerce_redis_addr_strerror(rc), "invalid address")
               != 0);

    if (rc == COMMERCE_REDIS_ADDR_OK) {
        hlen = strnlen(a.host, sizeof(a.host));
        fuzz_check(hlen < sizeof(a.host) && hlen > 0);

        if (a.is_unix) {
            off = (len >= 5 && memcmp(text, "unix:", 5) == 0) ? 5 : 0;
            fuzz_check(a.port == 0);
            fuzz_check(hlen == len - off);
            fuzz_check(memcmp(a.host, text + off, hlen) == 0);

        } else {
            fuzz_check(a.port >= 1 && a.port <= 65535);
            fuzz_check(len == 0 || text[0] != '/');

            /* the text is the host, bracketed if it was, and its port */
            if (text[0] == '[') {
                snprintf(re, sizeof(re), "[%s]:%d", a.host, a.port);
            } else {
                snprintf(re, sizeof(re), "%s:%d", a.host, a.port);
            }

            if (strlen(re) != len || memcmp(re, text, len) != 0) {
                /* the host alone: the default port, or a port with
                 * leading zeros */
                fuzz_check(memcmp(re, text, hlen + (text[0] == '[')) == 0);
                fuzz_check(len == hlen + 2 * (text[0] == '[')
                           ? a.port == dport
                           : text[hlen + 2 * (text[0] == '[')] == ':');
            }
        }
    }

    free(text);

    return 0;
}
