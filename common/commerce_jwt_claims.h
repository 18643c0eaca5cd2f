/*
 * commerce_jwt_claims: the registered claims of a verified token (RFC 7519
 * section 4.1), private to commerce_jwt.c.
 */

#ifndef COMMERCE_JWT_CLAIMS_H
#define COMMERCE_JWT_CLAIMS_H


#include "commerce_jwt.h"


/* parses jwt->payload into jwt->claims and checks them at time now */
commerce_jwt_rc_e commerce_jwt_claims(commerce_jwt_t *jwt,
    const commerce_jwt_opts_t *opts, int64_t now);


#endif /* COMMERCE_JWT_CLAIMS_H */
