/*
 * ps_http: one HTTP/1.1 POST over a fresh TCP connection (Connection:
 * close), the way a provider delivers a webhook. Plain HTTP only: the
 * simulator posts to nginx on loopback.
 *
 * Use:
 *
 *   ps_url_t  u;
 *
 *   if (ps_url_parse("http://127.0.0.1:8080/wh/payments", &u) != 0) ...
 *   rc = ps_http_post(&u, "Stripe-Signature: t=...\r\n", body, len,
 *                     10000, &status, err, sizeof(err));
 *   rc 0: status is the answer's; -1: no answer (err says why)
 */

#ifndef PS_HTTP_H
#define PS_HTTP_H

#include <stddef.h>

typedef struct {
    char  host[256];
    char  port[8];
    char  path[1024];
} ps_url_t;

/* "http://host[:port][/path]"; returns -1 for anything else. */
int ps_url_parse(const char *url, ps_url_t *u);

/* headers: more header lines, each ending in "\r\n" (or ""). */
int ps_http_post(const ps_url_t *u, const char *headers, const char *body,
    size_t len, int timeout_ms, int *status, char *err, size_t errlen);

#endif /* PS_HTTP_H */
