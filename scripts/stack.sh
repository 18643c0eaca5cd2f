#!/usr/bin/env bash
# The embedded stack of `make up`: redis-server and stock nginx loading the
# module, all state under $COMMERCE_RUN_DIR (default .run/).
#
#   scripts/stack.sh up | down | reload | status
#
# Environment (defaults):
#   COMMERCE_RUN_DIR=.run          state, logs, generated config
#   COMMERCE_HOST=127.0.0.1        address every service listens on
#   COMMERCE_HTTP_PORT=8080        nginx
#   COMMERCE_REDIS_PORT=6380       redis-server (6380: a distro redis may own 6379)
#   COMMERCE_NGINX_WORKERS=2       nginx worker_processes
#   COMMERCE_DEMO_ITEMS=200        demo catalog size
#   COMMERCE_BUILD=build           where `make` put the module and workers
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${COMMERCE_RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
HOST=${COMMERCE_HOST:-127.0.0.1}
HTTP_PORT=${COMMERCE_HTTP_PORT:-8080}
REDIS_PORT=${COMMERCE_REDIS_PORT:-6380}
WORKERS=${COMMERCE_NGINX_WORKERS:-2}
DEMO_ITEMS=${COMMERCE_DEMO_ITEMS:-200}
BUILD=${COMMERCE_BUILD:-$ROOT/build}
NGINX=${NGINX_BIN:-/usr/sbin/nginx}

say() { printf '%s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for <what> <command...>: up to 10 s
    local what=$1; shift
    for _ in $(seq 1 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up (see $RUN/logs/)"
}

stop_pid() {  # stop_pid <pidfile> <signal>: signal, then wait up to 10 s
    local pidfile=$1 sig=$2 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill -s "$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

redis_up() {
    if alive "$RUN/redis/redis.pid"; then
        return 0
    fi
    mkdir -p "$RUN/redis" "$RUN/logs"
    redis-server --bind "$HOST" --port "$REDIS_PORT" --dir "$RUN/redis" \
        --daemonize yes --pidfile "$RUN/redis/redis.pid" \
        --logfile "$RUN/logs/redis.log" --save '' --appendonly no
    wait_for "redis-server" redis-cli -h "$HOST" -p "$REDIS_PORT" ping
}

demo_data() {
    local n
    n=$(redis-cli -h "$HOST" -p "$REDIS_PORT" zcard cat:index)
    if [ "${n:-0}" -gt 0 ]; then
        return 0
    fi
    "$ROOT/scripts/gen-catalog.sh" -s 3 "$DEMO_ITEMS" \
        | redis-cli -h "$HOST" -p "$REDIS_PORT" --pipe >/dev/null
}

nginx_conf() {
    local user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    mkdir -p "$RUN/nginx" "$RUN/logs"
    sed -e "s|@MODULE@|$BUILD/ngx_http_commerce_module.so|" \
        -e "s|@USER@|$user|" \
        -e "s|@WORKERS@|$WORKERS|" \
        -e "s|@RUN@|$RUN|g" \
        -e "s|@REDIS@|$HOST:$REDIS_PORT|" \
        -e "s|@HOST@|$HOST|" \
        -e "s|@HTTP_PORT@|$HTTP_PORT|" \
        -e "s|@CONF@|$ROOT/conf|" \
        "$ROOT/conf/nginx.conf" > "$RUN/nginx/nginx.conf"
    "$NGINX" -q -t -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" \
        || die "nginx -t failed for $RUN/nginx/nginx.conf"
}

nginx_up() {
    [ -f "$BUILD/ngx_http_commerce_module.so" ] \
        || die "no module in $BUILD: run make first"
    nginx_conf
    if alive "$RUN/nginx/nginx.pid"; then
        "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -s reload 2>>"$RUN/logs/nginx-error.log"
        return 0
    fi
    "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf"
    wait_for "nginx" curl -sf -o /dev/null \
        "http://$HOST:$HTTP_PORT/v1/catalog?limit=1"
}

status() {
    local s
    for s in "redis:$RUN/redis/redis.pid" "nginx:$RUN/nginx/nginx.pid"; do
        if alive "${s#*:}"; then
            say "  ${s%%:*}: running (pid $(cat "${s#*:}"))"
        else
            say "  ${s%%:*}: stopped"
        fi
    done
}

case "${1:-}" in
up)
    redis_up
    demo_data
    nginx_up
    say "commerce-edge is up (state and logs in $RUN):"
    say "  redis-server  $HOST:$REDIS_PORT  (read model, $DEMO_ITEMS demo items)"
    say "  nginx         http://$HOST:$HTTP_PORT  ($WORKERS workers, config $RUN/nginx/nginx.conf)"
    say "try:"
    say "  curl -i http://$HOST:$HTTP_PORT/v1/catalog/item-00001"
    say "  curl -i 'http://$HOST:$HTTP_PORT/v1/catalog?limit=3'"
    say "  curl -i http://$HOST:$HTTP_PORT/v1/stores/store-001/inventory/SKU-00001-S"
    say "  curl -i 'http://$HOST:$HTTP_PORT/v1/stores/store-001/inventory?count=5'"
    ;;
down)
    stop_pid "$RUN/nginx/nginx.pid" QUIT
    stop_pid "$RUN/redis/redis.pid" TERM
    say "commerce-edge is down"
    ;;
reload)
    alive "$RUN/nginx/nginx.pid" || die "nginx is not running: make up"
    nginx_conf
    "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -s reload 2>>"$RUN/logs/nginx-error.log"
    say "nginx reloaded"
    ;;
status)
    status
    ;;
*)
    die "usage: $0 up|down|reload|status"
    ;;
esac
