#!/usr/bin/env bash
# make bench: wrk against GET /v1/catalog/{random one of N items} served by
#   module  commerce_catalog_item (build/ngx_http_commerce_module.so) with
#           the read cache, as conf/nginx.conf ships it
#   uncached the same without the read cache: every read a Redis GET
#   lua     the OpenResty-style peer (scripts/bench/catalog_peer.lua)
#   static  stock nginx serving the same documents as files
# each on one nginx worker, one variant at a time, against a private
# redis-server; then the module worker's RSS across a million requests.
#
# Everything lives in build/bench/ (configs, logs, wrk output, results.txt);
# nothing of a running stack is touched. Every process started here is
# stopped on exit, also on failure.
#
# Environment:
#   BENCH_DURATION=10     seconds measured per variant
#   BENCH_WARMUP=2        seconds of warm-up per variant (not measured)
#   BENCH_ROUNDS=1        measured runs per variant; the best one is kept
#   BENCH_CONNECTIONS=64  wrk connections (one wrk thread)
#   BENCH_ITEMS=10000     catalog size
#   BENCH_RSS_REQUESTS=1000000  requests of the RSS check (0 = skip)
#   BENCH_VARIANTS="module uncached lua static"
#   BENCH_CACHE=32m       commerce_redis_cache_size of the module variant
#   BENCH_NGINX_CPU=0     core of the nginx worker
#   BENCH_LOAD_CPU=1      core of wrk (and of redis-server by default)
#   BENCH_REDIS_CPU=      core of redis-server (default BENCH_LOAD_CPU)
#   BENCH_PIN=1           0: no taskset, the scheduler places everything
#   BENCH_LUA_ETAG=0      1: the Lua peer also computes an ETag (MD5)
#   BENCH_MODULE_HTTP=    extra http{} directives for the module variant,
#                         e.g. "commerce_redis_pool_size 4;"
#   BENCH_RATES="20000 40000"  latency at these offered rates (req/s, space-
#                         separated; empty: skip), each for BENCH_RATE_SECONDS
#                         (5), by openloop.c: an open loop over the same
#                         connections, latency from when each request was
#                         due (no coordinated omission), after the rounds
#   BENCH_PERF=0          1: perf profile of each worker after its run
#   BENCH_ACCESS_LOG=1    0: access_log off for every variant (default:
#                         as shipped, a file in nginx's default format)
#   COMMERCE_BUILD        build dir holding the module (default build/)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
bench_init
bench_wrk_settings
BENCH_MS_DIGITS=3
BENCH_US_DIGITS=1

ITEMS=${BENCH_ITEMS:-10000}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-1000000}
VARIANTS=${BENCH_VARIANTS:-module uncached lua static}
CACHE=${BENCH_CACHE:-32m}
LUA_ETAG=${BENCH_LUA_ETAG:-0}
RATES=${BENCH_RATES-20000 40000}
RATE_SECONDS=${BENCH_RATE_SECONDS:-5}
MODULE_HTTP=${BENCH_MODULE_HTTP:-}

CACHE_CONTROL="public, max-age=5, stale-while-revalidate=30"
LUA_POOL=$CONNS
ID_WIDTH=$(( ${#ITEMS} > 5 ? ${#ITEMS} : 5 ))

# The catalog into Redis and, byte for byte the same, into static files.
load_data() {
    local out keys
    out=$("$ROOT/scripts/gen-catalog.sh" "$ITEMS" \
          | redis-cli -p "$REDIS_PORT" --pipe 2>&1) \
        || die "loading redis failed: $out"
    case $out in *"errors: 0,"*) ;; *) die "redis --pipe: $out" ;; esac
    keys=$(redis-cli -p "$REDIS_PORT" dbsize)
    [ "$keys" -eq $((ITEMS + 1)) ] || die "redis holds $keys keys"

    rm -rf "$OUT/docs"
    "$ROOT/scripts/gen-catalog.sh" -f files -d "$OUT/docs/v1/catalog" \
        "$ITEMS"
}

# nginx.conf for one variant; every path inside $OUT/<variant>.
write_conf() {
    local v=$1 load= http= loc=
    case $v in
    module|uncached)
        load="load_module $MODULE;"
        http="commerce_redis_server 127.0.0.1:$REDIS_PORT;
    $MODULE_HTTP"
        [ "$v" = uncached ] || http+="
    commerce_redis_cache_size $CACHE;"
        loc="location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
            commerce_catalog_item \$item_id;
            commerce_cache_control \"$CACHE_CONTROL\";
        }"
        ;;
    lua)
        # Debian's ngx_http_lua 0.10.23 loads resty.core at startup and
        # refuses to start without it; its built-in default path is
        # /usr/share/lua/5.1/?.lua, which a lua_package_path replaces
        # unless it ends in ";;" (the default appended).
        load=$BENCH_LUA_LOAD
        http="lua_package_path \"$HERE/?.lua;;\";
    init_by_lua_block {
        require(\"catalog_peer\").configure{
            host = \"127.0.0.1\",
            port = $REDIS_PORT,
            pool_size = $LUA_POOL,
            cache_control = \"$CACHE_CONTROL\",
            etag = $([ "$LUA_ETAG" = 1 ] && echo true || echo false),
        }
    }"
        loc="location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
            content_by_lua_block {
                require(\"catalog_peer\").item(ngx.var.item_id)
            }
        }"
        ;;
    static)
        http="sendfile on;
    tcp_nopush on;
    types { }
    default_type application/json;"
        loc="location /v1/catalog/ {
            root $OUT/docs;
            add_header Cache-Control \"$CACHE_CONTROL\";
        }"
        ;;
    esac
    bench_nginx_conf "$OUT/$v" "$load" "$http" "$loc"
}

# Same answers from every variant: 200 + exact bytes + JSON type, 404.
# Prints the headers the variant adds, for the summary.
validate() {
    local v=$1 dir=$OUT/$1 id code ctype extra
    id=$(printf "item-%0${ID_WIDTH}d" "$ITEMS")
    code=$(curl -s -D "$dir/h.txt" -o "$dir/b.txt" -w '%{http_code}' \
           "http://127.0.0.1:$NGINX_PORT/v1/catalog/$id")
    [ "$code" = 200 ] || die "$v: GET $id -> $code"
    cmp -s "$dir/b.txt" "$OUT/docs/v1/catalog/$id" \
        || die "$v: body of $id differs from the stored document"
    ctype=$(tr -d '\r' < "$dir/h.txt" \
            | awk -F': ' 'tolower($1) == "content-type" { print $2 }')
    [ "$ctype" = application/json ] \
        || die "$v: Content-Type '$ctype'"
    code=$(curl -s -o /dev/null -w '%{http_code}' \
           "http://127.0.0.1:$NGINX_PORT/v1/catalog/item-missing")
    [ "$code" = 404 ] || die "$v: GET item-missing -> $code"

    extra=$(tr -d '\r' < "$dir/h.txt" | awk -F': ' '
        tolower($1) ~ /^(etag|last-modified|vary|cache-control)$/ {
            printf "%s%s", (n++ ? "," : ""), $1 }')
    echo "${extra:-none}"
}

# One wrk run of random catalog reads; prints its BENCH line.
run_wrk() {
    BENCH_ITEMS=$ITEMS BENCH_ID_WIDTH=$ID_WIDTH BENCH_SEED=$RANDOM \
        bench_wrk "$1" "$HERE/wrk-random.lua" "$2"
}

# openloop, compiled when missing or older than its source.
build_openloop() {
    local bin=$OUT/openloop
    if [ ! -x "$bin" ] || [ "$HERE/openloop.c" -nt "$bin" ]; then
        cc -std=gnu11 -O2 -Wall -Wextra -Werror "$HERE/openloop.c" \
            -o "$bin.tmp" && mv "$bin.tmp" "$bin" \
            || die "cannot build openloop"
    fi
}

# Latency of variant $1 at each offered rate: R[variant.at.RATE] holds
# "p50_ms p99_ms max_ms client_lag_p99_ms errors".
at_rates() {
    local v=$1 rate line pin e
    read -ra pin <<< "$(bench_pin "$LOAD_CPU")"
    for rate in $RATES; do
        line=$("${pin[@]}" "$OUT/openloop" "$NGINX_PORT" "$CONNS" "$rate" \
               "$RATE_SECONDS" "$ITEMS" "$ID_WIDTH" "$RANDOM") \
            || die "openloop failed"
        e=0
        for f in err_connect err_read err_write err_status err_timeout; do
            e=$((e + $(bench_field "$f" "$line")))
        done
        R[$v.at.$rate]="$(bench_ms "$(bench_field p50_us "$line")") \
$(bench_ms "$(bench_field p99_us "$line")") \
$(bench_ms "$(bench_field max_us "$line")") \
$(bench_ms "$(bench_field lag_p99_us "$line")") $e"
        log "$v at $rate req/s: p50 p99 max lag errors: ${R[$v.at.$rate]}"
    done
}

# Profile the worker under a short extra load (BENCH_PERF=1): syscalls
# per request (perf stat on syscall tracepoints during one wrk run), then
# a perf record with call graphs; summaries in <variant>/perf.txt.
profile() {
    local v=$1 w=$2 dir=$OUT/$1 sp line req ev events=
    command -v perf >/dev/null || { log "perf not installed"; return; }
    for ev in epoll_wait epoll_ctl accept4 recvfrom read readv writev \
              write sendto sendfile64 openat newfstat close setsockopt; do
        events+=${events:+,}syscalls:sys_enter_$ev
    done

    log "$v: syscalls per request and perf record of worker $w"
    perf stat -x, -e "$events" -p "$w" -o "$dir/syscalls.csv" \
        > /dev/null 2>&1 &
    sp=$!
    sleep 0.2
    line=$(run_wrk 4 "$dir/wrk-perf.txt")
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    req=$(bench_field requests "$line")

    perf record -q -g -p "$w" -o "$dir/perf.data" -- sleep 4 \
        > /dev/null 2>&1 &
    sp=$!
    run_wrk 5 "$dir/wrk-perf.txt" > /dev/null
    wait "$sp" || { log "perf record failed"; return; }
    rm -f "$dir/perf.data.old"

    {
        echo "# $v worker: syscalls per request ($req requests)"
        awk -F, -v r="$req" '$3 ~ /sys_enter_/ && $1 + 0 > 0 {
            sub(/.*sys_enter_/, "", $3)
            printf "    %-12s %6.2f\n", $3, $1 / r }' "$dir/syscalls.csv"
        bench_perf_report "$v" "$dir/perf.data"
    } > "$dir/perf.txt" || true
    log "$v: profile summary in $dir/perf.txt"
    sed -n '1,/top symbols/p' "$dir/perf.txt" >&2
}

# Headers on a 200 per variant (validate), for the summary.
declare -A HDRS

# One measured wrk run of variant $1 against worker $2; its figures
# become the variant's, R[variant.*], unless an earlier round did more
# requests per second.
measure() {
    local v=$1 w=$2 dir=$OUT/$1
    local -A m
    bench_measure m "$w" "$dir/wrk-round.txt" \
        "redis:$REDIS_PID:$REDIS_CPU" -- \
        run_wrk "$DURATION" "$dir/wrk-round.txt"
    log "$v: ${m[rps]} req/s"
    bench_keep_best "$v" m || return 0
    mv "$dir/wrk-round.txt" "$dir/wrk.txt"
}

bench_variant() {
    local v=$1 dir=$OUT/$1 w
    rm -rf "$dir"
    write_conf "$v"
    bench_nginx_start "$dir" "$NGINX_CPU"
    HDRS[$v]=$(validate "$v")
    w=$(bench_nginx_worker)
    [ "$v" = module ] && RSS_START=$(bench_rss_kb "$w")
    log "$v: worker $w, warm-up ${WARMUP}s"
    run_wrk "$WARMUP" "$dir/wrk-warmup.txt" > /dev/null

    bench_rounds "$v" "$w" measure
    at_rates "$v"

    [ "$PERF" = 1 ] && profile "$v" "$w"
    if [ "$v" = module ] && [ "$RSS_REQUESTS" -gt 0 ]; then
        rss_check "$w"
    fi
    bench_stop NGINX_PID
}

# Worker RSS before and after RSS_REQUESTS more requests (module only).
RSS_BEFORE= RSS_AFTER= RSS_DONE=0
rss_check() {
    local w=$1 total=0 need secs line
    RSS_BEFORE=$(bench_rss_kb "$w")
    while [ "$total" -lt "$RSS_REQUESTS" ]; do
        need=$((RSS_REQUESTS - total))
        secs=$(awk -v n="$need" -v r="${R[module.rps]}" \
               'BEGIN { s = int(n / (r > 0 ? r : 1000) * 1.05) + 1
                        print s < 2 ? 2 : s }')
        log "module: RSS check, $total/$RSS_REQUESTS requests, ${secs}s more"
        line=$(run_wrk "$secs" "$OUT/module/wrk-rss.txt")
        total=$((total + $(bench_field requests "$line")))
    done
    RSS_DONE=$total
    RSS_AFTER=$(bench_rss_kb "$w")
    [ "$(bench_nginx_worker)" = "$w" ] \
        || die "module worker was replaced (crash?)"
}

summary() {
    local v r_lua r_static rate p99
    printf 'commerce-edge catalog read benchmark, %s\n' "$(date -u +%FT%TZ)"
    printf 'GET /v1/catalog/{random of %d items, %d..%d bytes}, wrk -t1 -c%d' \
        "$ITEMS" "$(stat -c %s "$OUT"/docs/v1/catalog/* | sort -n | head -1)" \
        "$(stat -c %s "$OUT"/docs/v1/catalog/* | sort -n | tail -1)" "$CONNS"
    printf ' -d%ss (+%ss warm-up), best of %s, 1 nginx worker\n' \
        "$DURATION" "$WARMUP" "$ROUNDS"
    printf 'placement (%s cores): nginx master+worker %s, wrk %s,' \
        "$(nproc)" "$(bench_where "$NGINX_CPU")" "$(bench_where "$LOAD_CPU")"
    printf ' redis-server %s; load avg at start: %s\n' \
        "$(bench_where "$REDIS_CPU")" "$LOAD_AT_START"
    printf '\n%-8s %9s %7s %7s %6s %6s %6s %5s %5s %5s %5s  %s\n' variant \
        req/s p50_ms p99_ms errors worker us/req redis wrk \
        core"$NGINX_CPU" core"$LOAD_CPU" "headers on 200 besides Content-*"
    for v in $VARIANTS; do
        printf '%-8s %9s %7.3f %7.3f %6s %6s %6s %5s %5s %5s %5s  %s\n' \
            "$v" "${R[$v.rps]}" "${R[$v.p50]}" "${R[$v.p99]}" \
            $(( R[$v.non2xx] + R[$v.errors] )) "${R[$v.worker]}" \
            "${R[$v.us_req]}" "${R[$v.redis]}" "${R[$v.wrk]}" \
            "${R[$v.core0]}" "${R[$v.core1]}" "${HDRS[$v]}"
    done
    printf '(errors: non-2xx + socket errors; worker, redis, wrk: CPU share of'
    printf ' that process; us/req: nginx worker\n CPU time per request;'
    printf ' core: busy share of that core, all processes)\n'
    for v in $VARIANTS; do
        bench_warn_contention "$v"
    done
    if [ -n "$RATES" ]; then
        printf '\nat an offered rate (open loop, %s connections, %ss each;' \
            "$CONNS" "$RATE_SECONDS"
        printf ' latency from when each request was due):\n'
        printf '%-8s %9s %7s %7s %7s %7s %6s\n' variant req/s p50_ms p99_ms \
            max_ms lag_ms errors
        for v in $VARIANTS; do
            for rate in $RATES; do
                printf '%-8s %9s %7s %7s %7s %7s %6s\n' "$v" "$rate" \
                    ${R[$v.at.$rate]}
            done
        done
        printf '(lag: p99 of how long after a request was due, with its'
        printf ' connection free, the client sent it; a large one means'
        printf ' the client, not\n the server, fell behind)\n'
    fi
    printf '\nvariants:\n'
    printf '  module  commerce_catalog_item $item_id; commerce_cache_control;'
    printf ' commerce_redis_cache_size %s; [%s] strong ETag, JSON 404\n' \
        "$CACHE" "${MODULE_HTTP:-default pool (commerce_redis_pool_size 2)}"
    printf '  uncached  the same without commerce_redis_cache_size\n'
    printf '  lua     content_by_lua + nginx.redis (lua-resty-redis),'
    printf ' set_keepalive pool %s, JSON 404, ETag %s\n' "$LUA_POOL" \
        "$([ "$LUA_ETAG" = 1 ] && echo 'on (md5)' || echo off)"
    printf '  static  sendfile on; tcp_nopush on; root + default_type'
    printf ' application/json; add_header Cache-Control; no open_file_cache;'
    printf ' nginx ETag (mtime-size) + Last-Modified, HTML 404\n'
    printf '  all: %s keepalive_requests 1000 (default)\n' \
        "$(bench_access_log '<variant>')"

    printf '\ntargets:\n'
    [ -n "${R[module.rps]:-}" ] || printf "  (module variant not run)\n"
    if [ -n "${R[module.rps]:-}" ] && [ -n "${R[lua.rps]:-}" ]; then
        r_lua=$(bench_ratio "${R[module.rps]}" "${R[lua.rps]}")
        printf '  module/lua    %6sx  (target >= 1.6x)   %s\n' "$r_lua" \
            "$(bench_verdict "$r_lua" '>=' 1.6)"
    fi
    if [ -n "${R[module.rps]:-}" ] && [ -n "${R[static.rps]:-}" ]; then
        r_static=$(bench_ratio "${R[module.rps]}" "${R[static.rps]}")
        printf '  module/static %6sx  (target >= 1.0x)   %s\n' "$r_static" \
            "$(bench_verdict "$r_static" '>=' 1.0)"
    fi
    if [ -n "${R[module.rps]:-}" ]; then
        printf '  module p99    %6s ms (target <= 1 ms)  %s   at saturation\n' \
            "${R[module.p99]}" "$(bench_verdict "${R[module.p99]}" '<=' 1)"
        for rate in $RATES; do
            read -r _ p99 _ <<< "${R[module.at.$rate]}"
            printf '  module p99    %6s ms (target <= 1 ms)  %s   at %s req/s\n' \
                "$p99" "$(bench_verdict "$p99" '<=' 1)" "$rate"
        done
    fi
    if [ -n "${R[module.rps]:-}" ]; then
        printf '  worker CPU per request (independent of contention):'
        for v in uncached lua static; do
            [ -n "${R[$v.us_req]:-}" ] || continue
            printf ' %s/module %sx' "$v" \
                "$(bench_ratio "${R[$v.us_req]}" "${R[module.us_req]}")"
        done
        printf '\n'
    fi
    if [ -n "$RSS_AFTER" ]; then
        printf '\nmodule worker RSS (VmRSS): at start %s kB; before %s' \
            "$RSS_START" "$RSS_BEFORE"
        printf ' kB; after %s more requests %s kB; growth %+d kB\n' \
            "$RSS_DONE" "$RSS_AFTER" $((RSS_AFTER - RSS_BEFORE))
    fi
}

main() {
    local v
    bench_need wrk redis-server
    for v in $VARIANTS; do
        case $v in
        module|lua) bench_need_variant "$v" ;;
        uncached) bench_need_variant module ;;
        static) ;;
        *) die "unknown variant $v" ;;
        esac
    done

    [ -z "$RATES" ] || build_openloop
    bench_start_redis "$REDIS_CPU"
    log "redis-server on 127.0.0.1:$REDIS_PORT, loading $ITEMS items"
    load_data
    bench_port NGINX_PORT

    RSS_START=
    for v in $VARIANTS; do
        bench_variant "$v"
    done

    summary | tee "$OUT/results.txt"
}

main "$@"
