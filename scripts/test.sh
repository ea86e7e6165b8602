#!/bin/sh
# The whole test suite: install dependencies (idempotent), build, run ctest
# (labels unit, ops, golden, fault, e2e), then a bounded fuzz run of every
# parser (scripts/fuzz.sh). Exits non-zero on any failure.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup-deps.sh
JOBS=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure -j "$JOBS")
if [ -x ./scripts/fuzz.sh ]; then
    ./scripts/fuzz.sh
fi
echo "test.sh: all tests passed"
