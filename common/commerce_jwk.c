/*
 * commerce_jwk: one JWK's members and what it may verify, and sets of
 * keys read from files (see the header).  The key material of each kty
 * is built in commerce_jwk_key.c.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "commerce_jwk.h"
#include "commerce_jwk_key.h"


typedef struct {
    const char           *kty;
    commerce_jwa_kind_e   kind;
} commerce_jwk_kty_t;


static const commerce_jwk_kty_t  commerce_jwk_ktys[] = {
    { "RSA", COMMERCE_JWA_KIND_RSA },
    { "EC", COMMERCE_JWA_KIND_EC },
    { "OKP", COMMERCE_JWA_KIND_OKP },
    { "oct", COMMERCE_JWA_KIND_OCT },
    { NULL, 0 }
};


static int commerce_jwk_for_signatures(const json_t *jwk, int mode,
    char *err, size_t errlen);
static int commerce_jwk_alg(const json_t *jwk, commerce_jwa_kind_e kind,
    commerce_jwa_alg_e *alg, char *err, size_t errlen);
static int commerce_jwk_kid(const json_t *jwk, commerce_jwk_t *key,
    char *err, size_t errlen);
static int commerce_jwk_set_parse(commerce_jwk_set_t *set, json_t *keys,
    size_t *added, char *err, size_t errlen);
static int commerce_jwk_set_unique(const commerce_jwk_set_t *set,
    const commerce_jwk_t *key, size_t *other);
static int commerce_jwk_set_grow(commerce_jwk_set_t *set, size_t n);
static const char *commerce_jwk_kty_name(commerce_jwa_kind_e kind);


void
commerce_jwk_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


/*
 * use and key_ops first (a key for encryption is skipped whatever else it
 * holds), then kty and alg, then the material of the kty.
 */
int
commerce_jwk_parse(const json_t *jwk, int mode, commerce_jwk_t *key,
    char *err, size_t errlen)
{
    int                        rc;
    const char                *kty;
    commerce_jwa_alg_e         alg;
    const commerce_jwk_kty_t  *k;

    memset(key, 0, sizeof(*key));

    if (!json_is_object(jwk)) {
        commerce_jwk_err(err, errlen, "not a JSON object");
        return -1;
    }

    rc = commerce_jwk_for_signatures(jwk, mode, err, errlen);
    if (rc <= 0) {
        return rc;
    }

    kty = json_string_value(json_object_get(jwk, "kty"));
    if (kty == NULL) {
        commerce_jwk_err(err, errlen, "no \"kty\" string");
        return -1;
    }

    for (k = commerce_jwk_ktys; k->kty; k++) {
        if (strcmp(k->kty, kty) == 0) {
            break;
        }
    }

    if (k->kty == NULL) {
        commerce_jwk_err(err, errlen, "kty \"%.32s\" is not RSA, EC, OKP "
                         "or oct", kty);
        return -1;
    }

    key->kind = k->kind;

    if (commerce_jwk_alg(jwk, k->kind, &alg, err, errlen) != 0
        || commerce_jwk_kid(jwk, key, err, errlen) != 0
        || commerce_jwk_material(jwk, mode, alg, key, err, errlen) != 0)
    {
        commerce_jwk_clear(key);
        return -1;
    }

    return 1;
}


void
commerce_jwk_clear(commerce_jwk_t *key)
{
    int  i;

    for (i = 0; i < COMMERCE_JWA_COUNT; i++) {
        EVP_MD_CTX_free(key->verify[i]);
    }

    free(key->kid);
    EVP_PKEY_free(key->pkey);

    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }

    memset(key, 0, sizeof(*key));
}


/*
 * 1 when "use" and "key_ops" allow the mode's operation (or say nothing),
 * 0 when they do not, -1 when they are not as RFC 7517 writes them.
 */
static int
commerce_jwk_for_signatures(const json_t *jwk, int mode, char *err,
    size_t errlen)
{
    int          found;
    size_t       i;
    json_t      *use, *ops, *op;
    const char  *want;

    use = json_object_get(jwk, "use");

    if (use != NULL && !json_is_string(use)) {
        commerce_jwk_err(err, errlen, "\"use\" is not a string");
        return -1;
    }

    ops = json_object_get(jwk, "key_ops");

    if (ops != NULL && !json_is_array(ops)) {
        commerce_jwk_err(err, errlen, "\"key_ops\" is not an array");
        return -1;
    }

    want = mode == COMMERCE_JWK_SIGN ? "sign" : "verify";
    found = 0;

    json_array_foreach(ops, i, op) {
        if (!json_is_string(op)) {
            commerce_jwk_err(err, errlen, "\"key_ops\" holds a value that "
                             "is not a string");
            return -1;
        }

        found |= strcmp(json_string_value(op), want) == 0;
    }

    if (use != NULL && strcmp(json_string_value(use), "sig") != 0) {
        return 0;
    }

    return ops == NULL || found;
}


/*
 * The JWK's "alg" when it has one: a JWS algorithm of the key's kind, in
 * *alg; COMMERCE_JWA_NONE when it has none.
 */
static int
commerce_jwk_alg(const json_t *jwk, commerce_jwa_kind_e kind,
    commerce_jwa_alg_e *alg, char *err, size_t errlen)
{
    json_t  *v;

    *alg = COMMERCE_JWA_NONE;

    v = json_object_get(jwk, "alg");
    if (v == NULL) {
        return 0;
    }

    if (!json_is_string(v)) {
        commerce_jwk_err(err, errlen, "\"alg\" is not a string");
        return -1;
    }

    *alg = commerce_jwa_lookup(json_string_value(v), json_string_length(v));

    if (*alg == COMMERCE_JWA_NONE) {
        commerce_jwk_err(err, errlen, "alg \"%.32s\" is not a JWS algorithm "
                         "of RFC 7518 or 8037 that is verified here",
                         json_string_value(v));
        return -1;
    }

    if (commerce_jwa_get(*alg)->kind != kind) {
        commerce_jwk_err(err, errlen, "alg %s does not fit kty \"%s\"",
                         commerce_jwa_get(*alg)->name,
                         json_string_value(json_object_get(jwk, "kty")));
        return -1;
    }

    return 0;
}


static int
commerce_jwk_kid(const json_t *jwk, commerce_jwk_t *key, char *err,
    size_t errlen)
{
    json_t  *v;

    v = json_object_get(jwk, "kid");
    if (v == NULL) {
        return 0;
    }

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > COMMERCE_JWK_KID_MAX)
    {
        commerce_jwk_err(err, errlen, "\"kid\" is not a string of 1 to %d "
                         "bytes", COMMERCE_JWK_KID_MAX);
        return -1;
    }

    key->kid_len = json_string_length(v);
    key->kid = malloc(key->kid_len + 1);

    if (key->kid == NULL) {
        commerce_jwk_err(err, errlen, "out of memory");
        return -1;
    }

    memcpy(key->kid, json_string_value(v), key->kid_len + 1);

    return 0;
}


static const char *
commerce_jwk_kty_name(commerce_jwa_kind_e kind)
{
    const commerce_jwk_kty_t  *k;

    for (k = commerce_jwk_ktys; k->kty; k++) {
        if (k->kind == kind) {
            return k->kty;
        }
    }

    return "?";
}


commerce_jwk_set_t *
commerce_jwk_set_new(void)
{
    return calloc(1, sizeof(commerce_jwk_set_t));
}


void
commerce_jwk_set_free(commerce_jwk_set_t *set)
{
    size_t  i;

    if (set == NULL) {
        return;
    }

    for (i = 0; i < set->nkeys; i++) {
        commerce_jwk_clear(&set->keys[i]);
    }

    free(set->keys);
    free(set);
}


int
commerce_jwk_set_add(commerce_jwk_set_t *set, const char *text, size_t len,
    const char *name, char *err, size_t errlen)
{
    int           rc;
    char          why[256];
    size_t        added, skipped, i;
    json_t       *root, *keys;
    json_error_t  jerr;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        commerce_jwk_err(err, errlen, "%s:%d:%d: %s", name, jerr.line,
                         jerr.column, jerr.text);
        return -1;
    }

    keys = json_object_get(root, "keys");

    if (!json_is_array(keys)) {
        json_decref(root);
        commerce_jwk_err(err, errlen, "%s: not a JWK Set: no \"keys\" array",
                         name);
        return -1;
    }

    added = 0;
    skipped = set->skipped;
    rc = commerce_jwk_set_parse(set, keys, &added, why, sizeof(why));
    json_decref(root);

    if (rc == 0 && added == 0) {
        commerce_jwk_err(why, sizeof(why), "no key for signatures (%zu "
                         "skipped: their \"use\" or \"key_ops\" is not for "
                         "verifying)", set->skipped - skipped);
        rc = -1;
    }

    if (rc != 0) {
        for (i = set->nkeys - added; i < set->nkeys; i++) {
            commerce_jwk_clear(&set->keys[i]);
        }

        set->nkeys -= added;
        set->skipped = skipped;
        commerce_jwk_err(err, errlen, "%s: %s", name, why);
        return -1;
    }

    return 0;
}


/* each key of the array appended; *added counts them, also on an error */
static int
commerce_jwk_set_parse(commerce_jwk_set_t *set, json_t *keys, size_t *added,
    char *err, size_t errlen)
{
    int              rc;
    char             why[200];
    size_t           i, other;
    json_t          *jwk;
    commerce_jwk_t   key;

    json_array_foreach(keys, i, jwk) {

        rc = commerce_jwk_parse(jwk, COMMERCE_JWK_VERIFY, &key, why,
                                sizeof(why));

        if (rc == 0) {
            set->skipped++;
            continue;
        }

        if (rc > 0 && commerce_jwk_set_unique(set, &key, &other) != 0) {
            commerce_jwk_err(why, sizeof(why), "another key of kty %s (key "
                             "%zu of the set) has this kid",
                             commerce_jwk_kty_name(key.kind), other + 1);
            commerce_jwk_clear(&key);
            rc = -1;
        }

        if (rc > 0 && commerce_jwk_set_grow(set, set->nkeys + 1) != 0) {
            commerce_jwk_err(why, sizeof(why), "more than %d keys",
                             COMMERCE_JWK_MAX_KEYS);
            commerce_jwk_clear(&key);
            rc = -1;
        }

        if (rc < 0) {
            jwk = json_object_get(jwk, "kid");
            commerce_jwk_err(err, errlen, "key %zu%s%.64s%s: %s", i + 1,
                             json_is_string(jwk) ? " (kid \"" : "",
                             json_is_string(jwk) ? json_string_value(jwk) : "",
                             json_is_string(jwk) ? "\")" : "", why);
            return -1;
        }

        set->keys[set->nkeys++] = key;
        (*added)++;
    }

    return 0;
}


/* -1 with *other when a key of the same kind has the same kid */
static int
commerce_jwk_set_unique(const commerce_jwk_set_t *set,
    const commerce_jwk_t *key, size_t *other)
{
    size_t                 i;
    const commerce_jwk_t  *k;

    if (key->kid == NULL) {
        return 0;
    }

    for (i = 0; i < set->nkeys; i++) {
        k = &set->keys[i];

        if (k->kid != NULL && k->kind == key->kind
            && strcmp(k->kid, key->kid) == 0)
        {
            *other = i;
            return -1;
        }
    }

    return 0;
}


static int
commerce_jwk_set_grow(commerce_jwk_set_t *set, size_t n)
{
    commerce_jwk_t  *keys;

    if (n > COMMERCE_JWK_MAX_KEYS) {
        return -1;
    }

    keys = realloc(set->keys, n * sizeof(commerce_jwk_t));
    if (keys == NULL) {
        return -1;
    }

    set->keys = keys;

    return 0;
}


int
commerce_jwk_set_add_file(commerce_jwk_set_t *set, const char *path,
    char *err, size_t errlen)
{
    int     rc;
    char   *text;
    size_t  len;

    text = commerce_jwk_read_file(path, COMMERCE_JWK_FILE_MAX, &len, err,
                                  errlen);
    if (text == NULL) {
        return -1;
    }

    rc = commerce_jwk_set_add(set, text, len, path, err, errlen);

    /* an oct key's secret was in it */
    OPENSSL_cleanse(text, len);
    free(text);

    return rc;
}


char *
commerce_jwk_read_file(const char *path, size_t max, size_t *len, char *err,
    size_t errlen)
{
    FILE    *f;
    char    *buf;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        commerce_jwk_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }

    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        commerce_jwk_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }

    n = fread(buf, 1, max + 1, f);

    if (ferror(f) || n > max) {
        if (n > max) {
            commerce_jwk_err(err, errlen, "%s: larger than %zu bytes", path,
                             max);
        } else {
            commerce_jwk_err(err, errlen, "%s: %s", path, strerror(errno));
        }

        fclose(f);
        free(buf);
        return NULL;
    }

    fclose(f);
    buf[n] = '\0';
    *len = n;

    return buf;
}
