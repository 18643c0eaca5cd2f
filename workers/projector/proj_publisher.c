/*
 * proj_publisher: outbox rows published to Kafka (see proj_publisher.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proj_frame.h"
#include "proj_publisher.h"


struct proj_publisher_s {
    cw_kafka_producer_t    *producer;
    size_t                  queued;       /* produced, not yet flushed */
    proj_outbox_metrics_t   m;
};


proj_publisher_t *
proj_publisher_new(cw_kafka_producer_t *producer,
    const proj_outbox_metrics_t *metrics)
{
    proj_publisher_t  *pub;

    pub = calloc(1, sizeof(*pub));
    if (pub == NULL) {
        return NULL;
    }

    pub->producer = producer;
    pub->m = *metrics;

    return pub;
}


void
proj_publisher_free(proj_publisher_t *pub)
{
    free(pub);
}


/* The headers of a 'kafka' row, [{"name","value"}...]; NULL for none. */
static rd_kafka_headers_t *
proj_publisher_headers(const char *text)
{
    json_t              *a, *h;
    size_t               i;
    const char          *name, *value;
    rd_kafka_headers_t  *hdrs;

    a = json_loads(text, 0, NULL);
    if (!json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return NULL;
    }

    hdrs = rd_kafka_headers_new(json_array_size(a));

    json_array_foreach(a, i, h) {
        name = json_string_value(json_object_get(h, "name"));
        value = json_string_value(json_object_get(h, "value"));
        if (name != NULL && value != NULL) {
            rd_kafka_header_add(hdrs, name, -1, value, -1);
        }
    }

    json_decref(a);

    return hdrs;
}


/* The headers of a frame. NULL for none, or (with *bad) if malformed. */
static rd_kafka_headers_t *
proj_publisher_frame_headers(const proj_frame_t *f, int *bad)
{
    int                  r;
    size_t               off = 0, nlen, vlen;
    const char          *name, *value;
    rd_kafka_headers_t  *hdrs;

    *bad = 0;

    if (f->nhdrs == 0) {
        return NULL;
    }

    hdrs = rd_kafka_headers_new(f->nhdrs);

    while ((r = proj_frame_header(f, &off, &name, &nlen, &value, &vlen))
           == 1)
    {
        rd_kafka_header_add(hdrs, name, (ssize_t) nlen, value,
                            (ssize_t) vlen);
    }

    if (r != 0) {
        rd_kafka_headers_destroy(hdrs);
        *bad = 1;
        return NULL;
    }

    return hdrs;
}


static int
proj_publisher_produce(proj_publisher_t *pub, const char *topic,
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

    pub->queued++;

    return 0;
}


/* The frames of a 'kafka_batch' row (malformed frames are an error: the
 * row stays). */
static int
proj_publisher_frames(proj_publisher_t *pub, const proj_outbox_row_t *row,
    char *err, size_t errlen)
{
    int                  r, bad;
    size_t               off = 0;
    proj_frame_t         f;
    rd_kafka_headers_t  *hdrs;

    while ((r = proj_frame_next(row->payload, row->plen, &off, &f)) == 1) {
        hdrs = proj_publisher_frame_headers(&f, &bad);
        if (bad) {
            r = -1;
            break;
        }

        if (proj_publisher_produce(pub, row->topic, f.key, f.klen, f.value,
                                   f.vlen, hdrs, err, errlen) != 0)
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


static int
proj_publisher_take(void *ud, cw_pg_t *pg, const proj_outbox_row_t *row,
    char *err, size_t errlen)
{
    proj_publisher_t  *pub = ud;

    if (strcmp(row->kind, "kafka_batch") == 0) {
        return proj_publisher_frames(pub, row, err, errlen);
    }

    return proj_publisher_produce(pub, row->topic, row->key, row->klen,
                                  row->payload, row->plen,
                                  proj_publisher_headers(row->headers), err,
                                  errlen);
}


/* Every message produced is acknowledged (or the page fails). */
static int
proj_publisher_finish(void *ud, int failed, char *err, size_t errlen)
{
    int                rc = 0;
    proj_publisher_t  *pub = ud;

    if (!failed && pub->queued > 0) {
        rc = cw_kafka_producer_flush(pub->producer, 10000, err, errlen);
        if (rc == 0) {
            cw_counter_add(pub->m.published, (double) pub->queued);
        }
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
