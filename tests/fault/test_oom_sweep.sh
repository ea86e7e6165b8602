#!/bin/sh
# Out of memory is an error, never a crash: `loramix generate` under an
# address-space limit (ulimit -v) swept from where the program barely loads
# to where it succeeds. Every run must either succeed with the same PNG as
# an unlimited run, or fail with exit 1..123, one error line and no output
# file. A signal (SIGSEGV inside oneDNN's JIT, abort on an uncaught
# std::bad_alloc) fails the test.
# Range and step in MiB: LMX_OOM_LO, LMX_OOM_HI, LMX_OOM_STEP.
set -u
BIN=${1:-build/loramix}
LO=${LMX_OOM_LO:-48}
HI=${LMX_OOM_HI:-144}
STEP=${LMX_OOM_STEP:-8}
# AddressSanitizer reserves terabytes of shadow address space at start-up,
# which no ulimit -v here allows: a sanitizer build cannot take part.
if nm "$BIN" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
    echo "skip: $BIN is built with a sanitizer (its shadow memory needs more address space than any limit here)"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
gen() { # gen OUT: the command, unlimited
    "$BIN" generate -q -m tests/fixtures/models/tiny-sd -p x -W 256 -H 256 --steps 3 \
        --threads 2 -o "$1"
}

gen "$T/ref.png" >/dev/null 2>"$T/stderr" || { echo "FAIL: unlimited run:"; cat "$T/stderr"; exit 1; }
n_ok=0 n_err=0
m=$LO
while [ "$m" -le "$HI" ]; do
    rm -f "$T/out.png"
    (ulimit -v $((m * 1024)) && exec timeout 120 "$BIN" generate -q -m tests/fixtures/models/tiny-sd \
        -p x -W 256 -H 256 --steps 3 --threads 2 -o "$T/out.png") >/dev/null 2>"$T/stderr"
    rc=$?
    if [ $rc -eq 0 ]; then
        n_ok=$((n_ok + 1))
        cmp -s "$T/ref.png" "$T/out.png" || { echo "FAIL ${m} MiB: PNG differs from the unlimited run"; fail=1; }
    elif [ $rc -eq 127 ] && grep -q "error while loading shared libraries" "$T/stderr"; then
        : # the dynamic loader itself ran out: below anything we can handle
    elif [ $rc -ge 124 ]; then
        echo "FAIL ${m} MiB: exit $rc (signal or timeout): $(tail -n 3 "$T/stderr")"; fail=1
    else
        n_err=$((n_err + 1))
        [ -e "$T/out.png" ] && { echo "FAIL ${m} MiB: failed (exit $rc) but wrote an output file"; fail=1; }
        ls -A "$T" | grep -q '^\.lmx-\|^out\.png\.' && { echo "FAIL ${m} MiB: temp file left: $(ls -A "$T")"; fail=1; }
        grep -q "^loramix: error: " "$T/stderr" ||
            { echo "FAIL ${m} MiB: exit $rc without a loramix error line:"; cat "$T/stderr"; fail=1; }
    fi
    m=$((m + STEP))
done
echo "oom sweep ${LO}..${HI} MiB step ${STEP}: $n_ok succeeded, $n_err failed cleanly"
[ $fail -eq 0 ] && echo "PASS test_oom_sweep"
exit $fail
