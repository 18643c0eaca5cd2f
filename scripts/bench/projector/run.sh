#!/usr/bin/env bash
# make bench, projector part:
#   throughput  commerce.inbound is pre-filled with mixed
#               canonical messages, BENCH_PROJ_MESSAGES in all (5% item
#               upserts with two priced
#               variants, 15% price sets, 35% absolute counts, 45% stock
#               movements; 10k items, 3 stores) by projbench.c, then one
#               commerce-projector starts and consumes them; events/s from
#               its first committed batch to the last offset committed in
#               PostgreSQL (consumer_offsets polled every 20 ms), and until
#               the outbox is drained (events on commerce.events, values in
#               Redis). The projector's VmRSS is read at 100k messages and
#               at the end: it must not grow with the size of the topic.
#   latency     stock counts at a steady BENCH_PROJ_RATE/s, each sent
#               through nginx's webhook ingress (POST, commerce_webhook
#               canonical) and timed from its 202, then polled with
#               GET /v1/stores/{s}/inventory/{sku} (commerce_inventory_item)
#               every millisecond until the new count shows; p50/p99.
#               It starts once autovacuum is done with the load and a
#               CHECKPOINT has written what it left (both waits are
#               reported): a steady state, not the aftermath.
#               When the module has no webhook ingress, messages go to
#               Kafka directly and are timed from the broker's ack.
# Everything runs on private servers (PostgreSQL via scripts/pg.sh, redis,
# commerce-devbroker, nginx) on free loopback ports, in
# build/bench/projector/; the summary goes to build/bench/projector.txt.
# Every process started here is stopped on exit, also on failure.
#
# Environment:
#   BENCH_PROJ_MESSAGES=1000000  messages of the throughput/RSS run
#   BENCH_PROJ_RSS_AT=100000     first RSS sample
#   BENCH_PROJ_BACKLOG=16000     messages kept waiting in the topic: the
#                                devbroker (librdkafka's mock) keeps ~5 MB
#                                per partition and drops older segments, so
#                                the topic is pre-filled with this many and
#                                topped up as the projector commits
#   BENCH_PROJ_PARTITIONS=4      partitions of commerce.inbound
#   BENCH_PROJ_ARGS=             extra commerce-projector flags
#   BENCH_PROJ_RATE=1000         latency: messages per second
#   BENCH_PROJ_LAT_SECONDS=10    latency: duration (first second not counted)
#   BENCH_PROJ_LATENCY=1         0: skip the latency part
#   BENCH_PROJ_SETTLE=180        latency: longest wait for autovacuum to
#                                finish with the load first (0: no wait)
#   BENCH_PROJ_PERF=0            1: perf record the projector (perf.data),
#                                call graphs BENCH_PROJ_PERF_CG (fp, dwarf)
#   BENCH_PROJ_PGSTAT=0          1: load pg_stat_statements and write the
#                                statements by total time (with WAL bytes and
#                                blocks dirtied) to pgstat-throughput.txt
#                                and pgstat-latency.txt
#   BENCH_PROJ_PG_SLOW=0         N > 0: PostgreSQL logs statements slower
#                                than N ms, every autovacuum run and lock
#                                waits (pg/server.log)
#   COMMERCE_BUILD               build dir holding bin/ and the module
#                                (default build/)
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BUILD=${COMMERCE_BUILD:-$ROOT/build}
BIN=$BUILD/bin
MODULE=$BUILD/ngx_http_commerce_module.so
OUT=$ROOT/build/bench/projector
RESULT=$ROOT/build/bench/projector.txt
NGINX=/usr/sbin/nginx

MESSAGES=${BENCH_PROJ_MESSAGES:-1000000}
RSS_AT=${BENCH_PROJ_RSS_AT:-100000}
BACKLOG=${BENCH_PROJ_BACKLOG:-16000}
PARTITIONS=${BENCH_PROJ_PARTITIONS:-4}
PROJ_ARGS=${BENCH_PROJ_ARGS:-}
RATE=${BENCH_PROJ_RATE:-1000}
LAT_SECONDS=${BENCH_PROJ_LAT_SECONDS:-10}
SETTLE=${BENCH_PROJ_SETTLE:-180}
SETTLED_S=0
CHECKPOINT_S=0
LATENCY=${BENCH_PROJ_LATENCY:-1}
PERF=${BENCH_PROJ_PERF:-0}
PG_SLOW=${BENCH_PROJ_PG_SLOW:-0}
PGSTAT=${BENCH_PROJ_PGSTAT:-0}
GROUP=commerce-projector
TOPIC=commerce.inbound

PG_DIR=$OUT/pg
PG_UP=0
REDIS_PID= BROKER_PID= PROJ_PID= NGINX_PID= PERF_PID=
REDIS_PORT= PG_PORT= NGINX_PORT=

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

stop_pid() {    # stop_pid PID: TERM, wait, KILL if it lingers
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stop, by pid, whatever this script started; runs on every exit path.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$PERF_PID"
    stop_pid "$NGINX_PID"
    stop_pid "$PROJ_PID"
    stop_pid "$BROKER_PID"
    stop_pid "$REDIS_PID"
    if [ "$PG_UP" = 1 ]; then
        "$ROOT/scripts/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback TCP port nobody listens on.
free_port() {
    local p
    for _ in $(seq 200); do
        # below the kernel's ephemeral range (32768 up): no outgoing
        # connection made meanwhile can hold it
        p=$(( 10000 + RANDOM % 22000 ))
        if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] \
           && [ "$p" != "${REDIS_PORT:-}" ] && [ "$p" != "${PG_PORT:-}" ]
        then
            echo "$p"
            return
        fi
    done
    die "no free port"
}

rss_kb() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}

field() {       # field NAME FILE: value of a key=value line
    awk -F= -v k="$1" '$1 == k { print $2 }' "$2"
}

build_tool() {
    mkdir -p "$OUT"
    gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
        -o "$OUT/projbench" \
        "$HERE/projbench.c" -lrdkafka -lpq \
        || die "building projbench failed"
}

start_pg() {
    local out
    PG_PORT=$(free_port)
    "$ROOT/scripts/pg.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    out=$("$ROOT/scripts/pg.sh" start "$PG_DIR" "$PG_PORT") \
        || die "pg.sh start failed"
    PG_UP=1
    CONNINFO=$(tail -1 <<< "$out")
    if [ "$PGSTAT" = 1 ]; then
        echo "shared_preload_libraries = 'pg_stat_statements'" \
            >> "$PG_DIR/postgresql.conf"
        "$ROOT/scripts/pg.sh" stop "$PG_DIR" >/dev/null
        "$ROOT/scripts/pg.sh" start "$PG_DIR" "$PG_PORT" >/dev/null
        psql "$CONNINFO" -qc "CREATE EXTENSION pg_stat_statements" \
            || die "pg_stat_statements"
    fi
    if [ "$PG_SLOW" -gt 0 ]; then
        psql "$CONNINFO" -q \
            -c "ALTER SYSTEM SET log_min_duration_statement = $PG_SLOW" \
            -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
            -c "ALTER SYSTEM SET log_lock_waits = on" \
            -c "ALTER SYSTEM SET log_parameter_max_length = 0" \
            -c "SELECT pg_reload_conf()" >/dev/null || die "pg logging"
    fi
    "$BIN/commerce-migrate" --pg.conninfo "$CONNINFO" --sql-dir "$ROOT/sql" \
        > "$OUT/migrate.log" 2>&1 || { cat "$OUT/migrate.log"; die migrate; }
}

start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$OUT/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
        --appendonly no --daemonize no --protected-mode yes \
        --dir "$OUT/redis" --logfile "$OUT/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "redis-server did not start"
}

start_broker() {
    rm -f "$OUT/kafka.bootstrap"
    "$BIN/commerce-devbroker" --brokers 1 --partitions "$PARTITIONS" \
        --bootstrap-file "$OUT/kafka.bootstrap" --log-level warn \
        > "$OUT/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do
        [ -s "$OUT/kafka.bootstrap" ] && break
        sleep 0.1
    done
    [ -s "$OUT/kafka.bootstrap" ] || die "devbroker did not start"
    BROKERS=$(cat "$OUT/kafka.bootstrap")
}

start_projector() {
    # shellcheck disable=SC2086
    "$BIN/commerce-projector" --pg.conninfo "$CONNINFO" \
        --redis.address "127.0.0.1:$REDIS_PORT" \
        --kafka.bootstrap_file "$OUT/kafka.bootstrap" \
        --log_level warn $PROJ_ARGS > "$OUT/projector.log" 2>&1 &
    PROJ_PID=$!
    if [ "$PERF" = 1 ]; then
        perf record --call-graph "${BENCH_PROJ_PERF_CG:-fp}" -o "$OUT/perf.data" -p "$PROJ_PID" \
            > "$OUT/perf.log" 2>&1 &
        PERF_PID=$!
    fi
}

# nginx with the read API and, if the module has it, the webhook ingress.
write_nginx_conf() {
    local dir=$OUT/nginx user= webhook=$1
    mkdir -p "$dir/logs" "$dir/tmp"
    [ "$(id -u)" -eq 0 ] && user="user root;"
    cat > "$dir/nginx.conf" <<EOF
# generated by scripts/bench/projector/run.sh
load_module $MODULE;
$user
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    commerce_redis_server 127.0.0.1:$REDIS_PORT;
    $([ "$webhook" = 1 ] && echo "commerce_kafka_brokers $BROKERS;")
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /bench-ready { return 204; }
        location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)\$ {
            commerce_inventory_item \$store_id \$sku;
        }
        $([ "$webhook" = 1 ] && echo "location = /v1/webhooks/canonical {
            commerce_webhook canonical;
            commerce_webhook_key \$http_x_store;
            commerce_webhook_delivery_id \$http_webhook_id;
        }")
    }
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -t -q 2> "$dir/logs/nginx-t.log"
}

start_nginx() {
    local dir=$OUT/nginx
    NGINX_PORT=$(free_port)
    if write_nginx_conf 1; then
        INGRESS=webhook
    elif write_nginx_conf 0; then
        INGRESS=kafka
        log "no webhook ingress in $MODULE ($(tail -1 \
            "$dir/logs/nginx-t.log")): producing to Kafka directly"
    else
        cat "$dir/logs/nginx-t.log" >&2
        die "nginx -t failed"
    fi
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" 2>> "$dir/logs/error.log" &
    NGINX_PID=$!
    for _ in $(seq 50); do
        if [ "$(cat "$dir/nginx.pid" 2>/dev/null)" = "$NGINX_PID" ] \
           && curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/bench-ready"
        then
            return
        fi
        sleep 0.1
    done
    die "nginx did not start"
}

pgstat_dump() {     # pgstat_dump PHASE: statements by total time, then reset
    [ "$PGSTAT" = 1 ] || return 0
    psql "$CONNINFO" -Atc "SELECT round(total_exec_time)::text || ' ms, '
        || calls || ' calls, ' || round((total_exec_time / calls)::numeric,
        3) || ' ms/call, ' || pg_size_pretty(wal_bytes) || ' WAL, '
        || shared_blks_dirtied || ' blocks dirtied: '
        || left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" \
        > "$OUT/pgstat-$1.txt" 2>&1 || true
    psql "$CONNINFO" -Atqc "SELECT pg_stat_statements_reset()" \
        > /dev/null 2>&1 || true
    log "statements by total time: $OUT/pgstat-$1.txt"
}

throughput() {
    local feed
    rm -f "$OUT/ready" "$OUT/projector.pid"
    log "feeding $TOPIC: $MESSAGES messages, $BACKLOG pre-filled"
    "$OUT/projbench" feed "$BROKERS" "$TOPIC" "$MESSAGES" "$CONNINFO" \
        "$GROUP" "$OUT/ready" "$OUT/projector.pid" "$RSS_AT" "$BACKLOG" \
        > "$OUT/watch.txt" &
    feed=$!
    while [ ! -e "$OUT/ready" ]; do
        kill -0 "$feed" 2>/dev/null || die "feed failed"
        sleep 0.05
    done
    log "projector consuming"
    start_projector
    echo "$PROJ_PID" > "$OUT/projector.pid"
    wait "$feed" || { tail -5 "$OUT/projector.log" >&2; die "feed failed"; }
    cat "$OUT/watch.txt" >&2
    pgstat_dump throughput
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
    fi
}

# Autovacuum works off the load just written (a million rows in several
# tables) for a while after it; on two cores that competes with the
# pipeline. And the load's WAL (gigabytes) starts a checkpoint, spread
# over minutes, during which every page's first change writes it whole to
# the WAL again. The steady-state latency is measured once autovacuum is
# done (at most BENCH_PROJ_SETTLE seconds of waiting) and a CHECKPOINT has
# finished what the load left; both waits are reported.
settle() {
    local quiet=0 waited=0 busy
    while [ "$waited" -lt "$SETTLE" ]; do
        # Busy: a worker runs, or a table is still due (autovacuum's own
        # thresholds, at their defaults): workers start one table at a
        # time, up to a minute apart, so a quiet moment alone proves little.
        busy=$(psql "$CONNINFO" -Atc "SELECT (SELECT count(*)
                 FROM pg_stat_activity
                 WHERE backend_type = 'autovacuum worker')
                 + (SELECT count(*) FROM pg_stat_user_tables s
                    JOIN pg_class c ON c.oid = s.relid
                    WHERE s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)
                       OR s.n_ins_since_vacuum
                          > 1000 + 0.2 * greatest(c.reltuples, 0)
                       OR s.n_mod_since_analyze
                          > 50 + 0.1 * greatest(c.reltuples, 0))" \
               2>/dev/null || echo 0)
        if [ "$busy" = 0 ]; then
            quiet=$((quiet + 1))
            [ "$quiet" -ge 3 ] && break
        else
            quiet=0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    SETTLED_S=$waited
    log "autovacuum of the load: waited ${waited}s"
    waited=$(date +%s)
    psql "$CONNINFO" -qc "CHECKPOINT" >/dev/null || die "checkpoint"
    CHECKPOINT_S=$(( $(date +%s) - waited ))
    log "checkpoint after the load: ${CHECKPOINT_S}s"
}

latency() {
    local cmd
    [ -f "$MODULE" ] || { LAT_NOTE="no module at $MODULE"; return; }
    settle
    start_nginx
    if [ "$INGRESS" = webhook ]; then
        cmd=(post /v1/webhooks/canonical)
    else
        cmd=(kafka "$BROKERS" "$TOPIC")
    fi
    log "latency: $RATE/s for ${LAT_SECONDS}s via $INGRESS"
    PROJBENCH_SAMPLES="$OUT/latency-samples.txt" \
        "$OUT/projbench" lat "127.0.0.1:$NGINX_PORT" "$RATE" "$LAT_SECONDS" 3 \
        1000 "${cmd[@]}" > "$OUT/latency.txt" \
        || { cat "$OUT/latency.txt" >&2; die "latency run failed"; }
    cat "$OUT/latency.txt" >&2
    # The slowest events, with when they were sent (the projector log's
    # clock): where to look when p99 is high.
    log "slowest: $(grep -v '^#' "$OUT/latency-samples.txt" \
        | sort -k4,4gr | head -3 | TZ=UTC awk '{ printf "sent %s.%03d: %s ms; ",
            strftime("%T", $1), ($1 - int($1)) * 1000, $4 }')"
    pgstat_dump latency
    LAT_NOTE=
}

verdict() {     # verdict VALUE OP LIMIT -> PASS/MISS
    awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? a >= b : a < b; print ok ? "PASS" : "MISS" }'
}

summary() {
    local w=$OUT/watch.txt l=$OUT/latency.txt rate p99
    rate=$(field rate_sustained "$w")
    printf 'commerce-projector benchmark, %s, %s cores\n' \
        "$(date -u +%FT%TZ)" "$(nproc)"
    printf 'topic %s: %s partitions, %s messages (5%% item upserts, 15%%' \
        "$TOPIC" "$PARTITIONS" "$(field messages "$w")"
    printf ' price sets, 35%% stock counts, 45%% movements; 10k items,'
    printf ' 3 stores); projector flags: %s\n\n' "${PROJ_ARGS:-defaults}"
    printf '%-44s %12s\n' metric value
    printf '%-44s %12s\n' 'throughput, first batch -> last offset (msg/s)' \
        "$rate"
    printf '%-44s %12s\n' 'throughput incl. start-up (msg/s)' \
        "$(field rate_total "$w")"
    printf '%-44s %12s\n' 'throughput, first batch -> outbox empty' \
        "$(field rate_drained_sustained "$w")"
    printf '%-44s %12s\n' 'throughput until outbox empty incl. start-up' \
        "$(field rate_drained "$w")"
    printf '%-44s %12s\n' 'start-up until first commit (s)' \
        "$(field startup_s "$w")"
    printf '%-44s %12s\n' 'events recorded' "$(field events "$w")"
    printf '%-44s %12s\n' 'dead letters' "$(field dead_letters "$w")"
    printf '%-44s %12s\n' 'messages archived' "$(field archived "$w")"
    printf '%-44s %12s\n' "projector VmRSS at $(field rss_at "$w") msgs (kB)" \
        "$(field rss_mid_kb "$w")"
    printf '%-44s %12s\n' "projector VmRSS at $(field messages "$w") msgs (kB)" \
        "$(field rss_end_kb "$w")"
    if [ -z "$LAT_NOTE" ]; then
        p99=$(field p99_ms "$l")
        printf '%-44s %12s\n' "propagation p50 at $RATE/s, $INGRESS (ms)" \
            "$(field p50_ms "$l")"
        printf '%-44s %12s\n' "propagation p90 (ms)" "$(field p90_ms "$l")"
        printf '%-44s %12s\n' "propagation p99 (ms)" "$p99"
        printf '%-44s %12s\n' "propagation max (ms)" "$(field max_ms "$l")"
        printf '%-44s %12s\n' "waited for autovacuum of the load (s)" \
            "$SETTLED_S"
        printf '%-44s %12s\n' "checkpoint after the load (s)" \
            "$CHECKPOINT_S"
    else
        printf 'latency not measured: %s\n' "$LAT_NOTE"
    fi
    printf '\ntargets:\n'
    printf '  throughput %8s msg/s (target >= 10000)  %s\n' "$rate" \
        "$(verdict "$rate" '>=' 10000)"
    if [ -z "$LAT_NOTE" ]; then
        printf '  propagation p99 %6s ms (target < 50 ms)  %s\n' "$p99" \
            "$(verdict "$p99" '<' 50)"
    fi
    if [ "${INGRESS:-}" = webhook ]; then
        printf '  (latency: from the 202 of POST /v1/webhooks/canonical'
    else
        printf '  (latency: from the broker ack of a produce'
    fi
    printf ' to the GET showing the count;\n   the first second is'
    printf ' not counted)\n'
}

for b in commerce-projector commerce-migrate commerce-devbroker; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is not built (make workers)"
done

LAT_NOTE="skipped (BENCH_PROJ_LATENCY=0)"
INGRESS=
build_tool
start_pg
start_redis
start_broker
throughput
[ "$LATENCY" = 1 ] && latency
summary | tee "$RESULT"
