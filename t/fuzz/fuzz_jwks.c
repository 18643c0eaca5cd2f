/*
 * Fuzz target: JWK Set parsing (common/commerce_jwk.c, _key.c), what
 * commerce_jwt_keys_file reads at configuration time, into a set that
 * holds one key already.
 *
 * Input: the text of a keys file (not NUL-terminated).
 *
 * Oracles: a refusal has a message naming the file and leaves the set as
 * it was; every key taken verifies at least one algorithm, only of its
 * kind (an RSA key RS* and PS*, an EC key the ES* of its curve, OKP
 * EdDSA, oct HS* no longer than its secret), has its OpenSSL key or its
 * secret, and a kid of its length; no OpenSSL error is left in the queue.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "commerce_jwk.h"
#include "fuzz.h"


static const char  fuzz_first[] =
    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"first\","
    "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";


static void
fuzz_key_ok(const commerce_jwk_t *k)
{
    int       a;
    unsigned  kind_algs;

    kind_algs = 0;

    for (a = 0; a < COMMERCE_JWA_COUNT; a++) {
        if (commerce_jwa_get(a)->kind == k->kind
            && (k->kind != COMMERCE_JWA_KIND_OCT
                || commerce_jwa_get(a)->hash_len <= k->secret_len))
        {
            kind_algs |= COMMERCE_JWA_BIT(a);
        }
    }

    fuzz_check(k->algs != 0);
    fuzz_check((k->algs & ~kind_algs) == 0);

    if (k->kind == COMMERCE_JWA_KIND_EC) {
        fuzz_check((k->algs & (k->algs - 1)) == 0);
    }

    if (k->kind == COMMERCE_JWA_KIND_OCT) {
        fuzz_check(k->secret != NULL && k->secret_len >= 32);
        fuzz_check(k->pkey == NULL);

    } else {
        fuzz_check(k->pkey != NULL && k->secret == NULL);
    }

    if (k->kid != NULL) {
        fuzz_check(strlen(k->kid) == k->kid_len);
        fuzz_check(k->kid_len >= 1 && k->kid_len <= COMMERCE_JWK_KID_MAX);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc;
    char                 err[1024], *text;
    size_t               i;
    commerce_jwk_set_t  *set;

    set = commerce_jwk_set_new();
    fuzz_check(set != NULL);
    fuzz_check(commerce_jwk_set_add(set, fuzz_first, sizeof(fuzz_first) - 1,
                                    "first", err, sizeof(err)) == 0);

    text = (char *) fuzz_dup(data, size);
    err[0] = '\0';

    rc = commerce_jwk_set_add(set, text, size, "fuzz.json", err,
                              sizeof(err));

    fuzz_check(rc == 0 || rc == -1);
    fuzz_check(ERR_peek_error() == 0);

    if (rc != 0) {
        fuzz_check(strncmp(err, "fuzz.json", 9) == 0);
        fuzz_check(set->nkeys == 1);

    } else {
        fuzz_check(set->nkeys > 1 && set->nkeys <= COMMERCE_JWK_MAX_KEYS);
    }

    for (i = 0; i < set->nkeys; i++) {
        fuzz_key_ok(&set->keys[i]);
    }

    commerce_jwk_set_free(set);
    free(text);

    return 0;
}
