#!/bin/sh
# fuzz.sh - bounded fuzzing of every parser (libFuzzer, ASan + UBSan).
#
# Builds build-fuzz with clang and -DLMX_FUZZ=ON, replays the stored
# findings fuzz/regressions/<target>/, then runs each fuzz/fuzz_<name>.c
# target for FUZZ_SECONDS seconds (default 30) on its committed seed corpus
# fuzz/corpus/<target>/ (plus a scratch corpus kept in build-fuzz, so later
# runs start where earlier ones stopped; the committed corpus is never
# modified). New crashes, leaks, timeouts and out-of-memory inputs are
# written to fuzz/regressions/<target>/ and make the script fail: fix the
# bug, keep the file (tests/fault/test_fuzz_regressions.c replays it in the
# normal build from then on).
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (e.g.
# "fuzz_safetensors"; default all), FUZZ_BUILD (default build-fuzz),
# CC (default clang).
set -eu
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD:-build-fuzz}
CC=${CC:-clang}
case "$CC" in *clang*) ;; *) CC=clang ;; esac
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz.sh: $CC not found (libFuzzer needs clang; scripts/setup-deps.sh installs it)" >&2
    exit 1
fi
TARGETS=${FUZZ_TARGETS:-$(for f in fuzz/fuzz_*.c; do basename "$f" .c; done)}

echo "fuzz.sh: building $BUILD with $CC"
CC=$CC cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMX_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$(nproc)" --target $TARGETS >/dev/null

# UBSan is built recoverable: halt on the first report so libFuzzer keeps it.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1

status=0
for t in $TARGETS; do
    bin=$BUILD/fuzz/$t
    seeds=fuzz/corpus/$t
    found=fuzz/regressions/$t
    work=$BUILD/fuzz-corpus/$t
    mkdir -p "$seeds" "$found" "$work"
    dict=fuzz/${t#fuzz_}.dict
    [ -f "$dict" ] && dictopt=-dict=$dict || dictopt=

    # 1. Stored findings must all pass now.
    old=$(find "$found" -type f | sort)
    if [ -n "$old" ]; then
        echo "fuzz.sh: $t: replaying $(echo "$old" | wc -l) stored findings"
        # shellcheck disable=SC2086
        if ! "$bin" $old >"$BUILD/$t.replay.log" 2>&1; then
            echo "fuzz.sh: $t: a stored finding still fails (log: $BUILD/$t.replay.log)" >&2
            tail -30 "$BUILD/$t.replay.log" >&2
            status=1
            continue
        fi
    fi

    # 2. Fuzz for a bounded time.
    find "$found" -type f | sort >"$BUILD/$t.before"
    echo "fuzz.sh: $t: fuzzing for ${SECS}s (seeds $seeds, log $BUILD/$t.log)"
    rc=0
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$found/" $dictopt "$work" "$seeds" \
        >"$BUILD/$t.log" 2>&1 || rc=$?
    find "$found" -type f | sort >"$BUILD/$t.after"
    new=$(comm -13 "$BUILD/$t.before" "$BUILD/$t.after")
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)" \
        "$BUILD/$t.log" | sed "s/^/fuzz.sh: $t: /" || true
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        echo "fuzz.sh: $t: FAILED (exit $rc); new findings: ${new:-none}" >&2
        grep -E "ERROR|SUMMARY|runtime error|deadly signal" "$BUILD/$t.log" | head -20 >&2 || true
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "fuzz.sh: all targets passed"
exit "$status"
