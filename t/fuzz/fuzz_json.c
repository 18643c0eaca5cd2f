/*
 * Fuzz target: JSON string escaping (common/commerce_json.c), used for
 * every id, message and log line the module and the workers write.
 *
 * Input: one byte choosing the mode (bit 0: TEXT, else BYTES), then the
 * bytes to escape.
 *
 * Oracles: escape_len() is the length escape() writes and at most
 * COMMERCE_JSON_ESCAPE_MAX; the output, in quotes, is one JSON string that
 * jansson reads (TEXT: always; BYTES: whenever the input is UTF-8) and
 * that decodes to the input itself whenever the input is UTF-8.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commerce_json.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             mode, utf8;
    size_t          n, len;
    json_t         *s, *back;
    unsigned char  *in, *out, *end;

    if (size < 1) {
        return 0;
    }

    mode = (data[0] & 1) ? COMMERCE_JSON_TEXT : COMMERCE_JSON_BYTES;
    len = size - 1;
    in = fuzz_dup(data + 1, len);

    n = commerce_json_escape_len(in, len, mode);
    fuzz_check(n >= len && n <= COMMERCE_JSON_ESCAPE_MAX(len));

    out = malloc(n + 2);
    fuzz_check(out != NULL);

    out[0] = '"';
    end = commerce_json_escape(out + 1, in, len, mode);
    fuzz_check((size_t) (end - (out + 1)) == n);
    *end = '"';

    /* valid UTF-8, as jansson defines it (no surrogates, <= U+10FFFF) */
    s = json_stringn((const char *) in, len);
    utf8 = (s != NULL);
    json_decref(s);

    back = json_loadb((const char *) out, n + 2,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    if (mode == COMMERCE_JSON_TEXT || utf8) {
        fuzz_check(back != NULL && json_is_string(back));
    }

    if (utf8) {
        fuzz_check(json_string_length(back) == len);
        fuzz_check(len == 0
                   || memcmp(json_string_value(back), in, len) == 0);
    }

    json_decref(back);
    free(out);
    free(in);

    return 0;
}
