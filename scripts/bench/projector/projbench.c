/*
 * projbench: the load side of the projector benchmark (run.sh builds it
 * into build/bench/projector/).
 *
 *   projbench feed BROKERS TOPIC N CONNINFO GROUP READY PIDFILE RSS_AT
 *       [BACKLOG]
 *       produces N mixed canonical messages (item upserts, price sets,
 *       stock counts, stock movements over 10k items with two variants
 *       each and 3 stores), first BACKLOG of them, then always enough to
 *       stay BACKLOG/2..BACKLOG ahead of the projector's committed offsets
 *       (see cmd_feed); prints when the first batch committed, when all
 *       did, when the outbox was empty again, and the projector's VmRSS
 *       at RSS_AT messages and at the end (key=value lines).
 *
 *   projbench lat HOST:PORT RATE SECONDS STORES SKUS (post PATH | kafka
 *       BROKERS TOPIC)
 *       sends stock counts at a steady RATE per second, through nginx's
 *       webhook ingress (POST PATH, timed from the 202) or straight to
 *       Kafka (timed from the broker's acknowledgement), and polls
 *       GET /v1/stores/{store}/inventory/{sku} on HOST:PORT every
 *       millisecond until the new count is visible (per store the oldest
 *       message not yet seen: a store's messages show in order); prints
 *       p50/p90/p99/max of those delays.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <postgresql/libpq-fe.h>


static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void
die(const char *fmt, const char *arg)
{
    fprintf(stderr, "projbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}


static uint64_t  rng_state = 88172645463325252ULL;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}


typedef void (*dr_fn)(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque);


static rd_kafka_t *
producer(const char *brokers, dr_fn dr, int linger)
{
    char              err[256], v[16];
    rd_kafka_t       *rk;
    rd_kafka_conf_t  *conf = rd_kafka_conf_new();

    snprintf(v, sizeof(v), "%d", linger);

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err,
                          sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "linger.ms", v, err, sizeof(err))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000",
                             err, sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "batch.num.messages", "10000", err,
                             sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err))
           != RD_KAFKA_CONF_OK)
    {
        die("kafka config: %s", err);
    }

    if (dr != NULL) {
        rd_kafka_conf_set_dr_msg_cb(conf, dr);
    }

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        die("kafka: %s", err);
    }

    return rk;
}


static void
produce(rd_kafka_t *rk, const char *topic, const char *key, const char *body,
    size_t len, const char *delivery, void *opaque)
{
    rd_kafka_resp_err_t  e;

    for ( ;; ) {
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *) body, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADER("source", "canonical", -1),
                              RD_KAFKA_V_HEADER("delivery_id", delivery, -1),
                              RD_KAFKA_V_OPAQUE(opaque),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            break;
        }
        rd_kafka_poll(rk, 10);
    }

    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        die("produce: %s", rd_kafka_err2str(e));
    }
}


static int  fill_failed;

static void
fill_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        fill_failed++;
    }
}


/* The mix: 5% item upserts (two variants with prices, so three commands),
 * 15% price sets (half of them store overrides), 35% absolute counts, 45%
 * movements; movements are sales only where the tracked count allows, so
 * that none is dead-lettered. Keys keep each store's stock on one
 * partition (and so in order), items and base prices on the merchant's.
 * The catalog comes first: the first `items` messages upsert every item
 * once, a steady state where stock moves for skus that exist (the
 * projector parks prices and stock of skus no item has; fed on other
 * partitions than the items, those would overtake their upserts). */
typedef struct {
    long    i, items, stores;
    long   *on_hand;
    char    body[2048], key[32], delivery[64];
    int     len;
} gen_t;


static void
gen_init(gen_t *g, long items, long stores, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->items = items;
    g->stores = stores;
    rng_state ^= seed;
    g->on_hand = calloc((size_t) (items * 2 * stores), sizeof(long));
    if (g->on_hand == NULL) {
        die("%s", "out of memory");
    }
}


static void
gen_next(gen_t *g)
{
    char       sku[32], store[32];
    long       item, v, sidx, i = g->i++;
    uint64_t   r;

    r = rng() % 100;
    item = (long) (rng() % (uint64_t) g->items);
    v = (long) (rng() % 2);
    snprintf(sku, sizeof(sku), "SKU-%05ld-%c", item, v ? 'B' : 'A');
    sidx = (long) (rng() % (uint64_t) g->stores);
    snprintf(store, sizeof(store), "store-%ld", 1 + sidx);
    snprintf(g->delivery, sizeof(g->delivery), "bench-%ld", i);

    if (i < g->items) {
        item = i;
        r = 0;
    }

    if (r < 5) {
        snprintf(g->key, sizeof(g->key), "m-1");
        g->len = snprintf(g->body, sizeof(g->body),
            "{\"type\":\"item.upsert\",\"merchant_id\":\"m-1\","
            "\"item\":{\"id\":\"item-%05ld\",\"sku\":\"SKU-%05ld\","
            "\"name\":\"Item %ld rev %ld\",\"brand\":\"Kestrel\","
            "\"description\":\"A benchmark item with a description of "
            "realistic length, revision %ld.\",\"tags\":[\"bench\","
            "\"t%ld\"],\"attributes\":{\"material\":\"mesh\"},"
            "\"variants\":[{\"sku\":\"SKU-%05ld-A\",\"name\":\"S\","
            "\"options\":{\"size\":\"S\"},\"price\":{\"amount\":"
            "\"%ld.%02ld\",\"currency\":\"EUR\"}},{\"sku\":"
            "\"SKU-%05ld-B\",\"name\":\"M\",\"options\":{\"size\":\"M\"},"
            "\"price\":{\"amount\":\"%ld.90\",\"currency\":\"EUR\"}}],"
            "\"addon_groups\":[{\"id\":\"wrap\",\"name\":\"Gift wrap\","
            "\"min\":0,\"max\":1,\"addons\":[{\"id\":\"w1\","
            "\"name\":\"Paper\"}]}]}}",
            item, item, item, i, i, item % 7, item, 10 + item % 90,
            (long) (rng() % 100), item, 11 + item % 90);

    } else if (r < 12) {
        snprintf(g->key, sizeof(g->key), "m-1");
        g->len = snprintf(g->body, sizeof(g->body),
            "{\"type\":\"price.set\",\"sku\":\"%s\",\"price\":"
            "{\"amount\":\"%ld.%02ld\",\"currency\":\"EUR\"}}",
            sku, 5 + (long) (rng() % 95), (long) (rng() % 100));

    } else if (r < 20) {
        snprintf(g->key, sizeof(g->key), "%s", store);
        g->len = snprintf(g->body, sizeof(g->body),
            "{\"type\":\"price.set\",\"store_id\":\"%s\","
            "\"sku\":\"%s\",\"price\":{\"amount\":\"%ld.%02ld\","
            "\"currency\":\"EUR\"}}",
            store, sku, 5 + (long) (rng() % 95), (long) (rng() % 100));

    } else {
        long  *oh = &g->on_hand[(item * 2 + v) * g->stores + sidx];
        long   d;

        snprintf(g->key, sizeof(g->key), "%s", store);

        if (r < 55) {
            *oh = (long) (rng() % 100);
            g->len = snprintf(g->body, sizeof(g->body),
                "{\"type\":\"stock.set\",\"store_id\":\"%s\","
                "\"sku\":\"%s\",\"on_hand\":%ld,\"unit\":\"each\"}",
                store, sku, *oh);
        } else {
            d = *oh > 0 && rng() % 2 ? -1 - (long) (rng() % 3)
                                     : 1 + (long) (rng() % 10);
            if (*oh + d < 0) {
                d = -*oh;
            }
            *oh += d;
            g->len = snprintf(g->body, sizeof(g->body),
                "{\"type\":\"stock.adjust\",\"store_id\":\"%s\","
                "\"sku\":\"%s\",\"delta\":%ld,\"reason\":\"%s\"}",
                store, sku, d, d < 0 ? "sale" : "receipt");
        }
    }
}


static long
rss_kb(long pid)
{
    char   path[64], line[256];
    long   kb = -1;
    FILE  *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = atol(line + 6);
        }
    }

    fclose(f);
    return kb;
}


static long long
query_num(PGconn *pg, const char *sql, const char *p1, const char *p2)
{
    const char  *p[2] = { p1, p2 };
    long long    v;
    PGresult    *res;

    res = PQexecParams(pg, sql, p1 ? 2 : 0, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        die("query: %s", PQerrorMessage(pg));
    }
    v = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
    PQclear(res);

    return v;
}


static long
read_pid(const char *path)
{
    long   pid = 0;
    FILE  *f = fopen(path, "r");

    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }

    return pid;
}


/*
 * feed: the mock broker keeps about 5 MB per partition and drops older
 * segments, so a million messages cannot wait in the topic at once.
 * feed pre-fills BACKLOG messages, touches READY, and from then on keeps
 * between BACKLOG/2 and BACKLOG messages ahead of what the projector
 * committed: to the projector this is a pre-filled topic (it never waits
 * for input), and the generator's state stays consistent with what is
 * consumed. Meanwhile it watches consumer_offsets like a stopwatch.
 */
static int
cmd_feed(int argc, char **argv)
{
    long        pid = 0, rss_at, rss_mid = -1, rss_end, backlog;
    gen_t       g;
    FILE       *f;
    PGconn     *pg;
    double      t0, t_first = 0, t_mid = 0, t_end, t_drained;
    long long   n, done = 0, first = 0;
    rd_kafka_t *rk;
    const char *topic;

    if (argc < 8) {
        die("%s", "feed BROKERS TOPIC N CONNINFO GROUP READY PIDFILE RSS_AT"
            " [BACKLOG]");
    }

    topic = argv[1];
    n = atoll(argv[2]);
    rss_at = atol(argv[7]);
    backlog = argc > 8 ? atol(argv[8]) : 16000;

    pg = PQconnectdb(argv[3]);
    if (PQstatus(pg) != CONNECTION_OK) {
        die("connect: %s", PQerrorMessage(pg));
    }

    gen_init(&g, 10000, 3, 1);
    rk = producer(argv[0], fill_dr, 5);

    /*
     * The catalog alone until the projector has it all, fed 3000 at a
     * time: all on the merchant's partition, and the dev broker drops a
     * partition's oldest messages past a few MB, consumed or not.
     */
    while (g.i < n && g.i < backlog && g.i < 3000) {
        gen_next(&g);
        produce(rk, topic, g.key, g.body, (size_t) g.len, g.delivery, NULL);
    }

    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_poll(rk, 50);
    }

    f = fopen(argv[5], "w");
    if (f == NULL) {
        die("cannot create %s", argv[5]);
    }
    fclose(f);

    while ((pid = read_pid(argv[6])) == 0) {
        usleep(10000);
    }

    t0 = now_s();

    for ( ;; ) {
        done = query_num(pg, "SELECT sum(next_offset) FROM consumer_offsets"
                         " WHERE group_id = $1 AND topic = $2", argv[4],
                         argv[1]);

        if (done > 0 && t_first == 0) {
            t_first = now_s();
            first = done;
        }

        if (rss_mid < 0 && done >= rss_at) {
            rss_mid = rss_kb(pid);
            t_mid = now_s();
        }

        if (done >= n) {
            break;
        }

        if (kill((pid_t) pid, 0) != 0) {
            die("%s", "the projector exited");
        }

        if (done < g.items && g.i < g.items && g.i - done < 1500) {
            while (g.i < n && g.i < g.items && g.i - done < 3000) {
                gen_next(&g);
                produce(rk, topic, g.key, g.body, (size_t) g.len,
                        g.delivery, NULL);
            }

        } else if (done >= g.items && g.i - done < backlog / 2) {
            while (g.i < n && g.i - done < backlog) {
                gen_next(&g);
                produce(rk, topic, g.key, g.body, (size_t) g.len,
                        g.delivery, NULL);
            }
        }

        rd_kafka_poll(rk, 0);
        usleep(20000);
    }

    t_end = now_s();
    rss_end = rss_kb(pid);

    while (query_num(pg, "SELECT count(*) FROM outbox", NULL, NULL) > 0) {
        usleep(20000);
    }

    t_drained = now_s();

    printf("messages=%lld\n", n);
    printf("produce_failed=%d\n", fill_failed);
    printf("startup_s=%.3f\n", t_first - t0);
    printf("first_batch_messages=%lld\n", first);
    printf("committed_s=%.3f\n", t_end - t0);
    printf("drained_s=%.3f\n", t_drained - t0);
    printf("rate_sustained=%.0f\n",
           t_end > t_first ? (double) (n - first) / (t_end - t_first) : 0);
    printf("rate_total=%.0f\n", (double) n / (t_end - t0));
    printf("rate_drained=%.0f\n", (double) n / (t_drained - t0));
    printf("rate_drained_sustained=%.0f\n",
           t_drained > t_first
           ? (double) (n - first) / (t_drained - t_first) : 0);
    printf("rss_at=%ld\nrss_mid_kb=%ld\nrss_mid_s=%.3f\nrss_end_kb=%ld\n",
           rss_at, rss_mid, t_mid - t0, rss_end);
    printf("events=%lld\n", query_num(pg, "SELECT count(*) FROM event_store",
                                      NULL, NULL));
    printf("dead_letters=%lld\n", query_num(pg, "SELECT count(*) FROM"
                                            " dead_letters", NULL, NULL));
    printf("archived=%lld\n", query_num(pg, "SELECT count(*) FROM"
                                        " inbound_archive", NULL, NULL));
    PQfinish(pg);
    rd_kafka_destroy(rk);
    free(g.on_hand);

    return fill_failed ? 1 : 0;
}


/* ------------------------------------------------------------------ */
/* lat: steady stock counts, each polled through nginx until visible.  */

#define LAT_CONNS   64

typedef struct {
    int      fd;
    int      busy;
    long     ev;          /* event of the request in flight */
    int      post;        /* 1: the POST of ev, 0: a GET polling ev */
    char     out[2048];
    size_t   olen, osent;
    char     in[8192];
    size_t   ilen;
} lat_conn_t;

typedef struct {
    double   due;         /* when to send / poll next */
    double   sent;        /* POST written or produce called */
    double   t0;          /* 202 or broker acknowledgement */
    double   lat;
    int      state;       /* 0 unsent, 1 sent, 2 polling, 3 done */
    long     value;
    int      store;
    int      sku;
} lat_ev_t;

static struct sockaddr_in  lat_addr;
static lat_conn_t          lat_conns[LAT_CONNS];
static lat_ev_t           *lat_evs;
static char                lat_host[64];


static int
lat_connect(void)
{
    int  fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &lat_addr,
                          sizeof(lat_addr)) != 0)
    {
        die("connect: %s", strerror(errno));
    }

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);

    return fd;
}


/* POSTs use connections 0..LAT_CONNS-3, GETs the last two: polling is
 * capped at two requests in flight so that the poller does not compete
 * with the pipeline it measures. */
static lat_conn_t *
lat_idle(int post)
{
    int  i, from = post ? 0 : LAT_CONNS - 2, to = post ? LAT_CONNS - 2
                                                       : LAT_CONNS;

    for (i = from; i < to; i++) {
        if (!lat_conns[i].busy) {
            if (lat_conns[i].fd < 0) {
                lat_conns[i].fd = lat_connect();
            }
            return &lat_conns[i];
        }
    }

    return NULL;
}


static void
lat_send(lat_conn_t *c)
{
    ssize_t  n;

    while (c->osent < c->olen) {
        n = write(c->fd, c->out + c->osent, c->olen - c->osent);
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            die("write: %s", strerror(errno));
        }
        c->osent += (size_t) n;
    }
}


static void
lat_request(lat_conn_t *c, long ev, int post, const char *path)
{
    char       body[256];
    int        blen;
    lat_ev_t  *e = &lat_evs[ev];

    c->busy = 1;
    c->ev = ev;
    c->post = post;
    c->ilen = 0;
    c->osent = 0;

    if (post) {
        blen = snprintf(body, sizeof(body),
                        "{\"type\":\"stock.set\",\"store_id\":\"lat-%d\","
                        "\"sku\":\"LAT-%04d\",\"on_hand\":%ld}",
                        e->store, e->sku, e->value);
        c->olen = (size_t) snprintf(c->out, sizeof(c->out),
                                    "POST %s HTTP/1.1\r\nHost: %s\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Webhook-Id: lat-%ld-%ld\r\n"
                                    "X-Store: lat-%d\r\n"
                                    "Content-Length: %d\r\n\r\n%s",
                                    path, lat_host, (long) getpid(), ev,
                                    e->store, blen, body);
    } else {
        c->olen = (size_t) snprintf(c->out, sizeof(c->out),
                                    "GET /v1/stores/lat-%d/inventory/"
                                    "LAT-%04d HTTP/1.1\r\nHost: %s\r\n\r\n",
                                    e->store, e->sku, lat_host);
    }

    lat_send(c);
}


/* A whole response in c->in: returns its length, 0 if more is needed. */
static size_t
lat_response(lat_conn_t *c, int *status, const char **body)
{
    char    *hend, *cl;
    size_t   hlen, blen;

    c->in[c->ilen] = '\0';
    hend = strstr(c->in, "\r\n\r\n");
    if (hend == NULL) {
        return 0;
    }

    hlen = (size_t) (hend + 4 - c->in);
    cl = strcasestr(c->in, "\r\nContent-Length:");
    blen = cl != NULL && cl < hend ? (size_t) atol(cl + 17) : 0;

    if (c->ilen < hlen + blen) {
        return 0;
    }

    *status = atoi(c->in + 9);
    *body = c->in + hlen;

    return hlen + blen;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


static void
lat_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    lat_ev_t  *e = m->_private;

    if (m->err) {
        die("delivery: %s", rd_kafka_err2str(m->err));
    }

    e->t0 = now_s();
    e->due = e->t0;
    e->state = 2;
}


static int
cmd_lat(int argc, char **argv)
{
    int            i, status, nfd, stores, skus, post, errors = 0;
    char          *blocked;
    long           ev, n, sent = 0, done = 0, visible, warm;
    char          *colon, body[256], key[32], delivery[64];
    double         rate, secs, start, now, next, *lats, poll_gap = 0.001;
    double         wall0, mono0;
    const char    *samples;
    size_t         rlen;
    ssize_t        r;
    lat_ev_t      *e;
    lat_conn_t    *c;
    rd_kafka_t    *rk = NULL;
    const char    *path = NULL, *topic = NULL, *rb, *p;
    struct pollfd  pfd[LAT_CONNS];
    struct timespec  ts;

    if (argc < 7) {
        die("%s", "lat HOST:PORT RATE SECONDS STORES SKUS (post PATH"
            " | kafka BROKERS TOPIC)");
    }

    snprintf(lat_host, sizeof(lat_host), "%s", argv[0]);
    colon = strchr(argv[0], ':');
    if (colon == NULL) {
        die("bad address %s", argv[0]);
    }
    *colon = '\0';
    lat_addr.sin_family = AF_INET;
    lat_addr.sin_port = htons((uint16_t) atoi(colon + 1));
    inet_pton(AF_INET, argv[0], &lat_addr.sin_addr);

    rate = atof(argv[1]);
    secs = atof(argv[2]);
    stores = atoi(argv[3]);
    skus = atoi(argv[4]);
    post = strcmp(argv[5], "post") == 0;

    if (post) {
        path = argv[6];
    } else {
        if (argc < 8) {
            die("%s", "kafka needs BROKERS TOPIC");
        }
        rk = producer(argv[6], lat_dr, 0);
        topic = argv[7];
    }

    n = (long) (rate * secs);
    warm = (long) rate;             /* the first second is not counted */
    lat_evs = calloc((size_t) n, sizeof(*lat_evs));
    lats = calloc((size_t) n, sizeof(*lats));
    blocked = calloc((size_t) stores, 1);
    if (lat_evs == NULL || lats == NULL || blocked == NULL) {
        die("%s", "out of memory");
    }

    for (i = 0; i < LAT_CONNS; i++) {
        lat_conns[i].fd = -1;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    mono0 = now_s();
    wall0 = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
    start = now_s() + 0.1;

    for (ev = 0; ev < n; ev++) {
        lat_evs[ev].due = start + (double) ev / rate;
        lat_evs[ev].store = (int) (ev % stores);
        lat_evs[ev].sku = (int) ((ev / stores) % skus);
        lat_evs[ev].value = 1000000 + ev;     /* increasing per sku */
    }

    while (done < n) {
        now = now_s();

        /* Send what is due. */
        while (sent < n && lat_evs[sent].due <= now) {
            e = &lat_evs[sent];

            if (post) {
                c = lat_idle(1);
                if (c == NULL) {
                    break;
                }
                lat_request(c, sent, 1, path);
            } else {
                snprintf(key, sizeof(key), "lat-%d", e->store);
                snprintf(delivery, sizeof(delivery), "lat-%ld-%ld",
                         (long) getpid(), sent);
                rlen = (size_t) snprintf(body, sizeof(body),
                    "{\"type\":\"stock.set\",\"store_id\":\"lat-%d\","
                    "\"sku\":\"LAT-%04d\",\"on_hand\":%ld}",
                    e->store, e->sku, e->value);
                produce(rk, topic, key, body, rlen, delivery, e);
            }

            e->sent = now;
            e->state = 1;
            sent++;
        }

        if (rk != NULL) {
            rd_kafka_poll(rk, 0);
        }

        /* Poll what is waiting to become visible: per store only the
         * oldest message not yet seen. A store's messages share a Kafka
         * key, so they are committed and written in order, and a later
         * one cannot show before an earlier one: polling it earlier
         * would only add requests that compete with what is measured. */
        memset(blocked, 0, (size_t) stores * sizeof(*blocked));
        for (ev = done; ev < sent; ev++) {
            e = &lat_evs[ev];
            if (e->state == 3 || e->state == 0) {
                continue;
            }
            if (blocked[e->store]) {
                continue;
            }
            blocked[e->store] = 1;
            if (e->state != 2 || e->due > now) {
                continue;
            }
            for (i = 0; i < LAT_CONNS; i++) {
                if (lat_conns[i].busy && lat_conns[i].ev == ev
                    && !lat_conns[i].post)
                {
                    break;
                }
            }
            if (i < LAT_CONNS) {
                continue;               /* a GET of it is in flight */
            }
            c = lat_idle(0);
            if (c == NULL) {
                break;
            }
            lat_request(c, ev, 0, NULL);
        }

        while (done < n && lat_evs[done].state == 3) {
            done++;
        }

        /* Wait for I/O or the next deadline (at most 1 ms). */
        nfd = 0;
        for (i = 0; i < LAT_CONNS; i++) {
            if (lat_conns[i].busy) {
                pfd[nfd].fd = lat_conns[i].fd;
                pfd[nfd].events = POLLIN
                                  | (lat_conns[i].osent < lat_conns[i].olen
                                     ? POLLOUT : 0);
                pfd[nfd].revents = 0;
                nfd++;
            }
        }

        next = sent < n ? lat_evs[sent].due - now_s() : poll_gap;
        if (next > poll_gap) {
            next = poll_gap;
        }
        if (next < 0) {
            next = 0;
        }
        ts.tv_sec = 0;
        ts.tv_nsec = (long) (next * 1e9);
        if (ppoll(pfd, (nfds_t) nfd, &ts, NULL) < 0 && errno != EINTR) {
            die("poll: %s", strerror(errno));
        }

        for (i = 0; i < LAT_CONNS; i++) {
            c = &lat_conns[i];
            if (!c->busy) {
                continue;
            }

            lat_send(c);

            r = read(c->fd, c->in + c->ilen, sizeof(c->in) - 1 - c->ilen);
            if (r < 0 && errno == EAGAIN) {
                continue;
            }
            if (r <= 0) {
                die("%s", "nginx closed a connection");
            }
            c->ilen += (size_t) r;

            if (lat_response(c, &status, &rb) == 0) {
                continue;
            }

            c->busy = 0;
            e = &lat_evs[c->ev];
            now = now_s();

            if (c->post) {
                if (status != 202) {
                    errors++;
                    fprintf(stderr, "POST answered %d: %s\n", status, rb);
                    e->state = 3;
                    e->lat = -1;
                    continue;
                }
                e->t0 = now;
                e->due = now;
                e->state = 2;
                continue;
            }

            p = status == 200 ? strstr(rb, "\"on_hand\":") : NULL;
            visible = p != NULL ? atol(p + 10) : -1;

            if (visible >= e->value) {
                e->lat = now - e->t0;
                e->state = 3;
            } else {
                e->due = now + poll_gap;
            }
        }
    }

    for (ev = warm, i = 0; ev < n; ev++) {
        if (lat_evs[ev].lat >= 0) {
            lats[i++] = lat_evs[ev].lat * 1000;
        }
    }

    qsort(lats, (size_t) i, sizeof(double), cmp_double);

    /* Every event, for finding when a slow one was sent (the projector's
     * log has the same clock): wall time of the send (epoch s), store,
     * POST or produce until acknowledged (ms), then until visible (ms). */
    samples = getenv("PROJBENCH_SAMPLES");
    if (samples != NULL && *samples != '\0') {
        FILE  *f = fopen(samples, "w");

        if (f == NULL) {
            die("cannot write %s", samples);
        }
        fprintf(f, "# sent_epoch_s store ack_ms visible_ms\n");
        for (ev = 0; ev < n; ev++) {
            e = &lat_evs[ev];
            fprintf(f, "%.3f %d %.2f %.2f\n", wall0 + (e->sent - mono0),
                    e->store, (e->t0 - e->sent) * 1000,
                    e->lat >= 0 ? e->lat * 1000 : -1.0);
        }
        if (fclose(f) != 0) {
            die("cannot write %s", samples);
        }
    }

    printf("events=%ld measured=%d errors=%d rate=%.0f\n", n, i, errors,
           rate);
    if (i > 0) {
        printf("p50_ms=%.2f\np90_ms=%.2f\np99_ms=%.2f\nmax_ms=%.2f\n",
               lats[i / 2], lats[i * 90 / 100], lats[i * 99 / 100],
               lats[i - 1]);
    }

    if (rk != NULL) {
        rd_kafka_flush(rk, 5000);
        rd_kafka_destroy(rk);
    }

    return errors ? 1 : 0;
}


int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "feed") == 0) {
        return cmd_feed(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "lat") == 0) {
        return cmd_lat(argc - 2, argv + 2);
    }

    fprintf(stderr, "usage: projbench feed|lat ...\n");
    return 2;
}
