#!/bin/bash
# Runs libFuzzer targets and prints a table: target, executions, time,
# executions per second, result.  Fails when any target crashed, leaked,
# hit a sanitizer report or an oracle (docs/fuzzing.md).
#
#   t/fuzz/run.sh <build/fuzz> <runs> <jobs> <target>...
#
# Each target fuzzes its working corpus build/fuzz/corpus/<target>/ (new
# inputs are kept there) and reads the seeds of t/fuzz/corpus/<target>/;
# a crash leaves its input in build/fuzz/artifacts/ and its log in
# build/fuzz/log/<target>.log.  FUZZ_SMOKE=1 (make test) first replays
# every seed and reproducer one by one, then runs from the seeds alone
# with a fixed seed, so that the run is the same every time (logs in
# build/fuzz/log-smoke/).
# FUZZ_NICE=n runs the targets under nice -n n.  FUZZ_REPORT=1 prints
# the table of the last runs without running anything.

set -u

# what a sanitizer, libFuzzer or an oracle of t/fuzz/fuzz.h prints
reports='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:'
reports+='|oracle failed|ngx_fuzz: '

bin=$1; runs=$2; jobs=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
log=$bin/log${FUZZ_SMOKE:+-smoke}
mkdir -p "$log" "$bin/artifacts"

one() {
    local t=$1 seeds=$here/corpus/$1 work=$bin/corpus/$1 opts start end rc
    local out=$log/$t.log

    opts=(-runs="$runs" -detect_leaks=1 -print_final_stats=1
          -max_len=4096 -artifact_prefix="$bin/artifacts/$t-")
    [ -f "$here/$t.dict" ] && opts+=(-dict="$here/$t.dict")

    start=$(date +%s.%N)

    if [ -n "${FUZZ_SMOKE:-}" ]; then
        work=$(mktemp -d)
        {
            # regression: every committed input once
            find "$seeds" -type f -print0 | xargs -0 -r \
                "$bin/fuzz_$t" -detect_leaks=1 \
                && "$bin/fuzz_$t" "${opts[@]}" -seed=1 "$work" "$seeds"
        } >"$out" 2>&1
        rc=$?
        rm -rf "$work"
    else
        mkdir -p "$work"
        ${FUZZ_NICE:+nice -n "$FUZZ_NICE"} "$bin/fuzz_$t" "${opts[@]}" \
            "$work" "$seeds" >"$out" 2>&1
        rc=$?
    fi

    end=$(date +%s.%N)

    if grep -qaE "$reports" "$out"; then
        rc=1
    fi

    echo "$t $rc $start $end" >"$log/$t.result"
}

export -f one
export bin runs here log reports

# FUZZ_REPORT=1: only the table, from the logs of earlier runs
[ -n "${FUZZ_REPORT:-}" ] \
    || printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one {}'

status=0
printf '%-12s %14s %10s %10s  %s\n' target executions seconds exec/s result

for t in "$@"; do
    read -r _ rc start end <"$log/$t.result"
    execs=$(grep -a stat::number_of_executed_units "$log/$t.log" \
            | awk '{ n = $2 } END { print n + 0 }')
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    rate=$(awk -v n="$execs" -v s="$secs" \
           'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')

    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="FAILED: $log/$t.log"
        status=1
    fi

    printf '%-12s %14s %10s %10s  %s\n' "$t" "$execs" "$secs" "$rate" \
        "$result"
done

[ $status = 0 ] || {
    echo "fuzzing found a problem: see the logs; inputs in $bin/artifacts/"
    grep -haE "$reports|SUMMARY" "$log"/*.log | sort | uniq | head -20
}

exit $status
