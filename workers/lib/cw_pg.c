/*
 * cw_pg: libpq connection with reconnect, prepared statements, retries.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_log.h"
#include "cw_pg.h"
#include "cw_retry.h"
#include "cw_time.h"

typedef struct {
    char       *name;
    char       *sql;
    int         nparams;
} cw_pg_stmt_t;

struct cw_pg_s {
    PGconn         *conn;
    char           *conninfo;
    char           *app;
    int             connect_timeout_ms;
    cw_pg_stmt_t   *stmts;
    size_t          nstmts;
    cw_backoff_t    reconnect;
    int64_t         next_attempt;
    int             attempts;
    int             commit_sent;    /* a COMMIT awaits cw_pg_commit_wait */
    char            sent[64];       /* the statement awaiting cw_pg_getp */
    volatile int   *stop;
};

static const cw_opt_t  cw_pg_opts[] = {
    { "pg.conninfo", CW_OPT_STR, "", 0, 0, 0,
      "libpq connection string or postgresql:// URI" },
    { "pg.connect_timeout", CW_OPT_DURATION, "5s", 1000, 600000, 0,
      "connect timeout (libpq rounds to whole seconds)" },
    { "pg.txn_attempts", CW_OPT_INT, "5", 1, 100, 0,
      "tries of a transaction that fails with a transient error" },
};


int
cw_pg_declare(cw_config_t *cfg)
{
    return cw_config_declare(cfg, cw_pg_opts,
                             sizeof(cw_pg_opts) / sizeof(cw_pg_opts[0]));
}


cw_pg_t *
cw_pg_new(const char *conninfo, int connect_timeout_ms, const char *app)
{
    cw_pg_t  *pg;

    pg = calloc(1, sizeof(*pg));
    if (pg == NULL) {
        return NULL;
    }
    pg->conninfo = strdup(conninfo);
    pg->app = strdup(app ? app : "commerce-worker");
    if (pg->conninfo == NULL || pg->app == NULL) {
        cw_pg_free(pg);
        return NULL;
    }
    pg->connect_timeout_ms = connect_timeout_ms;
    cw_backoff_init(&pg->reconnect, 100, 5000, 0.5, 0, 0);
    return pg;
}


cw_pg_t *
cw_pg_new_from_config(const cw_config_t *cfg, const char *app)
{
    cw_pg_t  *pg;

    pg = cw_pg_new(cw_config_str(cfg, "pg.conninfo"),
                   (int) cw_config_duration_ms(cfg, "pg.connect_timeout"),
                   app);
    if (pg != NULL) {
        pg->attempts = (int) cw_config_int(cfg, "pg.txn_attempts");
    }
    return pg;
}


void
cw_pg_free(cw_pg_t *pg)
{
    size_t  i;

    if (pg == NULL) {
        return;
    }
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
    }
    for (i = 0; i < pg->nstmts; i++) {
        free(pg->stmts[i].name);
        free(pg->stmts[i].sql);
    }
    free(pg->stmts);
    free(pg->conninfo);
    free(pg->app);
    free(pg);
}


void
cw_pg_set_stop_flag(cw_pg_t *pg, volatile int *stop)
{
    pg->stop = stop;
}


PGconn *
cw_pg_conn(cw_pg_t *pg)
{
    return pg->conn;
}


cw_pg_class_t
cw_pg_classify_sqlstate(const char *s)
{
    static const char  *transient[] = {
        "40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03",
        "57014"
    };
    size_t              i;

    if (s == NULL || strlen(s) != 5) {
        return CW_PG_PERMANENT;
    }
    if (strcmp(s, "00000") == 0) {
        return CW_PG_OK;
    }
    if (strncmp(s, "08", 2) == 0) {
        return CW_PG_TRANSIENT;
    }
    for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        if (strcmp(s, transient[i]) == 0) {
            return CW_PG_TRANSIENT;
        }
    }
    return CW_PG_PERMANENT;
}


/* A missing result or a broken connection means the link failed, which
 * is transient whatever the SQLSTATE says. */
cw_pg_class_t
cw_pg_classify(PGconn *conn, const PGresult *res)
{
    ExecStatusType  st;

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK || res == NULL) {
        return CW_PG_TRANSIENT;
    }
    st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
        || st == PGRES_SINGLE_TUPLE || st == PGRES_EMPTY_QUERY)
    {
        return CW_PG_OK;
    }
    return cw_pg_classify_sqlstate(PQresultErrorField(res,
                                                      PG_DIAG_SQLSTATE));
}


static void
cw_pg_errmsg(cw_pg_t *pg, const PGresult *res, const char *what, char *err,
    size_t errlen)
{
    const char  *msg, *state = NULL;
    size_t       len;

    msg = res != NULL ? PQresultErrorMessage(res) : "";
    if (msg == NULL || msg[0] == '\0') {
        msg = pg->conn != NULL ? PQerrorMessage(pg->conn) : "not connected";
    }
    if (res != NULL) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    }
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }
    snprintf(err, errlen, "%s: %s%s%s%.*s", what, state ? "[" : "",
             state ? state : "", state ? "] " : "", (int) len, msg);
}


static int
cw_pg_prepare_one(cw_pg_t *pg, const cw_pg_stmt_t *s, cw_pg_class_t *cls,
    char *err, size_t errlen)
{
    PGresult  *res;

    res = PQprepare(pg->conn, s->name, s->sql, s->nparams, NULL);
    *cls = cw_pg_classify(pg->conn, res);
    if (*cls != CW_PG_OK) {
        cw_pg_errmsg(pg, res, s->name, err, errlen);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}


/* Drops a broken connection so the next call reconnects. */
static void
cw_pg_drop(cw_pg_t *pg)
{
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
        cw_log(CW_LOG_WARN, "postgres connection lost");
    }
}


static int
cw_pg_connect(cw_pg_t *pg, char *err, size_t errlen)
{
    const char     *keys[5], *vals[5];
    char            timeout[16];
    cw_pg_class_t   cls;
    size_t          i;

    snprintf(timeout, sizeof(timeout), "%d",
             (pg->connect_timeout_ms + 999) / 1000);
    /* later entries win: the worker's own conninfo overrides defaults */
    keys[0] = "connect_timeout";   vals[0] = timeout;
    keys[1] = "application_name";  vals[1] = pg->app;
    /* Workers run short statements again and again: compiling them with
     * JIT (PostgreSQL decides so from a generic plan's estimated cost)
     * costs more than running them. Their working set is in memory, so a
     * lookup of a few hundred keys by index beats a scan of the table,
     * which the default random_page_cost (4, for spinning disks) prefers. */
    keys[2] = "options";
    vals[2] = "-c jit=off -c random_page_cost=1.1";
    keys[3] = "dbname";            vals[3] = pg->conninfo;
    keys[4] = NULL;                vals[4] = NULL;

    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "postgres connect: %s",
                 pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        if (pg->conn != NULL) {
            PQfinish(pg->conn);
            pg->conn = NULL;
        }
        return -1;
    }
    for (i = 0; i < pg->nstmts; i++) {
        if (cw_pg_prepare_one(pg, &pg->stmts[i], &cls, err, errlen) != 0) {
            PQfinish(pg->conn);
            pg->conn = NULL;
            return -1;
        }
    }
    return 0;
}


int
cw_pg_ensure(cw_pg_t *pg, char *err, size_t errlen)
{
    int64_t  now;

    if (pg->commit_sent) {
        snprintf(err, errlen, "postgres: a COMMIT is in flight "
                 "(cw_pg_commit_wait first)");
        return -1;
    }
    if (pg->sent[0] != '\0') {
        snprintf(err, errlen, "postgres: %s is in flight (cw_pg_getp first)",
                 pg->sent);
        return -1;
    }
    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK) {
        return 0;
    }
    cw_pg_drop(pg);
    now = cw_now_ms();
    if (now < pg->next_attempt) {
        snprintf(err, errlen, "postgres: reconnect in %lld ms",
                 (long long) (pg->next_attempt - now));
        return -1;
    }
    if (cw_pg_connect(pg, err, errlen) != 0) {
        pg->next_attempt = now + cw_backoff_next(&pg->reconnect);
        return -1;
    }
    cw_backoff_reset(&pg->reconnect);
    pg->next_attempt = 0;
    cw_log(CW_LOG_INFO, "postgres connected");
    return 0;
}


int
cw_pg_prepare(cw_pg_t *pg, const char *name, const char *sql, int nparams,
    char *err, size_t errlen)
{
    cw_pg_stmt_t   *s;
    cw_pg_class_t   cls;

    s = realloc(pg->stmts, (pg->nstmts + 1) * sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pg->stmts = s;
    s = &pg->stmts[pg->nstmts];
    s->name = strdup(name);
    s->sql = strdup(sql);
    s->nparams = nparams;
    if (s->name == NULL || s->sql == NULL) {
        free(s->name);
        free(s->sql);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pg->nstmts++;
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
        return 0;
    }
    if (cw_pg_prepare_one(pg, s, &cls, err, errlen) != 0) {
        if (cls == CW_PG_PERMANENT) {
            pg->nstmts--;
            free(s->name);
            free(s->sql);
            return -1;
        }
        cw_pg_drop(pg);
    }
    return 0;
}


static PGresult *
cw_pg_finish(cw_pg_t *pg, PGresult *res, const char *what,
    cw_pg_class_t *cls, char *err, size_t errlen)
{
    *cls = cw_pg_classify(pg->conn, res);
    if (*cls == CW_PG_OK) {
        return res;
    }
    cw_pg_errmsg(pg, res, what, err, errlen);
    PQclear(res);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        cw_pg_drop(pg);
    }
    return NULL;
}


PGresult *
cw_pg_execp(cw_pg_t *pg, const char *name, int n, const char *const *values,
    cw_pg_class_t *cls, char *err, size_t errlen)
{
    if (cw_pg_ensure(pg, err, errlen) != 0) {
        *cls = CW_PG_TRANSIENT;
        return NULL;
    }
    return cw_pg_finish(pg, PQexecPrepared(pg->conn, name, n, values, NULL,
                                           NULL, 0),
                        name, cls, err, errlen);
}


PGresult *
cw_pg_exec(cw_pg_t *pg, const char *sql, int n, const char *const *values,
    cw_pg_class_t *cls, char *err, size_t errlen)
{
    if (cw_pg_ensure(pg, err, errlen) != 0) {
        *cls = CW_PG_TRANSIENT;
        return NULL;
    }
    return cw_pg_finish(pg, PQexecParams(pg->conn, sql, n, NULL, values,
                                         NULL, NULL, 0),
                        "query", cls, err, errlen);
}


PGresult *
cw_pg_execb(cw_pg_t *pg, const char *sql, int n, const char *const *values,
    const int *lengths, const int *formats, int result_format,
    cw_pg_class_t *cls, char *err, size_t errlen)
{
    if (cw_pg_ensure(pg, err, errlen) != 0) {
        *cls = CW_PG_TRANSIENT;
        return NULL;
    }
    return cw_pg_finish(pg, PQexecParams(pg->conn, sql, n, NULL, values,
                                         lengths, formats, result_format),
                        "query", cls, err, errlen);
}


cw_pg_class_t
cw_pg_command(cw_pg_t *pg, const char *sql, char *err, size_t errlen)
{
    cw_pg_class_t   cls;
    PGresult       *res;

    res = cw_pg_exec(pg, sql, 0, NULL, &cls, err, errlen);
    PQclear(res);
    return cls;
}


cw_pg_class_t
cw_pg_sendp(cw_pg_t *pg, const char *name, int n, const char *const *values,
    char *err, size_t errlen)
{
    if (cw_pg_ensure(pg, err, errlen) != 0) {
        return CW_PG_TRANSIENT;
    }
    if (!PQsendQueryPrepared(pg->conn, name, n, values, NULL, NULL, 0)) {
        cw_pg_errmsg(pg, NULL, name, err, errlen);
        if (PQstatus(pg->conn) != CONNECTION_OK) {
            cw_pg_drop(pg);
        }
        return CW_PG_TRANSIENT;
    }
    snprintf(pg->sent, sizeof(pg->sent), "%s", name);
    return CW_PG_OK;
}


PGresult *
cw_pg_getp(cw_pg_t *pg, cw_pg_class_t *cls, char *err, size_t errlen)
{
    char       name[sizeof(pg->sent)];
    PGresult  *res, *more;

    if (pg->sent[0] == '\0') {
        snprintf(err, errlen, "postgres: no statement in flight");
        *cls = CW_PG_PERMANENT;
        return NULL;
    }
    memcpy(name, pg->sent, sizeof(name));
    pg->sent[0] = '\0';

    res = PQgetResult(pg->conn);
    while ((more = PQgetResult(pg->conn)) != NULL) {
        PQclear(more);
    }
    return cw_pg_finish(pg, res, name, cls, err, errlen);
}


/* A statement sent and not taken when its transaction fails: its result
 * goes, so that the ROLLBACK can run. */
static void
cw_pg_discard(cw_pg_t *pg)
{
    cw_pg_class_t  cls;
    char           ignore[256];

    if (pg->sent[0] != '\0') {
        PQclear(cw_pg_getp(pg, &cls, ignore, sizeof(ignore)));
    }
}


/* Each attempt is a fresh transaction; a transient failure anywhere
 * (BEGIN, the body, COMMIT) rolls back, waits and starts over. A COMMIT
 * lost with the connection is ambiguous, so bodies must be idempotent
 * (the projector's offset check makes them so). */
cw_pg_class_t
cw_pg_txn(cw_pg_t *pg, cw_pg_txn_fn fn, void *ud, int attempts, char *err,
    size_t errlen)
{
    cw_backoff_t   bo;
    cw_pg_class_t  cls;
    char           ignore[256];
    int            i;

    if (attempts <= 0) {
        attempts = pg->attempts > 0 ? pg->attempts : 1;
    }
    cw_backoff_init(&bo, 50, 2000, 0.5, 0, 0);
    for (i = 0; i < attempts; i++) {
        if (i > 0) {
            cw_log(CW_LOG_WARN, "postgres transaction retry %d/%d: %s", i,
                   attempts - 1, err);
            cw_sleep_ms(cw_backoff_next(&bo), pg->stop);
            if (pg->stop != NULL && *pg->stop) {
                return CW_PG_TRANSIENT;
            }
        }
        cls = cw_pg_command(pg, "BEGIN", err, errlen);
        if (cls == CW_PG_OK) {
            cls = fn(pg, ud, err, errlen);
            if (cls == CW_PG_OK) {
                cls = cw_pg_command(pg, "COMMIT", err, errlen);
                if (cls == CW_PG_OK) {
                    return CW_PG_OK;
                }
            }
            cw_pg_discard(pg);
            if (pg->conn != NULL) {
                cw_pg_command(pg, "ROLLBACK", ignore, sizeof(ignore));
            }
        }
        if (cls == CW_PG_PERMANENT) {
            return cls;
        }
    }
    return CW_PG_TRANSIENT;
}


cw_pg_class_t
cw_pg_txn_send_commit(cw_pg_t *pg, cw_pg_txn_fn fn, void *ud, char *err,
    size_t errlen)
{
    cw_pg_class_t  cls;
    char           ignore[256];

    cls = cw_pg_command(pg, "BEGIN", err, errlen);
    if (cls != CW_PG_OK) {
        return cls;
    }
    cls = fn(pg, ud, err, errlen);
    if (cls == CW_PG_OK) {
        if (PQsendQuery(pg->conn, "COMMIT")) {
            pg->commit_sent = 1;
            return CW_PG_OK;
        }
        cw_pg_errmsg(pg, NULL, "COMMIT", err, errlen);
        cls = CW_PG_TRANSIENT;
        if (PQstatus(pg->conn) != CONNECTION_OK) {
            cw_pg_drop(pg);
        }
    }
    cw_pg_discard(pg);
    if (pg->conn != NULL) {
        cw_pg_command(pg, "ROLLBACK", ignore, sizeof(ignore));
    }
    return cls;
}


cw_pg_class_t
cw_pg_commit_wait(cw_pg_t *pg, char *err, size_t errlen)
{
    PGresult       *res, *more;
    cw_pg_class_t   cls;

    if (!pg->commit_sent) {
        return CW_PG_OK;
    }
    pg->commit_sent = 0;

    res = PQgetResult(pg->conn);
    while ((more = PQgetResult(pg->conn)) != NULL) {
        PQclear(more);
    }
    cls = cw_pg_classify(pg->conn, res);
    if (cls != CW_PG_OK) {
        cw_pg_errmsg(pg, res, "COMMIT", err, errlen);
        if (PQstatus(pg->conn) != CONNECTION_OK) {
            cw_pg_drop(pg);
        }
    }
    PQclear(res);
    return cls;
}


PGresult *
cw_pg_execpb(cw_pg_t *pg, const char *name, int n, const char *const *values,
    const int *lengths, const int *formats, cw_pg_class_t *cls, char *err,
    size_t errlen)
{
    if (cw_pg_ensure(pg, err, errlen) != 0) {
        *cls = CW_PG_TRANSIENT;
        return NULL;
    }
    return cw_pg_finish(pg, PQexecPrepared(pg->conn, name, n, values,
                                           lengths, formats, 0),
                        name, cls, err, errlen);
}


static void
cw_pg_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


/* Layout (array_recv): ndim, has-nulls flag, element type, then per
 * dimension its size and lower bound, then per element its length (-1:
 * NULL) and bytes; integers are 32-bit big-endian. */
void
cw_pg_array_init(cw_pg_array_t *a, unsigned elem_oid)
{
    unsigned char  h[20];

    cw_buf_init(&a->buf);
    a->n = 0;
    a->nulls = 0;

    cw_pg_put32(h, 1);
    cw_pg_put32(h + 4, 0);
    cw_pg_put32(h + 8, elem_oid);
    cw_pg_put32(h + 12, 0);
    cw_pg_put32(h + 16, 1);
    cw_buf_append(&a->buf, h, sizeof(h));
}


void
cw_pg_array_add(cw_pg_array_t *a, const void *p, size_t len)
{
    unsigned char  l[4];

    cw_pg_put32(l, p != NULL ? (uint32_t) len : 0xffffffffu);
    cw_buf_append(&a->buf, l, sizeof(l));

    if (p != NULL) {
        cw_buf_append(&a->buf, p, len);
    } else {
        a->nulls = 1;
    }

    a->n++;
}


int
cw_pg_array_finish(cw_pg_array_t *a)
{
    if (a->buf.oom || a->buf.len < 20) {
        return -1;
    }

    cw_pg_put32((unsigned char *) a->buf.data + 4, (uint32_t) a->nulls);
    cw_pg_put32((unsigned char *) a->buf.data + 12, (uint32_t) a->n);

    return 0;
}


void
cw_pg_array_free(cw_pg_array_t *a)
{
    cw_buf_free(&a->buf);
}


PGresult *
cw_pg_exec_inline(cw_pg_t *pg, const char *sql, int n,
    const char *const *values, cw_pg_class_t *cls, char *err, size_t errlen)
{
    int          i;
    char        *lit;
    cw_buf_t     q;
    PGresult    *res;
    const char  *p;

    if (cw_pg_ensure(pg, err, errlen) != 0) {
        *cls = CW_PG_TRANSIENT;
        return NULL;
    }

    cw_buf_init(&q);

    for (p = sql; *p != '\0'; p++) {
        if (*p != '$' || p[1] < '1' || p[1] > '9') {
            cw_buf_putc(&q, *p);
            continue;
        }

        for (i = 0; p[1] >= '0' && p[1] <= '9'; p++) {
            i = i * 10 + (p[1] - '0');
        }

        if (i > n || values[i - 1] == NULL) {
            cw_buf_puts(&q, "NULL");
            continue;
        }

        lit = PQescapeLiteral(pg->conn, values[i - 1],
                              strlen(values[i - 1]));
        if (lit == NULL) {
            cw_buf_free(&q);
            snprintf(err, errlen, "escaping: %s", PQerrorMessage(pg->conn));
            *cls = CW_PG_PERMANENT;
            return NULL;
        }
        cw_buf_puts(&q, lit);
        PQfreemem(lit);
    }

    if (q.oom) {
        cw_buf_free(&q);
        snprintf(err, errlen, "out of memory");
        *cls = CW_PG_PERMANENT;
        return NULL;
    }

    res = cw_pg_finish(pg, PQexecParams(pg->conn, q.data, 0, NULL, NULL,
                                        NULL, NULL, 0),
                       "query", cls, err, errlen);
    cw_buf_free(&q);

    return res;
}
