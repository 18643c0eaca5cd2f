/*
 * commerce-jwt: verify, sign and make keys for the JWTs the nginx
 * module's commerce_jwt takes, with the same core (common/commerce_jwt.h).
 *
 *   commerce-jwt verify --jwks keys.json [--alg RS256,ES256] [--no-claims]
 *                [--issuer I] [--audience A,B] [--type T] [--leeway S]
 *                < token
 *       prints the header and the claims (two JSON lines) and exits 0
 *       for a valid token; 1 for an invalid one, the reason on stderr
 *   commerce-jwt sign --key private.jwk [--alg ES256] [--kid K]
 *                [--claims '{"sub":"u1"}'] [--ttl 1h] [--header '{...}']
 *       prints a token (claims from stdin without --claims)
 *   commerce-jwt keygen --alg ES256 --kid K --out-key issuer.jwk
 *                --out-jwks jwks.json
 *       makes an issuer's key pair: the private JWK and the public set
 *   commerce-jwt bench [--alg LIST] [--iterations N]
 *       the cost of one verification per algorithm, in microseconds
 *
 * The command is the first argument; every option is a flag of
 * docs/workers.md.  Exit codes: 0 done (a valid token), 1 failed (an
 * invalid token), 2 bad options or key files.
 */

#include <stdio.h>
#include <string.h>

#include "cw_config.h"
#include "cw_log.h"
#include "cw_worker.h"
#include "jwt.h"


typedef struct {
    const char   *name;
    int         (*run)(const cw_config_t *cfg);
} jwt_command_t;


static const jwt_command_t  jwt_commands[] = {
    { "verify", jwt_verify },
    { "sign", jwt_sign },
    { "keygen", jwt_keygen },
    { "bench", jwt_bench },
    { NULL, NULL }
};


static const cw_opt_t  jwt_opts[] = {
    { "jwks", CW_OPT_STR, "", 0, 0, 0,
      "verify: the JWK Set file (several: comma-separated)" },
    { "alg", CW_OPT_STR, "", 0, 0, 0,
      "verify, bench: the algorithms taken (comma-separated; default all); "
      "sign, keygen: the algorithm" },
    { "no_claims", CW_OPT_BOOL, "false", 0, 0, 0,
      "verify: check the signature only; the payload may be anything" },
    { "leeway", CW_OPT_INT, "0", 0, 86400, 0,
      "verify: seconds of clock skew allowed for exp and nbf" },
    { "issuer", CW_OPT_STR, "", 0, 0, 0,
      "verify: the iss a token must have" },
    { "audience", CW_OPT_STR, "", 0, 0, 0,
      "verify: audiences, one of which aud must hold (comma-separated)" },
    { "type", CW_OPT_STR, "", 0, 0, 0,
      "verify: the typ a token's header must have (e.g. at+jwt)" },
    { "now", CW_OPT_INT, "0", 0, 0, 0,
      "verify: the Unix time to verify at (0: the clock)" },
    { "key", CW_OPT_STR, "", 0, 0, 0,
      "sign: the private key, a JWK or PEM file" },
    { "kid", CW_OPT_STR, "", 0, 0, 0,
      "sign: the header's kid (default the key's); keygen: the key's kid" },
    { "claims", CW_OPT_STR, "", 0, 0, 0,
      "sign: the claims, a JSON object (default: read from stdin)" },
    { "header", CW_OPT_STR, "", 0, 0, 0,
      "sign: more header members, a JSON object (e.g. {\"typ\":\"at+jwt\"})" },
    { "ttl", CW_OPT_DURATION, "0", 0, 0, 0,
      "sign: add iat and exp = now + ttl to claims that lack them" },
    { "out_key", CW_OPT_STR, "", 0, 0, 0,
      "keygen: the private JWK file to write (mode 0600)" },
    { "out_jwks", CW_OPT_STR, "", 0, 0, 0,
      "keygen: the JWK Set file to write, with the public key" },
    { "bits", CW_OPT_INT, "2048", 2048, 8192, 0,
      "keygen: the size of an RSA key" },
    { "iterations", CW_OPT_INT, "2000", 1, 10000000, 0,
      "bench: verifications per algorithm" },
};


static const cw_worker_default_t  jwt_defaults[] = {
    { "log_level", "warn" },
};


/* A one-shot tool: SIGTERM ends it. */
static const cw_worker_def_t  jwt_worker = {
    "jwt",
    "verify, sign and make keys for the JWTs of the commerce_jwt directive\n"
    "Commands (the first argument): verify (a token on stdin), sign,\n"
    "keygen, bench; see docs/workers.md and docs/directives.md.",
    jwt_opts, sizeof(jwt_opts) / sizeof(jwt_opts[0]),
    0,
    jwt_defaults, sizeof(jwt_defaults) / sizeof(jwt_defaults[0]),
    NULL
};


/* argv[1] when it is not a flag, taken out of argv; NULL if none */
static const char *
jwt_take_command(int *argc, char **argv)
{
    int          i;
    const char  *name;

    if (*argc < 2 || argv[1][0] == '-') {
        return NULL;
    }

    name = argv[1];

    for (i = 1; i < *argc; i++) {
        argv[i] = argv[i + 1];
    }

    (*argc)--;

    return name;
}


static const jwt_command_t *
jwt_find_command(const char *name)
{
    const jwt_command_t  *c;

    for (c = jwt_commands; name != NULL && c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }

    return NULL;
}


int
main(int argc, char **argv)
{
    int                   status;
    cw_worker_t           w;
    const char           *name;
    const jwt_command_t  *cmd;

    name = jwt_take_command(&argc, argv);

    if (cw_worker_start(&w, &jwt_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    cmd = jwt_find_command(name);

    if (cmd == NULL) {
        cw_log(CW_LOG_ERROR, "%s%s%s: the command is verify, sign, keygen "
               "or bench (see --help)", name ? "unknown command \"" : "",
               name ? name : "no command", name ? "\"" : "");
        return cw_worker_exit(&w, JWT_EXIT_CONFIG);
    }

    status = cmd->run(w.cfg);

    return cw_worker_exit(&w, status);
}
