#!/bin/sh
# test_inspect.sh - `loramix inspect` on small valid files made here (and
# the reference-written fixture): the kind line for each convention, LoRA
# statistics, metadata, tensor listing, --no-tensors / --filter / --json,
# diffusers folders (whole model, component, plain folder of LoRAs), --help
# and usage errors. Run from the source root: sh tests/e2e/test_inspect.sh BIN
set -u
BIN=${1:-build/loramix}
[ -x "$BIN" ] || { echo "test_inspect: no binary at $BIN"; exit 1; }
LC_ALL=C
export LC_ALL
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_inspect.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
FAILS=0
CHECKS=0

fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }

# 8-byte little-endian length.
le64() {
    n=$1
    i=0
    while [ $i -lt 8 ]; do
        printf "\\$(printf '%03o' $((n % 256)))"
        n=$((n / 256))
        i=$((i + 1))
    done
}

# mkst FILE JSON NZERO [TAIL]: a safetensors file with header JSON, NZERO
# zero bytes of data, then the printf-format bytes TAIL.
mkst() {
    { le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; printf "${4:-}"; } >"$1"
}

# run NAME EXPECTED_RC ARGS...: output in $T/out, $T/err
run() {
    name=$1 want=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    "$BIN" inspect "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want; stderr: $(head -c 300 "$T/err")"
}
has() { # has NAME PATTERN: stdout contains the fixed string
    CHECKS=$((CHECKS + 1))
    grep -qF -- "$2" "$T/out" || { fail "$1: output lacks '$2'"; sed 's/^/    | /' "$T/out" | head -40; }
}
hasnt() {
    CHECKS=$((CHECKS + 1))
    ! grep -qF -- "$2" "$T/out" || fail "$1: output has '$2'"
}

U=lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k
TE=lora_te_text_model_encoder_layers_0_self_attn_q_proj

# ---- kohya SD1.5 LoRA: rank 4, alpha 4 (F16 0x4400), UNet + TE ----
J='{"__metadata__":{"ss_network_dim":"4","ss_base_model_version":"sd_v1","note":"line1\nline2"},'
J="$J\"$U.lora_down.weight\":{\"dtype\":\"F16\",\"shape\":[4,768],\"data_offsets\":[0,6144]},"
J="$J\"$U.lora_up.weight\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[6144,6144]},"
J="$J\"$U.alpha\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[6144,6146]},"
J="$J\"$TE.lora_down.weight\":{\"dtype\":\"F16\",\"shape\":[4,0],\"data_offsets\":[6146,6146]},"
J="$J\"$TE.lora_up.weight\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[6146,6146]}}"
mkst "$T/kohya.safetensors" "$J" 6144 '\000\104'
run kohya 0 "$T/kohya.safetensors"
has kohya "kohya LoRA, SD1.x: 2 modules (UNet 1, text encoder 1), rank 4, alpha 4"
has kohya "supported   yes"
has kohya "parts       UNet text-encoder"
has kohya "5, 3,073 parameters (F16 x5)"
has kohya "cross-attention 768"
has kohya "ranks       4 (x2)"
has kohya "alphas      4 (x1); 1 of 2 modules have one"
has kohya "diffusers dialect 1, LDM dialect 0"
has kohya "ss_network_dim = 4"
has kohya 'note = line1\x0aline2'
has kohya "tensors (5, file order):"
has kohya "$U.lora_down.weight"
has kohya "F16  [4, 768]"
has kohya "F16  []"
[ "$(wc -l <"$T/err")" -eq 0 ] || fail "kohya: stderr not empty"

run no-tensors 0 --no-tensors "$T/kohya.safetensors"
hasnt no-tensors "$U.lora_down.weight"
has no-tensors "kohya LoRA"
run no-metadata 0 --no-metadata --no-tensors "$T/kohya.safetensors"
hasnt no-metadata "ss_network_dim"
run filter 0 --filter attn2 "$T/kohya.safetensors"
has filter "tensors matching 'attn2': 3 of 5"
hasnt filter "$TE.lora_down.weight"
run filter= 0 --filter=q_proj "$T/kohya.safetensors"
has filter= "tensors matching 'q_proj': 2 of 5"

run json 0 --json "$T/kohya.safetensors"
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "json: not one line"
has json '"kind":"lora-kohya"'
has json '"arch":"SD1.x"'
has json '"supported":true'
has json '"ranks":[{"rank":4,"count":2}]'
has json '"alphas":[{"alpha":4,"count":1}]'
has json '"ss_network_dim":"4"'
has json "{\"name\":\"$U.lora_down.weight\",\"dtype\":\"F16\",\"shape\":[4,768]}"
has json '"n_params":3073'
run json-no-tensors 0 --json --no-tensors "$T/kohya.safetensors"
hasnt json-no-tensors '"tensors"'
if command -v python3 >/dev/null 2>&1; then
    CHECKS=$((CHECKS + 1))
    "$BIN" inspect --json "$T/kohya.safetensors" | python3 -c 'import json,sys; json.load(sys.stdin)' ||
        fail "json: not valid JSON"
fi

# ---- SDXL LoRA (te1/te2): recognised, not supported ----
J="{\"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight\":{\"dtype\":\"F16\",\"shape\":[8,0],\"data_offsets\":[0,0]},"
J="$J\"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight\":{\"dtype\":\"F16\",\"shape\":[8,0],\"data_offsets\":[0,0]}}"
mkst "$T/sdxl.safetensors" "$J" 0
run sdxl 0 --no-tensors "$T/sdxl.safetensors"
has sdxl "kohya LoRA, SDXL (not supported)"
has sdxl "supported   no"

# ---- PEFT LoRA ----
P=unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v
J="{\"$P.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,768],\"data_offsets\":[0,6144]},"
J="$J\"$P.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[0,2],\"data_offsets\":[6144,6144]}}"
mkst "$T/peft.safetensors" "$J" 6144
run peft 0 --no-tensors "$T/peft.safetensors"
has peft "PEFT/diffusers LoRA, SD1.x: 1 module (UNet 1, text encoder 0), rank 2, no alpha (alpha = rank)"

# ---- LyCORIS LoHa ----
J="{\"$U.hada_w1_a\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
J="$J\"$U.hada_w1_b\":{\"dtype\":\"F16\",\"shape\":[4,0],\"data_offsets\":[0,0]}}"
mkst "$T/loha.safetensors" "$J" 0
run loha 0 --no-tensors "$T/loha.safetensors"
has loha "LyCORIS adapter"
has loha "LoHa, not supported"

# ---- SD1.5 single-file checkpoint ----
J='{"model.diffusion_model.input_blocks.0.0.weight":{"dtype":"F16","shape":[0,4,3,3],"data_offsets":[0,0]},'
J="$J"'"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":{"dtype":"F16","shape":[0,768],"data_offsets":[0,0]},'
J="$J"'"first_stage_model.decoder.conv_out.weight":{"dtype":"F16","shape":[0,128,3,3],"data_offsets":[0,0]},'
J="$J"'"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":{"dtype":"F16","shape":[0,768],"data_offsets":[0,0]}}'
mkst "$T/sd15.safetensors" "$J" 0
run ckpt 0 "$T/sd15.safetensors"
has ckpt "single-file checkpoint, SD1.x: UNet + text encoder + VAE"
has ckpt "supported   yes"

# ---- a diffusers model folder ----
D=$T/tiny-sd
mkdir -p "$D/unet" "$D/vae" "$D/text_encoder" "$D/scheduler"
printf '%s' '{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.32.2",
 "feature_extractor": [null, null], "scheduler": ["diffusers", "PNDMScheduler"],
 "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
 "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}' >"$D/model_index.json"
printf '{"_class_name": "UNet2DConditionModel"}' >"$D/unet/config.json"
printf '{"_class_name": "AutoencoderKL"}' >"$D/vae/config.json"
printf '{"architectures": ["CLIPTextModel"]}' >"$D/text_encoder/config.json"
J='{"conv_in.weight":{"dtype":"F32","shape":[0,4,3,3],"data_offsets":[0,0]},'
J="$J"'"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight":{"dtype":"F32","shape":[0,768],"data_offsets":[0,0]}}'
mkst "$D/unet/diffusion_pytorch_model.safetensors" "$J" 0
mkst "$D/vae/diffusion_pytorch_model.safetensors" \
    '{"encoder.conv_in.weight":{"dtype":"F32","shape":[0,3,3,3],"data_offsets":[0,0]},"decoder.conv_out.weight":{"dtype":"F32","shape":[0,128,3,3],"data_offsets":[0,0]}}' 0
mkst "$D/text_encoder/model.safetensors" \
    '{"text_model.embeddings.token_embedding.weight":{"dtype":"F32","shape":[0,768],"data_offsets":[0,0]}}' 0
run pipeline 0 "$D"
has pipeline "diffusers model folder (model_index.json): StableDiffusionPipeline, diffusers 0.32.2"
has pipeline "UNet2DConditionModel"
has pipeline "unet/diffusion_pytorch_model.safetensors"
has pipeline "diffusers UNet (UNet2DConditionModel), SD1.x: 2 tensors"
has pipeline "diffusers VAE (AutoencoderKL): 2 tensors"
has pipeline "diffusers text encoder (CLIPTextModel), SD1.x: 1 tensors"
has pipeline "(not used)"
has pipeline "base        SD1.x"
has pipeline "supported   yes"
# The bundled tiny model: an SD1.x-family model of a custom size, supported.
run tiny 0 --no-tensors tests/fixtures/models/tiny-sd
has tiny "base        SD1.x family (custom size)"
has tiny "supported   yes"
hasnt pipeline "conv_in.weight"
run pipeline-tensors 0 --tensors "$D"
has pipeline-tensors "conv_in.weight"
run pipeline-json 0 --json "$D"
has pipeline-json '"kind":"diffusers-pipeline"'
has pipeline-json '"name":"unet"'
run component 0 --no-tensors "$D/unet"
has component "diffusers UNet (UNet2DConditionModel), SD1.x"
run component-file 0 --no-tensors "$D/vae/diffusion_pytorch_model.safetensors"
has component-file "diffusers VAE (AutoencoderKL)"

# A pickle-only component makes the folder fail, with the others listed.
rm "$D/vae/diffusion_pytorch_model.safetensors"
printf 'PK\003\004' >"$D/vae/diffusion_pytorch_model.bin"
run pipeline-pickle 1 "$D"
has pipeline-pickle "only PyTorch pickle weights"
has pipeline-pickle "diffusers UNet"

# ---- a plain folder of LoRAs ----
mkdir "$T/loras"
cp "$T/kohya.safetensors" "$T/sdxl.safetensors" "$T/peft.safetensors" "$T/loras/"
run folder 0 "$T/loras"
has folder "a folder of 3 model files:"
has folder "kohya.safetensors"
has folder "SDXL (not supported)"
printf 'junk' >"$T/loras/zz_bad.safetensors"
run folder-bad 1 "$T/loras"
has folder-bad "zz_bad.safetensors  error:"

# ---- several paths; the reference-written fixture ----
run multi 0 --no-tensors "$T/peft.safetensors" tests/fixtures/io/ref_small.safetensors
has multi "PEFT/diffusers LoRA"
has multi "unknown safetensors file"
run fixture 0 tests/fixtures/io/ref_small.safetensors
has fixture "BF16 [3, 1]"
has fixture "note = h"

# ---- help and usage ----
run help 0 --help
has help "usage: loramix inspect [options] PATH..."
has help "examples:"
has help "--filter SUBSTR"
run usage-none 2
run usage-opt 2 --bogus "$T/peft.safetensors"
run usage-filter 2 --filter
run usage-filter-notensors 2 --filter x --no-tensors "$T/peft.safetensors"

echo "test_inspect: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
