/*
 * commerce-devbroker: an embedded Kafka cluster for one machine and for
 * tests, built on librdkafka's mock cluster. Clients connect over the
 * real Kafka protocol to loopback TCP ports chosen by the kernel.
 *
 *   commerce-devbroker --brokers 3 --partitions 6 \
 *       --bootstrap-file /tmp/kafka.bootstrap --control /tmp/kafka.ctl
 *
 * The control channel is a unix stream socket taking one command per line:
 *   down <broker_id|all>   disconnect a broker and refuse new connections
 *   up <broker_id|all>     accept connections again
 *   status                 "ok brokers=N up=1,2 down=3 bootstrap=..."
 *   produce-error <code> [n]   the next n (1) Produce requests, whatever
 *                          broker gets them, fail with Kafka error <code>
 *                          (10: MESSAGE_TOO_LARGE)
 * Each command gets one reply line: "ok ..." or "err <reason>".
 *
 * State lives in memory only; a restart starts empty on new ports.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "commerce_contract.h"
#include "cw_buf.h"
#include "cw_config.h"
#include "cw_log.h"
#include "cw_signal.h"
#include "cw_worker.h"

#define DB_MAX_BROKERS   32
#define DB_MAX_CLIENTS   16
#define DB_LINE_MAX      256

typedef struct {
    int       fd;
    char      line[DB_LINE_MAX];
    size_t    len;
} db_client_t;

typedef struct {
    rd_kafka_t               *rk;
    rd_kafka_mock_cluster_t  *mc;
    const char               *bootstraps;
    int                       nbrokers;
    int                       down[DB_MAX_BROKERS + 1];
    const char               *bootstrap_file;
    const char               *control_path;
    int                       control_fd;
    db_client_t               clients[DB_MAX_CLIENTS];
} db_t;

static const cw_opt_t  db_opts[] = {
    { "brokers", CW_OPT_INT, "3", 1, DB_MAX_BROKERS, 0,
      "number of brokers (ids 1..N)" },
    { "partitions", CW_OPT_INT, "6", 1, 1000, 0,
      "partitions per created topic" },
    { "replication", CW_OPT_INT, "0", 0, DB_MAX_BROKERS, 0,
      "replication factor of created topics; 0 means min(3, brokers)" },
    { "topics", CW_OPT_STR,
      COMMERCE_TOPIC_INBOUND "," COMMERCE_TOPIC_EVENTS "," COMMERCE_TOPIC_DLQ
      "," COMMERCE_TOPIC_COMMANDS,
      0, 0, 0, "comma-separated topics to create at start" },
    { "bootstrap_file", CW_OPT_STR, NULL, 0, 0, 0,
      "write the bootstrap server list here (atomically) once the cluster "
      "is up; removed on exit" },
    { "control", CW_OPT_STR, NULL, 0, 0, 0,
      "unix socket path for fault injection commands: down <id|all>, "
      "up <id|all>, status, produce-error <code> [n]" },
};

static const cw_worker_def_t  db_worker = {
    "devbroker",
    "Embedded Kafka cluster (librdkafka mock) on loopback ports, for one "
    "machine and for tests.",
    db_opts, sizeof(db_opts) / sizeof(db_opts[0]),
    CW_WORKER_SIGNALS,
    NULL, 0,
    NULL
};


/* Routes librdkafka's own log lines into our JSON log. */
static void
db_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    cw_field_t  f[] = { CW_FSTR("facility", fac) };

    /* the cluster's own handle never connects anywhere, by design */
    if (strcmp(fac, "CONFWARN") == 0) {
        level = 7;
    }
    cw_log_kv(level <= 3 ? CW_LOG_ERROR : level <= 4 ? CW_LOG_WARN
              : level <= 6 ? CW_LOG_INFO : CW_LOG_DEBUG, f, 1, "rdkafka: %s",
              buf);
}


/* Writes the bootstrap list to path.tmp and renames it, so a reader
 * polling for the file never sees it half written. */
static int
db_write_bootstrap(const char *path, const char *bootstraps)
{
    char   tmp[4096];
    FILE  *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    if (fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}


static int
db_create_topics(db_t *db, const char *list, int partitions, int repl)
{
    rd_kafka_resp_err_t   err;
    cw_field_t            f[3];
    const char           *p, *end;
    char                  name[250];
    size_t                len;

    for (p = list; *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        while (p < end && *p == ' ') {
            p++;
        }
        len = (size_t) (end - p);
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 0) {
            continue;
        }
        if (len >= sizeof(name)) {
            cw_log(CW_LOG_ERROR, "topic name too long: %.*s", (int) len, p);
            return -1;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        err = rd_kafka_mock_topic_create(db->mc, name, partitions, repl);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cw_log(CW_LOG_ERROR, "creating topic %s: %s", name,
                   rd_kafka_err2str(err));
            return -1;
        }
        f[0] = CW_FSTR("topic", name);
        f[1] = CW_FINT("partitions", partitions);
        f[2] = CW_FINT("replication", repl);
        cw_log_kv(CW_LOG_INFO, f, 3, "topic created");
    }
    return 0;
}


static int
db_control_listen(const char *path)
{
    struct sockaddr_un  sa;
    struct stat         st;
    int                 fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        cw_log(CW_LOG_ERROR, "control socket path too long: %s", path);
        return -1;
    }
    /* a socket left by a crashed run is replaced; any other file is not */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            cw_log(CW_LOG_ERROR, "control path %s exists and is not a "
                   "socket", path);
            return -1;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cw_log(CW_LOG_ERROR, "control socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || listen(fd, 8) != 0)
    {
        cw_log(CW_LOG_ERROR, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}


/* Applies down/up to one broker id or to all of them. */
static int
db_set_state(db_t *db, const char *arg, int down, cw_buf_t *reply)
{
    rd_kafka_resp_err_t   err;
    char                 *end;
    long                  id;
    int                   first, last, i;

    if (strcmp(arg, "all") == 0) {
        first = 1;
        last = db->nbrokers;
    } else {
        id = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || id < 1 || id > db->nbrokers) {
            cw_buf_printf(reply, "err unknown broker \"%s\" (1..%d or all)",
                          arg, db->nbrokers);
            return -1;
        }
        first = last = (int) id;
    }
    for (i = first; i <= last; i++) {
        err = down ? rd_kafka_mock_broker_set_down(db->mc, i)
                   : rd_kafka_mock_broker_set_up(db->mc, i);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            cw_buf_printf(reply, "err broker %d: %s", i,
                          rd_kafka_err2str(err));
            return -1;
        }
        db->down[i] = down;
    }
    cw_log(CW_LOG_INFO, "broker %s set %s", arg, down ? "down" : "up");
    cw_buf_puts(reply, "ok");
    return 0;
}


/* produce-error <code> [n]: a fault the tests need (a broker's refusal) */
static void
db_produce_error(db_t *db, const char *code, const char *count,
    cw_buf_t *reply)
{
    long                  c, n;
    char                 *end;
    size_t                i;
    rd_kafka_resp_err_t   errs[100];

    c = strtol(code, &end, 10);
    if (*code == '\0' || *end != '\0' || c <= 0 || c > 32767) {
        cw_buf_printf(reply, "err not a Kafka error code: \"%s\"", code);
        return;
    }

    n = 1;
    if (count != NULL) {
        n = strtol(count, &end, 10);
        if (*count == '\0' || *end != '\0' || n < 1 || n > 100) {
            cw_buf_printf(reply, "err count \"%s\" is not 1..100", count);
            return;
        }
    }

    for (i = 0; i < (size_t) n; i++) {
        errs[i] = (rd_kafka_resp_err_t) c;
    }

    /* ApiKey 0: Produce */
    rd_kafka_mock_push_request_errors_array(db->mc, 0, (size_t) n, errs);

    cw_log(CW_LOG_INFO, "the next %ld Produce requests fail with %s", n,
           rd_kafka_err2str((rd_kafka_resp_err_t) c));
    cw_buf_puts(reply, "ok");
}


static void
db_status(db_t *db, cw_buf_t *reply)
{
    int  i, n;

    cw_buf_printf(reply, "ok brokers=%d up=", db->nbrokers);
    for (i = 1, n = 0; i <= db->nbrokers; i++) {
        if (!db->down[i]) {
            cw_buf_printf(reply, "%s%d", n++ ? "," : "", i);
        }
    }
    cw_buf_puts(reply, " down=");
    for (i = 1, n = 0; i <= db->nbrokers; i++) {
        if (db->down[i]) {
            cw_buf_printf(reply, "%s%d", n++ ? "," : "", i);
        }
    }
    cw_buf_printf(reply, " bootstrap=%s", db->bootstraps);
}


static void
db_command(db_t *db, char *line, cw_buf_t *reply)
{
    char  *cmd, *arg, *extra, *more, *save = NULL;

    cmd = strtok_r(line, " \t\r", &save);
    arg = strtok_r(NULL, " \t\r", &save);
    extra = strtok_r(NULL, " \t\r", &save);
    more = strtok_r(NULL, " \t\r", &save);

    if (cmd == NULL) {
        cw_buf_puts(reply, "err empty command");
    } else if (strcmp(cmd, "status") == 0 && arg == NULL) {
        db_status(db, reply);
    } else if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0)
               && arg != NULL && extra == NULL)
    {
        db_set_state(db, arg, cmd[0] == 'd', reply);
    } else if (strcmp(cmd, "produce-error") == 0 && arg != NULL
               && more == NULL)
    {
        db_produce_error(db, arg, extra, reply);
    } else {
        cw_buf_puts(reply, "err usage: down <id|all> | up <id|all> | status"
                    " | produce-error <code> [n]");
    }
    cw_buf_putc(reply, '\n');
}


static void
db_client_close(db_client_t *cl)
{
    close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}


/* Reads what the client sent and answers every complete line. Replies
 * are short, so a blocking-free send that fails just drops the client. */
static void
db_client_read(db_t *db, db_client_t *cl)
{
    cw_buf_t   reply;
    ssize_t    n;
    char      *nl;
    size_t     used;

    n = read(cl->fd, cl->line + cl->len, sizeof(cl->line) - 1 - cl->len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        db_client_close(cl);
        return;
    }
    cl->len += (size_t) n;
    cl->line[cl->len] = '\0';

    cw_buf_init(&reply);
    while ((nl = strchr(cl->line, '\n')) != NULL) {
        *nl = '\0';
        used = (size_t) (nl - cl->line) + 1;
        db_command(db, cl->line, &reply);
        memmove(cl->line, cl->line + used, cl->len - used + 1);
        cl->len -= used;
    }
    if (cl->len == sizeof(cl->line) - 1) {
        cw_buf_puts(&reply, "err line too long\n");
        cl->len = 0;
    }
    if (reply.len > 0
        && send(cl->fd, reply.data, reply.len, MSG_NOSIGNAL) != (ssize_t)
           reply.len)
    {
        db_client_close(cl);
    }
    cw_buf_free(&reply);
}


static void
db_accept(db_t *db)
{
    int  fd, i;

    fd = accept4(db->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    for (i = 0; i < DB_MAX_CLIENTS; i++) {
        if (db->clients[i].fd < 0) {
            db->clients[i].fd = fd;
            db->clients[i].len = 0;
            return;
        }
    }
    (void) !write(fd, "err too many control clients\n", 29);
    close(fd);
}


/* Waits for a stop signal while serving control clients. */
static void
db_serve(db_t *db)
{
    struct pollfd  pfd[2 + DB_MAX_CLIENTS];
    int            map[2 + DB_MAX_CLIENTS];
    int            n, i;

    while (!cw_signal_stop_requested()) {
        n = 0;
        pfd[n].fd = cw_signal_fd();
        pfd[n++].events = POLLIN;
        if (db->control_fd >= 0) {
            pfd[n].fd = db->control_fd;
            pfd[n++].events = POLLIN;
        }
        for (i = 0; i < DB_MAX_CLIENTS; i++) {
            if (db->clients[i].fd >= 0) {
                map[n] = i;
                pfd[n].fd = db->clients[i].fd;
                pfd[n++].events = POLLIN;
            }
        }
        if (poll(pfd, (nfds_t) n, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            cw_log(CW_LOG_ERROR, "poll: %s", strerror(errno));
            return;
        }
        if (pfd[0].revents) {
            cw_signal_drain();
        }
        for (i = 1; i < n; i++) {
            if (pfd[i].revents == 0) {
                continue;
            }
            if (pfd[i].fd == db->control_fd) {
                db_accept(db);
            } else {
                db_client_read(db, &db->clients[map[i]]);
            }
        }
    }
}


/* The cluster and its topics. */
static int
db_start(db_t *db, const cw_config_t *cfg)
{
    rd_kafka_conf_t  *conf;
    char              errstr[512];
    int               repl;

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, db_rdkafka_log);
    if (rd_kafka_conf_set(conf, "client.id", "commerce-devbroker", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK)
    {
        cw_log(CW_LOG_ERROR, "rdkafka conf: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    db->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (db->rk == NULL) {
        cw_log(CW_LOG_ERROR, "rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    db->nbrokers = (int) cw_config_int(cfg, "brokers");
    db->mc = rd_kafka_mock_cluster_new(db->rk, db->nbrokers);
    if (db->mc == NULL) {
        cw_log(CW_LOG_ERROR, "mock cluster could not be created");
        return -1;
    }
    db->bootstraps = rd_kafka_mock_cluster_bootstraps(db->mc);

    repl = (int) cw_config_int(cfg, "replication");
    if (repl == 0) {
        repl = db->nbrokers < 3 ? db->nbrokers : 3;
    }
    if (repl > db->nbrokers) {
        cw_log(CW_LOG_ERROR, "replication %d exceeds brokers %d", repl,
               db->nbrokers);
        return -1;
    }
    return db_create_topics(db, cw_config_str(cfg, "topics"),
                            (int) cw_config_int(cfg, "partitions"), repl);
}


/* Up and reachable: the cluster, the control socket and the bootstrap
 * file, in that order. db_stop undoes what was done, also after a
 * failure. */
static int
db_open(db_t *db, const cw_config_t *cfg)
{
    int         i;
    cw_field_t  f[2];

    memset(db, 0, sizeof(*db));
    db->control_fd = -1;
    for (i = 0; i < DB_MAX_CLIENTS; i++) {
        db->clients[i].fd = -1;
    }

    db->bootstrap_file = cw_config_str(cfg, "bootstrap_file");
    db->control_path = cw_config_str(cfg, "control");
    if (db_start(db, cfg) != 0) {
        return -1;
    }
    if (db->control_path != NULL && db->control_path[0] != '\0') {
        db->control_fd = db_control_listen(db->control_path);
        if (db->control_fd < 0) {
            return -1;
        }
    }
    if (db->bootstrap_file != NULL && db->bootstrap_file[0] != '\0'
        && db_write_bootstrap(db->bootstrap_file, db->bootstraps) != 0)
    {
        cw_log(CW_LOG_ERROR, "writing bootstrap file %s: %s",
               db->bootstrap_file, strerror(errno));
        return -1;
    }

    f[0] = CW_FSTR("bootstrap", db->bootstraps);
    f[1] = CW_FINT("brokers", db->nbrokers);
    cw_log_kv(CW_LOG_INFO, f, 2, "cluster up");
    return 0;
}


static void
db_stop(db_t *db)
{
    int  i;

    if (db->bootstrap_file != NULL && db->bootstrap_file[0] != '\0') {
        unlink(db->bootstrap_file);
    }
    for (i = 0; i < DB_MAX_CLIENTS; i++) {
        if (db->clients[i].fd >= 0) {
            db_client_close(&db->clients[i]);
        }
    }
    if (db->control_fd >= 0) {
        close(db->control_fd);
        unlink(db->control_path);
    }
    if (db->mc != NULL) {
        rd_kafka_mock_cluster_destroy(db->mc);
    }
    if (db->rk != NULL) {
        rd_kafka_destroy(db->rk);
    }
}


int
main(int argc, char **argv)
{
    int          status = 1;
    db_t         db;
    cw_worker_t  w;

    if (cw_worker_start(&w, &db_worker, argc, argv) != 0) {
        return cw_worker_exit(&w, w.status);
    }

    if (db_open(&db, w.cfg) == 0) {
        db_serve(&db);
        cw_log(CW_LOG_INFO, "stopping on signal %d", cw_signal_which());
        status = 0;
    }

    db_stop(&db);

    return cw_worker_exit(&w, status);
}
