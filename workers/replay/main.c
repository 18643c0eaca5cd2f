/*
 * commerce-replay: puts messages back on commerce.inbound.
 *
 *   commerce-replay --dlq-id 42            one dead letter
 *   commerce-replay --dlq-reason negative_stock
 *   commerce-replay --dlq-all              every dead letter not replayed
 *   commerce-replay --archive-from 2026-01-31T10:00:00Z \
 *                   --archive-to 2026-01-31T11:00:00Z
 *                                          the raw archive, by consume time
 *
 * Messages keep their key, body bytes and headers (so their delivery id:
 * the projector applies a message at most once, whatever is replayed),
 * plus a "replay_of" header ("dlq:<id>" or "archive:<id>"). Dead letters
 * are marked replayed only after the broker acknowledged every message;
 * by reason or all, only those not replayed yet are taken.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commerce_contract.h"
#include "cw_buf.h"
#include "cw_config.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_pg.h"
#include "cw_worker.h"

static const cw_opt_t  rp_opts[] = {
    { "dlq_id", CW_OPT_INT, "0", 0, 0, 0,
      "replay the dead letter with this id (also if replayed before)" },
    { "dlq_reason", CW_OPT_STR, "", 0, 0, 0,
      "replay the dead letters with this reason not replayed yet" },
    { "dlq_all", CW_OPT_BOOL, "false", 0, 0, 0,
      "replay every dead letter not replayed yet" },
    { "archive_from", CW_OPT_STR, "", 0, 0, 0,
      "replay archived messages consumed at or after this time" },
    { "archive_to", CW_OPT_STR, "", 0, 0, 0,
      "... and before this time (RFC 3339)" },
    { "topic", CW_OPT_STR, COMMERCE_TOPIC_INBOUND, 0, 0, 0,
      "topic to publish to" },
};


/* Exactly one source of messages. */
static int
rp_check(const cw_config_t *cfg, char *err, size_t errlen)
{
    int  modes;

    modes = (cw_config_int(cfg, "dlq_id") > 0)
            + (cw_config_str(cfg, "dlq_reason")[0] != '\0')
            + cw_config_bool(cfg, "dlq_all")
            + (cw_config_str(cfg, "archive_from")[0] != '\0');

    if (modes != 1
        || (cw_config_str(cfg, "archive_from")[0] != '\0')
           != (cw_config_str(cfg, "archive_to")[0] != '\0'))
    {
        snprintf(err, errlen, "give exactly one of --dlq-id, --dlq-reason, "
                 "--dlq-all, --archive-from with --archive-to");
        return -1;
    }

    return 0;
}


/* A one-shot tool: SIGTERM ends it; dead letters are marked replayed
 * only once the broker acknowledged them. */
static const cw_worker_def_t  rp_worker = {
    "replay",
    "republish dead letters or archived messages to "
    COMMERCE_TOPIC_INBOUND,
    rp_opts, sizeof(rp_opts) / sizeof(rp_opts[0]),
    CW_WORKER_PG | CW_WORKER_KAFKA,
    NULL, 0,
    rp_check
};


static rd_kafka_headers_t *
rp_headers(const char *text, const char *replay_of)
{
    json_t              *a, *h;
    size_t               i;
    const char          *name, *value;
    rd_kafka_headers_t  *hdrs;

    a = json_loads(text, 0, NULL);
    hdrs = rd_kafka_headers_new(json_array_size(a) + 1);

    json_array_foreach(a, i, h) {
        name = json_string_value(json_object_get(h, "name"));
        value = json_string_value(json_object_get(h, "value"));
        if (name != NULL && value != NULL
            && strcmp(name, COMMERCE_H_REPLAY_OF) != 0)
        {
            rd_kafka_header_add(hdrs, name, -1, value, -1);
        }
    }

    rd_kafka_header_add(hdrs, COMMERCE_H_REPLAY_OF, -1, replay_of, -1);
    json_decref(a);

    return hdrs;
}


/* Publishes one page of rows (id, key, headers, body) and waits for the
 * acknowledgements. Returns 0 or -1. */
static int
rp_publish(cw_kafka_producer_t *prod, const char *topic, PGresult *res,
    const char *kind)
{
    char                 err[512], of[64];
    int                  i;
    size_t               klen, blen;
    unsigned char       *key, *body;
    rd_kafka_headers_t  *hdrs;

    for (i = 0; i < PQntuples(res); i++) {
        snprintf(of, sizeof(of), "%s:%s", kind, PQgetvalue(res, i, 0));

        key = NULL;
        klen = 0;
        if (!PQgetisnull(res, i, 1)) {
            key = PQunescapeBytea((const unsigned char *)
                                  PQgetvalue(res, i, 1), &klen);
        }
        body = PQunescapeBytea((const unsigned char *) PQgetvalue(res, i, 3),
                               &blen);
        hdrs = rp_headers(PQgetvalue(res, i, 2), of);

        if (cw_kafka_produce(prod, topic, -1, key, klen, body, blen, hdrs,
                             err, sizeof(err)) != 0)
        {
            rd_kafka_headers_destroy(hdrs);
            PQfreemem(key);
            PQfreemem(body);
            cw_log(CW_LOG_ERROR, "publishing %s: %s", of, err);
            return -1;
        }

        PQfreemem(key);
        PQfreemem(body);
    }

    if (cw_kafka_producer_flush(prod, 30000, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_ERROR, "publishing: %s", err);
        return -1;
    }

    return 0;
}


static int
rp_dlq(cw_pg_t *pg, cw_kafka_producer_t *prod, const cw_config_t *cfg)
{
    char            id[24], after[24] = "0", err[512];
    long long       total = 0;
    PGresult       *res, *upd;
    cw_pg_class_t   cls;
    const char     *p[3];
    int             n;

    snprintf(id, sizeof(id), "%lld", cw_config_int(cfg, "dlq_id"));

    for ( ;; ) {
        p[0] = id;
        p[1] = cw_config_str(cfg, "dlq_reason");
        p[2] = after;

        /* Keyset paging over dead letters that already exist: ids of
         * rows committed later are not needed by this run. */
        res = cw_pg_exec(pg, "SELECT id, msg_key, headers::text, body"
                         " FROM dead_letters WHERE id > $3::bigint AND"
                         " CASE WHEN $1::bigint > 0 THEN id = $1::bigint"
                         " WHEN $2 <> '' THEN reason = $2"
                         " AND replayed_at IS NULL"
                         " ELSE replayed_at IS NULL END"
                         " ORDER BY id LIMIT 500", 3, p, &cls, err,
                         sizeof(err));
        if (res == NULL) {
            cw_log(CW_LOG_ERROR, "reading dead letters: %s", err);
            return -1;
        }

        n = PQntuples(res);
        if (n == 0) {
            PQclear(res);
            break;
        }

        if (rp_publish(prod, cw_config_str(cfg, "topic"), res, "dlq") != 0) {
            PQclear(res);
            return -1;
        }

        {
            cw_buf_t  ids;
            int       i;

            cw_buf_init(&ids);
            cw_buf_putc(&ids, '{');
            for (i = 0; i < n; i++) {
                cw_buf_printf(&ids, "%s%s", i ? "," : "",
                              PQgetvalue(res, i, 0));
            }
            cw_buf_putc(&ids, '}');
            p[0] = ids.data;
            upd = cw_pg_exec(pg, "UPDATE dead_letters SET replayed_at = now(),"
                             " replay_count = replay_count + 1"
                             " WHERE id = ANY($1::bigint[])", 1, p, &cls,
                             err, sizeof(err));
            cw_buf_free(&ids);
        }

        if (upd == NULL) {
            cw_log(CW_LOG_ERROR, "marking dead letters replayed: %s", err);
            PQclear(res);
            return -1;
        }

        PQclear(upd);
        snprintf(after, sizeof(after), "%s", PQgetvalue(res, n - 1, 0));
        total += n;
        PQclear(res);
    }

    {
        cw_field_t  f[] = { CW_FINT("messages", total) };

        cw_log_kv(CW_LOG_INFO, f, 1, "dead letters replayed");
    }

    return 0;
}


static int
rp_archive(cw_pg_t *pg, cw_kafka_producer_t *prod, const cw_config_t *cfg)
{
    char            after[24] = "0", err[512];
    long long       total = 0;
    PGresult       *res;
    cw_pg_class_t   cls;
    const char     *p[3];
    int             n;

    for ( ;; ) {
        p[0] = cw_config_str(cfg, "archive_from");
        p[1] = cw_config_str(cfg, "archive_to");
        p[2] = after;

        res = cw_pg_exec(pg, "SELECT id, msg_key, headers::text, body"
                         " FROM inbound_archive WHERE id > $3::bigint"
                         " AND consumed_at >= $1::timestamptz"
                         " AND consumed_at < $2::timestamptz"
                         " ORDER BY id LIMIT 500", 3, p, &cls, err,
                         sizeof(err));
        if (res == NULL) {
            cw_log(CW_LOG_ERROR, "reading the archive: %s", err);
            return -1;
        }

        n = PQntuples(res);
        if (n == 0) {
            PQclear(res);
            break;
        }

        if (rp_publish(prod, cw_config_str(cfg, "topic"), res, "archive")
            != 0)
        {
            PQclear(res);
            return -1;
        }

        snprintf(after, sizeof(after), "%s", PQgetvalue(res, n - 1, 0));
        total += n;
        PQclear(res);
    }

    {
        cw_field_t  f[] = { CW_FINT("messages", total) };

        cw_log_kv(CW_LOG_INFO, f, 1, "archive replayed");
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int                    status = 1;
    char                   err[512];
    cw_pg_t               *pg;
    cw_worker_t            w;
    cw_kafka_producer_t   *prod = NULL;

    if (cw_worker_start(&w, &rp_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    pg = cw_pg_new_from_config(w.cfg, "commerce-replay");
    if (pg == NULL || cw_pg_ensure(pg, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_ERROR, "postgres: %s", pg ? err : "out of memory");
        goto done;
    }

    prod = cw_kafka_producer_new(w.cfg, err, sizeof(err));
    if (prod == NULL) {
        cw_log(CW_LOG_ERROR, "kafka producer: %s", err);
        goto done;
    }

    if (cw_config_str(w.cfg, "archive_from")[0] != '\0') {
        status = rp_archive(pg, prod, w.cfg) == 0 ? 0 : 1;
    } else {
        status = rp_dlq(pg, prod, w.cfg) == 0 ? 0 : 1;
    }

done:

    if (prod != NULL) {
        cw_kafka_producer_close(prod, 5000);
    }

    cw_pg_free(pg);

    return cw_worker_exit(&w, status);
}
