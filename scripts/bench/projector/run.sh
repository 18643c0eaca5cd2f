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
# build/bench/projector/; the summary goes to build/bench/projector.txt
# (BENCH_OUT instead of build/bench/).
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
#   BENCH_PROJECTORS=1           projectors sharing the partitions (one
#                                consumer group)
#   BENCH_PROJ_ALTERNATE=        e.g. "1 2 1 2": throughput only, one run
#                                per number of projectors in turn, each on
#                                fresh servers (in round-N/), alternated
#                                so that a shared machine's noise falls on
#                                both; the summary gives msg/s per run, the
#                                ratio of 2 to 1 per pair of runs, and per
#                                run the deadlocks in PostgreSQL's log, the
#                                40P01 errors and the batches retried in
#                                the projectors' logs, and the cores other
#                                processes than the run's used meanwhile
#                                (the machine's noise)
#   BENCH_PROJ_RATE=1000         latency: messages per second
#   BENCH_PROJ_LAT_SECONDS=10    latency: duration (first second not counted)
#   BENCH_PROJ_LATENCY=1         0: skip the latency part
#   BENCH_PROJ_SETTLE=180        latency: longest wait for autovacuum to
#                                finish with the load first (0: no wait)
#   BENCH_PROJ_PERF=0            1: perf record the projector (perf.data),
#                                call graphs BENCH_PROJ_PERF_CG (fp, dwarf)
#   BENCH_PROJ_PGSTAT=0          1: load pg_stat_statements and write the
#                                statements by total time (with JIT time,
#                                WAL bytes and blocks dirtied) to
#                                pgstat-throughput.txt
#                                and pgstat-latency.txt
#   BENCH_PROJ_WAITS=0           1: sample what the projectors' PostgreSQL
#                                sessions do every 50 ms while they
#                                consume (state and wait event, counted
#                                in waits.txt); the CPU each process used
#                                meanwhile is in cpu.txt in any case
#   BENCH_PROJ_PG_SLOW=0         N > 0: PostgreSQL logs statements slower
#                                than N ms, every autovacuum run and lock
#                                waits (pg/server.log)
#   COMMERCE_BUILD               build dir holding bin/ and the module
#                                (default build/)
#   COMMERCE_SRC                 source tree of that build: its sql/ is
#                                migrated (default this checkout)
#   BENCH_OUT                    instead of build/bench/ (scripts/bench/ab.sh)
# The plumbing (ports, servers, nginx.conf) is scripts/bench/lib.sh's; the
# A/B of two revisions is scripts/bench/ab.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
bench_init projector
RESULT=$BENCH_OUT/projector.txt

MESSAGES=${BENCH_PROJ_MESSAGES:-1000000}
RSS_AT=${BENCH_PROJ_RSS_AT:-100000}
BACKLOG=${BENCH_PROJ_BACKLOG:-16000}
PARTITIONS=${BENCH_PROJ_PARTITIONS:-4}
PROJ_ARGS=${BENCH_PROJ_ARGS:-}
PROJECTORS=${BENCH_PROJECTORS:-1}
ALTERNATE=${BENCH_PROJ_ALTERNATE:-}
PROJ_PIDS=()
TOOL=$OUT/projbench
RATE=${BENCH_PROJ_RATE:-1000}
LAT_SECONDS=${BENCH_PROJ_LAT_SECONDS:-10}
SETTLE=${BENCH_PROJ_SETTLE:-180}
SETTLED_S=0
CHECKPOINT_S=0
LATENCY=${BENCH_PROJ_LATENCY:-1}
PERF=${BENCH_PROJ_PERF:-0}
PG_SLOW=${BENCH_PROJ_PG_SLOW:-0}
PGSTAT=${BENCH_PROJ_PGSTAT:-0}
WAITS=${BENCH_PROJ_WAITS:-0}
WAITS_PID=
GROUP=commerce-projector
TOPIC=commerce.inbound
PERF_PID=

build_tool() {
    gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
        -o "$TOOL" \
        "$HERE/projbench.c" -lrdkafka -lpq \
        || die "building projbench failed"
}

# The private PostgreSQL with the build's schema; BENCH_PROJ_PGSTAT and
# BENCH_PROJ_PG_SLOW switch on their statistics and logs.
start_pg() {
    bench_start_pg "$OUT/pg"
    if [ "$PGSTAT" = 1 ]; then
        echo "shared_preload_libraries = 'pg_stat_statements'" \
            >> "$PG_DIR/postgresql.conf"
        bench_restart_pg
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
    bench_migrate "$OUT/migrate.log"
}

# PROJECTORS of them, in one group; PROJ_PID is the first (its RSS is
# read), PROJ_PIDS all. Logs: projector.log, projector2.log, ...
start_projector() {
    local i first=
    PROJ_PIDS=()
    for ((i = 1; i <= PROJECTORS; i++)); do
        # shellcheck disable=SC2086
        bench_start_projector "$OUT/projector${i#1}.log" $PROJ_ARGS
        PROJ_PIDS+=("$PROJ_PID")
        first=${first:-$PROJ_PID}
    done
    PROJ_PID=$first
    if [ "$PERF" = 1 ]; then
        bench_spawn PERF_PID "" perf record \
            --call-graph "${BENCH_PROJ_PERF_CG:-fp}" -o "$OUT/perf.data" \
            -p "$PROJ_PID" > "$OUT/perf.log" 2>&1
    fi
}

# nginx with the read API and, if $1 = 1, the webhook ingress; nginx -t.
write_nginx_conf() {
    local dir=$OUT/nginx webhook=$1 http loc
    http="keepalive_requests 1000000;
    commerce_redis_server 127.0.0.1:$REDIS_PORT;"
    loc="location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)\$ {
            commerce_inventory_item \$store_id \$sku;
        }"
    if [ "$webhook" = 1 ]; then
        http+="
    commerce_kafka_brokers $BOOTSTRAP;"
        loc+="

        location = /v1/webhooks/canonical {
            commerce_webhook canonical;
            commerce_webhook_key \$http_x_store;
            commerce_webhook_delivery_id \$http_webhook_id;
        }"
    fi
    bench_nginx_conf "$dir" "load_module $MODULE;" "$http" "$loc"
    bench_nginx_check "$dir"
}

start_nginx() {
    local dir=$OUT/nginx
    bench_port NGINX_PORT
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
    bench_nginx_start "$dir"
}

pgstat_dump() {     # pgstat_dump PHASE: statements by total time, then reset
    [ "$PGSTAT" = 1 ] || return 0
    psql "$CONNINFO" -Atc "SELECT round(total_exec_time)::text || ' ms, '
        || calls || ' calls, ' || round((total_exec_time / calls)::numeric,
        3) || ' ms/call, ' || round(jit_generation_time + jit_inlining_time
        + jit_optimization_time + jit_emission_time) || ' ms JIT, '
        || pg_size_pretty(wal_bytes) || ' WAL, '
        || shared_blks_dirtied || ' blocks dirtied: '
        || left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" \
        > "$OUT/pgstat-$1.txt" 2>&1 || true
    psql "$CONNINFO" -Atqc "SELECT pg_stat_statements_reset()" \
        > /dev/null 2>&1 || true
    log "statements by total time: $OUT/pgstat-$1.txt"
}

# After a failed run: how each projector that is gone ended, and the
# end of its log.
projectors_gone() {
    local i=0 pid rc
    for pid in "${PROJ_PIDS[@]}"; do
        i=$((i + 1))
        kill -0 "$pid" 2>/dev/null && continue
        rc=0
        wait "$pid" || rc=$?
        log "projector $i (pid $pid) is gone: exit status $rc$( \
            [ "$rc" -gt 128 ] && echo " (signal $((rc - 128)))")"
        tail -5 "$OUT/projector${i#1}.log" >&2
    done
}

# The CPU ticks of every process of the run so far: "label pid ticks",
# the projectors by number, PostgreSQL's processes by application name
# (their backend type if none), and the machine's busy ticks ("machine").
cpu_ticks() {
    local i=0 pid label
    for pid in "${PROJ_PIDS[@]}"; do
        i=$((i + 1))
        printf 'projector-%s %s ' "$i" "$pid"
        awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0
    done
    psql "$CONNINFO" -AtF ' ' -c "SELECT pid, 'pg:' || coalesce(nullif(
        application_name, ''), replace(backend_type, ' ', '-'))
        FROM pg_stat_activity" 2>/dev/null \
    | while read -r pid label; do
        printf '%s %s ' "$label" "$pid"
        awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0
    done
    # Every other process by its name (the broker, the feed, Redis, ...;
    # a second line of a pid above is ignored).
    cat /proc/[0-9]*/stat 2>/dev/null | awk '{
        lp = index($0, "("); n = split($0, part, ") "); rest = part[n]
        comm = substr($0, lp + 1, length($0) - length(rest) - lp - 2)
        gsub(/ /, "_", comm); split(rest, f, " ")
        print comm, substr($0, 1, lp - 2), f[12] + f[13] }'
    awk '$1 == "cpu" { print "machine 0", $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# The CPU of every process from here on (cpu_stop), and with
# BENCH_PROJ_WAITS the projectors' sessions sampled by psql's \watch.
cpu_start() {
    cpu_ticks > "$OUT/cpu-start.txt"
    date +%s.%N > "$OUT/cpu-wall.txt"
    [ "$WAITS" = 1 ] || return 0
    printf '%s\n' "SELECT application_name || ' ' || pid || ' '
        || coalesce(state, '-') || ' ' || coalesce(wait_event_type
        || ':' || wait_event, 'CPU') FROM pg_stat_activity
        WHERE application_name LIKE 'commerce-projector%'" '\watch 0.05' \
        > "$OUT/waits.sql"
    bench_spawn WAITS_PID "" psql "$CONNINFO" -Atq -f "$OUT/waits.sql" \
        > "$OUT/waits-samples.txt" 2>&1
}

# The CPU seconds of each process since cpu_start (cpu.txt), the cores
# the processes of others used meanwhile (other-cores.txt: the machine's
# noise), and the samples counted per application name, state and wait
# event (waits.txt).
cpu_stop() {
    local t0 t1 hz wall
    bench_stop WAITS_PID INT
    t0=$(<"$OUT/cpu-wall.txt")
    t1=$(date +%s.%N)
    hz=$(getconf CLK_TCK)
    cpu_ticks > "$OUT/cpu-end.txt"
    wall=$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", t1 - t0 }')
    awk -v wall="$wall" -v hz="$hz" '
        seen[FILENAME, $2]++ { next }
        FNR == NR { start[$2] = $3; next }
        { d = $3 - ($2 in start ? start[$2] : 0); by[$1] += d / hz }
        END {
            for (l in by) {
                if (l ~ /^(projector-|pg:)/ || l == "redis-server" \
                    || l == "commerce-devbro" || l == "projbench")
                    ours += by[l]
            }
            printf "%.2f\n", (by["machine"] - ours) / wall
        }' "$OUT/cpu-start.txt" "$OUT/cpu-end.txt" > "$OUT/other-cores.txt"
    {
        printf 'CPU seconds over %s s of consumption, and cores busy;' \
            "$wall"
        printf ' other processes than this run'\''s: %s cores\n' \
            "$(<"$OUT/other-cores.txt")"
        awk -v wall="$wall" -v hz="$hz" '
            seen[FILENAME, $2]++ { next }
            FNR == NR { start[$2] = $3; next }
            { d = $3 - ($2 in start ? start[$2] : 0); by[$1] += d / hz }
            END {
                for (l in by)
                    printf "  %-40s %7.1f s %5.2f\n", l, by[l],
                           by[l] / wall
            }' "$OUT/cpu-start.txt" "$OUT/cpu-end.txt" | sort -k2,2nr
    } > "$OUT/cpu.txt"
    [ "$WAITS" = 1 ] || return 0
    {
        printf 'samples every 50 ms of the projectors'\'' sessions: count,'
        printf ' application, state, wait event (CPU: none)\n'
        awk 'NF == 4 { print $1, $3, $4 }' "$OUT/waits-samples.txt" \
            | sort | uniq -c | sort -k2,2 -k1,1nr
    } > "$OUT/waits.txt"
    log "wait events: $OUT/waits.txt; CPU per process: $OUT/cpu.txt"
}

throughput() {
    local feed
    rm -f "$OUT/ready" "$OUT/projector.pid"
    log "feeding $TOPIC: $MESSAGES messages, $BACKLOG pre-filled"
    bench_spawn feed "" "$TOOL" feed "$BOOTSTRAP" "$TOPIC" \
        "$MESSAGES" "$CONNINFO" "$GROUP" "$OUT/ready" "$OUT/projector.pid" \
        "$RSS_AT" "$BACKLOG" > "$OUT/watch.txt"
    while [ ! -e "$OUT/ready" ]; do
        kill -0 "$feed" 2>/dev/null || die "feed failed"
        sleep 0.05
    done
    log "projector consuming"
    start_projector
    echo "$PROJ_PID" > "$OUT/projector.pid"
    cpu_start
    bench_reap feed || { projectors_gone; die "feed failed"; }
    cpu_stop
    cat "$OUT/watch.txt" >&2
    pgstat_dump throughput
    bench_stop PERF_PID INT
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
        cmd=(kafka "$BOOTSTRAP" "$TOPIC")
    fi
    log "latency: $RATE/s for ${LAT_SECONDS}s via $INGRESS"
    PROJBENCH_SAMPLES="$OUT/latency-samples.txt" \
        "$TOOL" lat "127.0.0.1:$NGINX_PORT" "$RATE" "$LAT_SECONDS" 3 \
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

summary() {
    local w l= rate p99
    w=$(<"$OUT/watch.txt")
    [ -n "$LAT_NOTE" ] || l=$(<"$OUT/latency.txt")
    rate=$(bench_field rate_sustained "$w")
    printf 'commerce-projector benchmark, %s, %s cores\n' \
        "$(date -u +%FT%TZ)" "$(nproc)"
    printf 'topic %s: %s partitions, %s messages (5%% item upserts, 15%%' \
        "$TOPIC" "$PARTITIONS" "$(bench_field messages "$w")"
    printf ' price sets, 35%% stock counts, 45%% movements; 10k items,'
    printf ' 3 stores); %s projector(s), flags: %s\n\n' "$PROJECTORS" \
        "${PROJ_ARGS:-defaults}"
    printf '%-44s %12s\n' metric value
    printf '%-44s %12s\n' 'throughput, first batch -> last offset (msg/s)' \
        "$rate"
    printf '%-44s %12s\n' 'throughput incl. start-up (msg/s)' \
        "$(bench_field rate_total "$w")"
    printf '%-44s %12s\n' 'throughput, first batch -> outbox empty' \
        "$(bench_field rate_drained_sustained "$w")"
    printf '%-44s %12s\n' 'throughput until outbox empty incl. start-up' \
        "$(bench_field rate_drained "$w")"
    printf '%-44s %12s\n' 'start-up until first commit (s)' \
        "$(bench_field startup_s "$w")"
    printf '%-44s %12s\n' 'events recorded' "$(bench_field events "$w")"
    printf '%-44s %12s\n' 'dead letters' "$(bench_field dead_letters "$w")"
    printf '%-44s %12s\n' 'messages archived' "$(bench_field archived "$w")"
    printf '%-44s %12s\n' "projector VmRSS at $(bench_field rss_at "$w") msgs (kB)" \
        "$(bench_field rss_mid_kb "$w")"
    printf '%-44s %12s\n' "projector VmRSS at $(bench_field messages "$w") msgs (kB)" \
        "$(bench_field rss_end_kb "$w")"
    if [ -z "$LAT_NOTE" ]; then
        p99=$(bench_field p99_ms "$l")
        printf '%-44s %12s\n' "propagation p50 at $RATE/s, $INGRESS (ms)" \
            "$(bench_field p50_ms "$l")"
        printf '%-44s %12s\n' "propagation p90 (ms)" "$(bench_field p90_ms "$l")"
        printf '%-44s %12s\n' "propagation p99 (ms)" "$p99"
        printf '%-44s %12s\n' "propagation max (ms)" "$(bench_field max_ms "$l")"
        printf '%-44s %12s\n' "waited for autovacuum of the load (s)" \
            "$SETTLED_S"
        printf '%-44s %12s\n' "checkpoint after the load (s)" \
            "$CHECKPOINT_S"
    else
        printf 'latency not measured: %s\n' "$LAT_NOTE"
    fi
    printf '\ntargets:\n'
    printf '  throughput %8s msg/s (target >= 10000)  %s\n' "$rate" \
        "$(bench_verdict "$rate" '>=' 10000)"
    if [ -z "$LAT_NOTE" ]; then
        printf '  propagation p99 %6s ms (target < 50 ms)  %s\n' "$p99" \
            "$(bench_verdict "$p99" '<' 50)"
    fi
    if [ "${INGRESS:-}" = webhook ]; then
        printf '  (latency: from the 202 of POST /v1/webhooks/canonical'
    else
        printf '  (latency: from the broker ack of a produce'
    fi
    printf ' to the GET showing the count;\n   the first second is'
    printf ' not counted)\n'
}

stop_projectors() {
    local proj
    for proj in "${PROJ_PIDS[@]}"; do
        bench_stop proj TERM 30
    done
    PROJ_PIDS=()
}

# The deadlocks (40P01) and retried transactions in a run's logs.
count_in_logs() {   # count_in_logs REGEX FILES...
    local re=$1
    shift
    cat "$@" 2>/dev/null | grep -cE "$re" || true
}

# BENCH_PROJ_ALTERNATE: one throughput run per entry, each on fresh
# servers in its own directory; then the table.
alternate() {
    local base=$OUT n r=0 rates=()
    for n in $ALTERNATE; do
        r=$((r + 1))
        OUT=$base/round-$r
        mkdir -p "$OUT"
        PROJECTORS=$n
        log "run $r: $n projector(s)"
        start_pg
        redis-cli -p "$REDIS_PORT" FLUSHALL > /dev/null
        bench_stop BROKER_PID
        bench_start_broker "$OUT" "" --brokers 1 --partitions "$PARTITIONS"
        throughput
        stop_projectors
        "$ROOT/scripts/pg.sh" stop "$PG_DIR" > /dev/null 2>&1 || true
        printf '%s %s %s %s %s %s %s %s\n' "$r" "$n" \
            "$(bench_field rate_sustained "$(<"$OUT/watch.txt")")" \
            "$(bench_field rate_drained_sustained "$(<"$OUT/watch.txt")")" \
            "$(count_in_logs 'deadlock detected' "$OUT/pg/server.log")" \
            "$(count_in_logs '40P01' "$OUT"/projector*.log)" \
            "$(count_in_logs 'will retry' "$OUT"/projector*.log)" \
            "$(<"$OUT/other-cores.txt")" >> "$base/alternate.txt"
    done
    OUT=$base
}

alternate_summary() {
    printf 'commerce-projector benchmark, %s, %s cores, load at start %s\n' \
        "$(date -u +%FT%TZ)" "$(nproc)" "$LOAD_AT_START"
    printf 'runs alternated: %s projector(s); %s messages each, %s' \
        "$ALTERNATE" "$MESSAGES" "$PARTITIONS"
    printf ' partitions; projector flags: %s\n\n' "${PROJ_ARGS:-defaults}"
    awk '
    BEGIN { printf "%-4s %-10s %8s %17s %9s %10s %8s %12s\n", "run",
            "projectors", "msg/s", "msg/s until empty", "deadlocks",
            "40P01 seen", "retries", "other cores" }
    { printf "%-4s %-10s %8s %17s %9s %10s %8s %12s\n", $1, $2, $3, $4, $5,
             $6, $7, $8
      sum[$2] += $3; cnt[$2]++; dl += $5 + $6
      if ($2 == 1) last1 = $3
      if ($2 == 2 && last1 > 0) { pairs = pairs sprintf(" %.2f", $3 / last1);
                                  last1 = 0 } }
    END {
      printf "\n"
      for (n in sum) printf "mean msg/s with %s projector(s): %.0f (%d runs)\n",
                            n, sum[n] / cnt[n], cnt[n]
      if (cnt[1] && cnt[2])
          printf "ratio 2/1 of the means: %.2f; per pair (1 then 2):%s\n",
                 (sum[2] / cnt[2]) / (sum[1] / cnt[1]), pairs
      printf "deadlocks (server log) and 40P01 (projector logs), all"
      printf " runs: %d\n", dl
    }' "$OUT/alternate.txt"
}

for b in commerce-projector commerce-migrate commerce-devbroker; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is not built (make workers)"
done

LAT_NOTE="skipped (BENCH_PROJ_LATENCY=0)"
INGRESS=
build_tool
if [ -n "$ALTERNATE" ]; then
    bench_start_redis
    rm -f "$OUT/alternate.txt"
    alternate
    alternate_summary | tee "$RESULT"
    exit 0
fi
start_pg
bench_start_redis
bench_start_broker "$OUT" "" --brokers 1 --partitions "$PARTITIONS"
throughput
[ "$LATENCY" = 1 ] && latency
summary | tee "$RESULT"
