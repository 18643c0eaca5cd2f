#!/usr/bin/env bash
# scripts/bench/ab.sh: the projector benchmark of two revisions, A/B on one
# machine in one run.
#
#   scripts/bench/ab.sh OLD_REV NEW_REV [RUNS]
#   make bench-ab OLD=229418b [NEW=HEAD] [RUNS=3]
#
# Each revision (a commit-ish; "." is this working tree as it stands) is
# checked out in a detached git worktree, build/bench/ab/tree-<sha>, and
# built there by its own `make build`. Then scripts/bench/projector/run.sh
# runs RUNS times for each, alternately (old, new, old, new, ...), so that
# whatever else loads the machine meanwhile falls on both alike. Printed,
# and written to build/bench/ab.txt: msg/s (first batch -> last offset
# committed), propagation p99 and the cores other processes than the run's
# took meanwhile of every run, the median of each side and the median over
# the pairs of new/old. Each run's summary is kept in
# build/bench/ab/run-<i>-<old|new>.txt, its log beside it.
#
# One workload for both: the bench script, projbench.c (the messages fed),
# scripts/bench/lib.sh and scripts/pg.sh are this tree's. From each
# revision comes what it builds and ships: COMMERCE_BUILD=<tree>/build
# (commerce-projector, -migrate, -devbroker, the module behind the latency
# part) and COMMERCE_SRC=<tree> (its sql/ migrations). To measure with the
# new revision's workload, run ab.sh from a checkout of it. Both revisions
# must read the canonical messages projbench.c writes.
#
# The BENCH_PROJ_* settings of scripts/bench/projector/run.sh apply to every
# run: at the defaults (a million messages, then the latency part after
# autovacuum settles) a run takes 2 to 5 minutes; BENCH_PROJ_MESSAGES=200000
# BENCH_PROJ_SETTLE=30 gives a quicker, noisier answer.
#
# Environment:
#   BENCH_AB_KEEP=0     1: keep the worktrees and their builds afterwards
#                       (reused by the next run); 0: removed on exit
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] && [ $# -le 3 ] || usage
OLD_REV=$1
NEW_REV=$2
RUNS=${3:-3}
case $RUNS in ''|*[!0-9]*|0) usage ;; esac
KEEP=${BENCH_AB_KEEP:-0}

bench_init ab
WORK=$OUT/work
declare -A TREE         # revision -> built tree
declare -A RATE P99 VIA OTHER # run-side -> figures

# prepare REV: REV checked out (once per commit) and built; TREE[REV].
prepare() {
    local rev=$1 sha tree
    if [ "$rev" = . ]; then
        tree=$ROOT
    else
        sha=$(git -C "$ROOT" rev-parse --verify --quiet "$rev^{commit}") \
            || die "unknown revision $rev"
        tree=$OUT/tree-${sha:0:12}
        if [ ! -e "$tree/.git" ]; then
            log "$rev: worktree $tree"
            git -C "$ROOT" worktree add --detach --force "$tree" "$sha" \
                > "$tree.log" 2>&1 \
                || { cat "$tree.log" >&2; die "git worktree add $rev failed"; }
            [ "$KEEP" = 1 ] \
                || bench_on_exit "git -C \"\$ROOT\" worktree remove --force \
\"$tree\" > /dev/null 2>&1"
        fi
        [ "$(git -C "$tree" rev-parse HEAD)" = "$sha" ] \
            || die "$tree is not at $sha"
    fi
    log "$rev: make build in $tree"
    env -u MAKEFLAGS -u MAKELEVEL -u BUILD -u SAN \
        make -C "$tree" -j"$(nproc)" build > "$OUT/build-${tree##*/}.log" 2>&1 \
        || { tail -20 "$OUT/build-${tree##*/}.log" >&2
             die "make build of $rev failed"; }
    TREE[$rev]=$tree
}

# One projector bench of REV's build; figures in RATE, P99, VIA[run-side].
run_one() {
    local i=$1 side=$2 rev=$3 tree=${TREE[$3]} k=$1-$2 out=$OUT/run-$1-$2
    log "run $i/$RUNS: $side ($rev)"
    rm -f "$WORK/projector/watch.txt" "$WORK/projector/latency.txt" \
        "$WORK/projector/other-cores.txt"
    COMMERCE_BUILD=$tree/build COMMERCE_SRC=$tree BENCH_OUT=$WORK \
        "$HERE/projector/run.sh" > "$out.txt" 2> "$out.log" \
        || { tail -20 "$out.log" >&2; die "run $i ($side) failed"; }
    RATE[$k]=$(bench_field rate_sustained "$(<"$WORK/projector/watch.txt")")
    OTHER[$k]=$(cat "$WORK/projector/other-cores.txt" 2>/dev/null || echo -)
    if [ -s "$WORK/projector/latency.txt" ]; then
        P99[$k]=$(bench_field p99_ms "$(<"$WORK/projector/latency.txt")")
        VIA[$k]=$(sed -n 's/^propagation p50 at [^,]*, \([a-z]*\) (ms).*/\1/p' \
                  "$out.txt")
    else
        P99[$k]=-
        VIA[$k]=-
    fi
    log "run $i/$RUNS: $side ${RATE[$k]} msg/s, p99 ${P99[$k]} ms"
}

median() {              # median FORMAT NUMBER... ("-" when there are none)
    local fmt=$1
    shift
    printf '%s\n' "$@" | grep -v '^-$' | sort -g | awk -v f="$fmt" '
        { v[NR] = $1 }
        END { if (!NR) { print "-"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf f "\n", m }'
}

pair_ratios() {         # pair_ratios ARRAY: new/old of each run
    local -n a=$1
    local i
    for i in $(seq "$RUNS"); do
        if [ "${a[$i-old]}" = - ] || [ "${a[$i-new]}" = - ]; then
            echo -
        else
            bench_ratio "${a[$i-new]}" "${a[$i-old]}"; echo
        fi
    done
}

describe() {            # describe REV -> "<sha> <subject>"
    if [ "$1" = . ]; then
        printf '%s, the working tree%s' \
            "$(git -C "$ROOT" log -1 --format='%h %s')" \
            "$([ -z "$(git -C "$ROOT" status --porcelain)" ] \
               || echo ' with its uncommitted changes')"
    else
        git -C "$ROOT" log -1 --format='%h %s' "$1"
    fi
}

summary() {
    local i side rev ratios_r ratios_p settings
    local -a r_old=() r_new=() p_old=() p_new=()
    printf 'commerce-projector A/B, %s, %s cores, %s runs each, alternating' \
        "$(date -u +%FT%TZ)" "$(nproc)" "$RUNS"
    printf ' old/new\n'
    printf 'old  %s\n' "$(describe "$OLD_REV")"
    printf 'new  %s\n' "$(describe "$NEW_REV")"
    settings=$(env | grep '^BENCH_PROJ_' | sort | tr '\n' ' ' || true)
    settings=${settings% }
    printf 'workload: scripts/bench/projector/run.sh of %s (%s%s); %s\n' \
        "$ROOT" "$(git -C "$ROOT" rev-parse --short HEAD)" \
        "$([ -z "$(git -C "$ROOT" status --porcelain -- scripts)" ] \
           || echo ', scripts changed')" "${settings:-defaults}"
    printf '\n%-4s %-4s %-12s %10s %8s  %-11s %s\n' run side rev msg/s \
        p99_ms latency_via other_cores
    for i in $(seq "$RUNS"); do
        for side in old new; do
            rev=$OLD_REV
            [ "$side" = new ] && rev=$NEW_REV
            printf '%-4s %-4s %-12s %10s %8s  %-11s %s\n' "$i" "$side" \
                "$rev" "${RATE[$i-$side]}" "${P99[$i-$side]}" \
                "${VIA[$i-$side]}" "${OTHER[$i-$side]}"
        done
        r_old+=("${RATE[$i-old]}"); r_new+=("${RATE[$i-new]}")
        p_old+=("${P99[$i-old]}"); p_new+=("${P99[$i-new]}")
    done
    printf '%-4s %-4s %-12s %10s %8s\n' median old "$OLD_REV" \
        "$(median %.0f "${r_old[@]}")" "$(median %.2f "${p_old[@]}")"
    printf '%-4s %-4s %-12s %10s %8s\n' median new "$NEW_REV" \
        "$(median %.0f "${r_new[@]}")" "$(median %.2f "${p_new[@]}")"
    ratios_r=$(pair_ratios RATE | tr '\n' ' ')
    ratios_p=$(pair_ratios P99 | tr '\n' ' ')
    # shellcheck disable=SC2086
    printf '\nnew/old, median of the %s pairs: msg/s %sx (pairs: %s)' \
        "$RUNS" "$(median %.2f $ratios_r)" "${ratios_r% }"
    # shellcheck disable=SC2086
    printf ', p99 %sx (pairs: %s)\n' "$(median %.2f $ratios_p)" \
        "${ratios_p% }"
    printf '(msg/s: first batch -> last offset committed, higher is better;'
    printf ' p99: propagation at the latency rate, lower is better;'
    printf '\n other_cores: cores that other processes than the run'\''s used'
    printf ' meanwhile, the machine'\''s noise)\n'
}

prepare "$OLD_REV"
[ -n "${TREE[$NEW_REV]:-}" ] || prepare "$NEW_REV"
for i in $(seq "$RUNS"); do
    run_one "$i" old "$OLD_REV"
    run_one "$i" new "$NEW_REV"
done
summary | tee "$BENCH_OUT/ab.txt"
