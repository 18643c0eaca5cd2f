/*
 * commerce-jwt: the commands of the tool (one file each) and the key
 * files they share.  The tool is the operator's side of the JWT core
 * (common/commerce_jwt.h) that the nginx module's commerce_jwt uses.
 */

#ifndef JWT_H
#define JWT_H


#include <stddef.h>

#include "commerce_jwk.h"
#include "cw_config.h"


/* the exit code of a command that could not do its work: bad input */
#define JWT_EXIT_OK       0
#define JWT_EXIT_FAIL     1
#define JWT_EXIT_CONFIG   2


/* each returns the exit code */
int jwt_verify(const cw_config_t *cfg);
int jwt_sign(const cw_config_t *cfg);
int jwt_keygen(const cw_config_t *cfg);
int jwt_bench(const cw_config_t *cfg);


/*
 * A key to sign with from a file: a private JWK (one object, or a set
 * holding one key) or a PEM private key (RSA, EC P-256/384/521,
 * Ed25519).  0, or -1 with the reason in err.
 */
int jwt_key_load(const char *path, commerce_jwk_t *key, char *err,
    size_t errlen);

/*
 * The algorithm to sign with: name when given (it must be one the key
 * may sign), else the key's only one.  COMMERCE_JWA_NONE with err.
 */
commerce_jwa_alg_e jwt_key_alg(const commerce_jwk_t *key, const char *name,
    char *err, size_t errlen);

/*
 * A JWK of key (pkey or secret) with kid, alg and "use":"sig"; with
 * private the private members too (an oct key always has its secret).
 * NULL when out of memory.
 */
json_t *jwt_key_export(const commerce_jwk_t *key, const char *kid,
    commerce_jwa_alg_e alg, int private);

/* a new key of the algorithm's kind (RSA of bits), or -1 */
int jwt_key_generate(commerce_jwa_alg_e alg, int bits, commerce_jwk_t *key);

/*
 * The compact token of header and claims signed with key: a new string
 * (free()), or NULL with the reason in err.
 */
char *jwt_sign_token(const commerce_jwk_t *key, commerce_jwa_alg_e alg,
    const json_t *header, const json_t *claims, char *err, size_t errlen);


#endif /* JWT_H */
