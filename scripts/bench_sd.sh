#!/bin/sh
# Full-size SD1.5 (random weights, bench/make_sd15_random.py) against
# PyTorch + diffusers on the same machine, same files, same thread count:
# time per network pass and peak RSS, one process per measurement.
#
#   scripts/bench_sd.sh                 # 512x512 and 1024x768, fp32
#   REPS=3 THREADS=2 SIZES="512x512" scripts/bench_sd.sh
#   EXTRA="--winograd" scripts/bench_sd.sh   # loramix options (also --bf16)
#
# Needs the reference Python (PY, default /opt/lmxref/bin/python3).
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-/opt/lmxref/bin/python3}
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
REPS=${REPS:-3}
SIZES=${SIZES:-"512x512 768x1024"}
MODEL=${MODEL:-bench/out/sd15-random}
OUT=${OUT:-bench/out/sd.jsonl}
EXTRA=${EXTRA:-}
PEER=${PEER:-1}
export OMP_NUM_THREADS=$THREADS
[ -f "$MODEL/model_index.json" ] || "$PY" bench/make_sd15_random.py "$MODEL"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target bench_sd >/dev/null
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
echo "== SD1.5 networks, $THREADS threads, $(date -u +%Y-%m-%dT%H:%M:%SZ),$(uptime | sed 's/.*load/ load/')"
run() { # what W H
    # shellcheck disable=SC2086
    "$BUILD/bench/bench_sd" "$MODEL" "$1" "$2" "$3" "$REPS" $EXTRA | tee -a "$OUT"
    if [ "$PEER" = 1 ]; then
        "$PY" bench/peer_diffusers.py "$MODEL" "$1" "$2" "$3" "$REPS" "$THREADS" 2>/dev/null | tee -a "$OUT"
    fi
}
run text 512 512
for s in $SIZES; do
    W=${s%x*}; H=${s#*x}
    run unet1 "$W" "$H"
    run unet2 "$W" "$H"
    run vae "$W" "$H"
done
"$PY" - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["what"], r["w"], r["h"])
ours = {key(r): r for r in rows if r["side"] == "loramix"}
peer = {key(r): r for r in rows if r["side"] == "diffusers"}
print(f"\n| pass | size | loramix s | diffusers s | ratio | loramix RSS MB | diffusers RSS MB |")
print("|---|---|---|---|---|---|---|")
for k, r in ours.items():
    p = peer.get(k)
    ratio = f"{r['median_s'] / p['median_s']:.2f}x" if p else "-"
    print(f"| {k[0]} | {k[1]}x{k[2]} | {r['median_s']:.2f} | {p['median_s']:.2f} | {ratio} | {r['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} |"
          if p else f"| {k[0]} | {k[1]}x{k[2]} | {r['median_s']:.2f} | - | - | {r['peak_rss_mb']:.0f} | - |")
PYEOF

# bf16 against fp32 on a whole image (PSNR), when asked: PSNR=1.
if [ "${PSNR:-0}" = 1 ]; then
    for prec in fp32 bf16; do
        "$BUILD/loramix" generate -m "$MODEL" -p "a red fox in the snow, highly detailed" -n blurry \
            --scheduler dpm++2m --steps "${PSNR_STEPS:-10}" --seed 42 --precision $prec -q \
            --overwrite -o "bench/out/psnr_$prec.png"
    done
    echo "bf16 vs fp32 (512x512, ${PSNR_STEPS:-10} DPM++ 2M steps):"
    "$PY" bench/psnr.py bench/out/psnr_fp32.png bench/out/psnr_bf16.png
fi
