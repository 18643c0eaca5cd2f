# scripts/bench/lib.sh: the plumbing every benchmark of `make bench` shares
# (catalog reads scripts/bench/run.sh, webhook ingress
# scripts/bench/webhook/run.sh, projector scripts/bench/projector/run.sh):
# free loopback ports, private servers (redis-server, PostgreSQL,
# commerce-devbroker, nginx, commerce-projector) started, awaited and
# stopped by pid, nginx.conf from one template, wrk runs with their one
# summary line (wrk_summary.lua) and the CPU accounting around them,
# results under build/bench/. A bench script keeps only its workload,
# its checks and its summary.
#
# Use (sourced by a bench script, never run):
#   HERE=$(cd "$(dirname "$0")" && pwd)
#   . "$HERE/lib.sh"                        # ../lib.sh from a subfolder
#   bench_init webhook                      # OUT=build/bench/webhook
#   bench_wrk_settings                      # DURATION WARMUP CONNS ...
#   bench_start_redis "$REDIS_CPU"          # REDIS_PORT REDIS_PID
#   bench_port NGINX_PORT
#   bench_nginx_conf "$OUT/module" "$load" "$http" "$locations"
#   bench_nginx_start "$OUT/module" "$NGINX_CPU"    # NGINX_PID
#   declare -A m
#   bench_measure m "$(bench_nginx_worker)" "$OUT/module/wrk.txt" \
#       "redis:$REDIS_PID:$REDIS_CPU" -- \
#       bench_wrk "$DURATION" "$HERE/wrk-x.lua" "$OUT/module/wrk.txt"
#   bench_keep_best module m                # R[module.rps], R[module.p99]
#   bench_on_exit 'rm -f "$OUT"/*/pool.bin'
# Every process started with bench_spawn (all bench_start_* do) is stopped
# on exit, newest first, also on failure; then the bench_on_exit commands
# run, newest first.
#
# Environment read here:
#   COMMERCE_BUILD  build tree holding the module and bin/ (default build/)
#   COMMERCE_SRC    source tree of that build, for its sql/ migrations
#                   (default this checkout; scripts/bench/ab.sh sets it)
#   BENCH_OUT       where results go (default build/bench/)
#   BENCH_PIN=1     0: no taskset, the scheduler places everything

export LC_ALL=C

BENCH_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_LIB/../.." && pwd)
BUILD=${COMMERCE_BUILD:-$ROOT/build}
SRC=${COMMERCE_SRC:-$ROOT}
BENCH_OUT=${BENCH_OUT:-$ROOT/build/bench}
BIN=$BUILD/bin
MODULE=$BUILD/ngx_http_commerce_module.so
BROKER_BIN=$BIN/commerce-devbroker
[ -x "$BROKER_BIN" ] || BROKER_BIN=$ROOT/build/bin/commerce-devbroker
NGINX=/usr/sbin/nginx
NGX_MODULES=/usr/lib/nginx/modules
BENCH_LUA_LOAD="load_module $NGX_MODULES/ndk_http_module.so;
load_module $NGX_MODULES/ngx_http_lua_module.so;"
CLK_TCK=$(getconf CLK_TCK)
PIN=${BENCH_PIN:-1}

# Precision of the figures bench_measure formats (a script may change them).
BENCH_MS_DIGITS=2       # p50, p99 in ms
BENCH_US_DIGITS=0       # worker CPU time per request in us

BENCH_PIDS=()           # started by bench_spawn, oldest first
BENCH_EXIT=()           # bench_on_exit commands
BENCH_PORTS=()          # handed out by bench_port
declare -gA R           # best figures per variant: R[variant.key]

REDIS_PID= REDIS_PORT=
BROKER_PID= BOOTSTRAP= BOOTSTRAP_FILE=
NGINX_PID= NGINX_PORT=
PROJ_PID=
PG_DIR= PG_PORT= CONNINFO=

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }


# ------------------------------------------------------------ the run ---

# bench_init [SUBDIR]: OUT=$BENCH_OUT/SUBDIR created, the exit trap set,
# the load average noted (LOAD_AT_START).
bench_init() {
    OUT=$BENCH_OUT${1:+/$1}
    mkdir -p "$OUT"
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    trap _bench_cleanup EXIT
    trap 'exit 130' INT TERM
}


# The knobs of the wrk benchmarks (documented in their headers).
bench_wrk_settings() {
    DURATION=${BENCH_DURATION:-10}
    DURATION=${DURATION%s}
    WARMUP=${BENCH_WARMUP:-2}
    WARMUP=${WARMUP%s}
    ROUNDS=${BENCH_ROUNDS:-1}
    CONNS=${BENCH_CONNECTIONS:-64}
    NGINX_CPU=${BENCH_NGINX_CPU:-0}
    LOAD_CPU=${BENCH_LOAD_CPU:-1}
    REDIS_CPU=${BENCH_REDIS_CPU:-$LOAD_CPU}
    PERF=${BENCH_PERF:-0}
}


# bench_need CMD...: dies unless every CMD is installed.
bench_need() {
    local c
    for c in "$@"; do
        command -v "$c" > /dev/null || die "$c is not installed"
    done
}


# bench_need_variant VARIANT: dies unless what the variant loads is there.
bench_need_variant() {
    case $1 in
    module) [ -f "$MODULE" ] || die "$MODULE not built (make module)" ;;
    lua) [ -f "$NGX_MODULES/ngx_http_lua_module.so" ] \
             || die "libnginx-mod-http-lua is not installed" ;;
    esac
}


# bench_on_exit CMD: a shell command run (eval) when the script exits.
bench_on_exit() {
    BENCH_EXIT+=("$1")
}


_bench_cleanup() {
    local rc=$? i
    trap - EXIT
    trap "" INT TERM      # a second signal must not cut the cleanup short
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        _bench_kill "${BENCH_PIDS[i]}" TERM 10
    done
    BENCH_PIDS=()
    for ((i = ${#BENCH_EXIT[@]} - 1; i >= 0; i--)); do
        eval "${BENCH_EXIT[i]}" || true
    done
    exit "$rc"
}


# ------------------------------------------------------- ports, cores ---

# bench_port VAR: VAR = a loopback TCP port nobody listens on, below the
# kernel's ephemeral range (as t/lib/CommerceTest.pm picks them), so that
# no outgoing connection made meanwhile can hold it; never one handed out
# before in this run.
bench_port() {
    local -n _bench_port=$1
    local low p
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range \
          2>/dev/null || true)
    [ "${low:-0}" -gt 11000 ] || low=32768
    for _ in $(seq 200); do
        p=$(( 10000 + RANDOM % (low - 10000) ))
        case " ${BENCH_PORTS[*]} " in *" $p "*) continue ;; esac
        if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
            BENCH_PORTS+=("$p")
            _bench_port=$p
            return
        fi
    done
    die "no free port"
}


# bench_pin CORE: the command prefix pinning to CORE, empty when CORE is
# empty, the machine lacks it or BENCH_PIN=0.
bench_pin() {
    if [ "$PIN" = 1 ] && [ -n "${1:-}" ] && [ "$(nproc)" -gt "$1" ]; then
        echo taskset -c "$1"
    fi
}


bench_where() {         # bench_where CORE -> "core N" or "unpinned"
    if [ -n "$(bench_pin "$1")" ]; then echo "core $1"; else echo unpinned; fi
}


# ---------------------------------------------------------- processes ---

# bench_spawn VAR CORE CMD...: CMD in the background, pinned to CORE (""
# = anywhere), its pid in VAR and on the list stopped at exit. The
# redirections of the bench_spawn call apply to CMD.
bench_spawn() {
    local -n _bench_pid=$1
    local core=$2 pin
    shift 2
    read -ra pin <<< "$(bench_pin "$core")"
    "${pin[@]}" "$@" &
    _bench_pid=$!
    BENCH_PIDS+=("$_bench_pid")
}


# bench_stop VAR [SIGNAL [SECONDS]]: stops the process whose pid VAR
# holds (SIGNAL, default TERM; TERM then KILL if it is still there after
# SECONDS, default 10, each), reaps it and empties VAR.
bench_stop() {
    local -n _bench_pid=$1
    local pid=$_bench_pid
    [ -n "$pid" ] || return 0
    _bench_kill "$pid" "${2:-TERM}" "${3:-10}"
    _bench_forget "$pid"
    _bench_pid=
}


# bench_reap VAR: waits for the process whose pid VAR holds to exit by
# itself; returns its status.
bench_reap() {
    local -n _bench_pid=$1
    local pid=$_bench_pid rc=0
    wait "$pid" || rc=$?
    _bench_forget "$pid"
    _bench_pid=
    return "$rc"
}


_bench_forget() {
    local p keep=()
    for p in "${BENCH_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    BENCH_PIDS=("${keep[@]}")
}


_bench_kill() {         # _bench_kill PID SIGNAL SECONDS
    local pid=$1 secs=$3 sig
    for sig in "$2" TERM KILL; do
        kill -"$sig" "$pid" 2>/dev/null || break
        _bench_gone "$pid" "$secs" && break
    done
    wait "$pid" 2>/dev/null || true
}


_bench_gone() {         # _bench_gone PID SECONDS: 0 once PID has exited
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}


# bench_await PID TRIES CMD...: runs CMD every 0.1 s until it succeeds
# (0), or PID has exited or TRIES tries failed (1).
bench_await() {
    local pid=$1 tries=$2
    shift 2
    for _ in $(seq "$tries"); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}


# ------------------------------------------------------------ servers ---

# bench_start_redis [CORE]: a private redis-server without persistence
# (data in $OUT/redis, log $OUT/redis.log); REDIS_PORT, REDIS_PID.
bench_start_redis() {
    bench_port REDIS_PORT
    mkdir -p "$OUT/redis"
    bench_spawn REDIS_PID "${1:-}" redis-server --bind 127.0.0.1 \
        --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
        --protected-mode yes --dir "$OUT/redis" --logfile "$OUT/redis.log"
    bench_await "$REDIS_PID" 50 _bench_redis_up && return
    tail -5 "$OUT/redis.log" >&2 || true
    die "redis-server did not start on port $REDIS_PORT"
}


_bench_redis_up() {
    redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1
}


# bench_start_broker DIR CORE ARGS...: a commerce-devbroker (librdkafka's
# mock cluster) with ARGS (--brokers, --partitions, --topics); its log in
# DIR/broker.log, its bootstrap list in BOOTSTRAP and BOOTSTRAP_FILE
# (DIR/kafka.bootstrap); BROKER_PID.
bench_start_broker() {
    local dir=$1 core=$2
    shift 2
    BOOTSTRAP_FILE=$dir/kafka.bootstrap
    rm -f "$BOOTSTRAP_FILE"
    bench_spawn BROKER_PID "$core" "$BROKER_BIN" "$@" \
        --bootstrap-file "$BOOTSTRAP_FILE" --log-level warn \
        > "$dir/broker.log" 2>&1
    if bench_await "$BROKER_PID" 100 test -s "$BOOTSTRAP_FILE"; then
        BOOTSTRAP=$(cat "$BOOTSTRAP_FILE")
        return
    fi
    cat "$dir/broker.log" >&2 || true
    die "commerce-devbroker did not start"
}


# bench_kafka_count TOPIC PARTITIONS: the messages in the topic at
# $BOOTSTRAP: the sum of its partitions' end offsets (kcat -Q; the mock
# keeps only the last few MB of each partition, so consuming them all
# would undercount; offsets start at 0 and are never reused).
bench_kafka_count() {
    local topic=$1 parts=$2 n p args=()
    for p in $(seq 0 $((parts - 1))); do
        args+=(-t "$topic:$p:-1")
    done
    n=$(kcat -b "$BOOTSTRAP" -Q "${args[@]}" 2>/dev/null \
        | awk '/offset/ { s += $NF; c++ } END { print c + 0, s + 0 }')
    set -- $n
    [ "$1" = "$parts" ] || die "kcat -Q answered for $1 partitions"
    echo "$2"
}

# bench_kafka_check VARIANT TOPIC PARTITIONS: every 202 is in Kafka, and
# nothing else but requests wrk stopped waiting for (finished by the
# server after wrk closed its sockets): messages = ACKED[v] 202s seen by
# wrk + 1 (the check request) + at most INFLIGHT[v]. Sets KAFKA[v] and
# CHECK[v] ("ok ..." or "FAIL ..."), arrays of the caller.
bench_kafka_check() {
    local v=$1 n extra
    n=$(bench_kafka_count "$2" "$3")
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


# bench_start_pg DIR: a fresh private PostgreSQL cluster (scripts/pg.sh)
# in DIR on a free port, stopped at exit; PG_PORT, CONNINFO.
bench_start_pg() {
    local out
    PG_DIR=$1
    bench_port PG_PORT
    "$ROOT/scripts/pg.sh" stop "$PG_DIR" > /dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    bench_on_exit '"$ROOT/scripts/pg.sh" stop "$PG_DIR" > /dev/null 2>&1'
    out=$("$ROOT/scripts/pg.sh" start "$PG_DIR" "$PG_PORT") \
        || die "pg.sh start failed"
    CONNINFO=$(tail -1 <<< "$out")
}


bench_restart_pg() {    # after a change to $PG_DIR/postgresql.conf
    "$ROOT/scripts/pg.sh" stop "$PG_DIR" > /dev/null
    "$ROOT/scripts/pg.sh" start "$PG_DIR" "$PG_PORT" > /dev/null \
        || die "pg.sh restart failed"
}


# bench_migrate LOG: the build's commerce-migrate applies its source
# tree's sql/ to the private cluster.
bench_migrate() {
    "$BIN/commerce-migrate" --pg.conninfo "$CONNINFO" \
        --sql-dir "$SRC/sql" > "$1" 2>&1 \
        || { cat "$1" >&2; die "commerce-migrate failed"; }
}


# bench_start_projector LOG [FLAGS...]: commerce-projector on the private
# PostgreSQL, redis-server and devbroker; PROJ_PID.
bench_start_projector() {
    local log=$1
    shift
    bench_spawn PROJ_PID "" "$BIN/commerce-projector" \
        --pg.conninfo "$CONNINFO" --redis.address "127.0.0.1:$REDIS_PORT" \
        --kafka.bootstrap_file "$BOOTSTRAP_FILE" --log_level warn "$@" \
        > "$log" 2>&1
}


# -------------------------------------------------------------- nginx ---

# bench_access_log DIR: the access_log directive of every variant: a file
# in DIR with the format and parameters of the http{} access_log of the
# shipped conf/nginx.conf (read from it), unless BENCH_ACCESS_LOG=0 turns
# logging off for all of them.
bench_access_log() {
    local params

    if [ "${BENCH_ACCESS_LOG:-1}" = 0 ]; then
        echo "access_log off;"
        return
    fi

    params=$(sed -n 's/^    access_log @RUN@[^ ;]*\(.*\);$/\1/p' \
             "$ROOT/conf/nginx.conf")
    echo "access_log $1/logs/access.log$params;"
}


# bench_kafka_directives: the module's extra Kafka directives of a run, one
# per line: commerce_kafka_property for each ";"-separated "name value" of
# BENCH_KAFKA_PROPERTIES, commerce_kafka_thread_scheduling BENCH_KAFKA_THREADS
# (batch, normal) when set; nothing by default (the module's defaults,
# docs/directives.md).
bench_kafka_directives() {
    local p props=${BENCH_KAFKA_PROPERTIES:-}

    while IFS= read -r p; do
        if [ -n "$p" ]; then
            echo "commerce_kafka_property $p;"
        fi
    done <<< "${props//;/$'\n'}"
    if [ -n "${BENCH_KAFKA_THREADS:-}" ]; then
        echo "commerce_kafka_thread_scheduling $BENCH_KAFKA_THREADS;"
    fi
}

# bench_kafka_summary: the same, for a results file
bench_kafka_summary() {
    echo "properties: ${BENCH_KAFKA_PROPERTIES:-the module defaults};" \
         "librdkafka threads: ${BENCH_KAFKA_THREADS:-batch (default)}"
}


# bench_nginx_conf DIR LOAD HTTP LOCATIONS: DIR/nginx.conf for one nginx
# worker listening on 127.0.0.1:$NGINX_PORT, every path (pid, error_log,
# temp paths) inside DIR; LOAD are load_module lines, HTTP directives of
# http{}, LOCATIONS those of the server besides /bench-ready (204, what
# bench_nginx_start polls).
bench_nginx_conf() {
    local dir=$1 user=
    mkdir -p "$dir/logs" "$dir/tmp"
    [ "$(id -u)" -eq 0 ] && user="user root;"
    cat > "$dir/nginx.conf" <<EOF
# generated by ${0#"$ROOT"/} ($(basename "$dir")) with scripts/bench/lib.sh
$2
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
    $(bench_access_log "$dir")
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $3

    server {
        listen 127.0.0.1:$NGINX_PORT;

        location = /bench-ready {
            return 204;
        }

        $4
    }
}
EOF
}


# bench_nginx_check DIR: nginx -t of DIR/nginx.conf; nginx's complaint
# in DIR/logs/nginx-t.log.
bench_nginx_check() {
    "$NGINX" -p "$1" -c "$1/nginx.conf" -t -q 2> "$1/logs/nginx-t.log"
}


# bench_nginx_start DIR [CORE]: nginx on DIR/nginx.conf, pinned to CORE,
# once it answers (its pid file names it: another nginx could hold the
# port); NGINX_PID.
bench_nginx_start() {
    local dir=$1 name
    name=$(basename "$dir")
    bench_nginx_check "$dir" \
        || { cat "$dir/logs/nginx-t.log" >&2; die "$name: nginx -t failed"; }
    bench_spawn NGINX_PID "${2:-}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" \
        2>> "$dir/logs/error.log"
    bench_await "$NGINX_PID" 50 _bench_nginx_up "$dir" && return
    tail -5 "$dir/logs/error.log" >&2 || true
    die "$name: nginx did not start"
}


_bench_nginx_up() {
    [ "$(cat "$1/nginx.pid" 2>/dev/null)" = "$NGINX_PID" ] \
        && curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/bench-ready"
}


bench_nginx_worker() {  # pid of the one worker of NGINX_PID
    local w
    w=$(ps -o pid= --ppid "$NGINX_PID" | head -1 | tr -d ' ')
    [ -n "$w" ] || die "no nginx worker under $NGINX_PID"
    echo "$w"
}


# ------------------------------------------------------- wrk, figures ---

# bench_wrk SECS SCRIPT LOG: one wrk run (-t1 -c$CONNS --latency, on core
# LOAD_CPU) of the wrk script SCRIPT against 127.0.0.1:$NGINX_PORT, its
# output in LOG; prints the script's BENCH line (wrk_summary.lua, on
# LUA_PATH here) plus wrk_ticks=N, wrk's own CPU time (this subshell's
# reaped-children ticks around the run). The script's own settings go
# in the environment of the call.
bench_wrk() {
    local secs=$1 script=$2 log=$3 me=$BASHPID line c0 c1 pin
    read -ra pin <<< "$(bench_pin "$LOAD_CPU")"
    c0=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    LUA_PATH="$BENCH_LIB/?.lua;;" "${pin[@]}" wrk -t1 -c"$CONNS" \
        -d"${secs}s" --latency -s "$script" "http://127.0.0.1:$NGINX_PORT" \
        > "$log" 2>&1 || { cat "$log" >&2; die "wrk failed"; }
    c1=$(awk '{ print $16 + $17 }' "/proc/$me/stat")
    line=$(grep '^BENCH ' "$log") || { cat "$log" >&2; die "no wrk summary"; }
    echo "$line wrk_ticks=$((c1 - c0))"
}


# bench_field NAME TEXT: the value of NAME=value among the words of TEXT
# (a BENCH line, or a file of key=value lines read with $(<FILE)); 0 if
# absent.
bench_field() {
    local kv
    for kv in $2; do
        [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }
    done
    echo 0
}


bench_cpu_ticks() {     # utime + stime of a pid (all its threads)
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}


bench_core_ticks() {    # "busy total" ticks of core $1 from /proc/stat
    awk -v c="cpu$1" '$1 == c {
        t = 0; for (i = 2; i <= NF; i++) t += $i
        print t - $5 - $6, t }' /proc/stat
}


bench_rss_kb() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}


bench_pct() {           # bench_pct TICKS DURATION_US -> "NN%"
    awk -v t="$1" -v h="$CLK_TCK" -v d="$2" \
        'BEGIN { printf "%.0f%%", d ? t / h / (d / 1e6) * 100 : 0 }'
}


bench_ratio() {         # bench_ratio A B -> A/B, two decimals
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'
}


bench_verdict() {       # bench_verdict VALUE OP LIMIT -> PASS/MISS
    awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? a >= b : (op == "<=") ? a <= b : a < b
        print ok ? "PASS" : "MISS" }'
}


# bench_measure M WORKER LOG [NAME:PID:CORE]... -- CMD...: one measured
# run. CMD (a bench_wrk, writing LOG) prints its BENCH line; around it
# the CPU time of the nginx WORKER, of each NAME process (on CORE) and of
# cores NGINX_CPU and LOAD_CPU is read. M (an associative array) gets:
#   line      the BENCH line           rps       requests per second
#   p50 p99   latency in ms (BENCH_MS_DIGITS decimals)
#   errors    socket errors            non2xx    wrk's Non-2xx count
#   worker    the worker's CPU share   us_req    its CPU us per request
#   wrk NAME  CPU shares of wrk and of each NAME process ("NN%")
#   core0 core1        busy shares of cores NGINX_CPU and LOAD_CPU
#   foreign0 foreign1  busy percent of each not spent by the worker, wrk
#             or a NAME process: other processes competing with the run
bench_measure() {
    local -n _m=$1
    local w=$2 log=$3 name pid core i t0 t1 b0 b1 n0 n1 l0 l1 m0 m1 line \
          req dur f0 f1 share
    local -a names=() pids=() cores=() s0=()
    shift 3
    while [ "$1" != -- ]; do
        IFS=: read -r name pid core <<< "$1"
        names+=("$name"); pids+=("$pid"); cores+=("$core")
        shift
    done
    shift

    t0=$(bench_cpu_ticks "$w")
    for i in "${!pids[@]}"; do s0[i]=$(bench_cpu_ticks "${pids[i]}"); done
    read -r b0 n0 < <(bench_core_ticks "$NGINX_CPU")
    read -r l0 m0 < <(bench_core_ticks "$LOAD_CPU")
    line=$("$@")
    t1=$(bench_cpu_ticks "$w")
    read -r b1 n1 < <(bench_core_ticks "$NGINX_CPU")
    read -r l1 m1 < <(bench_core_ticks "$LOAD_CPU")

    req=$(bench_field requests "$line")
    dur=$(bench_field duration_us "$line")
    _m[line]=$line
    _m[rps]=$(awk -v r="$req" -v d="$dur" \
              'BEGIN { printf "%.0f", d ? r / d * 1e6 : 0 }')
    _m[p50]=$(bench_ms "$(bench_field p50_us "$line")")
    _m[p99]=$(bench_ms "$(bench_field p99_us "$line")")
    _m[errors]=$(( $(bench_field err_connect "$line") \
        + $(bench_field err_read "$line") + $(bench_field err_write "$line") \
        + $(bench_field err_timeout "$line") ))
    _m[non2xx]=$(awk '/Non-2xx or 3xx responses:/ { n = $NF }
                      END { print n + 0 }' "$log")
    _m[worker]=$(bench_pct $((t1 - t0)) "$dur")
    _m[us_req]=$(awk -v t=$((t1 - t0)) -v h="$CLK_TCK" -v r="$req" \
                 -v p="$BENCH_US_DIGITS" \
                 'BEGIN { printf "%.*f", p, r ? t / h / r * 1e6 : 0 }')
    _m[wrk]=$(bench_pct "$(bench_field wrk_ticks "$line")" "$dur")
    _m[core0]=$(_bench_busy $((b1 - b0)) $((n1 - n0)))
    _m[core1]=$(_bench_busy $((l1 - l0)) $((m1 - m0)))

    f0=$(( ${_m[core0]%\%} - ${_m[worker]%\%} ))
    f1=$(( ${_m[core1]%\%} - ${_m[wrk]%\%} ))
    for i in "${!pids[@]}"; do
        share=$(bench_pct $(( $(bench_cpu_ticks "${pids[i]}") - s0[i] )) \
                "$dur")
        _m[${names[i]}]=$share
        if [ "${cores[i]}" = "$NGINX_CPU" ]; then
            f0=$(( f0 - ${share%\%} ))
        else
            f1=$(( f1 - ${share%\%} ))
        fi
    done
    _m[foreign0]=$f0
    _m[foreign1]=$f1
}


bench_ms() {            # bench_ms MICROSECONDS -> ms, BENCH_MS_DIGITS
    awk -v u="$1" -v p="$BENCH_MS_DIGITS" 'BEGIN { printf "%.*f", p, u / 1000 }'
}


_bench_busy() {         # _bench_busy BUSY TOTAL -> "NN%"
    awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f%%", t ? b / t * 100 : 0 }'
}


# bench_keep_best VARIANT M: M's figures become the variant's,
# R[VARIANT.key], if its requests per second beat the variant's best so
# far (best of BENCH_ROUNDS: the least disturbed run); 1 if they do not.
bench_keep_best() {
    local v=$1 k
    local -n _m=$2
    [ "${_m[rps]}" -gt "${R[$v.rps]:-0}" ] || return 1
    for k in "${!_m[@]}"; do
        R[$v.$k]=${_m[$k]}
    done
}


# bench_rounds VARIANT WORKER MEASURE: BENCH_ROUNDS measured runs, each
# by the script's MEASURE VARIANT WORKER (bench_measure, bench_keep_best),
# then the variant's best figures logged.
bench_rounds() {
    local v=$1 round
    for round in $(seq "$ROUNDS"); do
        log "$v: measuring ${DURATION}s (round $round/$ROUNDS)"
        "$3" "$v" "$2"
    done
    log "$v: ${R[$v.rps]} req/s, p50 ${R[$v.p50]} ms, p99 ${R[$v.p99]} ms"
}


# bench_warn_contention VARIANT: the summary's warning when, with nginx
# and the load pinned to different cores, other processes took more than
# 10% of either during the variant's best run.
bench_warn_contention() {
    local v=$1
    [ -n "$(bench_pin "$NGINX_CPU")" ] && [ "$LOAD_CPU" != "$NGINX_CPU" ] \
        || return 0
    if [ "${R[$v.foreign0]}" -gt 10 ] || [ "${R[$v.foreign1]}" -gt 10 ]; then
        printf 'WARNING: %s: other processes used ~%s%% of core %s' \
            "$v" "${R[$v.foreign0]}" "$NGINX_CPU"
        printf ' and ~%s%% of core %s during the run: not reliable\n' \
            "${R[$v.foreign1]}" "$LOAD_CPU"
    fi
}


# bench_perf_report VARIANT DATA: CPU by object and top symbols of a
# perf.data of the variant's worker.
bench_perf_report() {
    local v=$1 data=$2
    echo "# $v worker: CPU by object"
    perf report -i "$data" --stdio --no-children -g none --sort dso \
        2>/dev/null | grep '%' | grep -v '^#' | sed 's/[ -]*$//' | head -12
    echo "# $v worker: top symbols"
    perf report -i "$data" --stdio --no-children -g none --sort dso,symbol \
        2>/dev/null | grep '%' | grep -v '^#' | sed 's/[ -]*$//' | head -30
}
