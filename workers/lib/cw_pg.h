/*
 * cw_pg: PostgreSQL for workers, on libpq (synchronous).
 *
 * A cw_pg_t owns one connection and a registry of prepared statements.
 * When the connection is lost, the next call reconnects (no sooner than
 * an exponential backoff allows, so a database that is down is not
 * hammered) and prepares every registered statement again.
 *
 * Errors are classified: TRANSIENT ones (connection lost, SQLSTATE class
 * 08, serialization_failure 40001, deadlock_detected 40P01, admin/crash
 * shutdown 57P01/57P02, cannot_connect_now 57P03, too_many_connections
 * 53300, lock_not_available 55P03, query_canceled 57014) are worth
 * retrying; everything else is PERMANENT. cw_pg_txn runs a function in
 * a transaction and retries it on transient errors.
 *
 * Configuration (cw_pg_declare): pg.conninfo (libpq connection string or
 * URI), pg.connect_timeout, pg.txn_attempts.
 */

#ifndef CW_PG_H
#define CW_PG_H

#include <stddef.h>

#include <postgresql/libpq-fe.h>   /* Debian: no -I needed */

#include "cw_buf.h"
#include "cw_config.h"

typedef enum {
    CW_PG_OK = 0,
    CW_PG_TRANSIENT,
    CW_PG_PERMANENT
} cw_pg_class_t;

typedef struct cw_pg_s  cw_pg_t;

/* Body of a transaction: run statements with cw_pg_exec*; return
 * CW_PG_OK to commit, or the class of the error that stopped it. */
typedef cw_pg_class_t (*cw_pg_txn_fn)(cw_pg_t *pg, void *ud, char *err,
    size_t errlen);

int cw_pg_declare(cw_config_t *cfg);

/* Creates the handle; does not connect yet. */
cw_pg_t *cw_pg_new(const char *conninfo, int connect_timeout_ms,
    const char *application_name);
cw_pg_t *cw_pg_new_from_config(const cw_config_t *cfg, const char *app);
void cw_pg_free(cw_pg_t *pg);

/* A flag (e.g. cw_signal_stop_flag()) that cuts retry sleeps short. */
void cw_pg_set_stop_flag(cw_pg_t *pg, volatile int *stop);

/* Connects if needed, honouring the reconnect backoff. Returns 0 when
 * connected, else -1 (always transient) with err. */
int cw_pg_ensure(cw_pg_t *pg, char *err, size_t errlen);

/* Registers a statement; prepared now if connected and again after every
 * reconnect. Returns -1 (PERMANENT) if the server rejects the SQL. */
int cw_pg_prepare(cw_pg_t *pg, const char *name, const char *sql,
    int nparams, char *err, size_t errlen);

/* Executes a registered statement / literal SQL with text parameters.
 * Returns the result on success (caller PQclear()s it), or NULL with
 * *cls and err set. NULL values are SQL NULL. */
PGresult *cw_pg_execp(cw_pg_t *pg, const char *name, int n,
    const char *const *values, cw_pg_class_t *cls, char *err, size_t errlen);
PGresult *cw_pg_exec(cw_pg_t *pg, const char *sql, int n,
    const char *const *values, cw_pg_class_t *cls, char *err, size_t errlen);

/* cw_pg_exec with values that may be binary: lengths and formats as
 * PQexecParams takes them (formats NULL: all text), and the format of
 * every column of the result (0 text, 1 binary: bytea comes raw). */
PGresult *cw_pg_execb(cw_pg_t *pg, const char *sql, int n,
    const char *const *values, const int *lengths, const int *formats,
    int result_format, cw_pg_class_t *cls, char *err, size_t errlen);

/* A one-dimensional array parameter in PostgreSQL's binary format, so
 * that bytes go to the server as they are (no hex, no escaping): pass
 * data/len with format 1. elem_oid is the element type (17 bytea, 25
 * text, ...); elements are in that type's binary form. */
typedef struct {
    cw_buf_t    buf;
    int         n;
    int         nulls;
} cw_pg_array_t;

void cw_pg_array_init(cw_pg_array_t *a, unsigned elem_oid);
/* Appends an element; p NULL appends SQL NULL. */
void cw_pg_array_add(cw_pg_array_t *a, const void *p, size_t len);
/* Completes the header; returns 0, or -1 if out of memory. */
int cw_pg_array_finish(cw_pg_array_t *a);
void cw_pg_array_free(cw_pg_array_t *a);

/* cw_pg_exec with the values written into the statement as literals
 * ($1 .. $n; a NULL value is NULL): the planner then sees them, and
 * plans a lookup by an array of keys for the array's real size, where a
 * cached plan made for a guessed size may scan a whole table. */
PGresult *cw_pg_exec_inline(cw_pg_t *pg, const char *sql, int n,
    const char *const *values, cw_pg_class_t *cls, char *err, size_t errlen);

/* cw_pg_execp with binary-capable values (see cw_pg_execb). */
PGresult *cw_pg_execpb(cw_pg_t *pg, const char *name, int n,
    const char *const *values, const int *lengths, const int *formats,
    cw_pg_class_t *cls, char *err, size_t errlen);

/* cw_pg_execp in two halves, so that the caller can work while the
 * server runs the statement: cw_pg_sendp sends it (CW_PG_OK, or the
 * class of the failure), cw_pg_getp waits for its result (as
 * cw_pg_execp returns it). In between, the connection is busy and every
 * other call fails; a transaction of cw_pg_txn or cw_pg_txn_send_commit
 * whose fn fails in between drops the result before its ROLLBACK. */
cw_pg_class_t cw_pg_sendp(cw_pg_t *pg, const char *name, int n,
    const char *const *values, char *err, size_t errlen);
PGresult *cw_pg_getp(cw_pg_t *pg, cw_pg_class_t *cls, char *err,
    size_t errlen);

/* Runs a command whose result is not needed (BEGIN, COMMIT, ...). */
cw_pg_class_t cw_pg_command(cw_pg_t *pg, const char *sql, char *err,
    size_t errlen);

/* BEGIN; fn; COMMIT, retried up to attempts times on transient errors
 * with backoff. Returns the class of the final outcome. */
cw_pg_class_t cw_pg_txn(cw_pg_t *pg, cw_pg_txn_fn fn, void *ud,
    int attempts, char *err, size_t errlen);

/* One attempt of BEGIN; fn; COMMIT that does not wait for the COMMIT:
 * CW_PG_OK once it is sent, and the caller may do other work while the
 * server commits (the flush of its WAL to disk, mostly). Until
 * cw_pg_commit_wait the connection is busy: every other call fails. If
 * BEGIN or fn fail, the transaction is rolled back and the class of the
 * error returned. */
cw_pg_class_t cw_pg_txn_send_commit(cw_pg_t *pg, cw_pg_txn_fn fn, void *ud,
    char *err, size_t errlen);

/* The outcome of the COMMIT sent: CW_PG_OK, or the class of its error
 * (TRANSIENT when the connection was lost, and whether it committed is
 * then unknown, as with cw_pg_txn). CW_PG_OK when none was sent. */
cw_pg_class_t cw_pg_commit_wait(cw_pg_t *pg, char *err, size_t errlen);

/* Pure classification helpers. */
cw_pg_class_t cw_pg_classify_sqlstate(const char *sqlstate);
cw_pg_class_t cw_pg_classify(PGconn *conn, const PGresult *res);

PGconn *cw_pg_conn(cw_pg_t *pg);

#endif /* CW_PG_H */
