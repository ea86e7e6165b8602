#!/bin/sh
# The main job on the bundled default: install the Debian packages loramix
# needs, build it, inspect the bundled tiny model and generate an image with
# it (out/demo.png, generation parameters stored in the PNG).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
MODEL=tests/fixtures/models/tiny-sd
mkdir -p out
echo "== loramix inspect $MODEL"
./build/loramix inspect "$MODEL" --no-tensors
echo "== loramix generate"
./build/loramix generate -m "$MODEL" -p "a red fox in the snow, highly detailed" \
    -n "blurry" --scheduler dpm++2m --steps 20 --seed 42 --overwrite -o out/demo.png
echo "demo: wrote out/demo.png (the tiny model draws noise-like images; bring an SD1.5 checkpoint for real ones)"
