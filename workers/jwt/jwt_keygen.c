/*
 * commerce-jwt keygen: an issuer's key pair for the stack and for tests:
 * the private JWK (--out-key, mode 0600, what `commerce-jwt sign --key`
 * reads) and a JWK Set of its public key (--out-jwks, what
 * commerce_jwt_keys_file reads).  An HS* key is a secret: the set then
 * holds the secret too, and is written with mode 0600 as well.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "cw_log.h"
#include "jwt.h"


static int jwt_keygen_write(const char *path, json_t *value, int mode);


int
jwt_keygen(const cw_config_t *cfg)
{
    int                 status, secret;
    json_t             *priv, *pub, *set;
    const char         *name, *kid, *out_key, *out_jwks;
    commerce_jwk_t      key;
    commerce_jwa_alg_e  alg;

    name = cw_config_str(cfg, "alg");
    kid = cw_config_str(cfg, "kid");
    out_key = cw_config_str(cfg, "out_key");
    out_jwks = cw_config_str(cfg, "out_jwks");
    alg = commerce_jwa_lookup(name, strlen(name));

    if (alg == COMMERCE_JWA_NONE || out_key[0] == '\0' || out_jwks[0] == '\0')
    {
        cw_log(CW_LOG_ERROR, "keygen needs --alg (one algorithm), --out-key "
               "and --out-jwks");
        return JWT_EXIT_CONFIG;
    }

    if (jwt_key_generate(alg, (int) cw_config_int(cfg, "bits"), &key) != 0) {
        cw_log(CW_LOG_ERROR, "OpenSSL could not make a %s key", name);
        return JWT_EXIT_FAIL;
    }

    secret = key.kind == COMMERCE_JWA_KIND_OCT;
    priv = jwt_key_export(&key, kid, alg, 1);
    pub = jwt_key_export(&key, kid, alg, 0);
    set = json_object();
    commerce_jwk_clear(&key);

    status = JWT_EXIT_FAIL;

    if (priv == NULL || pub == NULL || set == NULL
        || json_object_set_new(set, "keys", json_pack("[O]", pub)) != 0)
    {
        cw_log(CW_LOG_ERROR, "out of memory");

    } else if (jwt_keygen_write(out_key, priv, 0600) == 0
               && jwt_keygen_write(out_jwks, set, secret ? 0600 : 0644) == 0)
    {
        status = JWT_EXIT_OK;
    }

    json_decref(priv);
    json_decref(pub);
    json_decref(set);

    return status;
}


/* the JSON and a line end, into a new file renamed over path */
static int
jwt_keygen_write(const char *path, json_t *value, int mode)
{
    int      fd, ok;
    char     tmp[4096], *text;
    size_t   len;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp)) {
        cw_log(CW_LOG_ERROR, "%s: the path is too long", path);
        return -1;
    }

    text = json_dumps(value, JSON_COMPACT);
    if (text == NULL) {
        cw_log(CW_LOG_ERROR, "out of memory");
        return -1;
    }

    len = strlen(text);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ok = fd >= 0
         && write(fd, text, len) == (ssize_t) len
         && write(fd, "\n", 1) == 1
         && fchmod(fd, mode) == 0
         && fsync(fd) == 0;

    if (fd >= 0 && close(fd) != 0) {
        ok = 0;
    }

    OPENSSL_cleanse(text, len);
    free(text);

    if (!ok || rename(tmp, path) != 0) {
        cw_log(CW_LOG_ERROR, "%s: %s", path, strerror(errno));
        (void) unlink(tmp);
        return -1;
    }

    return 0;
}
