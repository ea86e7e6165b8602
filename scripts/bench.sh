#!/bin/sh
# Benchmarks (never run by ctest): build the bench targets in Release and run
# them one after the other. The machine is shared: each section prints the
# load average next to its numbers; rerun when `uptime` shows a load above
# ~0.5 on the 2 cores.
#
#   scripts/bench.sh                      # everything
#   BUILD=build-x scripts/bench.sh        # another build directory
#   BENCH_OPS_ARGS="--filter conv3x3 --reps 9" scripts/bench.sh
#
# Sections (append new ones below, each guarded by its own target):
#   ops   bench/bench_ops.c: GFLOP/s and % of peak of op_conv2d / op_linear on
#         the SD1.5 UNet and CLIP shapes (docs/kernels.md has the table)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target bench_ops

echo "== ops (bench_ops) $(date -u +%Y-%m-%dT%H:%M:%SZ), uptime:$(uptime | sed 's/.*load/ load/')"
# shellcheck disable=SC2086
"$BUILD/bench/bench_ops" ${BENCH_OPS_ARGS:-}
