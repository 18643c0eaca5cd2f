/*
 * Request headers by name (see the header).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_commerce_headers.h"


ngx_table_elt_t *
ngx_http_commerce_header_in(ngx_http_request_t *r, ngx_str_t *name,
    ngx_uint_t *n)
{
    ngx_uint_t        i, count;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *first;

    first = NULL;
    count = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            if (first == NULL) {
                first = &h[i];
            }

            count++;

            if (n == NULL) {
                break;
            }
        }
    }

    if (n) {
        *n = count;
    }

    return first;
}
