#!/bin/sh
# loramix generate end to end on the bundled tiny model: writes a PNG with
# the parameters chunk, numbered files for --images, --help teaches, and the
# same seed gives the same bytes.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd

"$BIN" generate --help | grep -q "scheduler" || no "--help does not explain --scheduler"
"$BIN" generate -m $M -p "a red fox" --steps 3 -q -o "$T/a.png" || no "generate failed"
[ -s "$T/a.png" ] || no "no PNG written"
grep -aq "Steps: 3, Sampler: PLMS" "$T/a.png" || no "parameters chunk missing"
grep -aq '"seed":42' "$T/a.png" || no "JSON chunk missing"
"$BIN" generate -m $M -p "a red fox" --steps 3 -q -o "$T/b.png" || no "second run failed"
cmp -s "$T/a.png" "$T/b.png" || no "same seed, different PNG (the JSON timings differ?)"
"$BIN" generate -m $M.safetensors -p "a red fox" --steps 2 --images 2 -q -o "$T/c.png" || no "--images failed"
[ -s "$T/c-1.png" ] && [ -s "$T/c-2.png" ] || no "--images 2 did not write c-1.png and c-2.png"
"$BIN" generate -m $M -p "x" --steps 2 -W 48 -H 32 --scheduler euler_a -q -o "$T/d.png" || no "48x32 euler_a failed"
"$BIN" generate -m $M -p "a red fox" --steps 3 --rng portable -q -o "$T/p.png" || no "--rng portable failed"
grep -aq "portable kernel" "$T/p.png" || no "--rng portable not recorded in the PNG"
cmp -s "$T/a.png" "$T/p.png" && no "--rng portable gave the x86 kernel's image"
ls "$T"/*.tmp.* >/dev/null 2>&1 && no "temporary files left behind"
[ $fail = 0 ] && echo "test_generate: ok"
exit $fail
