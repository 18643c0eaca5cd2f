#!/usr/bin/env bash
# make bench: wrk against GET /v1/catalog/{random one of N items} served by
#   module  commerce_catalog_item (build/ngx_http_commerce_module.so)
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
#   BENCH_VARIANTS="module lua static"
#   BENCH_NGINX_CPU=0     core of the nginx worker
#   BENCH_LOAD_CPU=1      core of wrk (and of redis-server by default)
#   BENCH_REDIS_CPU=      core of redis-server (default BENCH_LOAD_CPU)
#   BENCH_PIN=1           0: no taskset, the scheduler places everything
#   BENCH_LUA_ETAG=0      1: the Lua peer also computes an ETag (MD5)
#   BENCH_MODULE_HTTP=    extra http{} directives for the module variant,
#                         e.g. "commerce_redis_pool_size 4;"
#   BENCH_PERF=0          1: perf profile of each worker after its run
#   COMMERCE_BUILD        build dir holding the module (default build/)
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${COMMERCE_BUILD:-$ROOT/build}
MODULE=$BUILD/ngx_http_commerce_module.so
OUT=$ROOT/build/bench
NGINX=/usr/sbin/nginx
NGX_MODULES=/usr/lib/nginx/modules

DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${BENCH_WARMUP:-2}
WARMUP=${WARMUP%s}
ROUNDS=${BENCH_ROUNDS:-1}
CONNS=${BENCH_CONNECTIONS:-64}
ITEMS=${BENCH_ITEMS:-10000}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-1000000}
VARIANTS=${BENCH_VARIANTS:-module lua static}
NGINX_CPU=${BENCH_NGINX_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
REDIS_CPU=${BENCH_REDIS_CPU:-$LOAD_CPU}
LUA_ETAG=${BENCH_LUA_ETAG:-0}
PERF=${BENCH_PERF:-0}
MODULE_HTTP=${BENCH_MODULE_HTTP:-}
PIN=${BENCH_PIN:-1}

CACHE_CONTROL="public, max-age=5, stale-while-revalidate=30"
LUA_POOL=$CONNS
ID_WIDTH=$(( ${#ITEMS} > 5 ? ${#ITEMS} : 5 ))
CLK_TCK=$(getconf CLK_TCK)

REDIS_PID=
NGINX_PID=
NGINX_PORT=
REDIS_PORT=

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Stop, by pid, whatever this script started; runs on every exit path.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_nginx
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
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

cpu_ticks() {   # utime + stime of a pid, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

core_ticks() {  # "busy total" ticks of core $1 from /proc/stat
    awk -v c="cpu$1" '$1 == c {
        t = 0; for (i = 2; i <= NF; i++) t += $i
        print t - $5 - $6, t }' /proc/stat
}

rss_kb() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
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
    local v=$1 dir=$OUT/$1 user= load= http= loc=
    rm -rf "$dir"
    mkdir -p "$dir/logs" "$dir/tmp"
    [ "$(id -u)" -eq 0 ] && user="user root;"

    case $v in
    module)
        load="load_module $MODULE;"
        http="commerce_redis_server 127.0.0.1:$REDIS_PORT;
    $MODULE_HTTP"
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
        load="load_module $NGX_MODULES/ndk_http_module.so;
load_module $NGX_MODULES/ngx_http_lua_module.so;"
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

    cat > "$dir/nginx.conf" <<EOF
# generated by scripts/bench/run.sh ($v)
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

        location = /bench-ready {
            return 204;
        }

        $loc
    }
}
EOF
}

start_nginx() {
    local v=$1 dir=$OUT/$1
    write_conf "$v"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -t -q \
        2> "$dir/logs/nginx-t.log" \
        || { cat "$dir/logs/nginx-t.log" >&2; die "$v: nginx -t failed"; }
    "${PIN_NGINX[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" \
        2>> "$dir/logs/error.log" &
    NGINX_PID=$!
    # Ours answers only once its pid file names it (another nginx could
    # hold the port).
    for _ in $(seq 50); do
        if [ "$(cat "$dir/nginx.pid" 2>/dev/null)" = "$NGINX_PID" ] \
           && curl -s -o /dev/null \
                   "http://127.0.0.1:$NGINX_PORT/bench-ready"; then
            return
        fi
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$dir/logs/error.log" >&2 || true
    die "$v: nginx did not start"
}

stop_nginx() {
    [ -n "$NGINX_PID" ] || return 0
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

# One wrk run on the load core; prints its BENCH line plus wrk's own CPU
# time (this subshell's reaped-children ticks around the run).
run_wrk() {
    local secs=$1 log=$2 me=$BASHPID line c0 c1
    c0=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    BENCH_ITEMS=$ITEMS BENCH_ID_WIDTH=$ID_WIDTH BENCH_SEED=$RANDOM \
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
        -s "$HERE/wrk-random.lua" "http://127.0.0.1:$NGINX_PORT" > "$log" \
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
    req=$(field requests "$line")

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
        echo "# $v worker: CPU by object"
        perf report -i "$dir/perf.data" --stdio --no-children -g none \
            --sort dso 2>/dev/null | grep '%' | grep -v '^#' \
            | sed 's/[ -]*$//' | head -12
        echo "# $v worker: top symbols"
        perf report -i "$dir/perf.data" --stdio --no-children -g none \
            --sort dso,symbol 2>/dev/null | grep '%' | grep -v '^#' \
            | sed 's/[ -]*$//' | head -30
    } > "$dir/perf.txt" || true
    log "$v: profile summary in $dir/perf.txt"
    sed -n '1,/top symbols/p' "$dir/perf.txt" >&2
}

# Figures per variant, filled by measure() and validate().
declare -A RPS P50 P99 NON2XX ERRS WCPU WUS WRK RCPU CORE0 CORE1 HDRS
declare -A FOREIGN FOREIGN1

# One measured wrk run of variant $1 against worker $2; its figures go
# to the result arrays unless an earlier round of this variant did more
# requests per second (best of BENCH_ROUNDS: the least disturbed run).
measure() {
    local v=$1 w=$2 dir=$OUT/$1 line req dur rps t0 t1 r0 r1 c0 c1 d0 d1 \
          busy0 busy1 tot0 tot1
    t0=$(cpu_ticks "$w"); r0=$(cpu_ticks "$REDIS_PID")
    read -r busy0 tot0 < <(core_ticks "$NGINX_CPU")
    read -r d0 c0 < <(core_ticks "$LOAD_CPU")
    line=$(run_wrk "$DURATION" "$dir/wrk-round.txt")
    t1=$(cpu_ticks "$w"); r1=$(cpu_ticks "$REDIS_PID")
    read -r busy1 tot1 < <(core_ticks "$NGINX_CPU")
    read -r d1 c1 < <(core_ticks "$LOAD_CPU")

    req=$(field requests "$line")
    dur=$(field duration_us "$line")
    rps=$(awk -v r="$req" -v d="$dur" \
          'BEGIN { printf "%.0f", r / d * 1e6 }')
    log "$v: ${rps} req/s"
    [ "$rps" -gt "${RPS[$v]:-0}" ] || return 0
    mv "$dir/wrk-round.txt" "$dir/wrk.txt"

    RPS[$v]=$rps
    P50[$v]=$(awk -v u="$(field p50_us "$line")" \
              'BEGIN { printf "%.3f", u / 1000 }')
    P99[$v]=$(awk -v u="$(field p99_us "$line")" \
              'BEGIN { printf "%.3f", u / 1000 }')
    NON2XX[$v]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' \
                 "$dir/wrk.txt")
    NON2XX[$v]=${NON2XX[$v]:-0}
    ERRS[$v]=$(( $(field err_connect "$line") + $(field err_read "$line") \
               + $(field err_write "$line") + $(field err_timeout "$line") ))
    WUS[$v]=$(awk -v t=$((t1 - t0)) -v h="$CLK_TCK" -v r="$req" \
              'BEGIN { printf "%.1f", r ? t / h / r * 1e6 : 0 }')
    WCPU[$v]=$(awk -v t=$((t1 - t0)) -v h="$CLK_TCK" -v d="$dur" \
               'BEGIN { printf "%.0f%%", t / h / (d / 1e6) * 100 }')
    WRK[$v]=$(awk -v t="$(field wrk_ticks "$line")" -v h="$CLK_TCK" \
              -v d="$dur" \
              'BEGIN { printf "%.0f%%", t / h / (d / 1e6) * 100 }')
    RCPU[$v]=$(awk -v t=$((r1 - r0)) -v h="$CLK_TCK" -v d="$dur" \
               'BEGIN { printf "%.0f%%", t / h / (d / 1e6) * 100 }')
    CORE0[$v]=$(awk -v b=$((busy1 - busy0)) -v t=$((tot1 - tot0)) \
                'BEGIN { printf "%.0f%%", t ? b / t * 100 : 0 }')
    CORE1[$v]=$(awk -v b=$((d1 - d0)) -v t=$((c1 - c0)) \
                'BEGIN { printf "%.0f%%", t ? b / t * 100 : 0 }')
    # Busy time of each core not spent by our worker, redis or wrk: other
    # processes competing with the benchmark.
    FOREIGN[$v]=$(( ${CORE0[$v]%\%} - ${WCPU[$v]%\%} ))
    FOREIGN1[$v]=$(( ${CORE1[$v]%\%} - ${WRK[$v]%\%} ))
    if [ "$REDIS_CPU" = "$NGINX_CPU" ]; then
        FOREIGN[$v]=$(( FOREIGN[$v] - ${RCPU[$v]%\%} ))
    else
        FOREIGN1[$v]=$(( FOREIGN1[$v] - ${RCPU[$v]%\%} ))
    fi
}

bench_variant() {
    local v=$1 dir=$OUT/$1 w round
    start_nginx "$v"
    HDRS[$v]=$(validate "$v")
    w=$(worker_pid)
    [ "$v" = module ] && RSS_START=$(rss_kb "$w")
    log "$v: worker $w, warm-up ${WARMUP}s"
    run_wrk "$WARMUP" "$dir/wrk-warmup.txt" > /dev/null

    for round in $(seq "$ROUNDS"); do
        log "$v: measuring ${DURATION}s (round $round/$ROUNDS)"
        measure "$v" "$w"
    done
    log "$v: ${RPS[$v]} req/s, p50 ${P50[$v]} ms, p99 ${P99[$v]} ms"

    [ "$PERF" = 1 ] && profile "$v" "$w"
    if [ "$v" = module ] && [ "$RSS_REQUESTS" -gt 0 ]; then
        rss_check "$w"
    fi
    stop_nginx
}

# Worker RSS before and after RSS_REQUESTS more requests (module only).
RSS_BEFORE= RSS_AFTER= RSS_DONE=0
rss_check() {
    local w=$1 total=0 need secs line
    RSS_BEFORE=$(rss_kb "$w")
    while [ "$total" -lt "$RSS_REQUESTS" ]; do
        need=$((RSS_REQUESTS - total))
        secs=$(awk -v n="$need" -v r="${RPS[module]}" \
               'BEGIN { s = int(n / (r > 0 ? r : 1000) * 1.05) + 1
                        print s < 2 ? 2 : s }')
        log "module: RSS check, $total/$RSS_REQUESTS requests, ${secs}s more"
        line=$(run_wrk "$secs" "$OUT/module/wrk-rss.txt")
        total=$((total + $(field requests "$line")))
    done
    RSS_DONE=$total
    RSS_AFTER=$(rss_kb "$w")
    [ "$(worker_pid)" = "$w" ] || die "module worker was replaced (crash?)"
}

where() {        # where PIN_ARRAY_NAME -> "core N" or "unpinned"
    local -n p=$1
    local i
    for ((i = 0; i + 1 < ${#p[@]}; i++)); do
        [ "${p[i]}" = -c ] && { echo "core ${p[i + 1]}"; return; }
    done
    echo unpinned
}

verdict() {     # verdict VALUE OP LIMIT -> PASS/MISS
    awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? a >= b : a < b; print ok ? "PASS" : "MISS" }'
}

summary() {
    local v r_lua r_static
    printf 'commerce-edge catalog read benchmark, %s\n' "$(date -u +%FT%TZ)"
    printf 'GET /v1/catalog/{random of %d items, %d..%d bytes}, wrk -t1 -c%d' \
        "$ITEMS" "$(stat -c %s "$OUT"/docs/v1/catalog/* | sort -n | head -1)" \
        "$(stat -c %s "$OUT"/docs/v1/catalog/* | sort -n | tail -1)" "$CONNS"
    printf ' -d%ss (+%ss warm-up), best of %s, 1 nginx worker\n' \
        "$DURATION" "$WARMUP" "$ROUNDS"
    printf 'placement (%s cores): nginx master+worker %s, wrk %s,' \
        "$(nproc)" "$(where PIN_NGINX)" "$(where PIN_LOAD)"
    printf ' redis-server %s; load avg at start: %s\n' \
        "$(where PIN_REDIS)" "$LOAD_AT_START"
    printf '\n%-7s %9s %7s %7s %6s %6s %6s %5s %5s %5s %5s  %s\n' variant \
        req/s p50_ms p99_ms errors worker us/req redis wrk \
        core"$NGINX_CPU" core"$LOAD_CPU" "headers on 200 besides Content-*"
    for v in $VARIANTS; do
        printf '%-7s %9s %7.3f %7.3f %6s %6s %6s %5s %5s %5s %5s  %s\n' \
            "$v" "${RPS[$v]}" "${P50[$v]}" "${P99[$v]}" \
            $(( NON2XX[$v] + ERRS[$v] )) "${WCPU[$v]}" "${WUS[$v]}" \
            "${RCPU[$v]}" "${WRK[$v]}" "${CORE0[$v]}" "${CORE1[$v]}" \
            "${HDRS[$v]}"
    done
    printf '(errors: non-2xx + socket errors; worker, redis, wrk: CPU share of'
    printf ' that process; us/req: nginx worker\n CPU time per request;'
    printf ' core: busy share of that core, all processes)\n'
    if [ -n "${PIN_NGINX[*]}" ] && [ "$LOAD_CPU" != "$NGINX_CPU" ]; then
        for v in $VARIANTS; do
            if [ "${FOREIGN[$v]}" -gt 10 ] || [ "${FOREIGN1[$v]}" -gt 10 ]
            then
                printf 'WARNING: %s: other processes used ~%s%% of core %s' \
                    "$v" "${FOREIGN[$v]}" "$NGINX_CPU"
                printf ' and ~%s%% of core %s during the run: not reliable\n' \
                    "${FOREIGN1[$v]}" "$LOAD_CPU"
            fi
        done
    fi
    printf '\nvariants:\n'
    printf '  module  commerce_catalog_item $item_id; commerce_cache_control;'
    printf ' [%s] strong ETag, JSON 404\n' \
        "${MODULE_HTTP:-default pool (commerce_redis_pool_size 2)}"
    printf '  lua     content_by_lua + nginx.redis (lua-resty-redis),'
    printf ' set_keepalive pool %s, JSON 404, ETag %s\n' "$LUA_POOL" \
        "$([ "$LUA_ETAG" = 1 ] && echo 'on (md5)' || echo off)"
    printf '  static  sendfile on; tcp_nopush on; root + default_type'
    printf ' application/json; add_header Cache-Control; no open_file_cache;'
    printf ' nginx ETag (mtime-size) + Last-Modified, HTML 404\n'
    printf '  all: access_log off; keepalive_requests 1000 (default)\n'

    printf '\ntargets:\n'
    [ -n "${RPS[module]:-}" ] || printf "  (module variant not run)\n"
    if [ -n "${RPS[module]:-}" ] && [ -n "${RPS[lua]:-}" ]; then
        r_lua=$(awk -v a="${RPS[module]}" -v b="${RPS[lua]}" \
                'BEGIN { printf "%.2f", a / b }')
        printf '  module/lua    %6sx  (target >= 1.6x)   %s\n' "$r_lua" \
            "$(verdict "$r_lua" '>=' 1.6)"
    fi
    if [ -n "${RPS[module]:-}" ] && [ -n "${RPS[static]:-}" ]; then
        r_static=$(awk -v a="${RPS[module]}" -v b="${RPS[static]}" \
                   'BEGIN { printf "%.2f", a / b }')
        printf '  module/static %6sx  (target >= 0.9x)   %s\n' "$r_static" \
            "$(verdict "$r_static" '>=' 0.9)"
    fi
    if [ -n "${RPS[module]:-}" ]; then
        printf '  module p99    %6s ms (target < 2 ms)   %s\n' \
            "${P99[module]}" "$(verdict "${P99[module]}" '<' 2)"
    fi
    if [ -n "${RPS[module]:-}" ]; then
        printf '  worker CPU per request (independent of contention):'
        for v in lua static; do
            [ -n "${WUS[$v]:-}" ] || continue
            printf ' %s/module %sx' "$v" "$(awk -v a="${WUS[$v]}" \
                -v b="${WUS[module]}" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
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
    command -v wrk >/dev/null || die "wrk is not installed"
    command -v redis-server >/dev/null || die "redis-server is not installed"
    for v in $VARIANTS; do
        case $v in
        module) [ -f "$MODULE" ] || die "$MODULE not built (make module)" ;;
        lua) [ -f "$NGX_MODULES/ngx_http_lua_module.so" ] \
                 || die "libnginx-mod-http-lua is not installed" ;;
        static) ;;
        *) die "unknown variant $v" ;;
        esac
    done

    mkdir -p "$OUT"
    read -ra PIN_NGINX <<< "$(pin "$NGINX_CPU")"
    read -ra PIN_LOAD <<< "$(pin "$LOAD_CPU")"
    read -ra PIN_REDIS <<< "$(pin "$REDIS_CPU")"
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    start_redis
    log "redis-server on 127.0.0.1:$REDIS_PORT, loading $ITEMS items"
    load_data
    NGINX_PORT=$(free_port)

    RSS_START=
    for v in $VARIANTS; do
        bench_variant "$v"
    done

    summary | tee "$OUT/results.txt"
}

main "$@"
