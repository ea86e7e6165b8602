#!/bin/sh
# Limits of `loramix generate` that agree and teach: the real per-scheduler
# maximum of --steps (checked before denoising), strict integer flags,
# --threads against the cores, huge sizes behind --yes; --karras equals
# use_karras_sigmas in scheduler_config.json; quoted --trigger phrases;
# manual weights printed as given and normalised.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
C=tests/fixtures/compose
S="-W 64 -H 64 --steps 2"

# refuse NAME PATTERN ARGS...: exit 1..123, stderr matches, no PNG.
refuse() {
    name=$1; pat=$2; shift 2
    rm -f "$T/out.png"
    timeout 60 "$BIN" generate -q -o "$T/out.png" "$@" >/dev/null 2>"$T/err"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then no "$name: exit $rc"; fi
    grep -q -- "$pat" "$T/err" || { no "$name: stderr lacks '$pat': $(cat "$T/err")"; }
    [ -e "$T/out.png" ] && no "$name: wrote an output file"
}

# --steps: the scheduler's own maximum, named with the scheduler.
refuse pndm1000 "steps: 1000 is too many for the pndm scheduler.*at most 999" -m $M -p x --steps 1000
refuse ddim1000 "steps: 1000 is too many for the ddim scheduler.*at most 999" -m $M -p x --steps 1000 --scheduler ddim
refuse dpm1001  "dpm++2m scheduler.*at most 1000" -m $M -p x --steps 1001 --scheduler dpm++2m
refuse steps0   "\-\-steps" -m $M -p x --steps 0

# Integers: digits only, no sign, no blanks, no overflow; the flag is named.
for v in " -5" "-5" "+5" "5x" "" " 5" "18446744073709551616"; do
    refuse "seed '$v'" "\-\-seed" -m $M -p x --seed "$v"
done
refuse "steps ' 5'" "\-\-steps" -m $M -p x --steps " 5"
"$BIN" generate -q -m $M -p x $S --seed 18446744073709551615 -o "$T/max.png" 2>"$T/err" ||
    no "--seed 2^64-1 refused: $(cat "$T/err")"

# --threads: above the cores warns, above 4 per core is refused.
cores=$(getconf _NPROCESSORS_ONLN)
refuse threads "\-\-threads: $((4 * cores + 1)) threads on $cores" -m $M -p x --threads $((4 * cores + 1))
"$BIN" generate -q -m $M -p x $S --threads $((cores + 1)) -o "$T/thr.png" 2>"$T/err" || no "--threads cores+1 failed"
grep -q "warning: --threads $((cores + 1)) is more than the $cores online core" "$T/err" || no "no --threads warning: $(cat "$T/err")"

# Huge sizes: the estimate, and --yes asked for.
refuse huge "8192x8192 needs about [0-9.]* GiB.*--yes" -m $M -p x -W 8192 -H 8192

# --karras = use_karras_sigmas: true in scheduler_config.json (same PNG bytes).
cp -r $M "$T/m"
"$BIN" generate -q -m "$T/m" -p "a fox" $S --scheduler dpm++2m --karras -o "$T/k_flag.png" || no "--karras failed"
"$BIN" generate -q -m "$T/m" -p "a fox" $S --scheduler dpm++2m -o "$T/k_none.png" || no "dpm++2m failed"
sed -i 's/^{/{\n  "use_karras_sigmas": true,/' "$T/m/scheduler/scheduler_config.json"
"$BIN" generate -q -m "$T/m" -p "a fox" $S --scheduler dpm++2m -o "$T/k_cfg.png" || no "config karras failed"
cmp -s "$T/k_flag.png" "$T/k_cfg.png" || no "--karras differs from use_karras_sigmas in the config"
cmp -s "$T/k_flag.png" "$T/k_none.png" && no "--karras changed nothing"
grep -aq "Sampler: DPM++ 2M Karras" "$T/k_flag.png" || no "PNG parameters lack 'DPM++ 2M Karras'"
"$BIN" generate -q -m $M -p "a fox" $S --scheduler euler --karras -o "$T/k_eu.png" || no "euler --karras failed"
grep -aq "Sampler: Euler Karras" "$T/k_eu.png" || no "PNG parameters lack 'Euler Karras'"
refuse karras_ddim "\-\-karras: the ddim scheduler" -m $M -p x --scheduler ddim --karras
refuse karras_pndm "\-\-karras: the pndm scheduler" -m $M -p x --karras

# --trigger: a double-quoted phrase keeps its commas; "" is a quote.
"$BIN" generate -m $M -p "red, white, hat" $S --method w-switch --tail-steps 1 --weighting manual:1,3 \
    --lora $C/character_1.safetensors --category character --trigger '"red, white", hat, "say ""hi"""' \
    --lora $C/style_1.safetensors --trigger x --trigger 'y' -o "$T/trig.png" 2>"$T/trig.err" ||
    no "quoted trigger run failed: $(cat "$T/trig.err")"
grep -aq '"triggers":\["red, white","hat","say \\"hi\\""\]' "$T/trig.png" || no "quoted triggers not kept: $(grep -ao '"triggers":[^]]*]' "$T/trig.png")"
grep -aq '"triggers":\["x","y"\]' "$T/trig.png" || no "repeated --trigger not kept"
# --weighting manual: the given values and the normalised ones.
grep -q "given 1 3, normalised to sum 1: 0.2500 0.7500" "$T/trig.err" || no "manual weights not shown normalised: $(grep method "$T/trig.err")"
refuse trig_open "\-\-trigger: unterminated quote" -m $M -p x --lora $C/style_1.safetensors --trigger '"a, b'
refuse trig_after "\-\-trigger: text after the closing quote" -m $M -p x --lora $C/style_1.safetensors --trigger '"a" b, c'

[ $fail = 0 ] && echo "test_generate_limits: ok"
exit $fail
