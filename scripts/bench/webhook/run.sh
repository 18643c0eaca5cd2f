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
#                         60000 req/s over warm-up + rounds)
#   BENCH_BODY=1024       body bytes
#   BENCH_BROKERS=3 BENCH_PARTITIONS=6   the devbroker's cluster
#   BENCH_NGINX_CPU=0     core of the nginx worker
#   BENCH_LOAD_CPU=1      core of wrk (and of redis and the broker by
#                         default)
#   BENCH_REDIS_CPU=  BENCH_BROKER_CPU=   their cores (default LOAD_CPU)
#   BENCH_PIN=1           0: no taskset, the scheduler places everything
#   BENCH_KAFKA_PROPERTIES="linger.ms 1;max.in.flight 5"  extra
#                         commerce_kafka_property lines for the module,
#                         ";"-separated (default none: the module's
#                         producer defaults, docs/directives.md)
#   BENCH_KAFKA_THREADS=  batch, normal: the module's
#                         commerce_kafka_thread_scheduling (default batch)
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

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
bench_init webhook
bench_wrk_settings

VARIANTS=${BENCH_VARIANTS:-module lua}
BODY=${BENCH_BODY:-1024}
POOL=${BENCH_POOL:-$(( 60000 * (WARMUP + ROUNDS * DURATION) + 10000 ))}
BROKERS=${BENCH_BROKERS:-3}
PARTITIONS=${BENCH_PARTITIONS:-6}
BROKER_CPU=${BENCH_BROKER_CPU:-$LOAD_CPU}
MODULE_JSON=${BENCH_MODULE_JSON:-0}

SOURCE=standard
URI=/v1/webhooks/$SOURCE
TOPIC=commerce.inbound
LIMIT_RATE=1000000
LIMIT_BURST=100000

SECRET=
REQ_LEN=
POOL_NEXT=0

bench_on_exit 'rm -f "$OUT"/*/pool.bin'

# nginx.conf for one variant; every path inside $OUT/<variant>.
write_conf() {
    local v=$1 load='' http='' loc='' brokers
    case $v in
    module)
        load="load_module $MODULE;"
        http="commerce_redis_server 127.0.0.1:$REDIS_PORT;
    commerce_kafka_brokers $BOOTSTRAP;
    $(bench_kafka_directives)
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
        load=$BENCH_LUA_LOAD
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
    bench_nginx_conf "$OUT/$v" "$load" "$http" "$loc"
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

# One wrk run continuing in the pool where the last one stopped; prints
# its BENCH line.
run_wrk() {
    BENCH_POOL=$OUT/$1/pool.bin BENCH_REQ_LEN=$REQ_LEN \
    BENCH_POOL_START=$POOL_NEXT \
        bench_wrk "$2" "$HERE/wrk-webhook.lua" "$3"
}

# Answers by status, Kafka check per variant (the other figures: R[]).
declare -A S202 SOTHER WRAPS KAFKA ACKED INFLIGHT CHECK

# One measured wrk run of variant $1 against worker $2; its figures
# become the variant's, R[variant.*], unless an earlier round did more
# requests per second. Every run's 202s and sent requests are
# accumulated for the Kafka check.
measure() {
    local v=$1 w=$2 dir=$OUT/$1
    local -A m
    bench_measure m "$w" "$dir/wrk-round.txt" \
        "redis:$REDIS_PID:$REDIS_CPU" "broker:$BROKER_PID:$BROKER_CPU" -- \
        perf_wrk "$v" "$w" "$DURATION" "$dir/wrk-round.txt"
    account "$v" "${m[line]}"
    # deliveries acknowledged per second: when the pool ran out, repeated
    # ids were answered 200 (duplicate, nothing published), faster; they
    # are not counted
    m[rps]=$(awk -v n="$(bench_field s202 "${m[line]}")" \
                 -v d="$(bench_field duration_us "${m[line]}")" \
             'BEGIN { printf "%.0f", d ? n / d * 1e6 : 0 }')
    log "$v: ${m[rps]} x 202/s, $(bench_field requests "${m[line]}") answers"
    bench_keep_best "$v" m || return 0
    mv "$dir/wrk-round.txt" "$dir/wrk.txt"
    S202[$v]=$(bench_field s202 "${m[line]}")
    SOTHER[$v]=$(( $(bench_field requests "${m[line]}") - S202[$v] ))
}

# run_wrk under perf record of the worker when BENCH_PERF=1 (call graphs
# for most of the run, slowing it a little); summary in <variant>/perf.txt.
perf_wrk() {
    local v=$1 w=$2 dir=$OUT/$1 sp= line
    if [ "$PERF" = 1 ] && command -v perf > /dev/null; then
        perf record -q -g -p "$w" -o "$dir/perf.data" \
            -- sleep $(( DURATION > 2 ? DURATION - 1 : 1 )) \
            > /dev/null 2>&1 &
        sp=$!
    elif [ "$PERF" = 1 ]; then
        log "perf not installed"
    fi
    line=$(run_wrk "$v" "$3" "$4")
    if [ -n "$sp" ]; then
        if wait "$sp"; then
            bench_perf_report "$v" "$dir/perf.data" > "$dir/perf.txt" \
                || true
            log "$v: profile in $dir/perf.txt"
        else
            log "perf record failed"
        fi
    fi
    echo "$line"
}

# Per wrk run: where the next run starts in the pool, the 202s seen and
# the requests sent but never answered (in flight when wrk stopped).
account() {
    local v=$1 line=$2 sent req
    sent=$(bench_field sent "$line")
    req=$(bench_field requests "$line")
    POOL_NEXT=$(( (POOL_NEXT + sent) % POOL ))
    ACKED[$v]=$(( ${ACKED[$v]:-0} + $(bench_field s202 "$line") ))
    INFLIGHT[$v]=$(( ${INFLIGHT[$v]:-0} + sent - req ))
    WRAPS[$v]=$(( ${WRAPS[$v]:-0} + $(bench_field wraps "$line") ))
}

bench_variant() {
    local v=$1 dir=$OUT/$1 w
    rm -rf "$dir"
    mkdir -p "$dir"
    redis-cli -p "$REDIS_PORT" flushall > /dev/null
    # a fresh cluster per variant, so that the topic holds only its
    # messages
    bench_start_broker "$dir" "$BROKER_CPU" --brokers "$BROKERS" \
        --partitions "$PARTITIONS" --topics "$TOPIC"
    write_conf "$v"
    bench_nginx_start "$dir" "$NGINX_CPU"
    validate "$v"
    make_pool "$v"
    w=$(bench_nginx_worker)
    log "$v: worker $w, warm-up ${WARMUP}s"
    account "$v" "$(run_wrk "$v" "$WARMUP" "$dir/wrk-warmup.txt")"

    bench_rounds "$v" "$w" measure
    [ "$(bench_nginx_worker)" = "$w" ] \
        || die "$v: worker was replaced (crash?)"
    # Graceful stop (QUIT): requests still in flight finish, and with
    # them their Kafka deliveries, before the worker exits.
    bench_stop NGINX_PID QUIT 15
    bench_kafka_check "$v" "$TOPIC" "$PARTITIONS"
    bench_stop BROKER_PID
    rm -f "$dir/pool.bin"
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
        "$(nproc)" "$(bench_where "$NGINX_CPU")" \
        "$(bench_where "$LOAD_CPU")" "$(bench_where "$REDIS_CPU")"
    printf ' broker %s; load avg at start: %s\n' \
        "$(bench_where "$BROKER_CPU")" "$LOAD_AT_START"
    printf '\n%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
        variant 202/s p50_ms p99_ms non202 errors wrkCPU worker us/req \
        redis broker core"$NGINX_CPU" core"$LOAD_CPU"
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        printf '%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
            "$v" "${R[$v.rps]}" "${R[$v.p50]}" "${R[$v.p99]}" \
            "${SOTHER[$v]}" "${R[$v.errors]}" "${R[$v.wrk]}" \
            "${R[$v.worker]}" "${R[$v.us_req]}" "${R[$v.redis]}" \
            "${R[$v.broker]}" "${R[$v.core0]}" "${R[$v.core1]}"
    done
    printf '(202/s: deliveries acknowledged per second; non202: answers'
    printf ' other than 202 in the measured run, wrk'
    printf " counted non-2xx: %s; errors: socket errors; worker, redis,\n" \
        "$(for v in $VARIANTS; do printf '%s %s ' "$v" "${R[$v.non2xx]:-?}"
           done)"
    printf ' broker, wrkCPU: CPU share of that process; us/req: nginx worker'
    printf ' CPU time per request; core: busy share of that core)\n'
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        bench_warn_contention "$v"
    done

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
    printf ' producer, acks=all, %s; JSON body check %s\n' \
        "$(bench_kafka_summary)" \
        "$([ "$MODULE_JSON" = 1 ] && echo on || echo off)"
    printf '  lua     content_by_lua: leaky bucket in lua_shared_dict (as'
    printf ' lua-resty-limit-req), HMAC-SHA256 + CRYPTO_memcmp via FFI,\n'
    printf '          nginx.redis SET NX PX then SET done (pool %s),' "$CONNS"
    printf ' one acks=all Produce v3 per request on lua-resty-kafka'
    printf " 0.07's\n          client/broker (keepalive %s) with a" "$CONNS"
    printf ' RecordBatch v2 encoder (wh_kafka.lua), same Kafka headers\n'

    printf '\ntargets:\n'
    if [ -n "${R[module.rps]:-}" ] && [ -n "${R[lua.rps]:-}" ]; then
        r=$(bench_ratio "${R[module.rps]}" "${R[lua.rps]}")
        printf '  module/lua    %6sx  (target >= 2.5x)   %s\n' "$r" \
            "$(bench_verdict "$r" '>=' 2.5)"
        printf '  worker CPU per request: lua/module %sx\n' \
            "$(bench_ratio "${R[lua.us_req]}" "${R[module.us_req]}")"
    fi
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        printf '  %-6s p99    %6s ms (target < 10 ms)  %s\n' "$v" \
            "${R[$v.p99]}" "$(bench_verdict "${R[$v.p99]}" '<' 10)"
    done
    [ -n "${R[module.rps]:-}" ] || printf '  (module variant not run)\n'
}

main() {
    local v
    bench_need wrk kcat redis-server
    [ -x "$BROKER_BIN" ] || die "$BROKER_BIN not built (make workers)"
    for v in $VARIANTS; do
        case $v in
        module|lua) bench_need_variant "$v" ;;
        *) die "unknown variant $v" ;;
        esac
    done
    [ $(( WARMUP + ROUNDS * DURATION )) -le 240 ] \
        || die "warm-up + rounds x duration must stay within the 300 s" \
               "replay window (at most 240 s)"

    build_generator
    SECRET=whsec_$(head -c 32 /dev/urandom | base64 -w0)
    bench_start_redis "$REDIS_CPU"
    log "redis-server on 127.0.0.1:$REDIS_PORT"
    bench_port NGINX_PORT

    for v in $VARIANTS; do
        bench_variant "$v"
    done

    summary | tee "$OUT/results.txt"
}

main "$@"
