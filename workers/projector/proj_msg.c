/*
 * proj_msg: reading an inbound message (see proj_msg.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "commerce_contract.h"
#include "cw_buf.h"
#include "proj_msg.h"
#include "proj_util.h"


/* The n bytes of p and a NUL (p may hold NULs: a delivery id is kept
 * whole for its dedup key). */
static char *
proj_msg_copy(const void *p, size_t n)
{
    char  *s;

    s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }

    return s;
}


/* Keeps the first value of a header the store reads. */
static void
proj_msg_take(proj_msg_t *pm, const char *name, const void *value,
    size_t size)
{
    char  **slot;

    if (strcmp(name, COMMERCE_H_SOURCE) == 0) {
        slot = &pm->source;
    } else if (strcmp(name, COMMERCE_H_TOPIC) == 0) {
        slot = &pm->wtopic;
    } else if (strcmp(name, COMMERCE_H_DELIVERY_ID) == 0) {
        slot = &pm->delivery_id;
    } else if (strcmp(name, COMMERCE_H_TRACEPARENT) == 0) {
        slot = &pm->traceparent;
    } else {
        return;
    }

    if (*slot == NULL) {
        *slot = proj_msg_copy(value, size);
        if (slot == &pm->delivery_id && *slot != NULL) {
            pm->delivery_len = size;
        }
    }
}


/* The headers as JSON text for the archive and the dead letters, and
 * those the store reads. */
static void
proj_msg_headers(proj_msg_t *pm)
{
    size_t               i, size;
    cw_buf_t             b;
    const char          *name;
    const void          *value;
    rd_kafka_headers_t  *hdrs;

    cw_buf_init(&b);
    cw_buf_putc(&b, '[');

    if (rd_kafka_message_headers(pm->m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        for (i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size)
                    == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        {
            if (i > 0) {
                cw_buf_putc(&b, ',');
            }
            cw_buf_puts(&b, "{\"name\":");
            cw_buf_json_str(&b, name);
            cw_buf_puts(&b, ",\"value\":\"");
            if (value != NULL) {
                cw_buf_json_escape(&b, value, size);
            }
            cw_buf_puts(&b, "\"}");

            /* Values longer than PROJ_MSG_HDR_MAX are not taken as the
             * source, traceparent or topic (they are still archived);
             * a delivery id of any length is (its dedup key is exact). */
            if (value != NULL && (size <= PROJ_MSG_HDR_MAX
                                  || strcmp(name, COMMERCE_H_DELIVERY_ID)
                                     == 0))
            {
                proj_msg_take(pm, name, value, size);
            }
        }
    }

    cw_buf_putc(&b, ']');

    pm->headers_text = b.oom ? strdup("[]") : strdup(b.data);
    cw_buf_free(&b);
}


/* The Kafka cluster of the positions in dedup keys (proj_sql.h). */
static char  proj_msg_cluster[PROJ_MSG_CLUSTER_MAX + 1];


void
proj_msg_set_cluster(const char *id)
{
    snprintf(proj_msg_cluster, sizeof(proj_msg_cluster), "%s", id);
}


void
proj_msg_prepare(proj_msg_t *pm, rd_kafka_message_t *m)
{
    proj_input_t  in;

    memset(pm, 0, sizeof(*pm));
    pm->m = m;
    pm->topic = rd_kafka_topic_name(m->rkt);

    proj_msg_headers(pm);

    if (m->key != NULL && m->key_len > 0 && m->key_len <= PROJ_ID_MAX
        && memchr(m->key, '\0', m->key_len) == NULL)
    {
        pm->key = strndup(m->key, m->key_len);
    }

    if (pm->source == NULL || pm->delivery_len == 0
        || proj_msg_dedup_key(pm->source, pm->delivery_id, pm->delivery_len,
                              pm->dedup) != 0)
    {
        snprintf(pm->dedup, sizeof(pm->dedup), "%s|%" PRId32 "|%" PRId64
                 "|%s", pm->topic, m->partition, m->offset, proj_msg_cluster);
    }

    in.source = pm->source;
    in.topic = pm->wtopic;
    in.key = pm->key;
    in.body = m->payload != NULL ? m->payload : "";
    in.len = m->len;

    pm->cmds = proj_adapt(&in, &pm->err);
}


int
proj_msg_dedup_key(const char *source, const void *id, size_t len,
    char *out)
{
    int             n;
    char           *hex;
    size_t          slen = strlen(source);
    EVP_MD_CTX     *ctx;
    unsigned char   md[EVP_MAX_MD_SIZE];

    if (slen > PROJ_MSG_HDR_MAX) {
        return -1;
    }

    if (slen + 1 + len <= PROJ_MSG_DEDUP_PLAIN
        && memchr(id, '\0', len) == NULL)
    {
        snprintf(out, PROJ_MSG_DEDUP_MAX, "%s|%.*s", source, (int) len,
                 (const char *) id);
        return 0;
    }

    ctx = EVP_MD_CTX_new();
    n = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
        && EVP_DigestUpdate(ctx, source, slen + 1) == 1
        && EVP_DigestUpdate(ctx, id, len) == 1
        && EVP_DigestFinal_ex(ctx, md, NULL) == 1;
    EVP_MD_CTX_free(ctx);

    hex = n ? proj_bytea_hex(md, 32) : NULL;
    if (hex == NULL) {
        return -1;
    }

    /* hex is "\\x" and 64 digits */
    snprintf(out, PROJ_MSG_DEDUP_MAX, "%s|sha256:%s", source, hex + 2);
    free(hex);

    return 0;
}


void
proj_msg_free(proj_msg_t *pm)
{
    free(pm->source);
    free(pm->wtopic);
    free(pm->delivery_id);
    free(pm->traceparent);
    free(pm->key);
    free(pm->headers_text);
    free(pm->meta);
    free(pm->waiting);
    json_decref(pm->cmds);
}


const char *
proj_msg_meta(proj_msg_t *pm)
{
    cw_buf_t  b;

    if (pm->meta != NULL) {
        return pm->meta;
    }

    cw_buf_init(&b);
    cw_buf_puts(&b, "{\"source\":");
    proj_json_str_or_null(&b, pm->source);
    cw_buf_puts(&b, ",\"delivery_id\":");
    proj_json_str_or_null(&b, pm->delivery_id);
    cw_buf_puts(&b, ",\"traceparent\":");
    proj_json_str_or_null(&b, pm->traceparent);
    cw_buf_puts(&b, ",\"inbound\":{\"topic\":");
    cw_buf_json_str(&b, pm->topic);
    cw_buf_printf(&b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}}",
                  pm->m->partition, pm->m->offset);

    if (b.oom) {
        cw_buf_free(&b);
        return NULL;
    }

    pm->meta = b.data;

    return pm->meta;
}


const char *
proj_msg_correlation(const proj_msg_t *pm)
{
    return pm->delivery_id != NULL ? pm->delivery_id : pm->dedup;
}


int
proj_msg_event_id(const proj_msg_t *pm, size_t index, int rank,
    char id[37])
{
    char                        name[PROJ_MSG_DEDUP_MAX + 64];
    int                         n;
    int64_t                     ts;
    rd_kafka_timestamp_type_t   tstype;

    n = snprintf(name, sizeof(name), "%s#%zu#%d", pm->dedup, index, rank);
    ts = rd_kafka_message_timestamp(pm->m, &tstype);

    return proj_event_uuid(name, (size_t) n, ts, id);
}
