#!/bin/sh
# loramix generate with LoRAs: --lora/--trigger/--category in command-line
# order, a lora_info manifest, every composition method, the weights and
# schedule printed and stored in the PNG, and clear errors for misuse.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
C=tests/fixtures/compose
P="RAW photo, iu1, long straight black hair, mahalaiuniform, film grain"
# gen ARGS...: generate with the three LoRAs (in composition order) appended.
gen() {
    "$BIN" generate "$@" \
        --lora $C/character_1.safetensors --category character --trigger "iu1, long straight black hair" \
        --lora $C/clothing_1.safetensors --category clothing --trigger mahalaiuniform \
        --lora $C/style_1.safetensors:0.9 --category style --trigger "film grain"
}

for method in merge switch composite w-switch w-composite; do
    gen -m $M -p "$P" --steps 6 --switch-steps 2 --tail-steps 2 --lora-scale 0.8 \
        --method $method -o "$T/$method.png" 2>"$T/$method.err" || no "$method failed: $(cat "$T/$method.err")"
    grep -q "method: $method" "$T/$method.err" || no "$method: method not printed"
    grep -aq "\"method\":\"$method\"" "$T/$method.png" || no "$method: composition missing from the PNG JSON"
    grep -aq "Composition: $method" "$T/$method.png" || no "$method: composition missing from parameters"
done
grep -q "weights 0\.[0-9]* 0\.[0-9]* 0\.[0-9]*" "$T/w-switch.err" || no "w-switch weights not printed"
grep -q "schedule (LoRA per step): [012]\{6\}" "$T/w-switch.err" || no "w-switch schedule not printed"
grep -q "schedule (LoRA per step): 001122" "$T/switch.err" || no "switch schedule (tau 2) wrong: $(grep schedule "$T/switch.err")"
cmp -s "$T/merge.png" "$T/composite.png" && no "merge and composite gave the same image"

# Merged mode equals runtime mode up to rounding; both must run.
gen -m $M -p "$P" --steps 4 --lora-merged -q -o "$T/mm.png" || no "--lora-merged failed"

# A manifest in the testbed's lora_info form.
mkdir -p "$T/loras"
cp $C/character_1.safetensors $C/style_1.safetensors "$T/loras/"
cat > "$T/loras/info.json" <<JSON
{"character": [{"id": "character_1", "name": "IU", "trigger": ["iu1", "long straight black hair"], "url": ""}],
 "style": [{"id": "style_1", "name": "Film", "trigger": ["film grain"], "url": ""}]}
JSON
"$BIN" generate -m $M -p "$P" --steps 4 --manifest "$T/loras/info.json" --lora character_1 --lora style_1 \
    --method w-composite -o "$T/man.png" 2>"$T/man.err" || no "manifest run failed: $(cat "$T/man.err")"
grep -q "lora 0: character_1 (character)" "$T/man.err" || no "manifest category/name not applied"
grep -q "no trigger" "$T/man.err" && no "manifest triggers not applied"

# Misuse.
"$BIN" generate -m $M -p x --trigger a -o "$T/x.png" 2>"$T/e1" && no "orphan --trigger accepted"
grep -q "must follow the --lora" "$T/e1" || no "orphan --trigger message"
"$BIN" generate -m $M -p x --method w-switch -o "$T/x.png" 2>"$T/e2" && no "w-switch without LoRAs accepted"
"$BIN" generate -m $M -p x --lora $C/style_1.safetensors --category hat -o "$T/x.png" 2>"$T/e3" && no "bad category accepted"
grep -q "category" "$T/e3" || no "bad category message"
"$BIN" generate -m $M -p x --lora "$T/none.safetensors" -o "$T/x.png" 2>"$T/e4" && no "missing LoRA accepted"
grep -q "none.safetensors" "$T/e4" || no "missing LoRA message does not name the file"
[ -e "$T/x.png" ] && no "an output file was written on error"
[ $fail = 0 ] && echo "test_generate_lora: ok"
exit $fail
