/*
 * proj_publisher: outbox rows published to Kafka (see proj_publisher.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commerce_contract.h"
#include "cw_log.h"
#include "proj.h"
#include "proj_frame.h"
#include "proj_publisher.h"


/* Room left below message.max.bytes for the record's and the batch's
 * framing (librdkafka counts a few dozen bytes; this is a margin). */
#define PROJ_PUB_FRAMING   1024
/* Header values at most this long are kept in a reduced message. */
#define PROJ_PUB_HDR_KEEP  1024
/* How long a message of the careful way may wait for its ack. */
#define PROJ_PUB_ACK_MS    10000


struct proj_publisher_s {
    cw_kafka_producer_t    *producer;
    size_t                  queued;       /* produced, not yet flushed */
    size_t                  limit;        /* message.max.bytes - framing */
    int                     careful;      /* each message acknowledged
                                             before the next: a page had
                                             one refused by the broker */
    unsigned                dlq[PROJ_REASON_N];   /* of the page */
    proj_outbox_metrics_t   m;
};

/* Where a message's headers come from: a 'kafka' row's JSON text, or a
 * frame of a 'kafka_batch' row. */
typedef struct {
    const char            *text;
    const proj_frame_t    *frame;
} proj_pub_src_t;


proj_publisher_t *
proj_publisher_new(cw_kafka_producer_t *producer,
    const proj_outbox_metrics_t *metrics)
{
    char                    v[32];
    long                    max = 1000000;
    size_t                  vlen = sizeof(v);
    proj_publisher_t       *pub;
    const rd_kafka_conf_t  *conf;

    pub = calloc(1, sizeof(*pub));
    if (pub == NULL) {
        return NULL;
    }

    conf = rd_kafka_conf(cw_kafka_producer_handle(producer));
    if (rd_kafka_conf_get(conf, "message.max.bytes", v, &vlen)
        == RD_KAFKA_CONF_OK)
    {
        max = atol(v);
    }

    pub->producer = producer;
    pub->limit = max > 2 * PROJ_PUB_FRAMING ? (size_t) max - PROJ_PUB_FRAMING
                                            : PROJ_PUB_FRAMING;
    pub->m = *metrics;

    return pub;
}


void
proj_publisher_free(proj_publisher_t *pub)
{
    free(pub);
}


/* The headers of a 'kafka' row, [{"name","value"}...], without values
 * longer than max; NULL for none. */
static rd_kafka_headers_t *
proj_publisher_row_headers(const char *text, size_t max)
{
    json_t              *a, *h, *value;
    size_t               i;
    const char          *name;
    rd_kafka_headers_t  *hdrs;

    a = json_loads(text, 0, NULL);
    if (!json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return NULL;
    }

    hdrs = rd_kafka_headers_new(json_array_size(a) + 2);

    json_array_foreach(a, i, h) {
        name = json_string_value(json_object_get(h, "name"));
        value = json_object_get(h, "value");
        if (name != NULL && json_is_string(value)
            && json_string_length(value) <= max)
        {
            rd_kafka_header_add(hdrs, name, -1, json_string_value(value),
                                (ssize_t) json_string_length(value));
        }
    }

    json_decref(a);

    return hdrs;
}


/* The headers of a frame, without values longer than max. NULL for
 * none, or (with *bad) if malformed. */
static rd_kafka_headers_t *
proj_publisher_frame_headers(const proj_frame_t *f, size_t max, int *bad)
{
    int                  r;
    size_t               off = 0, nlen, vlen;
    const char          *name, *value;
    rd_kafka_headers_t  *hdrs;

    hdrs = rd_kafka_headers_new(f->nhdrs + 2);

    while ((r = proj_frame_header(f, &off, &name, &nlen, &value, &vlen))
           == 1)
    {
        if (vlen <= max) {
            rd_kafka_header_add(hdrs, name, (ssize_t) nlen, value,
                                (ssize_t) vlen);
        }
    }

    if (r != 0) {
        rd_kafka_headers_destroy(hdrs);
        *bad = 1;
        return NULL;
    }

    return hdrs;
}


static rd_kafka_headers_t *
proj_publisher_headers(const proj_pub_src_t *src, size_t max, int *bad)
{
    *bad = 0;

    return src->frame != NULL
           ? proj_publisher_frame_headers(src->frame, max, bad)
           : proj_publisher_row_headers(src->text, max);
}


/* What Kafka counts of a message: key, value and headers. */
static size_t
proj_publisher_size(size_t klen, size_t vlen, const rd_kafka_headers_t *h)
{
    size_t       i, n = klen + vlen, size;
    const char  *name;
    const void  *value;

    for (i = 0; h != NULL && rd_kafka_header_get_all(h, i, &name, &value,
                                                     &size)
                             == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
    {
        n += strlen(name) + size + 8;
    }

    return n;
}


/* Why the broker (or librdkafka) refused a message for good, from the
 * error text cw_kafka gives (it names the error by rd_kafka_err2str);
 * NULL: not for good, try again later. */
static const char *
proj_publisher_refused(const char *err)
{
    size_t  i;
    static const struct {
        rd_kafka_resp_err_t   code;
        const char           *reason;
    }  perm[] = {
        { RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "too_large" },
        { RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, "too_large" },
        { RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, "too_large" },
        { RD_KAFKA_RESP_ERR_INVALID_RECORD, "invalid_record" },
    };

    for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++) {
        if (strstr(err, rd_kafka_err2str(perm[i].code)) != NULL) {
            return perm[i].reason;
        }
    }

    return NULL;
}


/* Produces one message; hdrs is given away whatever happens. The
 * careful way waits for its acknowledgement. */
static int
proj_publisher_send(proj_publisher_t *pub, const char *topic,
    const void *key, size_t klen, const void *value, size_t vlen,
    rd_kafka_headers_t *hdrs, char *err, size_t errlen)
{
    if (cw_kafka_produce(pub->producer, topic, -1, key, klen, value, vlen,
                         hdrs, err, errlen) != 0)
    {
        if (hdrs != NULL) {
            rd_kafka_headers_destroy(hdrs);
        }
        return -1;
    }

    if (pub->careful) {
        if (cw_kafka_producer_flush(pub->producer, PROJ_PUB_ACK_MS, err,
                                    errlen) != 0)
        {
            return -1;
        }
        cw_counter_inc(pub->m.published);
        return 0;
    }

    pub->queued++;

    return 0;
}


static void
proj_publisher_alert(proj_publisher_t *pub, const char *topic,
    const char *why, size_t bytes, const char *what)
{
    cw_field_t  f[] = { CW_FSTR("topic", topic), CW_FSTR("reason", why),
                        CW_FINT("bytes", (long long) bytes) };

    cw_counter_inc(strcmp(why, "too_large") == 0 ? pub->m.refused_too_large
                                                 : pub->m.refused_invalid);
    cw_log_kv(CW_LOG_ERROR, f, 3, "%s", what);
}


/* A message Kafka refuses for good, published reduced: no value, the
 * short headers, and reduced / reduced_bytes saying what was left out
 * (the whole message stays in PostgreSQL: dead_letters, event_store).
 * Refused again, it is left out, so that it never blocks the rows
 * behind it. */
static int
proj_publisher_reduced(proj_publisher_t *pub, const char *topic,
    const void *key, size_t klen, size_t bytes, const proj_pub_src_t *src,
    const char *why, char *err, size_t errlen)
{
    int                  bad;
    char                 n[24];
    rd_kafka_headers_t  *h;
    static const char    left_out[] = "outbox: message refused by Kafka for "
                                      "good, and so is its reduced form: "
                                      "left out (kept in PostgreSQL)";

    h = proj_publisher_headers(src, PROJ_PUB_HDR_KEEP, &bad);
    if (h == NULL) {
        h = rd_kafka_headers_new(2);
    }

    snprintf(n, sizeof(n), "%zu", bytes);
    rd_kafka_header_add(h, COMMERCE_H_REDUCED, -1, why, -1);
    rd_kafka_header_add(h, COMMERCE_H_REDUCED_BYTES, -1, n, -1);

    if (klen > PROJ_PUB_HDR_KEEP) {
        klen = 0;
    }

    if (proj_publisher_size(klen, 0, h) > pub->limit) {
        rd_kafka_headers_destroy(h);
        proj_publisher_alert(pub, topic, why, bytes, left_out);
        return 0;
    }

    if (proj_publisher_send(pub, topic, key, klen, NULL, 0, h, err, errlen)
        != 0)
    {
        if (proj_publisher_refused(err) == NULL) {
            return -1;
        }
        proj_publisher_alert(pub, topic, why, bytes, left_out);
        return 0;
    }

    proj_publisher_alert(pub, topic, why, bytes, "outbox: message refused "
                         "by Kafka for good: published reduced (no value, "
                         "long headers left out)");

    return 0;
}


/* One message of a row: as it is, or reduced if Kafka refuses it for
 * good (too large for message.max.bytes, here or at the broker). */
static int
proj_publisher_message(proj_publisher_t *pub, const char *topic,
    const void *key, size_t klen, const void *value, size_t vlen,
    const proj_pub_src_t *src, char *err, size_t errlen)
{
    int                  bad;
    size_t               bytes;
    const char          *why;
    rd_kafka_headers_t  *h;

    h = proj_publisher_headers(src, (size_t) -1, &bad);
    if (bad) {
        snprintf(err, errlen, "outbox: malformed kafka_batch frames");
        return -1;
    }

    bytes = proj_publisher_size(klen, vlen, h);

    if (bytes > pub->limit) {
        if (h != NULL) {
            rd_kafka_headers_destroy(h);
        }
        why = "too_large";

    } else if (proj_publisher_send(pub, topic, key, klen, value, vlen, h,
                                   err, errlen) == 0)
    {
        return 0;

    } else if ((why = proj_publisher_refused(err)) == NULL) {
        return -1;
    }

    return proj_publisher_reduced(pub, topic, key, klen, bytes, src, why,
                                  err, errlen);
}


/* The frames of a 'kafka_batch' row (malformed frames are an error: the
 * row stays). */
static int
proj_publisher_frames(proj_publisher_t *pub, const proj_outbox_row_t *row,
    char *err, size_t errlen)
{
    int             r;
    size_t          off = 0;
    proj_frame_t    f;
    proj_pub_src_t  src = { NULL, &f };

    while ((r = proj_frame_next(row->payload, row->plen, &off, &f)) == 1) {
        if (proj_publisher_message(pub, row->topic, f.key, f.klen, f.value,
                                   f.vlen, &src, err, errlen) != 0)
        {
            return -1;
        }
    }

    if (r != 0) {
        snprintf(err, errlen, "outbox: malformed kafka_batch frames");
        return -1;
    }

    return 0;
}


/* A dead letter's row ends with the headers the projector added
 * (dlq_reason, dlq_detail, dlq_id, dlq_origin: proj_sql.c, DEAD): it is
 * counted by its reason once the page is acknowledged. A message put
 * back on its topic (replay_of last) is not a dead letter. */
static void
proj_publisher_tally(proj_publisher_t *pub, const char *text)
{
    int          i;
    json_t      *a;
    size_t       n;
    const char  *last, *reason;

    a = json_loads(text, 0, NULL);
    n = json_array_size(a);
    last = n >= 4 ? json_string_value(json_object_get(json_array_get(a, n - 1),
                                                      "name"))
                  : NULL;

    if (last != NULL && strcmp(last, COMMERCE_H_DLQ_ORIGIN) == 0) {
        reason = json_string_value(json_object_get(json_array_get(a, n - 4),
                                                   "value"));
        i = proj_reason_index(reason);
        pub->dlq[i >= 0 ? i : PROJ_REASON_N - 1]++;
    }

    json_decref(a);
}


static int
proj_publisher_take(void *ud, cw_pg_t *pg, const proj_outbox_row_t *row,
    char *err, size_t errlen)
{
    proj_pub_src_t     src = { row->headers, NULL };
    proj_publisher_t  *pub = ud;

    if (strcmp(row->kind, "kafka_batch") == 0) {
        return proj_publisher_frames(pub, row, err, errlen);
    }

    if (proj_publisher_message(pub, row->topic, row->key, row->klen,
                               row->payload, row->plen, &src, err, errlen)
        != 0)
    {
        return -1;
    }

    proj_publisher_tally(pub, row->headers);

    return 0;
}


/* Every message produced is acknowledged (or the page fails). A page
 * the broker refused a message of is done again the careful way, one
 * acknowledged message at a time, so that the refused one is known and
 * reduced (those acknowledged before are published again: consumers
 * dedupe by event_id, as after any failed page). */
static int
proj_publisher_finish(void *ud, int failed, char *err, size_t errlen)
{
    int                rc = 0, i;
    proj_publisher_t  *pub = ud;

    if (!failed && pub->queued > 0) {
        rc = cw_kafka_producer_flush(pub->producer, PROJ_PUB_ACK_MS, err,
                                     errlen);
        if (rc == 0) {
            cw_counter_add(pub->m.published, (double) pub->queued);
        } else if (proj_publisher_refused(err) != NULL) {
            cw_log(CW_LOG_WARN, "outbox: %s: the page is published again "
                   "one message at a time", err);
            pub->careful = 1;
        }
    } else if (!failed && pub->careful) {
        pub->careful = 0;
    }

    for (i = 0; i < PROJ_REASON_N; i++) {
        if (!failed && rc == 0 && pub->dlq[i] > 0) {
            cw_counter_add(pub->m.dlq[i], pub->dlq[i]);
        }
        pub->dlq[i] = 0;
    }

    pub->queued = 0;

    return rc;
}


void
proj_publisher_sink(proj_publisher_t *pub, proj_outbox_sink_t *sink)
{
    sink->kinds = "{kafka,kafka_batch}";
    sink->take = proj_publisher_take;
    sink->finish = proj_publisher_finish;
    sink->ud = pub;
}
