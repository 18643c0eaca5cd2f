#!/usr/bin/env bash
# make bench, webhook part: wrk POSTs Standard Webhooks deliveries (1 KiB
# JSON bodies, each with its own webhook-id, signed with a whsec_ secret)
# to /v1/webhooks/standard served by
#   module  commerce_webhook + signature + dedup + commerce_limit
#           (build/ngx_http_commerce_module.so): verify, Redis SET NX,
#           local rate limit, Kafka publish acknowledged by the broker, 202
#   lua     the OpenResty-style peer doing the same (webhook_peer.lua,
#           wh_kafka.lua): ngx_http_lua + lua-resty-redis + lua-resty-kafka
# each on one nginx worker, one variant at a time, against a private
# redis-server and a fresh commerce-devbroker (librdkafka's mock cluster,
# real Kafka protocol). After each variant the messages in the topic are
# counted and compared with the 202s wrk saw.
#
# wrk cannot sign (its LuaJIT has no HMAC): gen-requests.c, compiled into
# build/bench/webhook, writes a pool of pre-signed requests before each
# variant and wrk-webhook.lua sends them in order, every id once.
#
# Everything lives in build/bench/webhook/ (configs, logs, pools, wrk
# output, results.txt); nothing of a running stack is touched. Every
# process started here is stopped on exit, also on failure.
#
# Environment:
#   BENCH_DURATION=10     seconds measured per variant
#   BENCH_WARMUP=2        seconds of warm-up per variant (not measured)
#   BENCH_ROUNDS=1        measured runs per variant; the best one is kept
#   BENCH_CONNECTIONS=64  wrk connections (one wrk thread)
#   BENCH_VARIANTS="module lua"
#   BENCH_POOL=           signed requests per variant (default: enough for
#                         40000 req/s over warm-up + rounds)
#   BENCH_BODY=1024       body bytes
#   BENCH_BROKERS=3 BENCH_PARTITIONS=6   the devbroker's cluster
#   BENCH_NGINX_CPU=0     core of the nginx worker
#   BENCH_LOAD_CPU=1      core of wrk (and of redis and the broker by
#                         default)
#   BENCH_REDIS_CPU=  BENCH_BROKER_CPU=   their cores (default LOAD_CPU)
#   BENCH_PIN=1           0: no taskset, the scheduler places everything
#   BENCH_KAFKA_PROPERTIES="linger.ms 1"  extra commerce_kafka_property
#                         lines for the module, ";"-separated (default
#                         none: librdkafka's defaults)
#   BENCH_MODULE_JSON=0   1: keep the module's JSON body check
#                         (commerce_webhook_json, on by default); off by
#                         default because the peer parses no JSON (Debian's
#                         ngx_http_lua has no cjson)
#   BENCH_PERF=0          1: perf record of the worker during the measured
#                         run (slows it a little); summary in
#                         <variant>/perf.txt
#   COMMERCE_BUILD        build dir holding the module and
#                         bin/commerce-devbroker (default build/)
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BUILD=${COMMERCE_BUILD:-$ROOT/build}
MODULE=$BUILD/ngx_http_commerce_module.so
BROKER_BIN=$BUILD/bin/commerce-devbroker
[ -x "$BROKER_BIN" ] || BROKER_BIN=$ROOT/build/bin/commerce-devbroker
OUT=$ROOT/build/bench/webhook
NGINX=/usr/sbin/nginx
NGX_MODULES=/usr/lib/nginx/modules

DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${BENCH_WARMUP:-2}
WARMUP=${WARMUP%s}
ROUNDS=${BENCH_ROUNDS:-1}
CONNS=${BENCH_CONNECTIONS:-64}
VARIANTS=${BENCH_VARIANTS:-module lua}
BODY=${BENCH_BODY:-1024}
POOL=${BENCH_POOL:-$(( 40000 * (WARMUP + ROUNDS * DURATION) + 10000 ))}
BROKERS=${BENCH_BROKERS:-3}
PARTITIONS=${BENCH_PARTITIONS:-6}
NGINX_CPU=${BENCH_NGINX_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
REDIS_CPU=${BENCH_REDIS_CPU:-$LOAD_CPU}
BROKER_CPU=${BENCH_BROKER_CPU:-$LOAD_CPU}
PIN=${BENCH_PIN:-1}
KAFKA_PROPERTIES=${BENCH_KAFKA_PROPERTIES:-}
PERF=${BENCH_PERF:-0}
MODULE_JSON=${BENCH_MODULE_JSON:-0}

SOURCE=standard
URI=/v1/webhooks/$SOURCE
TOPIC=commerce.inbound
LIMIT_RATE=1000000
LIMIT_BURST=100000
CLK_TCK=$(getconf CLK_TCK)

REDIS_PID=
NGINX_PID=
BROKER_PID=
NGINX_PORT=
REDIS_PORT=
BOOTSTRAP=
SECRET=
REQ_LEN=
POOL_NEXT=0

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Stop, by pid, whatever this script started; runs on every exit path.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_nginx
    stop_broker
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    fi
    rm -f "$OUT"/*/pool.bin
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
           && [ "$p" != "${REDIS_PORT:-}" ]; then
            echo "$p"
            return
        fi
    done
    die "no free port"
}

# Command prefix pinning to core $1 when the machine has that core. Used
# as a plain word list so that "${PIN[@]}" cmd & leaves $! = cmd's pid.
pin() {
    if [ "$PIN" = 1 ] && [ "$(nproc)" -gt "$1" ]; then
        echo taskset -c "$1"
    fi
}

cpu_ticks() {   # utime + stime of a pid (all its threads), in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

core_ticks() {  # "busy total" ticks of core $1 from /proc/stat
    awk -v c="cpu$1" '$1 == c {
        t = 0; for (i = 2; i <= NF; i++) t += $i
        print t - $5 - $6, t }' /proc/stat
}

pct() {         # pct TICKS DURATION_US -> "NN%"
    awk -v t="$1" -v h="$CLK_TCK" -v d="$2" \
        'BEGIN { printf "%.0f%%", d ? t / h / (d / 1e6) * 100 : 0 }'
}

start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$OUT/redis"
    "${PIN_REDIS[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save '' --appendonly no --daemonize no --protected-mode yes \
        --dir "$OUT/redis" --logfile "$OUT/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$OUT/redis.log" >&2 || true
    die "redis-server did not start on port $REDIS_PORT"
}

# A fresh cluster per variant, so that the topic holds only its messages.
start_broker() {
    local dir=$OUT/$1
    rm -f "$dir/kafka.bootstrap"
    "${PIN_BROKER[@]}" "$BROKER_BIN" --brokers "$BROKERS" \
        --partitions "$PARTITIONS" --topics "$TOPIC" \
        --bootstrap-file "$dir/kafka.bootstrap" --log-level warn \
        2> "$dir/logs/broker.log" &
    BROKER_PID=$!
    for _ in $(seq 100); do
        if [ -s "$dir/kafka.bootstrap" ]; then
            BOOTSTRAP=$(cat "$dir/kafka.bootstrap")
            return
        fi
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/logs/broker.log" >&2 || true
    die "commerce-devbroker did not start"
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
}

# Messages in the topic: the sum of the partitions' end offsets (the mock
# keeps only the last few MB of each partition, so consuming them all
# would undercount; offsets start at 0 and are never reused).
kafka_count() {
    local n=0 p args=()
    for p in $(seq 0 $((PARTITIONS - 1))); do
        args+=(-t "$TOPIC:$p:-1")
    done
    n=$(kcat -b "$BOOTSTRAP" -Q "${args[@]}" 2>/dev/null \
        | awk '/offset/ { s += $NF; c++ } END { print c + 0, s + 0 }')
    set -- $n
    [ "$1" = "$PARTITIONS" ] || die "kcat -Q answered for $1 partitions"
    echo "$2"
}

# nginx.conf for one variant; every path inside $OUT/<variant>.
write_conf() {
    local v=$1 dir=$OUT/$1 user='' load='' http='' loc='' brokers p
    [ "$(id -u)" -eq 0 ] && user="user root;"

    case $v in
    module)
        load="load_module $MODULE;"
        http="commerce_redis_server 127.0.0.1:$REDIS_PORT;
    commerce_kafka_brokers $BOOTSTRAP;"
        if [ -n "$KAFKA_PROPERTIES" ]; then
            while IFS= read -r p; do
                [ -n "$p" ] && http+="
    commerce_kafka_property $p;"
            done <<< "${KAFKA_PROPERTIES//;/$'\n'}"
        fi
        http+="
    commerce_limit_zone \$binary_remote_addr zone=wh:1m rate=${LIMIT_RATE}r/s burst=$LIMIT_BURST;"
        loc="location = $URI {
            commerce_webhook $SOURCE;
            commerce_webhook_signature standard;
            commerce_webhook_secret $SECRET;
            commerce_webhook_dedup on;
            commerce_webhook_json $([ "$MODULE_JSON" = 1 ] && echo on || echo off);
            commerce_limit zone=wh;
        }"
        ;;
    lua)
        brokers=$(tr ',' '\n' <<< "$BOOTSTRAP" | awk -F: '
            { printf "{ host = \"%s\", port = %s }, ", $1, $2 }')
        load="load_module $NGX_MODULES/ndk_http_module.so;
load_module $NGX_MODULES/ngx_http_lua_module.so;"
        http="lua_package_path \"$HERE/?.lua;;\";
    lua_shared_dict wh_limit 1m;
    init_by_lua_block {
        require(\"webhook_peer\").configure{
            source = \"$SOURCE\",
            secret = \"$SECRET\",
            redis_host = \"127.0.0.1\",
            redis_port = $REDIS_PORT,
            redis_pool = $CONNS,
            brokers = { $brokers},
            topic = \"$TOPIC\",
            kafka_pool = $CONNS,
            limit_rate = $LIMIT_RATE,
            limit_burst = $LIMIT_BURST,
        }
    }"
        loc="location = $URI {
            client_max_body_size 1m;
            client_body_buffer_size 1m;
            content_by_lua_block {
                require(\"webhook_peer\").handle()
            }
        }"
        ;;
    esac

    cat > "$dir/nginx.conf" <<EOF
# generated by scripts/bench/webhook/run.sh ($v)
$load
$user
daemon off;
worker_processes 1;
worker_rlimit_nofile 4096;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $http

    server {
        listen 127.0.0.1:$NGINX_PORT;

        $loc
    }
}
EOF
}

# nginx -t of a variant's config; prints nginx's complaint on failure.
check_conf() {
    local v=$1 dir=$OUT/$1
    write_conf "$v"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -t -q \
        2> "$dir/logs/nginx-t.log"
}

start_nginx() {
    local v=$1 dir=$OUT/$1
    check_conf "$v" \
        || { cat "$dir/logs/nginx-t.log" >&2; die "$v: nginx -t failed"; }
    "${PIN_NGINX[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" \
        2>> "$dir/logs/error.log" &
    NGINX_PID=$!
    # Ours answers only once its pid file names it (another nginx could
    # hold the port).
    for _ in $(seq 50); do
        if [ "$(cat "$dir/nginx.pid" 2>/dev/null)" = "$NGINX_PID" ] \
           && curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; then
            return
        fi
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$dir/logs/error.log" >&2 || true
    die "$v: nginx did not start"
}

# Graceful stop (QUIT): requests still in flight finish, and with them
# their Kafka deliveries, before the worker exits.
stop_nginx() {
    [ -n "$NGINX_PID" ] || return 0
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=
}

worker_pid() {
    local w
    w=$(ps -o pid= --ppid "$NGINX_PID" | head -1 | tr -d ' ')
    [ -n "$w" ] || die "no nginx worker under $NGINX_PID"
    echo "$w"
}

# gen-requests, compiled when missing or older than its source.
build_generator() {
    local gen=$OUT/gen-requests
    if [ ! -x "$gen" ] || [ "$HERE/gen-requests.c" -nt "$gen" ]; then
        cc -std=gnu11 -O2 -Wall -Wextra -Werror "$HERE/gen-requests.c" \
            -o "$gen.tmp" -lcrypto && mv "$gen.tmp" "$gen" \
            || die "cannot build gen-requests"
    fi
}

# POST one pre-signed request file with curl; prints "<status> <body>".
# $2 replaces the webhook-signature header when given.
post_file() {
    local f=$1 sig=${2:-} id ts
    hdr() { tr -d '\r' < "$f" | sed -n "s/^$1: //p" | head -1; }
    id=$(hdr webhook-id)
    ts=$(hdr webhook-timestamp)
    [ -n "$sig" ] || sig=$(hdr webhook-signature)
    tail -c "$BODY" "$f" > "$f.body"
    curl -s -o "$f.out" -w '%{http_code}' \
        -H 'Content-Type: application/json' -H "webhook-id: $id" \
        -H "webhook-timestamp: $ts" -H "webhook-signature: $sig" \
        --data-binary "@$f.body" "http://127.0.0.1:$NGINX_PORT$URI"
    printf ' %s\n' "$(cat "$f.out")"
}

# Functional check before the load: a signed delivery -> 202 and its
# exact bytes in Kafka with its delivery_id header; the same again -> 200,
# not published; a wrong signature -> 401; a timestamp outside the 300 s
# window -> 401; an unsigned request -> 401.
validate() {
    local v=$1 dir=$OUT/$1 f=$OUT/$1/one.bin r id n bad
    "$OUT/gen-requests" "$SECRET" 1 "v_${v}_" "127.0.0.1:$NGINX_PORT" \
        "$URI" "$BODY" "$f" > /dev/null
    id=$(tr -d '\r' < "$f" | sed -n 's/^webhook-id: //p')

    r=$(post_file "$f")
    case $r in
    "202 "*'"status":"accepted"'*) ;;
    *) die "$v: signed delivery -> $r" ;;
    esac
    r=$(post_file "$f")
    [ "${r%% *}" = 200 ] || die "$v: duplicate delivery -> $r (want 200)"
    # another MAC, still canonical base64: the first character changed
    bad=$(tr -d '\r' < "$f" | sed -n 's/^webhook-signature: v1,//p')
    case $bad in A*) bad=B${bad#?} ;; *) bad=A${bad#?} ;; esac
    r=$(post_file "$f" "v1,$bad")
    [ "${r%% *}" = 401 ] || die "$v: wrong signature -> $r (want 401)"
    r=$(curl -s -o /dev/null -w '%{http_code}' -d '{}' \
        -H 'Content-Type: application/json' \
        "http://127.0.0.1:$NGINX_PORT$URI")
    [ "$r" = 401 ] || die "$v: unsigned request -> $r (want 401)"
    "$OUT/gen-requests" "$SECRET" 1 "v_${v}_old_" "127.0.0.1:$NGINX_PORT" \
        "$URI" "$BODY" "$dir/old.bin" -301 > /dev/null
    r=$(post_file "$dir/old.bin")
    [ "${r%% *}" = 401 ] || die "$v: timestamp 301 s old -> $r (want 401)"

    kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -e -q -f '%h\t%s\n' \
        > "$dir/kafka-check.txt" 2>/dev/null \
        || die "$v: kcat could not consume $TOPIC"
    n=$(wc -l < "$dir/kafka-check.txt")
    [ "$n" = 1 ] || die "$v: $n messages in $TOPIC after the check (want 1)"
    grep -q "delivery_id=${id}[,	]" "$dir/kafka-check.txt" \
        || die "$v: no delivery_id=$id header in Kafka"
    cut -f2- "$dir/kafka-check.txt" | head -c "$BODY" \
        | cmp -s - "$f.body" \
        || die "$v: the Kafka message differs from the body sent"
    log "$v: 202 + body byte for byte in Kafka, duplicate 200, bad" \
        "signature 401, stale timestamp 401, unsigned 401"
}

# A pool of POOL signed requests for this variant, flushed to disk before
# any load runs (so that writeback does not compete with it).
make_pool() {
    local v=$1 f=$OUT/$1/pool.bin
    log "$v: signing $POOL requests"
    REQ_LEN=$("$OUT/gen-requests" "$SECRET" "$POOL" "b_${v}_" \
              "127.0.0.1:$NGINX_PORT" "$URI" "$BODY" "$f") \
        || die "gen-requests failed"
    sync "$f"
    POOL_NEXT=0
}

# One wrk run on the load core, continuing in the pool where the last
# one stopped; prints its BENCH line plus wrk's own CPU time (this
# subshell's reaped-children ticks around the run).
run_wrk() {
    local v=$1 secs=$2 log=$3 me=$BASHPID line c0 c1
    c0=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    BENCH_POOL=$OUT/$v/pool.bin BENCH_REQ_LEN=$REQ_LEN \
    BENCH_POOL_START=$POOL_NEXT \
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
        -s "$HERE/wrk-webhook.lua" "http://127.0.0.1:$NGINX_PORT" > "$log" \
        2>&1 || { cat "$log" >&2; die "wrk failed"; }
    c1=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    line=$(grep '^BENCH ' "$log") || { cat "$log" >&2; die "no wrk summary"; }
    echo "$line wrk_ticks=$((c1 - c0))"
}

field() {       # field NAME "BENCH a=1 b=2"
    local kv
    for kv in $2; do
        [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }
    done
    echo 0
}

# Figures per variant.
declare -A RPS P50 P99 NON2XX ERRS S202 SOTHER WRAPS KAFKA ACKED INFLIGHT \
    WCPU WUS WRK RCPU BCPU CORE0 CORE1 CHECK FOREIGN0 FOREIGN1

# One measured wrk run of variant $1 against worker $2; its figures go
# to the result arrays unless an earlier round did more requests per
# second. Every run's 202s and sent requests are accumulated for the
# Kafka check.
measure() {
    local v=$1 w=$2 dir=$OUT/$1 line req dur rps t0 t1 r0 r1 b0 b1 \
          c0 c1 d0 d1 busy0 busy1 tot0 tot1
    t0=$(cpu_ticks "$w"); r0=$(cpu_ticks "$REDIS_PID")
    b0=$(cpu_ticks "$BROKER_PID")
    read -r busy0 tot0 < <(core_ticks "$NGINX_CPU")
    read -r d0 c0 < <(core_ticks "$LOAD_CPU")
    [ "$PERF" = 1 ] && perf_start "$v" "$w"
    line=$(run_wrk "$v" "$DURATION" "$dir/wrk-round.txt")
    [ "$PERF" = 1 ] && perf_report "$v"
    t1=$(cpu_ticks "$w"); r1=$(cpu_ticks "$REDIS_PID")
    b1=$(cpu_ticks "$BROKER_PID")
    read -r busy1 tot1 < <(core_ticks "$NGINX_CPU")
    read -r d1 c1 < <(core_ticks "$LOAD_CPU")
    account "$v" "$line"

    req=$(field requests "$line")
    dur=$(field duration_us "$line")
    rps=$(awk -v r="$req" -v d="$dur" \
          'BEGIN { printf "%.0f", r / d * 1e6 }')
    log "$v: ${rps} req/s, $(field s202 "$line") x 202"
    [ "$rps" -gt "${RPS[$v]:-0}" ] || return 0
    mv "$dir/wrk-round.txt" "$dir/wrk.txt"

    RPS[$v]=$rps
    P50[$v]=$(awk -v u="$(field p50_us "$line")" \
              'BEGIN { printf "%.2f", u / 1000 }')
    P99[$v]=$(awk -v u="$(field p99_us "$line")" \
              'BEGIN { printf "%.2f", u / 1000 }')
    NON2XX[$v]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' \
                 "$dir/wrk.txt")
    NON2XX[$v]=${NON2XX[$v]:-0}
    ERRS[$v]=$(( $(field err_connect "$line") + $(field err_read "$line") \
               + $(field err_write "$line") + $(field err_timeout "$line") ))
    S202[$v]=$(field s202 "$line")
    SOTHER[$v]=$(( req - S202[$v] ))
    WUS[$v]=$(awk -v t=$((t1 - t0)) -v h="$CLK_TCK" -v r="$req" \
              'BEGIN { printf "%.0f", r ? t / h / r * 1e6 : 0 }')
    WCPU[$v]=$(pct $((t1 - t0)) "$dur")
    WRK[$v]=$(pct "$(field wrk_ticks "$line")" "$dur")
    RCPU[$v]=$(pct $((r1 - r0)) "$dur")
    BCPU[$v]=$(pct $((b1 - b0)) "$dur")
    CORE0[$v]=$(awk -v b=$((busy1 - busy0)) -v t=$((tot1 - tot0)) \
                'BEGIN { printf "%.0f%%", t ? b / t * 100 : 0 }')
    CORE1[$v]=$(awk -v b=$((d1 - d0)) -v t=$((c1 - c0)) \
                'BEGIN { printf "%.0f%%", t ? b / t * 100 : 0 }')
    # Busy time of each core not spent by our processes: other processes
    # competing with the benchmark.
    FOREIGN0[$v]=$(( ${CORE0[$v]%\%} - ${WCPU[$v]%\%} ))
    FOREIGN1[$v]=$(( ${CORE1[$v]%\%} - ${WRK[$v]%\%} ))
    if [ "$REDIS_CPU" = "$NGINX_CPU" ]; then
        FOREIGN0[$v]=$(( FOREIGN0[$v] - ${RCPU[$v]%\%} ))
    else
        FOREIGN1[$v]=$(( FOREIGN1[$v] - ${RCPU[$v]%\%} ))
    fi
    if [ "$BROKER_CPU" = "$NGINX_CPU" ]; then
        FOREIGN0[$v]=$(( FOREIGN0[$v] - ${BCPU[$v]%\%} ))
    else
        FOREIGN1[$v]=$(( FOREIGN1[$v] - ${BCPU[$v]%\%} ))
    fi
}

# BENCH_PERF=1: call graphs of the worker for most of the measured run.
PERF_PID=
perf_start() {
    local v=$1 w=$2
    command -v perf >/dev/null || { log "perf not installed"; return; }
    perf record -q -g -p "$w" -o "$OUT/$v/perf.data" \
        -- sleep $(( DURATION > 2 ? DURATION - 1 : 1 )) > /dev/null 2>&1 &
    PERF_PID=$!
}

perf_report() {
    local v=$1 dir=$OUT/$1
    [ -n "$PERF_PID" ] || return 0
    wait "$PERF_PID" || { log "perf record failed"; PERF_PID=; return; }
    PERF_PID=
    {
        echo "# $v worker: CPU by object"
        perf report -i "$dir/perf.data" --stdio --no-children -g none \
            --sort dso 2>/dev/null | grep '%' | grep -v '^#' | head -12
        echo "# $v worker: top symbols"
        perf report -i "$dir/perf.data" --stdio --no-children -g none \
            --sort dso,symbol 2>/dev/null | grep '%' | grep -v '^#' \
            | head -30
    } > "$dir/perf.txt" || true
    log "$v: profile in $dir/perf.txt"
}

# Per wrk run: where the next run starts in the pool, the 202s seen and
# the requests sent but never answered (in flight when wrk stopped).
account() {
    local v=$1 line=$2 sent req
    sent=$(field sent "$line")
    req=$(field requests "$line")
    POOL_NEXT=$(( (POOL_NEXT + sent) % POOL ))
    ACKED[$v]=$(( ${ACKED[$v]:-0} + $(field s202 "$line") ))
    INFLIGHT[$v]=$(( ${INFLIGHT[$v]:-0} + sent - req ))
    WRAPS[$v]=$(( ${WRAPS[$v]:-0} + $(field wraps "$line") ))
}

# Every 202 must be in Kafka: messages = 202s seen by wrk (+1 of the
# check) + some of the requests wrk sent but stopped waiting for (the
# server finished them after wrk closed its sockets); nothing else.
kafka_check() {
    local v=$1 n extra
    n=$(kafka_count)
    KAFKA[$v]=$n
    extra=$(( n - 1 - ACKED[$v] ))
    if [ "$extra" -ge 0 ] && [ "$extra" -le "${INFLIGHT[$v]}" ]; then
        CHECK[$v]="ok (+$extra of ${INFLIGHT[$v]} unanswered)"
    else
        CHECK[$v]="FAIL ($n messages, $(( ACKED[$v] + 1 )) 202s,"
        CHECK[$v]+=" ${INFLIGHT[$v]} unanswered)"
    fi
    log "$v: Kafka holds $n messages; 202s seen $(( ACKED[$v] + 1 ))" \
        "(incl. the check): ${CHECK[$v]}"
}

bench_variant() {
    local v=$1 dir=$OUT/$1 w round
    rm -rf "$dir"
    mkdir -p "$dir/logs" "$dir/tmp"
    redis-cli -p "$REDIS_PORT" flushall > /dev/null
    start_broker "$v"
    start_nginx "$v"
    validate "$v"
    make_pool "$v"
    w=$(worker_pid)
    log "$v: worker $w, warm-up ${WARMUP}s"
    account "$v" "$(run_wrk "$v" "$WARMUP" "$dir/wrk-warmup.txt")"

    for round in $(seq "$ROUNDS"); do
        log "$v: measuring ${DURATION}s (round $round/$ROUNDS)"
        measure "$v" "$w"
    done
    log "$v: ${RPS[$v]} req/s, p50 ${P50[$v]} ms, p99 ${P99[$v]} ms"
    [ "$(worker_pid)" = "$w" ] || die "$v: worker was replaced (crash?)"
    stop_nginx
    kafka_check "$v"
    stop_broker
    rm -f "$dir/pool.bin"
}

where() {        # where PIN_ARRAY_NAME -> "core N" or "unpinned"
    local -n p=$1
    if [ ${#p[@]} -gt 0 ]; then echo "core ${p[2]}"; else echo unpinned; fi
}

verdict() {     # verdict VALUE OP LIMIT -> PASS/MISS
    awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? a >= b : a < b; print ok ? "PASS" : "MISS" }'
}

summary() {
    local v r
    printf 'commerce-edge webhook ingress benchmark, %s\n' \
        "$(date -u +%FT%TZ)"
    printf 'POST %s, Standard Webhooks, %s-byte JSON bodies, a new' \
        "$URI" "$BODY"
    printf ' webhook-id per request; wrk -t1 -c%s -d%ss (+%ss warm-up),' \
        "$CONNS" "$DURATION" "$WARMUP"
    printf ' best of %s; 1 nginx worker\n' "$ROUNDS"
    printf 'Kafka: commerce-devbroker (librdkafka %s mock cluster), %s' \
        "$(pkg-config --modversion rdkafka 2>/dev/null || echo '?')" \
        "$BROKERS"
    printf ' brokers, %s partitions, acks=all\n' "$PARTITIONS"
    printf 'placement (%s cores): nginx %s, wrk %s, redis-server %s,' \
        "$(nproc)" "$(where PIN_NGINX)" "$(where PIN_LOAD)" \
        "$(where PIN_REDIS)"
    printf ' broker %s; load avg at start: %s\n' "$(where PIN_BROKER)" \
        "$LOAD_AT_START"
    printf '\n%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
        variant req/s p50_ms p99_ms non202 errors wrkCPU worker us/req \
        redis broker core"$NGINX_CPU" core"$LOAD_CPU"
    for v in $VARIANTS; do
        [ -n "${RPS[$v]:-}" ] || continue
        printf '%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
            "$v" "${RPS[$v]}" "${P50[$v]}" "${P99[$v]}" "${SOTHER[$v]}" \
            "${ERRS[$v]}" "${WRK[$v]}" "${WCPU[$v]}" "${WUS[$v]}" \
            "${RCPU[$v]}" "${BCPU[$v]}" "${CORE0[$v]}" "${CORE1[$v]}"
    done
    printf '(non202: answers other than 202 in the measured run, wrk'
    printf " counted non-2xx: %s; errors: socket errors; worker, redis,\n" \
        "$(for v in $VARIANTS; do printf '%s %s ' "$v" "${NON2XX[$v]:-?}"
           done)"
    printf ' broker, wrkCPU: CPU share of that process; us/req: nginx worker'
    printf ' CPU time per request; core: busy share of that core)\n'
    if [ -n "${PIN_NGINX[*]}" ] && [ "$LOAD_CPU" != "$NGINX_CPU" ]; then
        for v in $VARIANTS; do
            [ -n "${RPS[$v]:-}" ] || continue
            if [ "${FOREIGN0[$v]}" -gt 10 ] || [ "${FOREIGN1[$v]}" -gt 10 ]
            then
                printf 'WARNING: %s: other processes used ~%s%% of core %s' \
                    "$v" "${FOREIGN0[$v]}" "$NGINX_CPU"
                printf ' and ~%s%% of core %s during the run: not reliable\n' \
                    "${FOREIGN1[$v]}" "$LOAD_CPU"
            fi
        done
    fi

    printf '\nKafka check (messages in %s after the variant = its 202s,' \
        "$TOPIC"
    printf ' plus requests wrk gave up on at its stop that the server still'
    printf ' completed):\n'
    for v in $VARIANTS; do
        [ -n "${KAFKA[$v]:-}" ] || continue
        printf '  %-7s %8s messages, %8s x 202 seen by wrk + 1 check:  %s\n' \
            "$v" "${KAFKA[$v]}" "${ACKED[$v]}" "${CHECK[$v]}"
        if [ "${WRAPS[$v]:-0}" -gt 0 ]; then
            printf '  %-7s pool of %s exhausted %s times: repeated ids' \
                "$v" "$POOL" "${WRAPS[$v]}"
            printf ' went through the dedup path (200, not published)\n'
        fi
    done

    printf '\nvariants:\n'
    printf '  module  commerce_webhook %s; commerce_webhook_signature' \
        "$SOURCE"
    printf ' standard; commerce_webhook_dedup on; commerce_limit (local'
    printf ' GCRA zone, %sr/s burst %s);\n          librdkafka idempotent' \
        "$LIMIT_RATE" "$LIMIT_BURST"
    printf ' producer, acks=all, properties: %s; JSON body check %s\n' \
        "${KAFKA_PROPERTIES:-librdkafka defaults}" \
        "$([ "$MODULE_JSON" = 1 ] && echo on || echo off)"
    printf '  lua     content_by_lua: leaky bucket in lua_shared_dict (as'
    printf ' lua-resty-limit-req), HMAC-SHA256 + CRYPTO_memcmp via FFI,\n'
    printf '          nginx.redis SET NX PX then SET done (pool %s),' "$CONNS"
    printf ' one acks=all Produce v3 per request on lua-resty-kafka'
    printf " 0.07's\n          client/broker (keepalive %s) with a" "$CONNS"
    printf ' RecordBatch v2 encoder (wh_kafka.lua), same Kafka headers\n'

    printf '\ntargets:\n'
    if [ -n "${RPS[module]:-}" ] && [ -n "${RPS[lua]:-}" ]; then
        r=$(awk -v a="${RPS[module]}" -v b="${RPS[lua]}" \
            'BEGIN { printf "%.2f", a / b }')
        printf '  module/lua    %6sx  (target >= 2x)     %s\n' "$r" \
            "$(verdict "$r" '>=' 2)"
        printf '  worker CPU per request: lua/module %sx\n' \
            "$(awk -v a="${WUS[lua]}" -v b="${WUS[module]}" \
               'BEGIN { printf "%.2f", b ? a / b : 0 }')"
    fi
    for v in $VARIANTS; do
        [ -n "${RPS[$v]:-}" ] || continue
        printf '  %-6s p99    %6s ms (target < 10 ms)  %s\n' "$v" \
            "${P99[$v]}" "$(verdict "${P99[$v]}" '<' 10)"
    done
    [ -n "${RPS[module]:-}" ] || printf '  (module variant not run)\n'
}

main() {
    local v
    command -v wrk >/dev/null || die "wrk is not installed"
    command -v kcat >/dev/null || die "kcat is not installed"
    command -v redis-server >/dev/null || die "redis-server is not installed"
    [ -x "$BROKER_BIN" ] || die "$BROKER_BIN not built (make workers)"
    for v in $VARIANTS; do
        case $v in
        module) [ -f "$MODULE" ] || die "$MODULE not built (make module)" ;;
        lua) [ -f "$NGX_MODULES/ngx_http_lua_module.so" ] \
                 || die "libnginx-mod-http-lua is not installed" ;;
        *) die "unknown variant $v" ;;
        esac
    done
    [ $(( WARMUP + ROUNDS * DURATION )) -le 240 ] \
        || die "warm-up + rounds x duration must stay within the 300 s" \
               "replay window (at most 240 s)"

    mkdir -p "$OUT"
    read -ra PIN_NGINX <<< "$(pin "$NGINX_CPU")"
    read -ra PIN_LOAD <<< "$(pin "$LOAD_CPU")"
    read -ra PIN_REDIS <<< "$(pin "$REDIS_CPU")"
    read -ra PIN_BROKER <<< "$(pin "$BROKER_CPU")"
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    build_generator
    SECRET=whsec_$(head -c 32 /dev/urandom | base64 -w0)
    start_redis
    log "redis-server on 127.0.0.1:$REDIS_PORT"
    NGINX_PORT=$(free_port)

    for v in $VARIANTS; do
        bench_variant "$v"
    done

    summary | tee "$OUT/results.txt"
}

main "$@"
