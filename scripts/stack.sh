#!/usr/bin/env bash
# The embedded stack of `make up`, all state under $COMMERCE_RUN_DIR:
#
#   redis-server        read model + webhook dedup      redis/, logs/redis.log
#   PostgreSQL 15       event store, catalog (pg.sh)    pg/, logs/postgresql.log
#   commerce-migrate    applies sql/ at every up        logs/migrate.log
#   commerce-devbroker  Kafka (in memory, new ports     kafka/bootstrap,
#                       at each start)                  logs/devbroker.log
#   commerce-projector  commerce.inbound -> PG + Redis  projector/, logs/projector.log
#   nginx + module      read API and webhook ingress    nginx/, logs/nginx-*.log
#   commerce-participant-sim                            sim/,
#                       the sagas' payment provider     logs/participant-sim.log
#                       and carrier (webhooks: source payments)
#   webhook secrets     one file per source             secrets/<source>
#   JWT issuer          an ES256 key pair for bearer    jwt/issuer.jwk (private),
#                       tokens (commerce_jwt)           jwt/jwks.json (nginx's)
#   prometheus          with COMMERCE_PROMETHEUS=1:     prometheus/,
#                       scrapes nginx and the projector logs/prometheus.log
#
#   scripts/stack.sh up | down | reload | status | secrets | tokens
#
# up is idempotent: what runs is left alone (nginx is reloaded only when its
# generated configuration changed, e.g. a new broker address). The first up
# loads the demo catalog through signed webhooks (scripts/demo-webhooks.sh).
# down stops everything in reverse order, each with a bounded wait. reload
# regenerates the nginx configuration and reloads nginx, which re-reads the
# secret files.
# The webhook secrets are printed once, by the up that creates them;
# secrets prints them again. Every up prints a shopper and an admin token
# of the stack's issuer (valid 24 hours); tokens prints new ones.
#
# Environment (defaults):
#   COMMERCE_RUN_DIR=.run          state, logs, generated configuration
#   COMMERCE_HOST=127.0.0.1        address nginx and redis listen on
#   COMMERCE_HTTP_PORT=8080        nginx
#   COMMERCE_REDIS_PORT=6380       redis-server (6380: a distro redis may own 6379)
#   COMMERCE_PG_PORT=5433          PostgreSQL (5433: a distro cluster may own 5432)
#   COMMERCE_METRICS_PORT=9464     projector's Prometheus /metrics (127.0.0.1)
#   COMMERCE_SIM_METRICS_PORT=9465 participant simulator's /metrics (127.0.0.1)
#   COMMERCE_NGINX_WORKERS=2       nginx worker_processes
#   COMMERCE_NGINX_LOG_LEVEL=notice  nginx error_log level (info: also every
#                                  closed keepalive connection)
#   COMMERCE_DEMO_ITEMS=200        demo catalog size (0: no demo data)
#   COMMERCE_BUILD=build           where `make` put the module and workers
#   COMMERCE_NGINX=/usr/sbin/nginx the nginx binary
#   COMMERCE_LD_PRELOAD=           preloaded into nginx (sanitizer runtimes
#                                  for a `make SAN=1` module)
#   COMMERCE_PROMETHEUS=0          1: up also starts Debian's prometheus
#                                  (conf/prometheus/; down stops it)
#   COMMERCE_PROMETHEUS_PORT=9091  its web UI and API (127.0.0.1; 9091: a
#                                  distro Prometheus may own 9090)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${COMMERCE_RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
HOST=${COMMERCE_HOST:-127.0.0.1}
HTTP_PORT=${COMMERCE_HTTP_PORT:-8080}
REDIS_PORT=${COMMERCE_REDIS_PORT:-6380}
PG_PORT=${COMMERCE_PG_PORT:-5433}
METRICS_PORT=${COMMERCE_METRICS_PORT:-9464}
SIM_METRICS_PORT=${COMMERCE_SIM_METRICS_PORT:-9465}
PROMETHEUS=${COMMERCE_PROMETHEUS:-0}
PROMETHEUS_PORT=${COMMERCE_PROMETHEUS_PORT:-9091}
WORKERS=${COMMERCE_NGINX_WORKERS:-2}
NGINX_LOG_LEVEL=${COMMERCE_NGINX_LOG_LEVEL:-notice}
DEMO_ITEMS=${COMMERCE_DEMO_ITEMS:-200}
BUILD=${COMMERCE_BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
NGINX=${COMMERCE_NGINX:-${NGINX_BIN:-/usr/sbin/nginx}}
BIN=$BUILD/bin
LOGS=$RUN/logs

# Webhook sources (conf/commerce-webhooks.conf), one per signature scheme,
# plus canonical for the project's own format and payments for the sagas'
# payment provider (Stripe's scheme, commerce.payments.inbound).
SOURCES="canonical standard stripe shopify github slack hmac payments"
TOPICS=commerce.inbound,commerce.events,commerce.dlq,commerce.commands
TOPICS=$TOPICS,commerce.webhooks,commerce.payments.commands
TOPICS=$TOPICS,commerce.shipping.commands,commerce.shipping.replies
TOPICS=$TOPICS,commerce.payments.inbound

# The issuer and audience of the stack's tokens (conf/nginx.conf).
JWT_ISSUER=commerce-stack
JWT_AUDIENCE=commerce

SECRETS_NEW=""
REDIS_FRESH=0
BROKER_FRESH=0

# The settings are handed to scripts/demo-webhooks.sh.
export COMMERCE_RUN_DIR=$RUN COMMERCE_HOST=$HOST COMMERCE_HTTP_PORT=$HTTP_PORT

say() { printf '%s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# fail <what> <log>: the last lines of the log that tells why, then exit.
fail() {
    printf 'stack: %s\n' "$1" >&2
    if [ -s "$2" ]; then
        printf 'stack: last lines of %s:\n' "$2" >&2
        tail -n 15 "$2" | sed 's/^/    /' >&2
    else
        printf 'stack: see %s\n' "$2" >&2
    fi
    exit 1
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_until <seconds> <command...>: true once the command succeeds.
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# stop_pid <pidfile> <signal> <seconds>: signal, wait, then SIGKILL.
stop_pid() {
    local pidfile=$1 sig=$2 secs=$3 pid i
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    say "  pid $pid ($pidfile) did not exit in ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# spawn <pidfile> <log> <command...>: a background service in its own
# session (a closed terminal does not take it down), stdout+stderr to log.
spawn() {
    local pidfile=$1 log=$2
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
}

# render <template> <output>: fills the @NAME@ placeholders of conf/ files.
render() {
    local user="" brokers=""
    [ "$(id -u)" = 0 ] && user="user root;"
    [ -s "$RUN/kafka/bootstrap" ] && brokers=$(cat "$RUN/kafka/bootstrap")
    sed -e "s|@MODULE@|$BUILD/ngx_http_commerce_module.so|" \
        -e "s|@USER@|$user|" \
        -e "s|@WORKERS@|$WORKERS|" \
        -e "s|@LOG_LEVEL@|$NGINX_LOG_LEVEL|" \
        -e "s|@RUN@|$RUN|g" \
        -e "s|@SECRETS@|$RUN/secrets|g" \
        -e "s|@JWT_ISSUER@|$JWT_ISSUER|" \
        -e "s|@JWT_AUDIENCE@|$JWT_AUDIENCE|" \
        -e "s|@REDIS@|$HOST:$REDIS_PORT|" \
        -e "s|@KAFKA_BROKERS@|$brokers|" \
        -e "s|@KAFKA_BOOTSTRAP_FILE@|$RUN/kafka/bootstrap|" \
        -e "s|@PG_CONNINFO@|$(pg_conninfo)|" \
        -e "s|@METRICS_PORT@|$METRICS_PORT|" \
        -e "s|@SIM_METRICS_PORT@|$SIM_METRICS_PORT|" \
        -e "s|@PROMETHEUS_PORT@|$PROMETHEUS_PORT|" \
        -e "s|@HOST@|$HOST|" \
        -e "s|@HTTP_PORT@|$HTTP_PORT|" \
        -e "s|@CONF@|$ROOT/conf|" \
        "$1" >"$2.tmp"
    mv "$2.tmp" "$2"
}

# nginx, with the sanitizer runtimes first when the module needs them.
ngx() {
    if [ -n "${COMMERCE_LD_PRELOAD:-}" ]; then
        LD_PRELOAD=$COMMERCE_LD_PRELOAD "$NGINX" "$@"
    else
        "$NGINX" "$@"
    fi
}

need_bin() {
    [ -x "$1" ] || die "$1 is missing: run make (or set COMMERCE_BUILD)"
}

# ---------------------------------------------------------------- secrets ---

# One secret per source, created once (mode 600): whsec_ + base64 of 24
# random bytes for the Standard Webhooks and Stripe schemes, 32 random bytes
# in hex for the others.
secrets_init() {
    local s f
    mkdir -p "$RUN/secrets"
    chmod 700 "$RUN/secrets"
    for s in $SOURCES; do
        f=$RUN/secrets/$s
        [ -s "$f" ] && continue
        (
            umask 077
            case $s in
            canonical|standard|stripe|payments) printf 'whsec_%s\n' \
                                       "$(openssl rand -base64 24)" ;;
            *) printf '%s\n' "$(openssl rand -hex 32)" ;;
            esac >"$f.tmp"
        )
        mv "$f.tmp" "$f"
        SECRETS_NEW="$SECRETS_NEW $s"
    done
}

# secrets_show <source...>: each with its current secret.
secrets_show() {
    local s
    for s in "$@"; do
        printf '  %-10s %s\n' "$s" "$(secret_of "$s")"
    done
}

# The first secret of a source's file (the others are older ones still
# accepted during a rotation).
secret_of() {
    grep -v -e '^#' -e '^[[:space:]]*$' "$RUN/secrets/$1" | head -n 1
}

# The stack's JWT issuer, made once: the private key jwt/issuer.jwk (mode
# 600) that signs tokens, the JWK Set jwt/jwks.json that nginx verifies
# them with (commerce_jwt_keys_file).
jwt_init() {
    need_bin "$BIN/commerce-jwt"
    [ -s "$RUN/jwt/issuer.jwk" ] && [ -s "$RUN/jwt/jwks.json" ] && return 0
    mkdir -p "$RUN/jwt"
    chmod 700 "$RUN/jwt"
    "$BIN/commerce-jwt" keygen --alg ES256 --kid stack-1 \
        --out-key "$RUN/jwt/issuer.jwk" --out-jwks "$RUN/jwt/jwks.json" \
        2>>"$LOGS/jwt.log" \
        || fail "commerce-jwt keygen failed" "$LOGS/jwt.log"
}

# jwt_token <sub> <roles as a JSON array>: a token of the issuer, 24 hours.
jwt_token() {
    "$BIN/commerce-jwt" sign --key "$RUN/jwt/issuer.jwk" --ttl 24h \
        --claims "{\"iss\":\"$JWT_ISSUER\",\"aud\":\"$JWT_AUDIENCE\",\"sub\":\"$1\",\"roles\":$2}" \
        2>>"$LOGS/jwt.log" \
        || fail "commerce-jwt sign failed" "$LOGS/jwt.log"
}

jwt_show() {
    say "bearer tokens of the stack's issuer (24 hours; scripts/stack.sh"
    say "tokens makes new ones):"
    say "  shopper  $(jwt_token shopper-1 '["shopper"]')"
    say "  admin    $(jwt_token admin-1 '["shopper","admin"]')"
    say "  e.g. curl -H \"Authorization: Bearer \$TOKEN\" ...; more, for any"
    say "  sub and roles:"
    say "  $BIN/commerce-jwt sign --key $RUN/jwt/issuer.jwk --ttl 1h \\"
    say "    --claims '{\"iss\":\"$JWT_ISSUER\",\"aud\":\"$JWT_AUDIENCE\",\"sub\":\"u-2\",\"roles\":[\"shopper\"]}'"
}

# ------------------------------------------------------------------ redis ---

redis_up() {
    alive "$RUN/redis/redis.pid" && return 0
    mkdir -p "$RUN/redis"
    redis-server --bind "$HOST" --port "$REDIS_PORT" --dir "$RUN/redis" \
        --daemonize yes --pidfile "$RUN/redis/redis.pid" \
        --logfile "$LOGS/redis.log" --save '' \
        --appendonly yes --appendfsync everysec \
        || fail "redis-server did not start" "$LOGS/redis.log"
    wait_until 10 redis-cli -h "$HOST" -p "$REDIS_PORT" ping \
        || fail "redis-server is not answering on $HOST:$REDIS_PORT" \
                "$LOGS/redis.log"
    REDIS_FRESH=1
}

# ------------------------------------------------------------- postgresql ---

pg_conninfo() {
    "$ROOT/scripts/pg.sh" conninfo "$RUN/pg" "$PG_PORT"
}

pg_up() {
    "$ROOT/scripts/pg.sh" status "$RUN/pg" >/dev/null 2>&1 && return 0
    "$ROOT/scripts/pg.sh" start "$RUN/pg" "$PG_PORT" \
        >>"$LOGS/pg.sh.log" 2>&1 \
        || { [ -s "$RUN/pg/server.log" ] \
                 && fail "PostgreSQL did not start" "$RUN/pg/server.log"
             fail "PostgreSQL did not start" "$LOGS/pg.sh.log"; }
    ln -sfn ../pg/server.log "$LOGS/postgresql.log"
}

psql_q() {
    psql -Atq -v ON_ERROR_STOP=1 "$(pg_conninfo)" -c "$1"
}

migrate() {
    need_bin "$BIN/commerce-migrate"
    "$BIN/commerce-migrate" --pg.conninfo "$(pg_conninfo)" \
        --sql-dir "$ROOT/sql" >>"$LOGS/migrate.log" 2>&1 \
        || fail "commerce-migrate failed" "$LOGS/migrate.log"
}

# ------------------------------------------------------------------ kafka ---

broker_up() {
    local i
    if alive "$RUN/kafka/devbroker.pid" && [ -s "$RUN/kafka/bootstrap" ]; then
        return 0
    fi
    need_bin "$BIN/commerce-devbroker"
    stop_pid "$RUN/kafka/devbroker.pid" TERM 10
    mkdir -p "$RUN/kafka"
    rm -f "$RUN/kafka/bootstrap" "$RUN/kafka/control.sock"
    spawn "$RUN/kafka/devbroker.pid" "$LOGS/devbroker.log" \
        "$BIN/commerce-devbroker" --brokers 3 --partitions 6 \
        --topics "$TOPICS" --bootstrap-file "$RUN/kafka/bootstrap" \
        --control "$RUN/kafka/control.sock"
    for ((i = 0; i < 150; i++)); do
        [ -s "$RUN/kafka/bootstrap" ] && break
        alive "$RUN/kafka/devbroker.pid" \
            || fail "commerce-devbroker exited at start" "$LOGS/devbroker.log"
        sleep 0.1
    done
    [ -s "$RUN/kafka/bootstrap" ] \
        || fail "commerce-devbroker wrote no bootstrap file" \
                "$LOGS/devbroker.log"
    BROKER_FRESH=1
}

# -------------------------------------------------------------- projector ---

projector_up() {
    local log=$LOGS/projector.log from i items
    need_bin "$BIN/commerce-projector"
    mkdir -p "$RUN/projector"
    render "$ROOT/conf/worker.conf" "$RUN/projector/projector.conf"

    # The dev broker keeps its log in memory: a new one starts with empty
    # topics at offset 0, so what PostgreSQL holds about positions in the
    # old log is void: the consumer offsets (the projector would skip new
    # messages below them) and the "topic|partition|offset" dedup keys of
    # messages without a delivery id (new ones at the same place would
    # count as duplicates). One transaction.
    if [ "$BROKER_FRESH" = 1 ]; then
        stop_pid "$RUN/projector/projector.pid" TERM 15
        psql_q "DELETE FROM consumer_offsets;
                DELETE FROM inbound_processed
                 WHERE dedup_key ~ '^commerce\.inbound\|[0-9]+\|[0-9]+\$'" \
            >>"$LOGS/migrate.log" 2>&1 \
            || fail "resetting the Kafka positions failed" "$LOGS/migrate.log"
    fi

    # Redis keeps nothing across a restart: the read model comes back from
    # PostgreSQL.
    items=$(psql_q "SELECT count(*) FROM products" 2>>"$LOGS/migrate.log") \
        || fail "reading the catalog from PostgreSQL failed" \
                "$LOGS/migrate.log"
    if [ "$REDIS_FRESH" = 1 ] && [ "$items" -gt 0 ]; then
        stop_pid "$RUN/projector/projector.pid" TERM 15
        say "rebuilding the Redis read model from PostgreSQL ($items items)"
        "$BIN/commerce-projector" --config "$RUN/projector/projector.conf" \
            --rebuild >>"$log" 2>&1 \
            || fail "commerce-projector --rebuild failed" "$log"
    fi

    alive "$RUN/projector/projector.pid" && return 0

    touch "$log"
    from=$(($(stat -c %s "$log") + 1))
    spawn "$RUN/projector/projector.pid" "$log" \
        "$BIN/commerce-projector" --config "$RUN/projector/projector.conf"
    # Ready once the group gave it its partitions (the broker delays the
    # first assignment of a new group by a few seconds).
    for ((i = 0; i < 300; i++)); do
        tail -c "+$from" "$log" | grep -q '"msg":"partition assigned"' \
            && return 0
        alive "$RUN/projector/projector.pid" \
            || fail "commerce-projector exited at start" "$log"
        sleep 0.1
    done
    fail "commerce-projector got no partitions in 30s" "$log"
}

# -------------------------------------------------------- participant-sim ---

# The sagas' payment provider and carrier: its webhooks go to nginx's
# payments source, signed with that source's secret (in its environment,
# not on its command line). A new broker has new ports: it starts again.
sim_up() {
    local log=$LOGS/participant-sim.log from i
    need_bin "$BIN/commerce-participant-sim"
    if alive "$RUN/sim/sim.pid" && [ "$BROKER_FRESH" != 1 ]; then
        return 0
    fi
    stop_pid "$RUN/sim/sim.pid" TERM 15
    mkdir -p "$RUN/sim"
    touch "$log"
    from=$(($(stat -c %s "$log") + 1))
    COMMERCE_WEBHOOK_SECRET=$(secret_of payments) \
        spawn "$RUN/sim/sim.pid" "$log" \
        "$BIN/commerce-participant-sim" \
        --kafka.bootstrap_file "$RUN/kafka/bootstrap" \
        --webhook_url "http://$HOST:$HTTP_PORT/v1/webhooks/payments" \
        --metrics.port "$SIM_METRICS_PORT"
    for ((i = 0; i < 100; i++)); do
        tail -c "+$from" "$log" \
            | grep -q '"msg":"participant simulator running"' && return 0
        alive "$RUN/sim/sim.pid" \
            || fail "commerce-participant-sim exited at start" "$log"
        sleep 0.1
    done
    fail "commerce-participant-sim did not start in 10s" "$log"
}


# ------------------------------------------------------------------ nginx ---

# Writes the nginx configuration and checks it with nginx -t; prints
# "changed" when it differs from the one in use.
nginx_conf() {
    local before after
    mkdir -p "$RUN/nginx"
    before=$(cat "$RUN/nginx/nginx.conf" "$RUN/nginx/commerce-webhooks.conf" \
             2>/dev/null | md5sum)
    render "$ROOT/conf/commerce-webhooks.conf" \
        "$RUN/nginx/commerce-webhooks.conf"
    render "$ROOT/conf/nginx.conf" "$RUN/nginx/nginx.conf"
    after=$(cat "$RUN/nginx/nginx.conf" "$RUN/nginx/commerce-webhooks.conf" \
            | md5sum)
    ngx -q -t -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" \
        >"$LOGS/nginx-t.log" 2>&1 \
        || fail "nginx -t failed for $RUN/nginx/nginx.conf" "$LOGS/nginx-t.log"
    [ "$before" = "$after" ] || echo changed
}

nginx_reload() {
    ngx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -s reload \
        2>>"$LOGS/nginx-error.log" \
        || fail "nginx -s reload failed" "$LOGS/nginx-error.log"
}

nginx_up() {
    local changed
    [ -f "$BUILD/ngx_http_commerce_module.so" ] \
        || die "no module in $BUILD: run make (or set COMMERCE_BUILD)"
    changed=$(nginx_conf)
    if alive "$RUN/nginx/nginx.pid"; then
        if [ -n "$changed" ]; then
            nginx_reload
            say "nginx reloaded: its configuration changed"
        fi
        return 0
    fi
    ngx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" \
        2>>"$LOGS/nginx-error.log" \
        || fail "nginx did not start" "$LOGS/nginx-error.log"
    wait_until 10 curl -sf -o /dev/null \
            "http://$HOST:$HTTP_PORT/v1/catalog?limit=1" \
        || fail "nginx is not answering on $HOST:$HTTP_PORT" \
                "$LOGS/nginx-error.log"
}

# ------------------------------------------------------------- prometheus ---

# With COMMERCE_PROMETHEUS=1: Debian's prometheus as the stack's user (not
# the distro's service), scraping nginx's commerce_metrics location and the
# projector, with the alert rules of conf/prometheus/; a changed
# configuration is reloaded (SIGHUP).
prometheus_up() {
    local dir=$RUN/prometheus before after
    [ "$PROMETHEUS" = 1 ] || return 0
    command -v prometheus >/dev/null \
        || die "prometheus is not installed (make deps)"
    mkdir -p "$dir/data"
    before=$(md5sum <"$dir/prometheus.yml" 2>/dev/null || true)
    render "$ROOT/conf/prometheus/prometheus.yml" "$dir/prometheus.yml"
    after=$(md5sum <"$dir/prometheus.yml")
    if alive "$dir/prometheus.pid"; then
        [ "$before" = "$after" ] || kill -HUP "$(cat "$dir/prometheus.pid")"
        return 0
    fi
    spawn "$dir/prometheus.pid" "$LOGS/prometheus.log" prometheus \
        --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" \
        --storage.tsdb.retention.time=7d \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
    wait_until 30 curl -sf -o /dev/null \
            "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" \
        || fail "prometheus is not ready on 127.0.0.1:$PROMETHEUS_PORT" \
                "$LOGS/prometheus.log"
}

# -------------------------------------------------------------- demo data ---

# The first up loads the demo catalog through the real path: signed webhooks
# -> nginx -> Kafka -> projector -> PostgreSQL + Redis. A marker records
# that it completed (a re-send is harmless: deliveries are deduplicated).
demo_data() {
    local items
    [ "$DEMO_ITEMS" -gt 0 ] || return 0
    items=$(psql_q "SELECT count(*) FROM products")
    if [ -f "$RUN/demo-loaded" ] && [ "$items" -gt 0 ]; then
        return 0
    fi
    say "loading $DEMO_ITEMS demo items through POST /v1/webhooks/canonical"
    COMMERCE_DEMO_ITEMS=$DEMO_ITEMS "$ROOT/scripts/demo-webhooks.sh" load \
        >>"$LOGS/demo.log" 2>&1 \
        || fail "loading the demo data failed" "$LOGS/demo.log"
    date -u +%FT%TZ >"$RUN/demo-loaded"
}

# ----------------------------------------------------------------- report ---

services() {
    local pg=stopped
    "$ROOT/scripts/pg.sh" status "$RUN/pg" >/dev/null 2>&1 \
        && pg="running (pid $(head -n 1 "$RUN/pg/postmaster.pid"))"
    show "redis-server" "$RUN/redis/redis.pid" "$HOST:$REDIS_PORT"
    printf '  %-20s %-22s %s\n' "postgresql" "$pg" "127.0.0.1:$PG_PORT"
    show "commerce-devbroker" "$RUN/kafka/devbroker.pid" \
        "$(cat "$RUN/kafka/bootstrap" 2>/dev/null || echo -)"
    show "commerce-projector" "$RUN/projector/projector.pid" \
        "127.0.0.1:$METRICS_PORT/metrics"
    show "nginx" "$RUN/nginx/nginx.pid" "$HOST:$HTTP_PORT"
    show "commerce-participant-sim" "$RUN/sim/sim.pid" \
        "127.0.0.1:$SIM_METRICS_PORT/metrics"
    if [ "$PROMETHEUS" = 1 ] || alive "$RUN/prometheus/prometheus.pid"; then
        show "prometheus" "$RUN/prometheus/prometheus.pid" \
            "http://127.0.0.1:$PROMETHEUS_PORT/alerts"
    fi
}

show() {
    local state=stopped
    alive "$2" && state="running (pid $(cat "$2"))"
    printf '  %-20s %-22s %s\n' "$1" "$state" "$3"
}

all_running() {
    alive "$RUN/redis/redis.pid" \
        && "$ROOT/scripts/pg.sh" status "$RUN/pg" >/dev/null 2>&1 \
        && alive "$RUN/kafka/devbroker.pid" \
        && alive "$RUN/projector/projector.pid" \
        && alive "$RUN/nginx/nginx.pid" \
        && alive "$RUN/sim/sim.pid" \
        && { [ "$PROMETHEUS" != 1 ] || alive "$RUN/prometheus/prometheus.pid"; }
}

report() {
    local s url=http://$HOST:$HTTP_PORT
    say "commerce-edge is up (state and logs in $RUN):"
    services
    say "webhook sources: POST $url/v1/webhooks/{source}, secrets in"
    say "$RUN/secrets/{source} (edit one and run make reload to rotate;"
    say "scripts/stack.sh secrets shows them)"
    if [ -n "$SECRETS_NEW" ]; then
        say "secrets created now (shown this once):"
        secrets_show $SECRETS_NEW
    fi
    say "read the catalog the projector built from the demo webhooks:"
    say "  curl -i $url/v1/catalog/item-00001"
    say "  curl -i '$url/v1/catalog?limit=3'"
    say "  curl -i $url/v1/stores/store-001/inventory/SKU-00001-S"
    say "  curl -i '$url/v1/stores/store-001/inventory?count=5'"
    say "send a signed webhook (Standard Webhooks, valid for 5 minutes; a new"
    say "one: scripts/demo-webhooks.sh example):"
    "$ROOT/scripts/demo-webhooks.sh" example | sed 's/^/  /'
    jwt_show
}

# ------------------------------------------------------------- preflight ---

# in_use <host> <port>: something accepts connections there.
in_use() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Before starting anything: the ports of the services that are not running
# yet must be free, so that up does not stop half-way.
preflight() {
    local busy=""
    alive "$RUN/redis/redis.pid" || ! in_use "$HOST" "$REDIS_PORT" \
        || busy="$busy COMMERCE_REDIS_PORT=$REDIS_PORT"
    "$ROOT/scripts/pg.sh" status "$RUN/pg" >/dev/null 2>&1 \
        || ! in_use 127.0.0.1 "$PG_PORT" || busy="$busy COMMERCE_PG_PORT=$PG_PORT"
    alive "$RUN/projector/projector.pid" || ! in_use 127.0.0.1 "$METRICS_PORT" \
        || busy="$busy COMMERCE_METRICS_PORT=$METRICS_PORT"
    alive "$RUN/sim/sim.pid" || ! in_use 127.0.0.1 "$SIM_METRICS_PORT" \
        || busy="$busy COMMERCE_SIM_METRICS_PORT=$SIM_METRICS_PORT"
    alive "$RUN/nginx/nginx.pid" || ! in_use "$HOST" "$HTTP_PORT" \
        || busy="$busy COMMERCE_HTTP_PORT=$HTTP_PORT"
    [ "$PROMETHEUS" != 1 ] || alive "$RUN/prometheus/prometheus.pid" \
        || ! in_use 127.0.0.1 "$PROMETHEUS_PORT" \
        || busy="$busy COMMERCE_PROMETHEUS_PORT=$PROMETHEUS_PORT"
    [ -z "$busy" ] \
        || die "ports in use by something else:$busy (set other ports)"
    for b in openssl curl psql redis-server redis-cli; do
        command -v "$b" >/dev/null || die "$b is not installed (make deps)"
    done
}

# ------------------------------------------------------------------- main ---

mkdir -p "$LOGS"

case "${1:-}" in
up)
    preflight
    secrets_init
    jwt_init
    redis_up
    pg_up
    migrate
    broker_up
    projector_up
    nginx_up
    sim_up
    demo_data
    prometheus_up
    report
    ;;
down)
    stop_pid "$RUN/prometheus/prometheus.pid" TERM 15
    stop_pid "$RUN/sim/sim.pid" TERM 15
    stop_pid "$RUN/nginx/nginx.pid" QUIT 15
    stop_pid "$RUN/projector/projector.pid" TERM 15
    stop_pid "$RUN/kafka/devbroker.pid" TERM 10
    rm -f "$RUN/kafka/bootstrap" "$RUN/kafka/control.sock"
    "$ROOT/scripts/pg.sh" stop "$RUN/pg" 2>>"$LOGS/pg.sh.log" \
        || say "  PostgreSQL did not stop cleanly (see $LOGS/pg.sh.log)"
    stop_pid "$RUN/redis/redis.pid" TERM 10
    say "commerce-edge is down (data kept in $RUN/pg; rm -rf $RUN for a"
    say "fresh start)"
    ;;
reload)
    alive "$RUN/nginx/nginx.pid" || die "nginx is not running: make up"
    nginx_conf >/dev/null
    nginx_reload
    say "nginx reloaded (secret files re-read)"
    ;;
status)
    services
    all_running
    ;;
secrets)
    [ -d "$RUN/secrets" ] || die "no secrets in $RUN/secrets: make up"
    say "webhook secrets ($RUN/secrets/{source}, the first line of each;"
    say "other lines: older secrets still accepted during a rotation):"
    secrets_show $SOURCES
    ;;
tokens)
    [ -s "$RUN/jwt/issuer.jwk" ] || die "no issuer key in $RUN/jwt: make up"
    jwt_show
    ;;
*)
    die "usage: $0 up|down|reload|status|secrets|tokens"
    ;;
esac
