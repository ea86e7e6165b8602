#!/bin/sh
# Bad inputs to `loramix generate` give a clear one-line error naming the
# culprit, a non-zero exit below 128 (no crash) and no output file.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
M=tests/fixtures/models/tiny-sd

# expect NAME PATTERN -- args...
expect() {
    name=$1; pat=$2; shift 3
    rm -f "$T/out.png"
    timeout 60 "$BIN" generate -q -o "$T/out.png" "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then echo "FAIL $name: exit $rc"; fail=1; fi
    grep -q -- "$pat" "$T/stderr" || { echo "FAIL $name: stderr lacks '$pat':"; cat "$T/stderr"; fail=1; }
    [ -e "$T/out.png" ] && { echo "FAIL $name: wrote an output file"; fail=1; }
    ls "$T"/out.png.tmp.* >/dev/null 2>&1 && { echo "FAIL $name: temp file left"; fail=1; }
}

expect width8   "multiple of 8"   -- -m $M -p x -W 60
expect steps    "\-\-steps"        -- -m $M -p x --steps 0
expect nomodel  "\-\-model is required" -- -p x
expect sched    "unknown scheduler" -- -m $M -p x --scheduler lms
expect missing  "$T/nope"          -- -m "$T/nope" -p x
echo "not a pickle really" > "$T/model.ckpt"
expect ckpt     "safetensors"      -- -m "$T/model.ckpt" -p x
# A folder with the UNet missing.
cp -r $M "$T/nounet"; rm -rf "$T/nounet/unet"
expect nounet   "unet"             -- -m "$T/nounet" -p x
# Truncated weights.
cp -r $M "$T/trunc"; f="$T/trunc/unet/diffusion_pytorch_model.safetensors"
head -c 100000 "$f" > "$f.x" && mv "$f.x" "$f"
expect trunc    "diffusion_pytorch_model.safetensors" -- -m "$T/trunc" -p x
# Wrong shapes: the VAE of the tiny model given as the UNet's weights.
cp -r $M "$T/shape"; cp $M/vae/diffusion_pytorch_model.safetensors "$T/shape/unet/"
expect shape    "unet"             -- -m "$T/shape" -p x
[ $fail = 0 ] && echo "test_generate_errors: ok"
exit $fail
