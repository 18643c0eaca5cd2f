/*
 * ngx_http_commerce_verify_module: webhook signatures and the JSON check.
 *
 * Directives (http, server, location): commerce_webhook_signature,
 * commerce_webhook_secret, commerce_webhook_secret_file,
 * commerce_webhook_tolerance, commerce_webhook_hmac_header,
 * commerce_webhook_hmac_algorithm, commerce_webhook_hmac_encoding,
 * commerce_webhook_hmac_prefix, commerce_webhook_json; the reference is
 * docs/directives.md.
 *
 * The delivery id used for deduplication, unless commerce_webhook_delivery_id
 * gives one: webhook-id or svix-id (standard), X-GitHub-Delivery,
 * X-Shopify-Webhook-Id, X-WC-Webhook-Delivery-ID, X-Razorpay-Event-Id, the
 * body's "id" (stripe) or "event_id" (slack).  Whichever it is, it must
 * pass commerce_inbound_check_id() (common/commerce_inbound.h), and so must
 * a JSON body commerce_inbound_parse_json(): the projector reads both by
 * the same rules.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "commerce_contract.h"
#include "commerce_inbound.h"
#include "commerce_json.h"

#include "ngx_http_commerce_headers.h"
#include "ngx_http_commerce_module.h"
#include "ngx_http_commerce_sig.h"
#include "ngx_http_commerce_verify.h"


/* commerce_webhook_json: which bodies must be a JSON object */
#define NGX_HTTP_COMMERCE_VERIFY_JSON_OFF     0
#define NGX_HTTP_COMMERCE_VERIFY_JSON_ON      1   /* sent as JSON */
#define NGX_HTTP_COMMERCE_VERIFY_JSON_ALWAYS  2   /* whatever the type */


/* the request headers a location's scheme reads; empty: none */
typedef struct {
    ngx_str_t                              signature;
    ngx_str_t                              timestamp;
    ngx_str_t                              id;
    ngx_str_t                              alias_signature;   /* svix-* */
    ngx_str_t                              alias_timestamp;
    ngx_str_t                              alias_id;
    ngx_str_t                              delivery;  /* provider's id */
} ngx_http_commerce_verify_names_t;


typedef struct {
    const ngx_http_commerce_sig_preset_t  *preset;     /* NULL: off */
    ngx_array_t                           *secrets;    /* ngx_str_t */
    ngx_array_t                           *files;      /* ngx_str_t */
    time_t                                 tolerance;
    ngx_str_t                              hmac_header;
    ngx_uint_t                             hmac_algorithm;
    ngx_uint_t                             hmac_encoding;
    ngx_str_t                              hmac_prefix;
    ngx_uint_t                             json;

    ngx_http_commerce_sig_t               *sig;
    ngx_http_commerce_verify_names_t       names;
    char                                  *delivery_field;  /* in body */
} ngx_http_commerce_verify_loc_conf_t;


static void ngx_http_commerce_verify_get(ngx_http_request_t *r,
    ngx_str_t *name, ngx_http_commerce_sig_str_t *value);
static void ngx_http_commerce_verify_name(ngx_str_t *name, const char *s);
static ngx_int_t ngx_http_commerce_verify_json(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v, ngx_str_t *body, const char *field,
    ngx_uint_t always);
static char *ngx_http_commerce_verify_scheme(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_commerce_verify_read_file(ngx_conf_t *cf,
    ngx_str_t *path, ngx_array_t *secrets);
static ngx_int_t ngx_http_commerce_verify_secrets(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf,
    ngx_http_commerce_sig_conf_t *sc);
static ngx_int_t ngx_http_commerce_verify_headers_of(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf,
    ngx_http_commerce_sig_conf_t *sc);
static ngx_int_t ngx_http_commerce_verify_create(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf);
static void ngx_http_commerce_verify_cleanup(void *data);
static void *ngx_http_commerce_verify_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_commerce_verify_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_enum_t  ngx_http_commerce_verify_algorithms[] = {
    { ngx_string("sha256"), NGX_HTTP_COMMERCE_SIG_SHA256 },
    { ngx_string("sha512"), NGX_HTTP_COMMERCE_SIG_SHA512 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_commerce_verify_encodings[] = {
    { ngx_string("hex"), NGX_HTTP_COMMERCE_SIG_HEX },
    { ngx_string("base64"), NGX_HTTP_COMMERCE_SIG_BASE64 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_commerce_verify_json_modes[] = {
    { ngx_string("off"), NGX_HTTP_COMMERCE_VERIFY_JSON_OFF },
    { ngx_string("on"), NGX_HTTP_COMMERCE_VERIFY_JSON_ON },
    { ngx_string("always"), NGX_HTTP_COMMERCE_VERIFY_JSON_ALWAYS },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_commerce_verify_commands[] = {

    { ngx_string("commerce_webhook_signature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_commerce_verify_scheme,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_webhook_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, secrets),
      NULL },

    { ngx_string("commerce_webhook_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, files),
      NULL },

    { ngx_string("commerce_webhook_tolerance"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, tolerance),
      NULL },

    { ngx_string("commerce_webhook_hmac_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, hmac_header),
      NULL },

    { ngx_string("commerce_webhook_hmac_algorithm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, hmac_algorithm),
      &ngx_http_commerce_verify_algorithms },

    { ngx_string("commerce_webhook_hmac_encoding"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, hmac_encoding),
      &ngx_http_commerce_verify_encodings },

    { ngx_string("commerce_webhook_hmac_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, hmac_prefix),
      NULL },

    { ngx_string("commerce_webhook_json"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_commerce_verify_loc_conf_t, json),
      &ngx_http_commerce_verify_json_modes },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_commerce_verify_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_commerce_verify_create_loc_conf, /* create location conf */
    ngx_http_commerce_verify_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_commerce_verify_module = {
    NGX_MODULE_V1,
    &ngx_http_commerce_verify_module_ctx,  /* module context */
    ngx_http_commerce_verify_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the delivery id header of the schemes whose providers send one */
static struct {
    const char  *scheme;
    const char  *header;
    const char  *field;
} ngx_http_commerce_verify_delivery[] = {
    { "github", "X-GitHub-Delivery", NULL },
    { "shopify", "X-Shopify-Webhook-Id", NULL },
    { "woocommerce", "X-WC-Webhook-Delivery-ID", NULL },
    { "razorpay", "X-Razorpay-Event-Id", NULL },
    { "stripe", NULL, "id" },
    { "slack", NULL, "event_id" },
    { NULL, NULL, NULL }
};


ngx_int_t
ngx_http_commerce_verify_headers(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v)
{
    ngx_table_elt_t                      *delivery;
    ngx_http_commerce_sig_rc_e            rc;
    ngx_http_commerce_sig_parsed_t       *p;
    ngx_http_commerce_sig_headers_t       h, alias;
    ngx_http_commerce_verify_names_t     *n;
    ngx_http_commerce_verify_loc_conf_t  *vlcf;

    ngx_memzero(v, sizeof(ngx_http_commerce_verify_t));

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_verify_module);

    if (vlcf->sig == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&h, sizeof(ngx_http_commerce_sig_headers_t));
    ngx_memzero(&alias, sizeof(ngx_http_commerce_sig_headers_t));

    n = &vlcf->names;

    ngx_http_commerce_verify_get(r, &n->signature, &h.signature);
    ngx_http_commerce_verify_get(r, &n->timestamp, &h.timestamp);
    ngx_http_commerce_verify_get(r, &n->id, &h.id);
    ngx_http_commerce_verify_get(r, &n->alias_signature, &alias.signature);
    ngx_http_commerce_verify_get(r, &n->alias_timestamp, &alias.timestamp);
    ngx_http_commerce_verify_get(r, &n->alias_id, &alias.id);

    p = ngx_palloc(r->pool, sizeof(ngx_http_commerce_sig_parsed_t));
    if (p == NULL) {
        v->code = "internal_error";
        v->msg = "out of memory";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v->sig = p;
    v->scheme.data = (u_char *) vlcf->preset->name;
    v->scheme.len = ngx_strlen(vlcf->preset->name);

    rc = ngx_http_commerce_sig_merge(&h, &alias);

    if (rc == NGX_HTTP_COMMERCE_SIG_OK) {
        rc = ngx_http_commerce_sig_parse(vlcf->sig, &h, ngx_time(), p);
    }

    if (rc != NGX_HTTP_COMMERCE_SIG_OK) {
        v->code = ngx_http_commerce_sig_reason(rc);
        v->msg = (rc == NGX_HTTP_COMMERCE_SIG_CONFLICT)
                 ? "a signature header was sent under two names with "
                   "different values"
                 : "the webhook signature headers were not accepted";

        /* an absent signature is an authentication failure, not syntax */
        return rc == NGX_HTTP_COMMERCE_SIG_MISSING_SIGNATURE
               ? NGX_HTTP_UNAUTHORIZED
               : ngx_http_commerce_sig_http_status(rc);
    }

    if (p->id.len) {
        v->delivery_id.data = (u_char *) p->id.data;
        v->delivery_id.len = p->id.len;

    } else if (n->delivery.len
               && (delivery = ngx_http_commerce_header_in(r, &n->delivery,
                                                          NULL)))
    {
        v->delivery_id = delivery->value;
    }

    return NGX_OK;
}


/*
 * The delivery id that will be used, wherever it came from, by the rule
 * the projector reads it with.  Absent ids pass: such a webhook is not
 * deduplicated.
 */
ngx_int_t
ngx_http_commerce_verify_id(ngx_http_commerce_verify_t *v, ngx_str_t *id)
{
    const char  *reason;

    if (id->len == 0) {
        return NGX_OK;
    }

    reason = commerce_inbound_check_id(id->data, id->len);

    if (reason == NULL) {
        return NGX_OK;
    }

    v->code = reason;
    v->msg = (id->len > COMMERCE_DELIVERY_ID_MAX)
             ? "the delivery id is longer than "
               ngx_value(COMMERCE_DELIVERY_ID_MAX) " bytes"
             : "a delivery id is visible ASCII characters only";

    return NGX_HTTP_BAD_REQUEST;
}


ngx_int_t
ngx_http_commerce_verify_body(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v, ngx_str_t *body, ngx_uint_t need_id)
{
    char                                 *field;
    ngx_http_commerce_sig_rc_e            rc;
    ngx_http_commerce_sig_str_t           text;
    ngx_http_commerce_verify_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_verify_module);

    if (vlcf->sig) {
        text.data = body->data;
        text.len = body->len;

        rc = ngx_http_commerce_sig_verify_body(vlcf->sig, v->sig, &text, 1);

        if (rc != NGX_HTTP_COMMERCE_SIG_OK) {
            v->code = ngx_http_commerce_sig_reason(rc);
            v->msg = "the webhook signature does not match its body";
            return ngx_http_commerce_sig_http_status(rc);
        }
    }

    field = (need_id && v->delivery_id.len == 0) ? vlcf->delivery_field
                                                  : NULL;

    if (vlcf->json == NGX_HTTP_COMMERCE_VERIFY_JSON_OFF && field == NULL) {
        return NGX_OK;
    }

    if (ngx_http_commerce_verify_json(r, v, body, field,
                                  vlcf->json
                                  == NGX_HTTP_COMMERCE_VERIFY_JSON_ALWAYS)
        != NGX_OK)
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/*
 * A body sent as JSON (with always: any body) must be what the projector
 * reads: one object, by commerce_inbound_parse_json() (reason in v->code).
 * The delivery id of schemes that carry it in the body is taken on the
 * way.
 */
static ngx_int_t
ngx_http_commerce_verify_json(ngx_http_request_t *r,
    ngx_http_commerce_verify_t *v, ngx_str_t *body, const char *field,
    ngx_uint_t always)
{
    u_char        *p, *text;
    size_t         len;
    json_t        *root, *id;
    ngx_str_t     *ct;
    json_error_t   err;

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;

    if (!always
        && (ct == NULL
            || ngx_strlcasestrn(ct->data, ct->data + ct->len,
                                (u_char *) "json", 4 - 1)
               == NULL))
    {
        return NGX_OK;
    }

    v->code = commerce_inbound_parse_json((const char *) body->data,
                                          body->len, &root, &err);

    if (v->code != NULL) {
        len = sizeof("body is not a JSON object at line , column : ")
              + 2 * NGX_INT_T_LEN
              + commerce_json_escape_len((u_char *) err.text,
                                         ngx_strlen(err.text),
                                         COMMERCE_JSON_BYTES);

        text = ngx_pnalloc(r->pool, len);
        if (text == NULL) {
            v->msg = "body is not a JSON object";
            return NGX_ERROR;
        }

        p = ngx_sprintf(text, "body is not %s at line %d, column %d: ",
                        ngx_strcmp(v->code, COMMERCE_INBOUND_NOT_OBJECT) == 0
                        ? "a JSON object" : "valid JSON",
                        err.line, err.column);
        p = commerce_json_escape(p, (u_char *) err.text,
                                 ngx_strlen(err.text), COMMERCE_JSON_BYTES);
        *p = '\0';

        v->msg = (const char *) text;
        return NGX_ERROR;
    }

    if (field) {
        id = json_object_get(root, field);

        if (json_is_string(id) && json_string_length(id) > 0) {
            len = json_string_length(id);

            v->delivery_id.data = ngx_pnalloc(r->pool, len);
            if (v->delivery_id.data != NULL) {
                ngx_memcpy(v->delivery_id.data, json_string_value(id), len);
                v->delivery_id.len = len;
            }
        }
    }

    json_decref(root);

    return NGX_OK;
}


/* The value of a header the scheme reads, if it was sent. */
static void
ngx_http_commerce_verify_get(ngx_http_request_t *r, ngx_str_t *name,
    ngx_http_commerce_sig_str_t *value)
{
    ngx_table_elt_t  *h;

    if (name->len && (h = ngx_http_commerce_header_in(r, name, NULL))) {
        value->data = h->value.data;
        value->len = h->value.len;
    }
}


static char *
ngx_http_commerce_verify_scheme(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_commerce_verify_loc_conf_t *vlcf = conf;

    ngx_str_t  *value;

    if (vlcf->preset != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        vlcf->preset = NULL;
        return NGX_CONF_OK;
    }

    vlcf->preset = ngx_http_commerce_sig_preset(value[1].data, value[1].len);

    if (vlcf->preset == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown webhook signature scheme \"%V\": use "
                           "standard, stripe, shopify, github, slack, "
                           "woocommerce, razorpay, hmac or off", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* Secrets of a file: one a line, "#" comments, surrounding blanks cut. */
static ngx_int_t
ngx_http_commerce_verify_read_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_array_t *secrets)
{
    u_char           *buf, *p, *end, *eol, *s, *e;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         name, *secret;
    ngx_uint_t        found;
    ngx_file_info_t   fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"commerce_webhook_secret_file\": cannot open "
                           "\"%V\"", &name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 65536)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"commerce_webhook_secret_file\": \"%V\" is not "
                           "a readable file of at most 64 KiB", &name);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(cf->pool, (size_t) ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));

    (void) ngx_close_file(fd);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"commerce_webhook_secret_file\": cannot read "
                           "\"%V\"", &name);
        return NGX_ERROR;
    }

    found = 0;
    end = buf + n;

    for (p = buf; p < end; p = eol + 1) {
        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        s = p;
        e = eol;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }

        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
            e--;
        }

        if (s == e || *s == '#') {
            continue;
        }

        secret = ngx_array_push(secrets);
        if (secret == NULL) {
            return NGX_ERROR;
        }

        secret->data = s;
        secret->len = e - s;
        found++;
    }

    if (found == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_webhook_secret_file\": \"%V\" holds "
                           "no secret", &name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Every secret of a location, given and read from files, into sc. */
static ngx_int_t
ngx_http_commerce_verify_secrets(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf,
    ngx_http_commerce_sig_conf_t *sc)
{
    ngx_str_t                     *s, *secret;
    ngx_uint_t                     i;
    ngx_array_t                    all;
    ngx_http_commerce_sig_str_t   *secrets;

    if (ngx_array_init(&all, cf->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; conf->secrets && i < conf->secrets->nelts; i++) {
        secret = ngx_array_push(&all);
        if (secret == NULL) {
            return NGX_ERROR;
        }

        s = conf->secrets->elts;
        *secret = s[i];
    }

    for (i = 0; conf->files && i < conf->files->nelts; i++) {
        s = conf->files->elts;

        if (ngx_http_commerce_verify_read_file(cf, &s[i], &all) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (all.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_webhook_signature %s\" needs "
                           "\"commerce_webhook_secret\" or "
                           "\"commerce_webhook_secret_file\"",
                           conf->preset->name);
        return NGX_ERROR;
    }

    secrets = ngx_palloc(cf->pool,
                         all.nelts * sizeof(ngx_http_commerce_sig_str_t));
    if (secrets == NULL) {
        return NGX_ERROR;
    }

    s = all.elts;

    for (i = 0; i < all.nelts; i++) {
        secrets[i].data = s[i].data;
        secrets[i].len = s[i].len;
    }

    sc->secrets = secrets;
    sc->nsecrets = all.nelts;

    return NGX_OK;
}


/* The headers the scheme reads (the generic HMAC scheme's own ones, and
 * its digest, encoding and prefix into sc), and where its delivery id
 * is. */
static ngx_int_t
ngx_http_commerce_verify_headers_of(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf,
    ngx_http_commerce_sig_conf_t *sc)
{
    ngx_uint_t                              i;
    const ngx_http_commerce_sig_preset_t   *pr = conf->preset;

    if (pr->signature_header) {
        ngx_http_commerce_verify_name(&conf->names.signature,
                                      pr->signature_header);

    } else {
        if (conf->hmac_header.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_webhook_signature hmac\" needs "
                               "\"commerce_webhook_hmac_header\"");
            return NGX_ERROR;
        }

        conf->names.signature = conf->hmac_header;
        sc->digest = conf->hmac_algorithm;
        sc->encoding = conf->hmac_encoding;
        sc->prefix.data = conf->hmac_prefix.data;
        sc->prefix.len = conf->hmac_prefix.len;
    }

    ngx_http_commerce_verify_name(&conf->names.timestamp,
                                  pr->timestamp_header);
    ngx_http_commerce_verify_name(&conf->names.id, pr->id_header);
    ngx_http_commerce_verify_name(&conf->names.alias_signature,
                                  pr->alias_signature);
    ngx_http_commerce_verify_name(&conf->names.alias_timestamp,
                                  pr->alias_timestamp);
    ngx_http_commerce_verify_name(&conf->names.alias_id, pr->alias_id);

    for (i = 0; ngx_http_commerce_verify_delivery[i].scheme; i++) {
        if (ngx_strcmp(ngx_http_commerce_verify_delivery[i].scheme, pr->name)
            != 0)
        {
            continue;
        }

        ngx_http_commerce_verify_name(&conf->names.delivery,
                                  ngx_http_commerce_verify_delivery[i].header);

        conf->delivery_field =
                           (char *) ngx_http_commerce_verify_delivery[i].field;
    }

    return NGX_OK;
}


/* A header name of a preset, if it has one. */
static void
ngx_http_commerce_verify_name(ngx_str_t *name, const char *s)
{
    if (s != NULL) {
        name->data = (u_char *) s;
        name->len = ngx_strlen(s);
    }
}


/* Builds the verifier of a location: secrets decoded, MAC keys set up. */
static ngx_int_t
ngx_http_commerce_verify_create(ngx_conf_t *cf,
    ngx_http_commerce_verify_loc_conf_t *conf)
{
    const char                    *err;
    ngx_pool_cleanup_t            *cln;
    ngx_http_commerce_sig_conf_t   sc;

    ngx_memzero(&sc, sizeof(ngx_http_commerce_sig_conf_t));

    sc.scheme = conf->preset->scheme;
    sc.digest = conf->preset->digest;
    sc.encoding = conf->preset->encoding;
    sc.prefix.data = (u_char *) conf->preset->prefix;
    sc.prefix.len = ngx_strlen(conf->preset->prefix);
    sc.tolerance = conf->tolerance;

    if (ngx_http_commerce_verify_secrets(cf, conf, &sc) != NGX_OK
        || ngx_http_commerce_verify_headers_of(cf, conf, &sc) != NGX_OK)
    {
        return NGX_ERROR;
    }

    conf->sig = ngx_http_commerce_sig_create(&sc, &err);

    if (conf->sig == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "webhook signature \"%s\": %s",
                           conf->preset->name, err ? err : "failed");
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_http_commerce_sig_free(conf->sig);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_commerce_verify_cleanup;
    cln->data = conf->sig;

    return NGX_OK;
}


static void
ngx_http_commerce_verify_cleanup(void *data)
{
    ngx_http_commerce_sig_free(data);
}


static void *
ngx_http_commerce_verify_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_commerce_verify_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_commerce_verify_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->hmac_header = { 0, NULL };
     *     conf->hmac_prefix = { 0, NULL };
     *     conf->sig = NULL;
     *     conf->names = { { 0, NULL }, ... };
     *     conf->delivery_field = NULL;
     */

    conf->preset = NGX_CONF_UNSET_PTR;
    conf->secrets = NGX_CONF_UNSET_PTR;
    conf->files = NGX_CONF_UNSET_PTR;
    conf->tolerance = NGX_CONF_UNSET;
    conf->hmac_algorithm = NGX_CONF_UNSET_UINT;
    conf->hmac_encoding = NGX_CONF_UNSET_UINT;
    conf->json = NGX_CONF_UNSET_UINT;

    return conf;
}


/*
 * A level that sets none of the signature directives shares its parent's
 * verifier; one that sets any gets its own, built from the merged values.
 */
static char *
ngx_http_commerce_verify_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_commerce_verify_loc_conf_t *prev = parent;
    ngx_http_commerce_verify_loc_conf_t *conf = child;

    ngx_uint_t  set;

    set = conf->preset != NGX_CONF_UNSET_PTR
          || conf->secrets != NGX_CONF_UNSET_PTR
          || conf->files != NGX_CONF_UNSET_PTR
          || conf->tolerance != NGX_CONF_UNSET
          || conf->hmac_header.data != NULL
          || conf->hmac_algorithm != NGX_CONF_UNSET_UINT
          || conf->hmac_encoding != NGX_CONF_UNSET_UINT
          || conf->hmac_prefix.data != NULL;

    ngx_conf_merge_ptr_value(conf->preset, prev->preset, NULL);
    ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, NULL);
    ngx_conf_merge_ptr_value(conf->files, prev->files, NULL);
    ngx_conf_merge_value(conf->tolerance, prev->tolerance,
                         NGX_HTTP_COMMERCE_SIG_TOLERANCE);
    ngx_conf_merge_str_value(conf->hmac_header, prev->hmac_header, "");
    ngx_conf_merge_uint_value(conf->hmac_algorithm, prev->hmac_algorithm,
                              NGX_HTTP_COMMERCE_SIG_SHA256);
    ngx_conf_merge_uint_value(conf->hmac_encoding, prev->hmac_encoding,
                              NGX_HTTP_COMMERCE_SIG_HEX);
    ngx_conf_merge_str_value(conf->hmac_prefix, prev->hmac_prefix, "");
    ngx_conf_merge_uint_value(conf->json, prev->json,
                              NGX_HTTP_COMMERCE_VERIFY_JSON_ON);

    if (conf->preset == NULL) {
        return NGX_CONF_OK;
    }

    if (!set && prev->sig) {
        conf->sig = prev->sig;
        conf->names = prev->names;
        conf->delivery_field = prev->delivery_field;
        return NGX_CONF_OK;
    }

    if (ngx_http_commerce_verify_create(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
