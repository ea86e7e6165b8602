#!/bin/sh
# test_inspect_hostile.sh - `loramix inspect` on hostile, truncated and
# unsupported files made here with printf/head/dd: each must end with a
# non-zero exit status below 128 (no crash), exactly one line on stderr
# that names the file and the problem, nothing on stdout, and within a time
# bound (no hang, e.g. on a FIFO or a deeply nested header).
# Run from the source root: sh tests/fault/test_inspect_hostile.sh BIN
set -u
BIN=${1:-build/loramix}
[ -x "$BIN" ] || { echo "test_inspect_hostile: no binary at $BIN"; exit 1; }
LC_ALL=C
export LC_ALL
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_hostile.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
FAILS=0
CASES=0
LIMIT=10 # seconds per run

fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }

le64() {
    n=$1
    i=0
    while [ $i -lt 8 ]; do
        printf "\\$(printf '%03o' $((n % 256)))"
        n=$((n / 256))
        i=$((i + 1))
    done
}
mkst() { { le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"; }

# hostile NAME FILE PATTERN [ARGS...]: inspect FILE must fail cleanly with a
# one-line message naming FILE and containing PATTERN.
hostile() {
    name=$1 file=$2 pat=$3
    shift 3
    CASES=$((CASES + 1))
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 2 $LIMIT "$BIN" inspect "$@" "$file" >"$T/out" 2>"$T/err"
    else
        "$BIN" inspect "$@" "$file" >"$T/out" 2>"$T/err"
    fi
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$name: timed out after ${LIMIT}s"
        return
    fi
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
        fail "$name: exit status $rc (want 1..127)"
    fi
    lines=$(wc -l <"$T/err")
    [ "$lines" -eq 1 ] || fail "$name: $lines lines on stderr: $(head -c 400 "$T/err")"
    grep -qF -- "$file" "$T/err" || fail "$name: message does not name the file: $(head -c 300 "$T/err")"
    grep -qF -- "$pat" "$T/err" || fail "$name: message lacks '$pat': $(head -c 300 "$T/err")"
    grep -q '^loramix: error: ' "$T/err" || fail "$name: message format: $(head -c 300 "$T/err")"
    [ ! -s "$T/out" ] || fail "$name: output on stdout"
}

GOOD='{"__metadata__":{"k":"v"},"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]}}'
mkst "$T/good.safetensors" "$GOOD" 30
"$BIN" inspect "$T/good.safetensors" >/dev/null 2>&1 || fail "the valid file does not open"
SIZE=$(wc -c <"$T/good.safetensors")

# Truncation at every byte.
i=0
while [ "$i" -lt "$SIZE" ]; do
    head -c "$i" "$T/good.safetensors" >"$T/cut.safetensors"
    hostile "cut at $i" "$T/cut.safetensors" "cut.safetensors"
    i=$((i + 1))
done
head -c 0 /dev/zero >"$T/empty.safetensors"
hostile empty "$T/empty.safetensors" "too short"

# Header lengths.
{ printf '\377\377\377\377\377\377\377\377{}'; } >"$T/len-max.safetensors"
hostile "length 2^64-1" "$T/len-max.safetensors" "over the"
{ le64 1099511627776; printf '{}'; } >"$T/len-huge.safetensors"
hostile "length 2^40" "$T/len-huge.safetensors" "over the"
{ le64 0; printf '{}'; } >"$T/len-zero.safetensors"
hostile "length 0" "$T/len-zero.safetensors" "too small"
{ le64 100; printf '{}'; } >"$T/len-past.safetensors"
hostile "length past end" "$T/len-past.safetensors" "past the end"

# JSON.
mkst "$T/bad-json.safetensors" '{"a":{"dtype":' 0
hostile "bad json" "$T/bad-json.safetensors" "malformed"
mkst "$T/array.safetensors" '[1,2,3]' 0
hostile "array root" "$T/array.safetensors" "not an object"
mkst "$T/dup.safetensors" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' 8
hostile "duplicate" "$T/dup.safetensors" "appears twice"
mkst "$T/dupmeta.safetensors" '{"__metadata__":{},"__metadata__":{}}' 0
hostile "duplicate metadata" "$T/dupmeta.safetensors" "__metadata__ appears twice"
mkst "$T/metanum.safetensors" '{"__metadata__":{"k":5}}' 0
hostile "metadata number" "$T/metanum.safetensors" "not a string"
{ le64 10; printf '{"a\000b":1} '; } >"$T/nul.safetensors"
hostile "nul" "$T/nul.safetensors" "NUL"
{ le64 8; printf '{"a\377":1}'; } >"$T/utf8.safetensors"
hostile "utf8" "$T/utf8.safetensors" "UTF-8"
DEEP=$(head -c 100000 /dev/zero | tr '\0' '[')
mkst "$T/deep.safetensors" "{\"a\":$DEEP" 0
hostile "deep nesting" "$T/deep.safetensors" "nested too deeply"

# Entries.
mkst "$T/f64.safetensors" '{"w.f64":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}' 8
hostile "F64" "$T/f64.safetensors" "tensor 'w.f64': dtype F64 is not supported"
mkst "$T/bool.safetensors" '{"m":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}' 1
hostile "BOOL" "$T/bool.safetensors" "dtype BOOL"
mkst "$T/xyz.safetensors" '{"m":{"dtype":"XYZ","shape":[1],"data_offsets":[0,1]}}' 1
hostile "unknown dtype" "$T/xyz.safetensors" "unknown dtype"
mkst "$T/size.safetensors" '{"s":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8
hostile "size mismatch" "$T/size.safetensors" "needs 12"
mkst "$T/overlap.safetensors" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
hostile "overlap" "$T/overlap.safetensors" "overlap"
mkst "$T/range.safetensors" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[1000000,1000008]}}' 8
hostile "out of range" "$T/range.safetensors" "past the"
mkst "$T/neg.safetensors" '{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}' 8
hostile "negative shape" "$T/neg.safetensors" "non-negative"
mkst "$T/ovf.safetensors" '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}' 8
hostile "product overflow" "$T/ovf.safetensors" "overflows"
mkst "$T/dims.safetensors" '{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}' 4
hostile "9 dims" "$T/dims.safetensors" "9 dimensions"
mkst "$T/nl.safetensors" '{"evil\nname":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' 1
hostile "newline in name" "$T/nl.safetensors" 'evil\x0aname'

# Pickle files: refused with a message to convert, never parsed.
printf 'PK\003\004\024\000\000\000' >"$T/model.ckpt"
hostile "zip ckpt" "$T/model.ckpt" "convert it to .safetensors"
printf '\200\002}q\000(X\001\000\000\000aq\001.' >"$T/weights.pt"
hostile "pickle pt" "$T/weights.pt" "pickle"
printf '\200\004\225' >"$T/noext"
hostile "pickle without extension" "$T/noext" "pickle"
head -c 64 /dev/urandom >"$T/random.bin"
hostile "random .bin" "$T/random.bin" "pickle"

# Not regular files, missing paths, bad folders.
if mkfifo "$T/fifo.safetensors" 2>/dev/null; then
    hostile "fifo" "$T/fifo.safetensors" "not a regular file"
fi
hostile "missing" "$T/does-not-exist.safetensors" "no such file"
mkdir "$T/emptydir"
hostile "empty folder" "$T/emptydir" "without model_index.json"
mkdir "$T/badindex"
printf '{"unet": ["diffusers", ' >"$T/badindex/model_index.json"
hostile "bad model_index.json" "$T/badindex" "model_index.json: malformed JSON"
mkdir "$T/evilindex"
printf '{"../../etc": ["diffusers", "UNet2DConditionModel"]}' >"$T/evilindex/model_index.json"
hostile "evil component" "$T/evilindex" "bad component name"
mkdir "$T/noweights"
printf '{"_class_name": "UNet2DConditionModel"}' >"$T/noweights/config.json"
hostile "component without weights" "$T/noweights" "no weights file"
mkdir "$T/badcfg"
printf '\377\376' >"$T/badcfg/config.json"
hostile "config not UTF-8" "$T/badcfg" "config.json"

# --json: the same one-line error and nothing on stdout.
hostile "json truncated" "$T/cut.safetensors" "cut.safetensors" --json
hostile "json pickle" "$T/model.ckpt" "pickle" --json --no-tensors

# A big random file (1 MiB) and a file of zeros: refused quickly.
dd if=/dev/urandom of="$T/big.safetensors" bs=65536 count=16 2>/dev/null
hostile "random bytes" "$T/big.safetensors" "big.safetensors"
dd if=/dev/zero of="$T/zeros.safetensors" bs=65536 count=16 2>/dev/null
hostile "zeros" "$T/zeros.safetensors" "header length 0"

echo "test_inspect_hostile: $CASES cases, $FAILS failures"
[ "$FAILS" -eq 0 ]
