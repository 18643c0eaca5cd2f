/*
 * The little of nginx's core that the module's parsers call, for fuzz
 * targets that include a module source file (t/fuzz/ngx_fuzz.c).
 * Debian's nginx-dev ships nginx's headers, not its sources: these
 * functions are written here to the contract of nginx 1.22 (the
 * documented behaviour of each, noted where it matters), and every other
 * nginx function the module file refers to aborts if it is ever reached
 * (stubs generated at build time by t/fuzz/unreachable.sh).
 *
 * Use:
 *
 *     #include "ngx_http_commerce_read.c"      the file under test
 *     #include "ngx_fuzz.h"
 *
 *     ngx_http_request_t  *r = ngx_fuzz_request(loc_conf_of_the_module);
 *     ... r->args = ... ; call the static function ...
 *     ngx_fuzz_pool_free();                  everything ngx_palloc() gave
 *
 * Pool allocations are separate malloc()s, so AddressSanitizer sees an
 * overrun of any one of them, and they are freed together at the end of
 * each input (as a request's pool is).
 */

#ifndef NGX_FUZZ_H
#define NGX_FUZZ_H


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * A request whose loc conf 0 is conf, its pool the fuzz pool: the module
 * under test gets ctx_index 0 (nginx sets it at startup).
 */
ngx_http_request_t *ngx_fuzz_request(void *conf);

/* frees every pool allocation made since the last call */
void ngx_fuzz_pool_free(void);

/* a constant complex value (what nginx compiles a text without $ to) */
void ngx_fuzz_complex_value(ngx_http_complex_value_t *cv, u_char *data,
    size_t len);

/* ngx_time() */
void ngx_fuzz_set_time(time_t sec);

/* what ngx_http_commerce_send_error() was last given, NULL when nothing */
extern const char  *ngx_fuzz_error_code;


#endif /* NGX_FUZZ_H */
