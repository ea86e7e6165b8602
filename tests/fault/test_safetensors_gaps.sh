#!/bin/sh
# A safetensors file whose tensors leave unreferenced bytes in the data area
# is refused by default (as the reference reader does), naming the gap;
# --allow-gaps accepts it (inspect and generate).
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd

h='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}'
{ printf "\\$(printf %03o ${#h})\\000\\000\\000\\000\\000\\000\\000"; printf '%s' "$h"; head -c 12 /dev/zero; } > "$T/gap.safetensors"
"$BIN" inspect "$T/gap.safetensors" >/dev/null 2>"$T/err" && no "inspect accepted a gap"
grep -q "4 unreferenced bytes between tensor 'a' and tensor 'b' (data bytes 4..8)" "$T/err" || no "gap not named: $(cat "$T/err")"
"$BIN" inspect --allow-gaps "$T/gap.safetensors" >/dev/null 2>"$T/err" || no "inspect --allow-gaps failed: $(cat "$T/err")"

# Trailing bytes after the last tensor of a model's VAE.
cp -r $M "$T/m"
printf 'junk' >> "$T/m/vae/diffusion_pytorch_model.safetensors"
"$BIN" generate -q -m "$T/m" -p x -W 64 -H 64 --steps 1 -o "$T/a.png" 2>"$T/err" && no "generate accepted trailing bytes"
grep -q "vae/diffusion_pytorch_model.safetensors: 4 unreferenced bytes between tensor '.*' and the end of the file" "$T/err" ||
    no "trailing bytes not named: $(cat "$T/err")"
[ -e "$T/a.png" ] && no "wrote a PNG"
"$BIN" generate -q -m "$T/m" -p x -W 64 -H 64 --steps 1 --allow-gaps -o "$T/b.png" 2>"$T/err" ||
    no "generate --allow-gaps failed: $(cat "$T/err")"

[ $fail = 0 ] && echo "test_safetensors_gaps: ok"
exit $fail
