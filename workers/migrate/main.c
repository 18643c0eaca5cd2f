/*
 * commerce-migrate: applies the numbered SQL migrations of sql/ to the
 * database, in order, each in its own transaction, and records them in
 * schema_migrations with a checksum.
 *
 *   commerce-migrate --pg.conninfo "host=127.0.0.1 port=5432 ..." \
 *       [--sql-dir sql] [--status]
 *
 * Running it again is a no-op. Migrations are written idempotently
 * (IF NOT EXISTS, CREATE OR REPLACE), so a file whose content changed
 * since it was applied is applied again and its checksum updated. A
 * session advisory lock keeps two concurrent runs from interleaving.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <postgresql/libpq-fe.h>
#include <openssl/sha.h>

#include "cw_config.h"
#include "cw_log.h"
#include "cw_pg.h"
#include "cw_worker.h"

#define MIG_MAX_FILES   256
#define MIG_LOCK_KEY    "7262531001"

typedef struct {
    char   name[256];
    char   version[32];
} mig_file_t;


static const cw_opt_t  mig_opts[] = {
    { "sql_dir", CW_OPT_STR, "sql", 0, 0, 0,
      "directory holding NNN_name.sql migrations" },
    { "status", CW_OPT_BOOL, "false", 0, 0, 0,
      "list migrations and whether they are applied; change nothing" },
};

/* A one-shot tool: SIGTERM ends it, and PostgreSQL rolls back the
 * migration in progress. */
static const cw_worker_def_t  mig_worker = {
    "migrate",
    "apply the SQL migrations of sql/ to PostgreSQL",
    mig_opts, sizeof(mig_opts) / sizeof(mig_opts[0]),
    CW_WORKER_PG,
    NULL, 0,
    NULL
};


static const char  mig_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version text PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";


/* Orders migration files by their numeric prefix, then by name. */
static int
mig_cmp(const void *a, const void *b)
{
    const mig_file_t  *x = a, *y = b;
    long long          vx = atoll(x->version), vy = atoll(y->version);

    if (vx != vy) {
        return vx < vy ? -1 : 1;
    }

    return strcmp(x->name, y->name);
}


/* Lists NNN_*.sql files of dir into files, sorted. */
static int
mig_list(const char *dir, mig_file_t *files, size_t *n)
{
    DIR            *d;
    size_t          len, digits;
    struct dirent  *e;

    d = opendir(dir);
    if (d == NULL) {
        cw_log(CW_LOG_ERROR, "cannot open sql dir %s: %s", dir,
               strerror(errno));
        return -1;
    }

    *n = 0;

    while ((e = readdir(d)) != NULL) {
        len = strlen(e->d_name);
        digits = strspn(e->d_name, "0123456789");

        if (digits == 0 || digits >= sizeof(files[0].version)
            || e->d_name[digits] != '_' || len < 5
            || len >= sizeof(files[0].name)
            || strcmp(e->d_name + len - 4, ".sql") != 0)
        {
            continue;
        }

        if (*n == MIG_MAX_FILES) {
            cw_log(CW_LOG_ERROR, "more than %d migrations", MIG_MAX_FILES);
            closedir(d);
            return -1;
        }

        memcpy(files[*n].name, e->d_name, len + 1);
        memcpy(files[*n].version, e->d_name, digits);
        files[*n].version[digits] = '\0';
        (*n)++;
    }

    closedir(d);
    qsort(files, *n, sizeof(files[0]), mig_cmp);

    return 0;
}


/* Reads a whole file into a NUL-terminated heap buffer. */
static char *
mig_read(const char *path)
{
    FILE    *f;
    char    *buf;
    long     size;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        return NULL;
    }

    buf = malloc((size_t) size + 1);
    if (buf != NULL && fread(buf, 1, (size_t) size, f) != (size_t) size) {
        free(buf);
        buf = NULL;
    }

    fclose(f);

    if (buf != NULL) {
        buf[size] = '\0';
    }

    return buf;
}


static void
mig_sha256_hex(const char *s, char out[65])
{
    unsigned char  md[SHA256_DIGEST_LENGTH];
    int            i;

    SHA256((const unsigned char *) s, strlen(s), md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}


/* Runs a multi-statement script (simple query protocol). */
static int
mig_exec(PGconn *conn, const char *sql, const char *what)
{
    PGresult  *res;
    int        ok;

    res = PQexec(conn, sql);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK
         || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        cw_field_t  f[] = { CW_FSTR("step", what) };

        cw_log_kv(CW_LOG_ERROR, f, 1, "migration failed: %s",
                  PQerrorMessage(conn));
    }

    PQclear(res);

    return ok ? 0 : -1;
}


/* The checksum recorded for version, or "" if not applied. */
static int
mig_applied(PGconn *conn, const char *version, char sum[65])
{
    PGresult    *res;
    const char  *params[1] = { version };

    res = PQexecParams(conn, "SELECT checksum FROM schema_migrations"
                       " WHERE version = $1", 1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cw_log(CW_LOG_ERROR, "reading schema_migrations: %s",
               PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }

    sum[0] = '\0';

    if (PQntuples(res) == 1) {
        snprintf(sum, 65, "%s", PQgetvalue(res, 0, 0));
    }

    PQclear(res);

    return 0;
}


/* Applies one file in a transaction with its bookkeeping row. */
static int
mig_apply(PGconn *conn, const mig_file_t *m, const char *sql,
    const char *sum)
{
    PGresult    *res;
    const char  *params[3] = { m->version, m->name, sum };

    if (mig_exec(conn, "BEGIN", m->name) != 0) {
        return -1;
    }

    if (mig_exec(conn, sql, m->name) != 0) {
        mig_exec(conn, "ROLLBACK", m->name);
        return -1;
    }

    res = PQexecParams(conn,
        "INSERT INTO schema_migrations (version, name, checksum)"
        " VALUES ($1, $2, $3) ON CONFLICT (version) DO UPDATE"
        " SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,"
        " applied_at = now()", 3, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cw_log(CW_LOG_ERROR, "recording %s: %s", m->name,
               PQerrorMessage(conn));
        PQclear(res);
        mig_exec(conn, "ROLLBACK", m->name);
        return -1;
    }

    PQclear(res);

    return mig_exec(conn, "COMMIT", m->name);
}


static int
mig_run(PGconn *conn, const char *dir, int status_only)
{
    char         path[4096], sum[65], old[65];
    char        *sql;
    size_t       i, n;
    mig_file_t  *files;
    int          rc = 0, applied = 0;

    files = calloc(MIG_MAX_FILES, sizeof(mig_file_t));
    if (files == NULL || mig_list(dir, files, &n) != 0) {
        free(files);
        return -1;
    }

    if (n == 0) {
        cw_log(CW_LOG_ERROR, "no migrations found in %s", dir);
        free(files);
        return -1;
    }

    for (i = 0; i < n && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);

        sql = mig_read(path);
        if (sql == NULL) {
            cw_log(CW_LOG_ERROR, "cannot read %s: %s", path, strerror(errno));
            rc = -1;
            break;
        }

        mig_sha256_hex(sql, sum);

        if (mig_applied(conn, files[i].version, old) != 0) {
            free(sql);
            rc = -1;
            break;
        }

        if (status_only) {
            printf("%s\t%s\n", files[i].name,
                   old[0] == '\0' ? "pending"
                   : strcmp(old, sum) == 0 ? "applied" : "changed");

        } else if (strcmp(old, sum) != 0) {
            cw_field_t  f[] = { CW_FSTR("migration", files[i].name),
                                CW_FBOOL("reapplied", old[0] != '\0') };

            rc = mig_apply(conn, &files[i], sql, sum);
            if (rc == 0) {
                cw_log_kv(CW_LOG_INFO, f, 2, "applied");
                applied++;
            }
        }

        free(sql);
    }

    free(files);

    if (rc == 0 && !status_only) {
        cw_field_t  f[] = { CW_FINT("applied", applied),
                            CW_FINT("total", (long long) n) };

        cw_log_kv(CW_LOG_INFO, f, 2, "schema up to date");
    }

    return rc;
}


/* A connection, up; NULL (logged) if it cannot be had. */
static cw_pg_t *
mig_connect(const cw_config_t *cfg)
{
    char      err[512];
    cw_pg_t  *pg;

    pg = cw_pg_new_from_config(cfg, "commerce-migrate");
    if (pg == NULL || cw_pg_ensure(pg, err, sizeof(err)) != 0) {
        cw_log(CW_LOG_ERROR, "cannot connect to PostgreSQL: %s",
               pg ? err : "out of memory");
        cw_pg_free(pg);
        return NULL;
    }

    return pg;
}


/* Under the advisory lock, with the bookkeeping table: runs (or, with
 * --status, lists) the migrations. */
static int
mig_migrate(PGconn *conn, const cw_config_t *cfg)
{
    if (mig_exec(conn, "SET client_min_messages = warning", "setup") != 0
        || mig_exec(conn, "SELECT pg_advisory_lock(" MIG_LOCK_KEY ")",
                    "lock") != 0
        || mig_exec(conn, mig_table_sql, "schema_migrations") != 0)
    {
        return -1;
    }

    return mig_run(conn, cw_config_str(cfg, "sql_dir"),
                   cw_config_bool(cfg, "status"));
}


int
main(int argc, char **argv)
{
    int          status;
    cw_pg_t     *pg;
    cw_worker_t  w;

    if (cw_worker_start(&w, &mig_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    pg = mig_connect(w.cfg);
    status = pg != NULL && mig_migrate(cw_pg_conn(pg), w.cfg) == 0 ? 0 : 1;
    cw_pg_free(pg);

    return cw_worker_exit(&w, status);
}
