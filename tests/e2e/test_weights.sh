#!/bin/sh
# test_weights.sh - `loramix weights` on the tiny model and the compose
# fixture LoRAs: the PAW and PTW tables (texts, weights, W-Switch blocks, the
# under-the-floor note), --json, the per-LoRA options' order, --help and
# usage errors. The numbers themselves are checked against transformers by
# tests/golden/test_compose_weights.c. Run from the source root:
#   sh tests/e2e/test_weights.sh BIN
set -u
BIN=${1:-build/loramix}
[ -x "$BIN" ] || { echo "test_weights: no binary at $BIN"; exit 1; }
LC_ALL=C
export LC_ALL
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_weights.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
FAILS=0
CHECKS=0
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
run() { # run NAME EXPECTED_RC ARGS...
    name=$1 want=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    "$BIN" weights "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want; stderr: $(head -c 300 "$T/err")"
}
has() { CHECKS=$((CHECKS + 1)); grep -qF -- "$2" "$T/out" || { fail "$1: output lacks '$2'"; sed 's/^/    | /' "$T/out" | head -20; }; }
err() { CHECKS=$((CHECKS + 1)); grep -qF -- "$2" "$T/err" || fail "$1: stderr lacks '$2': $(head -c 300 "$T/err")"; }

M=tests/fixtures/models/tiny-sd
F=tests/fixtures/compose
B="RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up"
P="$B, iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt short sleeves, black pencil skirt, film overlay, film grain"
set -- -m "$M" -p "$P" \
    --lora "$F/character_1.safetensors" --category character --trigger iu1 --trigger "long straight black hair" \
    --trigger "hazel eyes" --trigger "diamond stud earrings" \
    --lora "$F/clothing_1.safetensors:0.8" --category clothing --trigger mahalaiuniform \
    --trigger "white shirt short sleeves" --trigger "black pencil skirt" \
    --lora "$F/style_1.safetensors" --category=style --name=style_1 --trigger "film overlay" --trigger="film grain"

# PAW: on the tiny model every score is under the floor (golden paw_r3: 0.0161 0.0175 0.0094)
run paw 0 "$@"
has paw "PAW (prompt ablation, W-Switch)"
has paw "0  character_1 character    0.0160"
has paw "0.05000000   0.333333  \"$B, , , mahalaiuniform, white shirt short sleeves, black pencil skirt, film overlay, film grain\""
has paw "\"$B, iu1, long straight black hair, hazel eyes, diamond stud earrings, , film overlay, film grain\""
has paw "\"$B, iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, white shirt short sleeves, black pencil skirt\""
has paw "W-Switch block lengths at tau 5: 5/5/5"
has paw "note: every score is under the 0.05 floor"

# PTW (golden ptw_r3: w = 0.4282 0.3422 0.2296)
run ptw 0 "$@" --weighting ptw
has ptw "PTW (prompt-trigger similarity, W-Composite)"
has ptw "0.428"
has ptw "0.342"
has ptw "0.229"
has ptw "\"mahalaiuniform, white shirt short sleeves, black pencil skirt\""
has ptw "\"film overlay, film grain\""

run json 0 "$@" --weighting ptw --json
has json '"weighting": "ptw"'
has json '"name": "style_1", "category": "style"'
has json '"trigger_string": "film overlay, film grain"'
if command -v python3 >/dev/null 2>&1; then
    CHECKS=$((CHECKS + 1))
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert abs(sum(l["weight"] for l in d["loras"]) - 1) < 1e-12' \
        "$T/out" || fail "json: not JSON, or the weights do not sum to 1"
fi

# tau for the printed blocks; an edge: a LoRA without triggers (0.1) and a short ablation (2.0)
run edges 0 -m "$M" -p "iu1, film grain" --lora "$F/character_1.safetensors" --trigger iu1 \
    --lora "$F/style_1.safetensors" --lora "$F/clothing_1.safetensors" --trigger "film grain" --switch-steps 4
has edges "0.10000000"
has edges "2.00000000"
has edges "W-Switch block lengths at tau 4:"
err edges "has no trigger phrases"

# help and usage
run help 0 --help
has help "usage: loramix weights"
has help "--trigger TEXT"
run no-model 2 -p x --lora "$F/style_1.safetensors"
err no-model "--model is required"
run no-lora 2 -m "$M" -p x
err no-lora "at least one --lora"
run trigger-first 2 --trigger x -m "$M" -p x --lora "$F/style_1.safetensors"
err trigger-first "must follow the --lora"
run bad-weighting 2 -m "$M" -p x --lora "$F/style_1.safetensors" --weighting uniform
run bad-category 2 -m "$M" -p x --lora "$F/style_1.safetensors" --category hat
run no-value 2 -m "$M" -p x --lora
run bad-tau 2 -m "$M" -p x --lora "$F/style_1.safetensors" --switch-steps 0
run missing-file 1 -m "$M" -p x --lora "$T/none.safetensors"
err missing-file "none.safetensors"
run bad-utf8 2 -m "$M" -p "$(printf 'a\377b')" --lora "$F/style_1.safetensors" --trigger a

echo "test_weights: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
