#!/usr/bin/env bash
# A private PostgreSQL 15 cluster in a directory, for the stack and tests.
#
#   scripts/pg.sh init   DIR PORT   create the cluster (once) and start it
#   scripts/pg.sh start  DIR PORT   start it (init first if DIR is empty)
#   scripts/pg.sh stop   DIR        fast shutdown
#   scripts/pg.sh status DIR        exit 0 if running
#   scripts/pg.sh conninfo DIR PORT print the libpq conninfo
#
# The server listens on 127.0.0.1:PORT and on a unix socket inside DIR;
# authentication is trust on loopback and the socket only, database and
# user "commerce". PostgreSQL refuses to run as root: when run as root the
# directory is owned by user postgres and the server runs as that user.
# start and init print the conninfo on stdout as their last line.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DB=commerce

die() { printf 'pg.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# as_owner CMD...: runs as the cluster owner (postgres when we are root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

conninfo() {
    printf 'host=127.0.0.1 port=%s dbname=%s user=%s\n' "$2" "$DB" "$DB"
}

do_init() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "user postgres does not exist"
        chown postgres: "$dir"
        chmod 700 "$dir"
        # e.g. a checkout under /root (mode 700): say so, not initdb's EACCES
        runuser -u postgres -- test -x "$dir" \
            || die "user postgres cannot reach $dir: a directory above it" \
                   "is not searchable by others (chmod o+x it, or put the" \
                   "checkout elsewhere)"
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        as_owner "$PGBIN/initdb" -D "$dir" -U "$DB" --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 --lc-collate=C \
            >"$dir.initdb.log" 2>&1 \
            || { cat "$dir.initdb.log" >&2; die "initdb failed"; }
        rm -f "$dir.initdb.log"
        # Loopback and the socket only, trust: a private dev/test cluster.
        as_owner tee "$dir/pg_hba.conf" >/dev/null <<HBA
local   all all              trust
host    all all 127.0.0.1/32 trust
host    all all ::1/128      trust
HBA
        as_owner tee -a "$dir/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = on
max_connections = 100
shared_buffers = 256MB
max_wal_size = 4GB
wal_compression = lz4
logging_collector = off
CONF
    fi
}

do_start() {
    local dir=$1 port=$2
    [ -f "$dir/PG_VERSION" ] || do_init "$dir" "$port"
    if ! as_owner "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_owner "$PGBIN/pg_ctl" -D "$dir" -w -t 30 -l "$dir/server.log" \
            -o "-p $port -k $dir" start >/dev/null \
            || { tail -20 "$dir/server.log" >&2 || true; die "start failed"; }
    fi
    # The database itself, once.
    if ! as_owner "$PGBIN/psql" -h "$dir" -p "$port" -U "$DB" -d postgres \
            -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" \
            | grep -q 1; then
        as_owner "$PGBIN/createdb" -h "$dir" -p "$port" -U "$DB" "$DB"
    fi
    conninfo "$dir" "$port"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
port=${3:-}

case $cmd in
init|start)
    [ -n "$port" ] || usage
    do_init "$dir" "$port"
    do_start "$dir" "$port"
    ;;
stop)
    if [ -f "$dir/PG_VERSION" ] &&
       as_owner "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_owner "$PGBIN/pg_ctl" -D "$dir" -w -t 30 -m fast stop >/dev/null
    fi
    ;;
status)
    [ -f "$dir/PG_VERSION" ] || exit 3
    as_owner "$PGBIN/pg_ctl" -D "$dir" status >/dev/null
    ;;
conninfo)
    [ -n "$port" ] || usage
    conninfo "$dir" "$port"
    ;;
*)
    usage
    ;;
esac
