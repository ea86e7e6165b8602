#!/bin/sh
# test_lora_inspect.sh - `loramix lora inspect` on the LoRA fixtures of
# tests/fixtures/lora (reference/gen_lora.py): format, ranks, alphas,
# targets, dropped conv_in/time_embedding modules, unmatched keys listed by
# name (a LoRA with deliberately wrong key names), diffusers' scaling notes,
# training metadata and trigger tags, --modules / --json / --apply-all /
# --scaling, refusals (LoHa, SDXL, shapes that do not fit SD1.5), --help
# and usage errors. Run from the source root: sh tests/e2e/test_lora_inspect.sh BIN
set -u
BIN=${1:-build/loramix}
[ -x "$BIN" ] || { echo "test_lora_inspect: no binary at $BIN"; exit 1; }
LC_ALL=C
export LC_ALL
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_lora_inspect.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
FAILS=0
CHECKS=0
L=tests/fixtures/lora
M=tests/fixtures/models/tiny-sd

fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }

# run NAME EXPECTED_RC ARGS...: output in $T/out, $T/err
run() {
    name=$1 want=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    "$BIN" lora "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want; stderr: $(head -c 300 "$T/err")"
}
has() { # has NAME PATTERN: stdout contains the fixed string
    CHECKS=$((CHECKS + 1))
    grep -qF -- "$2" "$T/out" || { fail "$1: output lacks '$2'"; sed 's/^/    | /' "$T/out" | head -40; }
}
hasnt() {
    CHECKS=$((CHECKS + 1))
    if grep -qF -- "$2" "$T/out"; then fail "$1: output has '$2'"; fi
}
err_has() {
    CHECKS=$((CHECKS + 1))
    grep -qF -- "$2" "$T/err" || { fail "$1: stderr lacks '$2'"; sed 's/^/    | /' "$T/err" | head -10; }
}

# kohya, matched against the tiny model
run kohya 0 inspect --model "$M" "$L/char_kohya.safetensors"
has kohya "format: kohya (lora_unet_/lora_te_, lora_down/lora_up/alpha)"
has kohya "UNet: 159 modules"
has kohya "text encoder: 12 modules (12 linear"
has kohya "rank 4, alpha 2; scale alpha/rank = 0.5"
has kohya "ignored 2 modules on conv_in/conv_out/time_embedding"
has kohya "lora_unet_conv_in"
has kohya "unmatched keys: 0"
has kohya "network dim (rank)   4"
has kohya "base model version   sd_v1"
has kohya "most frequent tags"
has kohya "scarlett (40)"
has kohya "short red hair (38)"
run kohya-all 0 inspect --apply-all --model "$M" "$L/char_kohya.safetensors"
has kohya-all "applied 2 modules on conv_in"

# LDM dialect: same modules
run ldm 0 inspect --model "$M" "$L/char_kohya_ldm.safetensors"
has ldm "159 of 159 UNet modules in the LDM dialect"
has ldm "UNet: 159 modules"

# PEFT and older diffusers spellings
run peft 0 inspect --model "$M" "$L/style_peft.safetensors"
has peft "PEFT/diffusers (lora_A/lora_B)"
has peft "no alpha tensors: alpha = rank"
has peft "training metadata: none"
run old 0 inspect --model "$M" "$L/style_diffusers_old.safetensors"
has old "older diffusers"
has old "unmatched keys: 0"
run prefixed 0 inspect --model "$M" "$L/style_peft_prefixed.safetensors"
has prefixed "base_model.model."
has prefixed "unmatched keys: 0"

# non-uniform alphas/ranks: where diffusers differs, and --scaling diffusers
run mixed 0 inspect --modules --model "$M" "$L/mixed_kohya.safetensors"
has mixed "NON-UNIFORM ranks and alphas"
has mixed "diffusers 0.32.2 would scale 64 modules differently"
has mixed "sets every UNet module's alpha to its rank"
has mixed "[diffusers: 2]"
run mixed-d 0 inspect --scaling diffusers --model "$M" "$L/mixed_kohya.safetensors"
has mixed-d "scaling: diffusers 0.32.2's (compatibility)"

# deliberately wrong key names: listed, grouped by module, exit 0
run badkeys 0 inspect --model "$M" "$L/bad_keys.safetensors"
has badkeys "unmatched keys: 9"
has badkeys "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq (.alpha, .lora_down.weight, .lora_up.weight)"
has badkeys "lora_unet_middle_blok_attentions_0_proj_in"
has badkeys "lora_te_text_model_encoder_layers_7_mlp_fc1"
has badkeys "9 keys (3 modules) match no layer of the model"

# JSON
run json 0 inspect --json --model "$M" "$L/char_kohya.safetensors"
has json '"formats":["kohya"]'
has json '"top_tags":[{"tag":"1girl","count":40}'
has json '"unmatched":[]'
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "json: not one line"
run json-bad 0 inspect --json --model "$M" "$L/bad_keys.safetensors"
has json-bad '"unmatched":["lora_te_text_model_encoder_layers_7_mlp_fc1.alpha"'

# SD1.5-shaped LoRA without --model: matched against SD1.5's layer list
run sd15mini 0 inspect --modules "$L/sd15_mini_kohya.safetensors"
has sd15mini "matched against: SD1.5's module list"
has sd15mini "2 of 6 UNet modules in the LDM dialect"
has sd15mini "-> down_blocks.1.attentions.0.transformer_blocks.0.ff.net.2"
has sd15mini "-> up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0"
has sd15mini "-> mid_block.resnets.0.conv1  rank 1 alpha 1 scale 1  (3x3 down, 1x1 up)"
has sd15mini "text encoder: 2 modules"
has sd15mini "unmatched keys: 0"

# refusals
run loha 1 inspect "$L/loha.safetensors"
err_has loha "LyCORIS LoHa (hada_*)"
has loha "network module       lycoris.kohya"
run sdxl 1 inspect "$L/sdxl_kohya.safetensors"
err_has sdxl "SDXL LoRA"
run json-sdxl 1 inspect --json "$L/sdxl_kohya.safetensors"
has json-sdxl '"error":'
# a tiny-model LoRA against SD1.5's module list: the shapes do not fit, and
# inspect says so, describes the file and names --model (exit 0: the file is
# fine, SD1.5 was only the default); against a model it does not fit: exit 1
run sd15 0 inspect "$L/char_kohya.safetensors"
has sd15 "matched against: SD1.5's module list (no --model)"
has sd15 "does not fit SD1.5: "
has sd15 "expected [4, 768]"
has sd15 "kohya LoRA, SD1.x: 171 modules (UNet 159, text encoder 12), 10 on 3x3 convs, rank 4, alpha 2"
has sd15 "widths: cross-attention 16, text encoder 16"
has sd15 "loramix lora inspect --model PATH $L/char_kohya.safetensors"
has sd15 "scarlett (40)"
run json-sd15 0 inspect --json "$L/char_kohya.safetensors"
has json-sd15 '"fits":false'
has json-sd15 '"context_dim":16'
run sd15-model 1 inspect --model "$M" "$L/sd15_mini_kohya.safetensors"
err_has sd15-model "expected [1, 16]"
run missing 1 inspect "$T/none.safetensors"
err_has missing "none.safetensors"
printf 'not a safetensors file at all' >"$T/junk.safetensors"
run junk 1 inspect "$T/junk.safetensors"
err_has junk "junk.safetensors"

# help and usage
run help 0 inspect --help
has help "usage: loramix lora inspect [options] FILE"
has help "ss_tag_frequency"
run help2 0 --help
has help2 "inspect FILE"
run noargs 2 inspect
err_has noargs "which LoRA file?"
run two 2 inspect a b
run badopt 2 inspect --frobnicate x
run badscale 2 inspect --scaling nope x
run badsub 2 frobnicate

echo "test_lora_inspect: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
