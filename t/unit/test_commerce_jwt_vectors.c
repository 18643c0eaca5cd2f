/*
 * The JWT core against vectors made by independent tools (the jose CLI
 * and openssl; t/fixtures/jwt/make-vectors.sh): every algorithm verifies,
 * every attack gets its reason, every bad key set is refused with its
 * error.  Run from the repository's root (make test-unit), or with
 * COMMERCE_JWT_FIXTURES naming the folder.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "commerce_jwt.h"


#define VEC_NOW      1700000000
#define VEC_ISSUER   "https://issuer.test"
#define VEC_AUD      "commerce"
#define VEC_LINE     (COMMERCE_JWT_TOKEN_MAX + 256)


static const char *
fixtures(void)
{
    const char  *dir = getenv("COMMERCE_JWT_FIXTURES");

    return dir != NULL ? dir : "t/fixtures/jwt";
}


static FILE *
open_fixture(const char *name)
{
    char   path[512];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", fixtures(), name);
    f = fopen(path, "r");

    if (f == NULL) {
        fail_msg("cannot open %s (run from the repository's root)", path);
    }

    return f;
}


static commerce_jwk_set_t *
load_jwks(void)
{
    char                 path[512], err[512];
    commerce_jwk_set_t  *set;

    snprintf(path, sizeof(path), "%s/jwks.json", fixtures());

    set = commerce_jwk_set_new();
    assert_non_null(set);

    if (commerce_jwk_set_add_file(set, path, err, sizeof(err)) != 0) {
        fail_msg("jwks.json: %s", err);
    }

    return set;
}


/* each line's reason, with the options vectors.txt states */
static void
test_vectors(void **state)
{
    int                   n, bad;
    char                  line[VEC_LINE], reason[64], name[64], *token;
    FILE                 *f;
    commerce_jwt_t        jwt;
    commerce_jwt_rc_e     rc;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    commerce_jwt_str_t    aud = { sizeof(VEC_AUD) - 1,
                                  (const unsigned char *) VEC_AUD };

    (void) state;

    set = load_jwks();
    f = open_fixture("vectors.txt");

    commerce_jwt_opts_init(&opts);
    opts.issuer.data = (const unsigned char *) VEC_ISSUER;
    opts.issuer.len = sizeof(VEC_ISSUER) - 1;
    opts.audiences = &aud;
    opts.naudiences = 1;

    n = 0;
    bad = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#') {
            continue;
        }

        line[strcspn(line, "\n")] = '\0';
        assert_int_equal(sscanf(line, "%63s %63s", reason, name), 2);
        token = strchr(strchr(line, ' ') + 1, ' ') + 1;

        rc = commerce_jwt_verify(set, &opts, (const unsigned char *) token,
                                 strlen(token), VEC_NOW, &jwt);

        if (strcmp(commerce_jwt_reason(rc), reason) != 0) {
            print_error("%s: %s, not %s\n", name, commerce_jwt_reason(rc),
                        reason);
            bad++;
        }

        if (rc == COMMERCE_JWT_OK && jwt.key == NULL) {
            print_error("%s: valid without a key\n", name);
            bad++;
        }

        commerce_jwt_free(&jwt);
        n++;
    }

    fclose(f);
    commerce_jwk_set_free(set);

    assert_true(n >= 70);
    assert_int_equal(bad, 0);
}


/* the claims of a valid vector, and who signed it */
static void
test_valid_vector(void **state)
{
    char                  line[VEC_LINE], *token;
    FILE                 *f;
    commerce_jwt_t        jwt;
    commerce_jwt_opts_t   opts;
    commerce_jwk_set_t   *set;
    commerce_jwt_str_t    shopper = { 7, (const unsigned char *) "shopper" };
    commerce_jwt_str_t    admin = { 5, (const unsigned char *) "admin" };

    (void) state;

    set = load_jwks();
    f = open_fixture("vectors.txt");
    token = NULL;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "ok es512 ", 9) == 0) {
            line[strcspn(line, "\n")] = '\0';
            token = line + 9;
            break;
        }
    }

    fclose(f);
    assert_non_null(token);

    commerce_jwt_opts_init(&opts);
    assert_int_equal(commerce_jwt_verify(set, &opts,
                                         (const unsigned char *) token,
                                         strlen(token), VEC_NOW, &jwt),
                     COMMERCE_JWT_OK);

    assert_int_equal(jwt.alg, COMMERCE_JWA_ES512);
    assert_string_equal(jwt.key->kid, "ec512");
    assert_int_equal(jwt.sub.len, 6);
    assert_memory_equal(jwt.sub.data, "user-1", 6);
    assert_string_equal(json_string_value(json_object_get(jwt.header, "kid")),
                        "ec512");
    assert_true(commerce_jwt_has_role(&jwt, "roles", &shopper));
    assert_false(commerce_jwt_has_role(&jwt, "roles", &admin));

    commerce_jwt_free(&jwt);
    commerce_jwk_set_free(set);
}


/* each bad set refused, with its error, and the set left as it was */
static void
test_bad_sets(void **state)
{
    int                  n;
    char                 line[512], name[64], path[512], err[512], *want;
    FILE                *f;
    commerce_jwk_set_t  *set;

    (void) state;

    set = load_jwks();
    f = open_fixture("bad.txt");
    n = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        assert_int_equal(sscanf(line, "%63s", name), 1);
        want = line + strlen(name) + 1;

        snprintf(path, sizeof(path), "%s/bad/%s.json", fixtures(), name);
        err[0] = '\0';

        if (commerce_jwk_set_add_file(set, path, err, sizeof(err)) == 0) {
            fail_msg("%s: loaded", name);
        }

        if (strstr(err, want) == NULL || strstr(err, path) != err) {
            fail_msg("%s: \"%s\", not \"%s\"", name, err, want);
        }

        assert_int_equal(set->nkeys, 10);
        n++;
    }

    fclose(f);
    commerce_jwk_set_free(set);

    assert_true(n >= 20);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_valid_vector),
        cmocka_unit_test(test_bad_sets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
