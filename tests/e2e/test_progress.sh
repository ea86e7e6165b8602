#!/bin/sh
# generate's progress counts the steps the user asked for (PNDM's extra UNet
# call is internal), is printed as lines when stderr is not a terminal (a
# line per 10% of the steps, every step when there are 10 or fewer) and as
# a bar on a terminal; -q silences both.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
M=tests/fixtures/models/tiny-sd
gen() { timeout 120 "$BIN" generate -m $M -p fox -W 32 -H 32 -o "$T/x.png" --overwrite "$@"; }

# stderr to a file: lines
gen --steps 4 --scheduler pndm 2>"$T/err" || { echo "FAIL pndm: exit $?"; cat "$T/err"; fail=1; }
n=$(grep -c '^denoise [0-9]*/4 (' "$T/err")
[ "$n" = 4 ] || { echo "FAIL pndm: $n progress lines over 4 steps, expected 4:"; cat "$T/err"; fail=1; }
grep -q '^denoise 4/4 (100%)  [0-9.]* s/step  ETA 0 s$' "$T/err" || { echo "FAIL pndm: no '4/4 (100%)' line"; cat "$T/err"; fail=1; }
if grep -q '5/5\|/5 ' "$T/err"; then echo "FAIL pndm: counts UNet calls (5) for --steps 4"; fail=1; fi

gen --steps 12 2>"$T/err" || { echo "FAIL steps12: exit $?"; fail=1; }
n=$(grep -c '^denoise [0-9]*/12 (' "$T/err")
[ "$n" = 10 ] || { echo "FAIL steps12: $n progress lines, expected one per 10% (10):"; cat "$T/err"; fail=1; }

gen -q --steps 2 2>"$T/err" || { echo "FAIL quiet: exit $?"; fail=1; }
[ -s "$T/err" ] && { echo "FAIL quiet: -q printed:"; cat "$T/err"; fail=1; }

# on a terminal (script(1) gives one): a bar, over the steps asked for
if command -v script >/dev/null 2>&1; then
    script -qec "$BIN generate -m $M -p fox -W 32 -H 32 -o $T/y.png --steps 4 --scheduler pndm" /dev/null \
        </dev/null >"$T/tty" 2>&1
    tr '\r' '\n' <"$T/tty" >"$T/tty.lines"
    grep -q 'denoise   4/4   \[=*\]' "$T/tty.lines" || { echo "FAIL tty: no 4/4 bar:"; cat "$T/tty.lines"; fail=1; }
    if grep -q '5/5' "$T/tty.lines"; then echo "FAIL tty: the bar counts 5 UNet calls for --steps 4"; fail=1; fi
else
    echo "SKIP tty: no script(1)"
fi
[ $fail = 0 ] && echo "test_progress: ok"
