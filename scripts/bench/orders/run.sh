#!/usr/bin/env bash
# make bench, orders part: wrk POSTs orders to /v1/orders, each with the
# same RS256 bearer token and body and its own Idempotency-Key, served by
#   module  commerce_jwt + commerce_orders (build/ngx_http_commerce_module.so):
#           RS256 verification, Idempotency-Key claim (Redis script), the
#           skus checked in the store's hash, order.place published and
#           acknowledged by the broker, the answer stored, 202
#   lua     the OpenResty-style peer doing the same (orders_peer.lua, with
#           the webhook peer's producer wh_kafka.lua): ngx_http_lua,
#           RS256 through libcrypto by the FFI, lua-resty-redis
# each on one nginx worker, one variant at a time, against a private
# redis-server and a fresh commerce-devbroker. After each variant the
# messages in the topic are counted and compared with the 202s wrk saw.
# Then `commerce-jwt bench`: the cost of a verification alone, per
# algorithm.
#
# The issuer's RSA key (2048 bits) is made with openssl, its JWK Set from
# the public key's modulus; the token is signed by commerce-jwt.
#
# Everything lives in build/bench/orders/ (configs, logs, keys, wrk
# output, results.txt). Every process started here is stopped on exit.
#
# Environment:
#   BENCH_DURATION=10     seconds measured per variant
#   BENCH_WARMUP=2        seconds of warm-up per variant (not measured)
#   BENCH_ROUNDS=1        measured runs per variant; the best one is kept
#   BENCH_CONNECTIONS=64  wrk connections (one wrk thread)
#   BENCH_VARIANTS="module lua"
#   BENCH_LINES=2         lines of the order
#   BENCH_BROKERS=3 BENCH_PARTITIONS=6   the devbroker's cluster
#   BENCH_NGINX_CPU=0 BENCH_LOAD_CPU=1 BENCH_REDIS_CPU= BENCH_BROKER_CPU=
#   BENCH_PIN=1           as in scripts/bench/webhook/run.sh
#   BENCH_KAFKA_PROPERTIES= BENCH_KAFKA_THREADS=   as there
#   BENCH_JWT_ITERATIONS=2000   verifications per algorithm of
#                         commerce-jwt bench
#   COMMERCE_BUILD        build dir holding the module and bin/ (default
#                         build/)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
bench_init orders
bench_wrk_settings

VARIANTS=${BENCH_VARIANTS:-module lua}
LINES=${BENCH_LINES:-2}
BROKERS=${BENCH_BROKERS:-3}
PARTITIONS=${BENCH_PARTITIONS:-6}
BROKER_CPU=${BENCH_BROKER_CPU:-$LOAD_CPU}
JWT_ITERATIONS=${BENCH_JWT_ITERATIONS:-2000}
JWT_BIN=$BIN/commerce-jwt
[ -x "$JWT_BIN" ] || JWT_BIN=$ROOT/build/bin/commerce-jwt

URI=/v1/orders
TOPIC=commerce.commands
STORE=store-bench
ISSUER=bench
KID=bench
SUB=bench-user
TOKEN=
BODY_FILE=$OUT/order.json

# The issuer: key.pem (private), pub.pem, jwks.json (its public JWK), a
# token of SUB for an hour, and the order body of LINES lines.
make_keys() {
    local n i lines=
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$OUT/key.pem" 2> /dev/null || die "openssl genpkey failed"
    openssl pkey -in "$OUT/key.pem" -pubout -out "$OUT/pub.pem" \
        || die "openssl pkey failed"
    n=$(openssl rsa -pubin -in "$OUT/pub.pem" -noout -modulus \
        | sed 's/^Modulus=//' | xxd -r -p | base64 -w0 | tr '+/' '-_' \
        | tr -d '=')
    printf '{"keys":[{"kty":"RSA","kid":"%s","alg":"RS256","use":"sig",' \
        "$KID" > "$OUT/jwks.json"
    printf '"n":"%s","e":"AQAB"}]}\n' "$n" >> "$OUT/jwks.json"
    TOKEN=$("$JWT_BIN" sign --key "$OUT/key.pem" --alg RS256 --kid "$KID" \
            --claims "{\"iss\":\"$ISSUER\",\"sub\":\"$SUB\",\"exp\":$(( $(date +%s) + 3600 ))}") \
        || die "commerce-jwt sign failed"
    for i in $(seq "$LINES"); do
        lines+="${lines:+,}{\"sku\":\"SKU-$i\",\"quantity\":$i}"
    done
    printf '{"store_id":"%s","items":[%s],"shipping_address":{"name":"A. Shopper","line1":"1 Main St","city":"Lyon","postal_code":"69001","country":"FR"},"payment_method":"pm_tok_visa"}' \
        "$STORE" "$lines" > "$BODY_FILE"
}

# The store's read model: every sku of the order known.
seed() {
    local i
    redis-cli -p "$REDIS_PORT" flushall > /dev/null
    for i in $(seq "$LINES"); do
        redis-cli -p "$REDIS_PORT" hset "inv:$STORE" "SKU-$i" \
            "{\"sku\":\"SKU-$i\",\"on_hand\":1000000,\"available\":1000000,\"orderable\":true,\"version\":1,\"price\":{\"amount\":\"9.99\",\"currency\":\"EUR\"}}" \
            > /dev/null
    done
}

write_conf() {
    local v=$1 load='' http='' loc='' brokers
    case $v in
    module)
        load="load_module $MODULE;"
        http="commerce_redis_server 127.0.0.1:$REDIS_PORT;
    commerce_kafka_brokers $BOOTSTRAP;
    $(bench_kafka_directives)
    commerce_jwt_keys_file $OUT/jwks.json;
    commerce_jwt_issuer $ISSUER;"
        loc="location = $URI {
            commerce_jwt on;
            commerce_orders orders;
        }"
        ;;
    lua)
        brokers=$(tr ',' '\n' <<< "$BOOTSTRAP" | awk -F: '
            { printf "{ host = \"%s\", port = %s }, ", $1, $2 }')
        load=$BENCH_LUA_LOAD
        http="lua_package_path \"$HERE/?.lua;$HERE/../webhook/?.lua;;\";
    init_by_lua_block {
        local f = assert(io.open(\"$OUT/pub.pem\"))
        local pem = f:read(\"*a\")
        f:close()
        require(\"orders_peer\").configure{
            public_key = pem,
            kid = \"$KID\",
            issuer = \"$ISSUER\",
            redis_host = \"127.0.0.1\",
            redis_port = $REDIS_PORT,
            redis_pool = $CONNS,
            brokers = { $brokers},
            topic = \"$TOPIC\",
            kafka_pool = $CONNS,
        }
    }"
        loc="location = $URI {
            content_by_lua_block {
                require(\"orders_peer\").handle()
            }
        }"
        ;;
    esac
    bench_nginx_conf "$OUT/$v" "$load" "$http" "$loc"
}

# POST the order with key $1 (and the token unless $2 = none); prints
# "<status> <body>", the headers in $OUT/post.headers.
post() {
    local auth=(-H "Authorization: Bearer $TOKEN")
    [ "${2:-}" = none ] && auth=()
    curl -s -D "$OUT/post.headers" -o "$OUT/post.out" -w '%{http_code}' \
        "${auth[@]}" -H "Idempotency-Key: \"$1\"" \
        -H 'Content-Type: application/json' --data-binary "@$BODY_FILE" \
        "http://127.0.0.1:$NGINX_PORT$URI"
    printf ' %s\n' "$(cat "$OUT/post.out")"
}

# Functional check before the load: an order -> 202 with Location, one
# order.place in Kafka keyed by the order id; the same key again -> the
# same answer replayed, nothing published; no token -> 401.
validate() {
    local v=$1 dir=$OUT/$1 r r2 id n
    r=$(post "check-$v")
    case $r in
    "202 "*'"status":"pending"'*) ;;
    *) die "$v: order -> $r" ;;
    esac
    id=$(sed -n 's/.*"order_id":"\([^"]*\)".*/\1/p' <<< "$r")
    grep -qi "^location: /v1/orders/$id" "$OUT/post.headers" \
        || die "$v: no Location: /v1/orders/$id"
    r2=$(post "check-$v")
    [ "$r2" = "$r" ] || die "$v: replay -> $r2 (want $r)"
    grep -qi '^idempotent-replayed: true' "$OUT/post.headers" \
        || die "$v: the replay has no Idempotent-Replayed: true"
    r=$(post "check-$v-2" none)
    [ "${r%% *}" = 401 ] || die "$v: no token -> $r (want 401)"

    kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -e -q -f '%k\t%h\t%s\n' \
        > "$dir/kafka-check.txt" 2>/dev/null \
        || die "$v: kcat could not consume $TOPIC"
    n=$(wc -l < "$dir/kafka-check.txt")
    [ "$n" = 1 ] || die "$v: $n messages in $TOPIC after the check (want 1)"
    grep -q "^$id	.*command_type=order.place" "$dir/kafka-check.txt" \
        || die "$v: no order.place keyed $id in Kafka"
    log "$v: 202 + Location + order.place in Kafka, replay byte for byte," \
        "no token 401"
}

# One wrk run with keys of its own (it runs in a subshell: the prefix is
# the clock's, not a counter).
run_wrk() {
    BENCH_TOKEN=$TOKEN BENCH_BODY_FILE=$BODY_FILE \
    BENCH_KEY_PREFIX="$1-$(date +%s%N)" \
        bench_wrk "$2" "$HERE/wrk-orders.lua" "$3"
}

declare -A S202 SOTHER KAFKA ACKED INFLIGHT CHECK

measure() {
    local v=$1 w=$2 dir=$OUT/$1
    local -A m
    bench_measure m "$w" "$dir/wrk-round.txt" \
        "redis:$REDIS_PID:$REDIS_CPU" "broker:$BROKER_PID:$BROKER_CPU" -- \
        run_wrk "$v" "$DURATION" "$dir/wrk-round.txt"
    account "$v" "${m[line]}"
    log "$v: ${m[rps]} req/s, $(bench_field s202 "${m[line]}") x 202"
    bench_keep_best "$v" m || return 0
    mv "$dir/wrk-round.txt" "$dir/wrk.txt"
    S202[$v]=$(bench_field s202 "${m[line]}")
    SOTHER[$v]=$(( $(bench_field requests "${m[line]}") - S202[$v] ))
}

account() {
    local v=$1 line=$2
    ACKED[$v]=$(( ${ACKED[$v]:-0} + $(bench_field s202 "$line") ))
    INFLIGHT[$v]=$(( ${INFLIGHT[$v]:-0} + $(bench_field sent "$line") \
                     - $(bench_field requests "$line") ))
}

bench_variant() {
    local v=$1 dir=$OUT/$1 w
    rm -rf "$dir"
    mkdir -p "$dir"
    seed
    bench_start_broker "$dir" "$BROKER_CPU" --brokers "$BROKERS" \
        --partitions "$PARTITIONS" --topics "$TOPIC"
    write_conf "$v"
    bench_nginx_start "$dir" "$NGINX_CPU"
    validate "$v"
    w=$(bench_nginx_worker)
    log "$v: worker $w, warm-up ${WARMUP}s"
    account "$v" "$(run_wrk "$v" "$WARMUP" "$dir/wrk-warmup.txt")"
    bench_rounds "$v" "$w" measure
    [ "$(bench_nginx_worker)" = "$w" ] \
        || die "$v: worker was replaced (crash?)"
    bench_stop NGINX_PID QUIT 15
    bench_kafka_check "$v" "$TOPIC" "$PARTITIONS"
    bench_stop BROKER_PID
}

summary() {
    local v r
    printf 'commerce-edge orders benchmark, %s\n' "$(date -u +%FT%TZ)"
    printf 'POST %s, RS256 bearer token (2048-bit key), %s-line order' \
        "$URI" "$LINES"
    printf ' (%s bytes), a new Idempotency-Key per request;' \
        "$(wc -c < "$BODY_FILE")"
    printf ' wrk -t1 -c%s -d%ss (+%ss warm-up), best of %s; 1 nginx worker\n' \
        "$CONNS" "$DURATION" "$WARMUP" "$ROUNDS"
    printf 'Kafka: commerce-devbroker, %s brokers, %s partitions, acks=all;' \
        "$BROKERS" "$PARTITIONS"
    printf ' module %s\n' "$(bench_kafka_summary)"
    printf 'placement (%s cores): nginx %s, wrk %s, redis-server %s,' \
        "$(nproc)" "$(bench_where "$NGINX_CPU")" \
        "$(bench_where "$LOAD_CPU")" "$(bench_where "$REDIS_CPU")"
    printf ' broker %s; load avg at start: %s\n' \
        "$(bench_where "$BROKER_CPU")" "$LOAD_AT_START"
    printf '\n%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
        variant req/s p50_ms p99_ms non202 errors wrkCPU worker us/req \
        redis broker core"$NGINX_CPU" core"$LOAD_CPU"
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        printf '%-7s %7s %7s %7s %7s %6s %5s %6s %5s %5s %5s %5s %5s\n' \
            "$v" "${R[$v.rps]}" "${R[$v.p50]}" "${R[$v.p99]}" \
            "${SOTHER[$v]}" "${R[$v.errors]}" "${R[$v.wrk]}" \
            "${R[$v.worker]}" "${R[$v.us_req]}" "${R[$v.redis]}" \
            "${R[$v.broker]}" "${R[$v.core0]}" "${R[$v.core1]}"
    done
    printf '(non202: answers other than 202 in the measured run; us/req:'
    printf ' nginx worker CPU time per request; core: busy share)\n'
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        bench_warn_contention "$v"
    done

    printf '\nKafka check (order.place messages = 202s, plus requests wrk'
    printf ' gave up on at its stop that the server still completed):\n'
    for v in $VARIANTS; do
        [ -n "${KAFKA[$v]:-}" ] || continue
        printf '  %-7s %8s messages, %8s x 202 seen by wrk + 1 check:  %s\n' \
            "$v" "${KAFKA[$v]}" "${ACKED[$v]}" "${CHECK[$v]}"
    done

    printf '\ntargets:\n'
    if [ -n "${R[module.rps]:-}" ] && [ -n "${R[lua.rps]:-}" ]; then
        r=$(bench_ratio "${R[module.rps]}" "${R[lua.rps]}")
        printf '  module/lua    %6sx  (target >= 2x)     %s\n' "$r" \
            "$(bench_verdict "$r" '>=' 2)"
        printf '  worker CPU per request: lua/module %sx\n' \
            "$(bench_ratio "${R[lua.us_req]}" "${R[module.us_req]}")"
    fi
    for v in $VARIANTS; do
        [ -n "${R[$v.rps]:-}" ] || continue
        printf '  %-6s p99    %6s ms (target < 10 ms)  %s\n' "$v" \
            "${R[$v.p99]}" "$(bench_verdict "${R[$v.p99]}" '<' 10)"
    done

    printf '\nJWT verification alone (commerce-jwt bench, %s per' \
        "$JWT_ITERATIONS"
    printf ' algorithm, the module'"'"'s core):\n'
    sed 's/^/  /' "$OUT/jwt-bench.txt"
}

main() {
    local v pin
    bench_need wrk kcat redis-server openssl xxd curl
    [ -x "$BROKER_BIN" ] || die "$BROKER_BIN not built (make workers)"
    [ -x "$JWT_BIN" ] || die "$JWT_BIN not built (make workers)"
    for v in $VARIANTS; do
        case $v in
        module|lua) bench_need_variant "$v" ;;
        *) die "unknown variant $v" ;;
        esac
    done

    make_keys
    bench_start_redis "$REDIS_CPU"
    log "redis-server on 127.0.0.1:$REDIS_PORT"
    bench_port NGINX_PORT

    for v in $VARIANTS; do
        bench_variant "$v"
    done

    read -ra pin <<< "$(bench_pin "$NGINX_CPU")"
    "${pin[@]}" "$JWT_BIN" bench --iterations "$JWT_ITERATIONS" \
        > "$OUT/jwt-bench.txt" 2>&1 || die "commerce-jwt bench failed"

    summary | tee "$OUT/results.txt"
}

main "$@"
